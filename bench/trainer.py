"""Trainer throughput against a plain PyTorch loop and against the model-bound ceiling, measured in one run.

For a small mobile-space model and a ResNet-18 (zoo spec at 32 px; once on the grey images as they are, once on
grey replicated to 3 channels, the timm/torchvision default input), on Fashion-MNIST, same batch and threads:
- plain: torchvision FashionMNIST with PIL transforms (resize, flip, to-tensor, normalise), a DataLoader with
  2 workers, the default (contiguous) layout; goal: archlab >= 1.3x of it.
- ceiling: the same model stepping on in-memory random tensors, no data path at all, in the faster of the two
  layouts; goal: archlab >= 0.9x of it.
- archlab: `archlab.measure.train.train` with the proxy recipe at batch 128 with flips, images/s of its training steps.
Also the achieved GFLOP/s (training ~ 3 x forward = 6 FLOPs per MAC) as a share of a float32 matmul peak
measured in the same run. The methods alternate --repeats times; a ratio is the median of the ratios paired
within a repeat, so load from other processes on a shared machine hits both sides.
Run: .venv/bin/python -m bench.trainer [--threads 1] [--steps 20] [--repeats 5]
(writes bench/results/trainer.json, or trainer_threads<N>.json for N > 1)
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch
from torch import nn

from bench.common import write_result

GOAL_VS_PLAIN, GOAL_VS_CEILING = 1.3, 0.9
BATCH = 128


def models() -> dict[str, Any]:
    """The benchmark networks at 32 px, 10 classes: 1 input channel, and ResNet-18 also with 3."""
    from archlab.arch.zoo import get_spec
    try:
        from archlab.space.search_space import load_space
        mobile = load_space("search_spaces/mobile.yaml").sample(1, seed=0, img_size=32, in_chans=1,
                                                                 num_classes=10)[0][1].replace(name="mobile_sample0")
    except (ImportError, OSError, Exception):
        mobile = get_spec("mobilenet_v3_small", img_size=32, in_chans=1, num_classes=10)
    return {"mobile": mobile, "resnet18": get_spec("resnet18", img_size=32, in_chans=1, num_classes=10),
            "resnet18_rgb": get_spec("resnet18", img_size=32, in_chans=3, num_classes=10)}


def matmul_peak_gflops(threads: int, sizes: tuple[int, ...] = (512, 1024, 2048), reps: int = 10) -> float:
    """float32 GEMM GFLOP/s with `threads` threads: the best over sizes and repeats (a shared machine only slows)."""
    torch.set_num_threads(threads)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # a first product outside the timing (allocations, thread start-up)
        best = max(best, max(2 * n**3 / _timed(lambda a=a, b=b: a @ b) / 1e9 for _ in range(reps)))
    return best


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def ceiling(spec: Any, steps: int, fmt: torch.memory_format) -> float:
    """Images/s of bare training steps on one in-memory random batch (no data path)."""
    from archlab.nn.build import build_model
    torch.manual_seed(0)
    model = build_model(spec).to(memory_format=fmt).train()
    opt = _sgd(model)
    x = torch.randn(BATCH, spec.in_chans, spec.img_size, spec.img_size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (BATCH,))

    def step() -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    return steps * BATCH / _timed(lambda: [step() for _ in range(steps)])


def plain_loop(spec: Any, steps: int, root: str) -> float:
    """Images/s of a textbook loop: torchvision dataset + PIL transforms + DataLoader(2 workers)."""
    from torchvision import transforms
    from torchvision.datasets import FashionMNIST

    from archlab.nn.build import build_model
    torch.manual_seed(0)
    grey = [transforms.Grayscale(num_output_channels=spec.in_chans)] if spec.in_chans > 1 else []
    tf = transforms.Compose([*grey, transforms.Resize(spec.img_size), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(),
                             transforms.Normalize((0.286,) * spec.in_chans, (0.353,) * spec.in_chans)])
    loader = torch.utils.data.DataLoader(FashionMNIST(root, train=True, transform=tf), batch_size=BATCH,
                                         shuffle=True, num_workers=2, drop_last=True)
    model = build_model(spec).train()
    opt = _sgd(model)
    it = iter(loader)
    for _ in range(3):  # warm-up, workers started: steady state only, to be fair to the baseline
        x, y = next(it)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t = time.perf_counter()
    for _ in range(steps):
        x, y = next(it)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    rate = steps * BATCH / (time.perf_counter() - t)
    del it, loader
    return rate


def archlab_trainer(spec: Any, steps: int, data: Any) -> tuple[float, str]:
    """Images/s of archlab.measure.train's training steps (proxy recipe, batch 128, flips) and the layout it chose."""
    from archlab.measure.train import Budget, train
    recipe = {"base": "proxy", "batch_size": BATCH, "augmentation": "flip"}  # the plain loop's work: flips
    res = train(spec, data, recipe=recipe, budget=Budget(images=steps * BATCH), seed=0)
    return res.images_per_s, res.memory_format


