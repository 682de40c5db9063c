"""`archlab search`: run or resume the search a study file describes."""
from __future__ import annotations

import argparse
import sys

from archlab.cli import options
from archlab.report.writer import write_run_report
from archlab.search.engine import format_summary, run_search, summary_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the search subcommand."""
    p = sub.add_parser("search", help="run an Optuna multi-objective search on Ray Tune")
    p.add_argument("study", metavar="STUDY", help="study file, e.g. studies/mobile_frontier.yaml")
    p.add_argument("--trials", type=options.trials, default=None, help="number of trials (overrides the study)")
    p.add_argument("--timeout", type=options.positive_seconds, default=None,
                   help="time budget in seconds (overrides the study)")
    p.add_argument("--out", type=options.out_dir, default=None, help="run folder (default runs/<study>-<time>)")
    p.add_argument("--address", default=None,
                   help="join the Ray cluster at this address (default: the study's, else RAY_ADDRESS, else a "
                        "private local Ray)")
    p.add_argument("--concurrent", type=options.concurrent, default=None, help="trials at a time (overrides the study)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines, summary only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (progress lines go to stderr)")
    p.set_defaults(func=_run_search)


def _run_search(args: argparse.Namespace) -> int:
    if not args.resume:   # a resume reads the run folder's own copy of the study
        from archlab.cli.validate import refuse_other_kind
        refuse_other_kind(args.study, "study")
    # with --json, stdout carries the JSON document alone
    stream = sys.stderr if args.json else sys.stdout
    summary = run_search(args.study, trials=args.trials, timeout=args.timeout, out=args.out, address=args.address,
                         resume=args.resume, concurrent=args.concurrent, write_report=write_run_report,
                         progress=None if args.quiet else lambda line: print(line, file=stream, flush=True))
    print(summary_json(summary) if args.json else format_summary(summary), flush=True)
    return 0 if summary.counts.get("complete", 0) or not summary.trials_run else 1
