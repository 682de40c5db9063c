"""Measurement commands: `archlab train` (proxy training on real data) and `archlab latency`."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from archlab.cli import options
from archlab.core.errors import ArchlabError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the train and latency subcommands."""
    p = sub.add_parser("train", help="train a zoo network or spec file on a dataset and report top-1")
    p.add_argument("spec", metavar="NAME_OR_SPEC")
    p.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist (default), cifar10, imagefolder, digits")
    p.add_argument("--root", default=None, help="dataset folder (imagefolder, or a local copy of the others)")
    p.add_argument("--epochs", type=options.epochs, default=None, help="training epochs (may be fractional)")
    p.add_argument("--images", type=options.image_count, default=None, help="training images budget")
    p.add_argument("--seconds", type=options.positive_seconds, default=None,
                   help="wall-time budget of the training loop")
    p.add_argument("--img-size", type=options.img_size, default=None,
                   help="input side (default: a spec file's own; for zoo names the dataset's native side)")
    p.add_argument("--recipe", default="classic", help="classic, modern, proxy or a recipe YAML file")
    p.add_argument("--seed", type=options.seed, default=0)
    p.add_argument("--limit", type=options.image_count, default=None, help="use only the first N training images")
    p.add_argument("--val-limit", type=options.image_count, default=None, help="use only the first N validation images")
    p.add_argument("--split", default="val", choices=("val", "test"), help="split to report top-1 on")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=options.threads, default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (useful on CUDA)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="start from an archlab, torchvision or timm checkpoint (first conv and classifier adapted "
                        "to the data)")
    p.add_argument("--trust-pickle", action="store_true", help="allow a pickle-based .pth/.pt checkpoint")
    p.add_argument("--out", type=options.out_dir, default=None, metavar="DIR",
                   help="write DIR/spec.yaml, DIR/weights.safetensors and DIR/train.json")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=_run_train)

    p = sub.add_parser("latency", help="measure inference latency of zoo networks or spec files")
    p.add_argument("specs", nargs="+", metavar="NAME_OR_SPEC")
    p.add_argument("--batch", type=options.batch, default=1)
    p.add_argument("--img-size", type=options.img_size, default=None, help="input side (default: the spec's)")
    p.add_argument("--in-chans", type=options.channels, default=None, help="input channels (default: the spec's)")
    p.add_argument("--num-classes", type=options.classes, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=options.threads, default=None,
                   help="CPU threads (default: torch's current setting)")
    p.add_argument("--backend", default="eager", help="eager, compile or onnxruntime")
    p.add_argument("--max-seconds", type=options.positive_seconds, default=10.0, help="time cap per network")
    p.add_argument("--cache", default=None, help="JSON file caching results by arch, device, stack, batch, size")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per network")
    p.set_defaults(func=_run_latency)


def _run_train(args: argparse.Namespace) -> int:
    from archlab.arch.resolve import resolve_spec
    from archlab.arch.zoo import ZOO
    from archlab.measure.data import DATASETS, load_data
    from archlab.measure.train import Budget, train
    if args.epochs is None and args.images is None and args.seconds is None:
        raise ArchlabError("give a budget: --epochs, --images or --seconds")
    info = DATASETS.lookup(args.dataset)
    img_size = args.img_size
    if img_size is None and args.spec in ZOO:
        img_size = info.native_size  # zoo specs are ImageNet-sized; train at the dataset's own side
    spec = resolve_spec(args.spec, img_size=img_size)
    init = _initial_weights(args, spec) if args.weights else None  # a bad file fails before the data loads
    data = load_data(args.dataset, img_size=spec.img_size, in_chans=info.native_chans, root=args.root,
                     limit=args.limit, val_limit=args.val_limit)  # split seed 0: seeds vary training only
    spec = spec.replace(in_chans=data.in_chans, num_classes=data.num_classes)
    budget = Budget(epochs=args.epochs, images=args.images, seconds=args.seconds)
    if init is not None:
        init = _fit_weights(init, spec)
    trained: list[Any] = []
    result = train(spec, data, recipe=args.recipe, budget=budget, seed=args.seed, device=args.device,
                   threads=args.threads, eval_split=args.split, compile=args.compile, progress=not args.json,
                   init_weights=init, on_trained=trained.append if args.out else None)
    if args.out:
        from archlab.measure.train import save_trained
        written = save_trained(args.out, spec, trained[0], result, data=data, budget=budget, recipe=args.recipe,
                               init=args.weights)
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for rep in result.history:
            print(f"epoch {rep.epoch:6.2f}  loss {rep.train_loss:.4f}  {args.split} top-1 {rep.val_top1:6.2f}%")
        print(f"{spec.name or spec.arch_id} on {args.dataset} ({len(data.train)} train images, "
              f"{spec.in_chans}x{spec.img_size}x{spec.img_size}, recipe {result.recipe}): {args.split} top-1 "
              f"{result.top1:.2f}%, {result.wall_s:.1f} s, {result.images_per_s:.0f} images/s "
              f"({result.memory_format}, {result.threads} threads)")
    return 0


def _initial_weights(args: argparse.Namespace, spec: Any) -> Any:
    """The --weights file as a state dict for `spec` as named (before the data sets channels and classes)."""
    from archlab.nn.weights import load_weights
    return load_weights(spec, args.weights, trust_pickle=args.trust_pickle).state_dict


def _fit_weights(state: Any, spec: Any) -> Any:
    from archlab.nn.weights import fit_to
    fitted, notes = fit_to(spec, state)
    for note in notes:
        print(f"--weights: {note}", file=sys.stderr)
    return fitted


def _run_latency(args: argparse.Namespace) -> int:
    from archlab.arch.resolve import resolve_spec
    from archlab.measure.latency import LatencyCache, measure_latency
    cache = LatencyCache(args.cache) if args.cache else None
    rows: list[dict[str, Any]] = []
    for name in args.specs:
        spec = resolve_spec(name, img_size=args.img_size, num_classes=args.num_classes)
        if args.in_chans is not None:
            spec = spec.replace(in_chans=args.in_chans)
        result = measure_latency(spec, batch=args.batch, device=args.device, threads=args.threads,
                                 backend=args.backend, max_seconds=args.max_seconds, cache=cache)
        rows.append(result.to_dict())
        if not args.json:
            flag = " (cached)" if result.cached else "" if result.converged else " (time cap: not converged)"
            nominal = "" if result.nominal_ms is None else f"  drift-corrected {result.nominal_ms:9.3f} ms"
            print(f"{spec.name or spec.arch_id:24s} {result.median_ms:9.3f} ms median{nominal}  "
                  f"p90 {result.p90_ms:9.3f} ms  "
                  f"cv {100 * result.cv:5.1f}%  n={result.repeats}  batch {result.batch}  "
                  f"{result.in_chans}x{result.img_size}x{result.img_size}  {result.device} {result.threads} thr  "
                  f"{result.backend}{flag}")
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0
