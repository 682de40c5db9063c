"""Core commands: `archlab zoo`, `archlab show`."""
from __future__ import annotations

import argparse
import json
import sys

from archlab.arch.resolve import resolve_spec
from archlab.arch.zoo import zoo_names
from archlab.cli import options
from archlab.core.errors import ArchlabError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the core subcommands."""
    p = sub.add_parser("zoo", help="list the canonical networks")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: name, arch_id, input, parameters and MACs of each network")
    p.set_defaults(func=_run_zoo)
    p = sub.add_parser("show", help="stage table with parameters and MACs of zoo names or spec files")
    p.add_argument("specs", nargs="+", metavar="NAME_OR_SPEC_FILE")
    p.add_argument("--img-size", type=options.img_size, default=None, help="input side in pixels (default: the spec's)")
    p.add_argument("--num-classes", type=options.classes, default=None)
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="check that an archlab, torchvision or timm checkpoint fits the network (one network only)")
    p.add_argument("--trust-pickle", action="store_true", help="allow a pickle-based .pth/.pt checkpoint")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per network")
    p.set_defaults(func=_run_show)


def _run_zoo(args: argparse.Namespace) -> int:
    if not args.json:
        print("\n".join(zoo_names()))
        return 0
    from archlab.arch.zoo import get_spec
    from archlab.nn.complexity import complexity
    rows = []
    for name in zoo_names():
        spec = get_spec(name)
        cost = complexity(spec)
        rows.append({"name": name, "arch_id": spec.arch_id, "img_size": spec.img_size, "in_chans": spec.in_chans,
                     "num_classes": spec.num_classes, "params": cost.params, "macs": cost.macs,
                     "timm_name": f"archlab_{name}"})
    print(json.dumps(rows, indent=2))
    return 0


def _run_show(args: argparse.Namespace) -> int:
    from archlab.nn.summary import stage_table, summarize
    specs = [resolve_spec(s, img_size=args.img_size, num_classes=args.num_classes) for s in args.specs]
    loaded = None
    if args.weights:
        if len(specs) != 1:
            raise ArchlabError(f"--weights checks one network, got {len(specs)}")
        from archlab.nn.weights import load_weights
        loaded = load_weights(specs[0], args.weights, trust_pickle=args.trust_pickle)
        if loaded.num_classes != specs[0].num_classes:
            specs[0] = specs[0].replace(num_classes=loaded.num_classes)
    if args.json:
        rows = [summarize(s) for s in specs]
        if loaded is not None:
            rows[0]["weights"] = {"path": loaded.path, "layout": loaded.source, "num_classes": loaded.num_classes}
        print(json.dumps(rows, indent=2))
    else:
        print("\n\n".join(stage_table(s) for s in specs))
        if loaded is not None:
            print(f"weights: {loaded.path} ({loaded.source} layout, {loaded.num_classes} classes) fit "
                  f"{specs[0].name or specs[0].arch_id} with strict=True", file=sys.stdout)
    return 0
