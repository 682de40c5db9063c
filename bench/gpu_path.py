"""The GPU path in one short run: CUDA latency timing, and two search trials sharing one GPU (fractional GPUs).

1. `measure_latency` on CUDA (events and synchronisation, archlab.measure.latency) for three torchvision-exact
   networks at 224 px, batch 1 and 64, measured twice: median, p90, CV, repeats, and how far the two medians differ.
2. A 4-trial search on scikit-learn's digits (no download) with `gpus_per_trial: 0.5` and 2 concurrent trials,
   latency on `cuda` at batch 1: the run folder's table must show every trial on a GPU id and at least one pair of
   trials that ran at the same time on the same GPU.
Needs CUDA, torch, ray and optuna; on a machine without CUDA it says so and exits 2. Runs in 2-4 minutes.
Run: python -m bench.gpu_path   (writes bench/results/gpu_path.json)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

NETWORKS = ("mobilenet_v3_large", "resnet18", "resnet50")
SPACE = """\
name: gpu_tiny
img_size: 16
stem: {type: conv, width: [8, 16], kernel_size: 3, stride: 1}
all_stages: {block: inverted_residual, kernel_size: [3, 5], expand_ratio: [2, 4], act: relu}
stages:
  - {width: [8, 16], depth: {low: 1, high: 2}, stride: 2}
  - {width: [16, 24], depth: {low: 1, high: 2}, stride: 2}
head: {conv_width: [32, 64]}
"""
STUDY = """\
name: gpu_path
description: two trials share one GPU (fractional GPUs); CUDA latency at batch 1
space: space.yaml
dataset: {name: digits, img_size: 16, val_fraction: 0.2}
recipe: {base: proxy, batch_size: 32}
budget: {epochs: 4}
objectives: [top1, latency_ms]
latency: {device: cuda, batch: 1, max_seconds: 2}
sampler: {name: random}
trials: 4
early_stopping: {scheduler: none}
seed: 0
execution: {cpus_per_trial: 1, gpus_per_trial: 0.5, concurrent: 2}
"""


def cuda_latency() -> list[dict[str, Any]]:
    """Two measurements of each network at batch 1 and 64 on the current CUDA device."""
    from archlab.arch.zoo import get_spec
    from archlab.measure.latency import measure_latency
    rows = []
    for name in NETWORKS:
        for batch in (1, 64):
            first, second = (measure_latency(get_spec(name), batch=batch, device="cuda", max_seconds=3)
                             for _ in range(2))
            rows.append({"network": name, "batch": batch, "median_ms": first.median_ms, "p90_ms": first.p90_ms,
                         "cv": first.cv, "repeats": first.repeats, "second_median_ms": second.median_ms,
                         "medians_differ": abs(second.median_ms / first.median_ms - 1)})
            print(f"  {name:20s} batch {batch:3d}: median {first.median_ms:.3f} ms, p90 {first.p90_ms:.3f}, CV "
                  f"{first.cv:.1%}, {first.repeats} repeats; again {second.median_ms:.3f} ms", flush=True)
    return rows


def shared_gpu_search(folder: Path) -> dict[str, Any]:
    """Run the 4-trial fractional-GPU search and read from its table which trials overlapped on one GPU."""
    from archlab.search.engine import run_search
    from archlab.search.results import load_table
    (folder / "space.yaml").write_text(SPACE)
    (folder / "study.yaml").write_text(STUDY)
    start = time.time()
    run_search(folder / "study.yaml", out=folder / "run")
    table = load_table(folder / "run")
    rows = table.to_dict(orient="records")
    overlaps = [(a["number"], b["number"], a["gpu_ids"]) for i, a in enumerate(rows) for b in rows[i + 1:]
                if a["gpu_ids"] and a["gpu_ids"] == b["gpu_ids"]
                and a["datetime_start"] < b["datetime_complete"] and b["datetime_start"] < a["datetime_complete"]]
    return {"wall_s": time.time() - start, "states": table["state"].tolist(), "gpu_ids": table["gpu_ids"].tolist(),
            "latency_ms": table["latency_ms"].tolist(), "top1": table["top1"].tolist(),
            "images_per_s": table["images_per_s"].tolist(), "overlapping_pairs_on_one_gpu": overlaps}


def main() -> int:
    """Both checks; exit 0 only when the GPU was used and shared as asked."""
    import torch
    if not torch.cuda.is_available():
        print("no CUDA device here: the GPU path cannot be proven on this machine", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0)
    print(f"CUDA device: {device}; torch {torch.__version__}")
    latency = cuda_latency()
    with tempfile.TemporaryDirectory(prefix="archlab-gpu-") as tmp:
        search = shared_gpu_search(Path(tmp))
    print(f"search: states {search['states']}, GPU ids {search['gpu_ids']}, "
          f"overlapping pairs on one GPU {search['overlapping_pairs_on_one_gpu']}")
    ok = (all(state == "complete" for state in search["states"])
          and all(isinstance(g, str) and g for g in search["gpu_ids"])
          and bool(search["overlapping_pairs_on_one_gpu"]))
    path = write_result("gpu_path", {"device": device, "latency": latency, "search": search, "ok": ok})
    print(f"{'GPU path proven' if ok else 'GPU path NOT proven'}; written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
