"""Search-space commands: `archlab validate FILE...`, `archlab space describe FILE`, `archlab space sample FILE`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from archlab.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    """Add `validate` and `space` (describe, sample)."""
    p = sub.add_parser("validate", help="check search-space (and study) files; exit 2 if any is invalid")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: path, kind, ok and the message of each file (exit 2 if any is invalid)")
    p.set_defaults(func=_run_validate)

    p = sub.add_parser("space", help="describe or sample a search space")
    space_sub = p.add_subparsers(dest="space_command", required=True, metavar="SUBCOMMAND")
    d = space_sub.add_parser("describe", help="dimensions, choices, conditions, size and constraints")
    d.add_argument("file", metavar="FILE")
    _add_overrides(d)
    d.add_argument("--json", action="store_true", help="print the description as JSON")
    d.set_defaults(func=_run_describe)
    s = space_sub.add_parser("sample", help="seeded random samples within the constraints, with params and MACs")
    s.add_argument("file", metavar="FILE")
    s.add_argument("-n", type=options.samples, default=5, metavar="N",
                   help=f"number of samples (default 5, at most {options.MAX_SAMPLES:,})")
    s.add_argument("--seed", type=options.seed, default=0, help="random seed (default 0)")
    _add_overrides(s)
    s.add_argument("--json", action="store_true", help="print a JSON list with parameters and full specs")
    s.set_defaults(func=_run_sample)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--img-size", type=options.img_size, default=None, help="force the input side (e.g. a 32 px proxy)")
    p.add_argument("--in-chans", type=options.channels, default=None, help="force the input channels")
    p.add_argument("--num-classes", type=options.classes, default=None,
                   help="force the number of classes")


def _overrides(args: argparse.Namespace) -> dict[str, int | None]:
    return dict(img_size=args.img_size, in_chans=args.in_chans, num_classes=args.num_classes)


def _run_validate(args: argparse.Namespace) -> int:
    from archlab.cli.validate import validate_files
    bad = 0
    results = validate_files(args.files)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
        return 2 if any(not r.ok for r in results) else 0
    for result in results:
        if result.ok:
            print(f"{result.path}: ok" + (f" ({result.message})" if result.message else ""))
        else:
            bad += 1
            print(f"archlab: error: {result.message}", file=sys.stderr)
    return 2 if bad else 0


def _run_describe(args: argparse.Namespace) -> int:
    from archlab.space.describe import describe, format_description
    from archlab.space.search_space import load_space
    info = describe(load_space(args.file), **_overrides(args))
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0


def _run_sample(args: argparse.Namespace) -> int:
    from archlab.core.errors import ArchlabError
    from archlab.space.describe import format_samples, sample_rows
    from archlab.space.search_space import load_space
    if args.n < 1:
        raise ArchlabError(f"-n must be >= 1, got {args.n}")
    rows = sample_rows(load_space(args.file), args.n, seed=args.seed, **_overrides(args))
    print(json.dumps(rows, indent=2) if args.json else format_samples(rows))
    return 0
