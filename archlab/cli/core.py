"""Core commands: `archlab zoo`, `archlab show`."""
from __future__ import annotations

import argparse
import json

from archlab.arch.resolve import resolve_spec
from archlab.arch.zoo import zoo_names
from archlab.cli import options
from archlab.nn.summary import stage_table, summarize


def register(sub: argparse._SubParsersAction) -> None:
    """Add the core subcommands."""
    p = sub.add_parser("zoo", help="list the canonical networks")
    p.set_defaults(func=_run_zoo)
    p = sub.add_parser("show", help="stage table with parameters and MACs of zoo names or spec files")
    p.add_argument("specs", nargs="+", metavar="NAME_OR_SPEC_FILE")
    p.add_argument("--img-size", type=options.img_size, default=None, help="input side in pixels (default: the spec's)")
    p.add_argument("--num-classes", type=options.classes, default=None)
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per network")
    p.set_defaults(func=_run_show)


def _run_zoo(args: argparse.Namespace) -> int:
    print("\n".join(zoo_names()))
    return 0


def _run_show(args: argparse.Namespace) -> int:
    specs = [resolve_spec(s, img_size=args.img_size, num_classes=args.num_classes) for s in args.specs]
    if args.json:
        print(json.dumps([summarize(s) for s in specs], indent=2))
    else:
        print("\n\n".join(stage_table(s) for s in specs))
    return 0
