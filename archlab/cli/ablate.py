"""`archlab ablate STUDY`: replay an ablation ladder (Liu et al. 2022's ResNet-50 -> ConvNeXt-T by default)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from archlab.cli import options
from archlab.core.errors import ArchlabError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ablate subcommand."""
    p = sub.add_parser("ablate", help="replay an ablation ladder: paper vs proxy, step by step",
                       description="Measure every row of a ladder file (parameters and MACs at full size, "
                                   "latency of the proxy-size network here) and train each row on the proxy for "
                                   "every seed; rerunning with the same --out resumes.")
    p.add_argument("study", metavar="STUDY", help="ladder file, e.g. studies/convnext_ablation.yaml")
    p.add_argument("--no-train", action="store_true", help="complexity and latency only (seconds)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per step")
    p.add_argument("--seeds", type=options.int_in(1, 1000, "a number of seeds"), default=None, metavar="N",
                   help="train seeds 0..N-1 instead of the file's seeds")
    p.add_argument("--budgets", default=None, metavar="M,M,...",
                   help="replay at these multiples of the ladder's budget (e.g. 0.5,1,2), each in "
                        "OUT/budget-M/, and report agreement vs budget")
    p.add_argument("--out", type=options.out_dir, default=None, metavar="DIR",
                   help="run folder (default runs/<study>-<YYYYmmdd-HHMMSS>; an existing one is resumed)")
    p.set_defaults(func=_run_ablate)


def _run_ablate(args: argparse.Namespace) -> int:
    from archlab.ablation import format_report, run_ablation
    from archlab.cli.validate import refuse_other_kind
    refuse_other_kind(args.study, "ladder")
    seeds = None if args.seeds is None else tuple(range(args.seeds))
    if args.budgets is not None:
        return _run_sweep(args, seeds)
    try:
        report = run_ablation(args.study, out=args.out, train=not args.no_train, seeds=seeds)
    except OSError as err:
        raise ArchlabError(f"{args.out or 'runs/'}: {err.strerror or err}") from None
    if args.json:
        print(json.dumps(report.steps_json(), indent=2))
    else:
        print(format_report(report))
    if report.out:
        from archlab.report.writer import write_run_report  # the same guarded writer the search uses
        html = write_run_report(Path(report.out))
        if html:
            print(f"report: {html}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _run_sweep(args: argparse.Namespace, seeds: tuple[int, ...] | None) -> int:
    """`--budgets`: one replay per budget, then agreement vs budget."""
    from archlab.ablation import format_sweep, parse_budgets, run_budget_sweep
    budgets = parse_budgets(args.budgets)
    try:
        sweep = run_budget_sweep(args.study, budgets, out=args.out, train=not args.no_train, seeds=seeds)
    except OSError as err:
        raise ArchlabError(f"{args.out or 'runs/'}: {err.strerror or err}") from None
    if args.json:
        print(json.dumps({"sweep": sweep.to_dict(), "steps": {p.label: p.report.steps_json() for p in sweep.points}},
                         indent=2))
    else:
        print(format_sweep(sweep))
    from archlab.report.writer import write_run_report
    for p in sweep.points:
        if p.report.out:
            html = write_run_report(Path(p.report.out))
            if html:
                print(f"report: {html}", file=sys.stderr if args.json else sys.stdout)
    return 0
