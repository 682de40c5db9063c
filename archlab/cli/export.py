"""`archlab export`: a zoo network, spec file or search trial to ONNX, TorchScript or torch.export."""
from __future__ import annotations

import argparse
import json

from archlab.cli import options
from archlab.export import FORMAT_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the export subcommand."""
    p = sub.add_parser("export", help="export a network to ONNX, TorchScript or torch.export, checked on output")
    p.add_argument("target", metavar="NAME_OR_SPEC_OR_TRIAL", help="zoo name, spec file or RUN_DIR:TRIAL_NUMBER")
    p.add_argument("--format", required=True, choices=FORMAT_NAMES, help="the file to write: model.onnx, model.ts "
                   "(TorchScript) or model.pt2 (torch.export)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="archlab, torchvision or timm checkpoint (default: a trial's kept weights, else init)")
    p.add_argument("--trust-pickle", action="store_true", help="allow a pickle-based .pth/.pt checkpoint")
    p.add_argument("--img-size", type=options.img_size, default=None, help="input side (default: the spec's)")
    p.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size")
    p.add_argument("--out", type=options.out_dir, required=True, metavar="DIR",
                   help="folder for spec.yaml, weights and the model file")
    p.add_argument("--json", action="store_true", help="print the result as JSON (files, max_abs_diff, ...)")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from archlab.export.exporter import export_model, parse_batch
    from archlab.export.target import resolve_target
    from archlab.nn.weights import load_weights
    batch = parse_batch(args.batch)
    spec, trial_weights = resolve_target(args.target, img_size=args.img_size)
    path = args.weights or trial_weights
    loaded = load_weights(spec, path, trust_pickle=args.trust_pickle) if path else None
    if loaded is not None and loaded.num_classes != spec.num_classes:
        spec = spec.replace(num_classes=loaded.num_classes)  # the file decides the classifier
    result = export_model(spec, args.format, args.out, weights=loaded, batch=batch)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    model_file = next(f for f in result.files if "/model." in f or f.startswith("model."))
    print(f"wrote {model_file} ({result.notes[0]}; input {'x'.join(map(str, result.input_shape))}) "
          f"in {result.seconds:.1f} s")
    print(f"check: max |exported - PyTorch| = {result.max_abs_diff:.3g} (largest output {result.max_abs_output:.3g}, "
          f"batch {result.check_batch})")
    for note in result.notes[1:]:
        print(f"note: {note}")
    print(f"weights: {result.weights}")
    print("files: " + ", ".join(result.files))
    return 0
