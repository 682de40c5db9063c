"""`archlab report RUN_DIR... [--out FILE] [--static]`: one self-contained HTML report of search or ablation runs."""
from __future__ import annotations

import argparse
import sys

from archlab.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    """Add the report subcommand."""
    p = sub.add_parser("report", help="write an offline HTML report of search or ablation run folders",
                       description="Read run folders (a search's trials table, or an ablation's ablation.json) and "
                                   "write one self-contained HTML page: plotly.js embedded, no network needed. "
                                   "Several search runs are overlaid on one front.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folder(s) written by archlab search / ablate")
    p.add_argument("--out", type=options.new_file, default=None, metavar="FILE",
                   help="the .html file to write (default reports/<run folder name>.html)")
    p.add_argument("--static", action="store_true",
                   help="also write a PNG and an SVG of every figure next to it (needs kaleido and Chrome/Chromium)")
    p.add_argument("--json", action="store_true", help="print a JSON object: the report file and the run folders")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from archlab.report.writer import write_report
    path = write_report(args.runs, args.out, static=args.static, log=lambda m: print(m, file=sys.stderr))
    if args.json:
        import json
        print(json.dumps({"report": str(path), "runs": [str(r) for r in args.runs], "static": args.static}))
    else:
        print(path)
    return 0