def main() -> None:
    """Measure every figure for both models and write the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="compute threads (a search trial gets 1)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of batch 128 per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from archlab.measure.data import _fashion_root, load_data
    from archlab.nn.complexity import complexity
    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops(args.threads)
    root = str(_fashion_root(None))
    data = {c: load_data("fashion_mnist", img_size=32, in_chans=c, val_limit=500) for c in (1, 3)}
    out: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "threads": args.threads, "batch": BATCH,
                           "steps": args.steps, "matmul_peak_gflops": peak,
                           "goals": {"vs_plain": GOAL_VS_PLAIN, "vs_ceiling": GOAL_VS_CEILING}, "models": {}}
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s on {args.threads} threads")
    for name, spec in models().items():
        macs = complexity(spec).macs
        runs: dict[str, list[float]] = {"ceiling_contiguous": [], "ceiling_channels_last": [], "plain": [],
                                        "archlab": []}
        layout = ""
        for _ in range(args.repeats):  # alternate, so slow phases of a shared machine hit every method
            torch.set_num_threads(args.threads)
            runs["ceiling_contiguous"].append(ceiling(spec, args.steps, torch.contiguous_format))
            runs["ceiling_channels_last"].append(ceiling(spec, args.steps, torch.channels_last))
            runs["plain"].append(plain_loop(spec, args.steps, root))
            rate, layout = archlab_trainer(spec, args.steps, data[spec.in_chans])
            runs["archlab"].append(rate)
        med = {k: statistics.median(v) for k, v in runs.items()}
        best = max(med["ceiling_contiguous"], med["ceiling_channels_last"])
        # ratios are paired within a repeat (measured back to back), then the median is taken
        ceil_r = [max(a, b) for a, b in zip(runs["ceiling_contiguous"], runs["ceiling_channels_last"])]
        paired = {"vs_plain": [a / p for a, p in zip(runs["archlab"], runs["plain"])],
                  "vs_ceiling": [a / c for a, c in zip(runs["archlab"], ceil_r)],
                  "plain_vs_ceiling": [p / c for p, c in zip(runs["plain"], ceil_r)]}
        gflops = 6 * macs * med["archlab"] / 1e9
        row = {"spec": spec.name, "arch_id": spec.arch_id, "macs": macs, "runs_images_per_s": runs,
               "median_images_per_s": med, "ceiling_images_per_s": best, "archlab_layout": layout,
               "paired_ratios": paired, **{k: statistics.median(v) for k, v in paired.items()},
               "archlab_gflops": gflops, "share_of_matmul_peak": gflops / peak}
        out["models"][name] = row
        print(f"{name} ({spec.in_chans} ch, {macs / 1e6:.1f} M MACs): archlab {med['archlab']:.0f} img/s ({layout}), "
              "plain "
              f"{med['plain']:.0f}, ceiling {best:.0f} (contiguous {med['ceiling_contiguous']:.0f}, channels_last "
              f"{med['ceiling_channels_last']:.0f}) -> {row['vs_plain']:.2f}x plain (goal >= {GOAL_VS_PLAIN}), "
              f"{row['vs_ceiling']:.2f}x ceiling (goal >= {GOAL_VS_CEILING}); plain reaches "
              f"{row['plain_vs_ceiling']:.0%} of the ceiling; {gflops:.1f} GFLOP/s = {row['share_of_matmul_peak']:.1%} "
              "of matmul peak", flush=True)
    out["load_average_at_end"] = os.getloadavg()
    name = "trainer" if args.threads == 1 else f"trainer_threads{args.threads}"
    print(f"written {write_result(name, out)}")


if __name__ == "__main__":
    main()
