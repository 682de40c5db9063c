"""Latency predictor commands: `archlab predictor fit`, `archlab predictor eval` and `archlab predictor predict`."""
from __future__ import annotations

import argparse
import json
import sys

from archlab.cli import options

# 0 and 1 parse, so that the library says in one line why they are too few for a fit or an evaluation
_networks = options.int_in(0, options.MAX_SAMPLES, "a number of networks")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `predictor` (fit, eval, predict)."""
    p = sub.add_parser("predictor", help="fit, evaluate and use per-device latency predictors")
    psub = p.add_subparsers(dest="predictor_command", required=True, metavar="SUBCOMMAND")

    f = psub.add_parser("fit", help="measure N networks of a space here (or import a CSV) and fit the predictors")
    f.add_argument("space", metavar="SPACE", help="search-space YAML file")
    f.add_argument("-n", type=_networks, default=None, metavar="N", help="networks to measure (at least 4)")
    f.add_argument("--seed", type=options.seed, default=0, help="sampling seed (default 0)")
    f.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    f.add_argument("--threads", type=options.threads, default=1, help="CPU threads (default 1)")
    f.add_argument("--batch", type=options.batch, default=1)
    f.add_argument("--img-size", type=options.img_size, default=None, help="input side (default: the space's)")
    f.add_argument("--in-chans", type=options.channels, default=None, help="input channels (default: the space's)")
    f.add_argument("--num-classes", type=options.classes, default=None)
    f.add_argument("--backend", default="eager", help="eager (default), compile or onnxruntime")
    f.add_argument("--max-seconds", type=options.positive_seconds, default=1.0,
                   help="latency protocol time cap per network (default 1 s)")
    f.add_argument("--part-seconds", type=options.positive_seconds, default=0.3,
                   help="latency protocol time cap per distinct part (default 0.3 s)")
    f.add_argument("--max-parts", type=options.count, default=None,
                   help="time at most this many distinct parts, most frequent first (default: all)")
    f.add_argument("--from-csv", default=None, metavar="FILE",
                   help="fit on a latency table measured elsewhere instead of measuring (docs/estimators.md)")
    f.add_argument("--device-name", default=None,
                   help="with --from-csv: the device a table without a device column was measured on")
    f.add_argument("--out", type=options.new_file, required=True, help="the predictor file to write (JSON)")
    f.add_argument("--json", action="store_true", help="print the fit's summary as JSON")
    f.set_defaults(func=_run_fit)

    e = psub.add_parser("eval", help="measure M new networks twice; errors per kind beside the repeatability")
    e.add_argument("file", metavar="FILE", help="a predictor file fitted on this machine")
    e.add_argument("-n", type=_networks, required=True, metavar="M", help="new networks to measure (at least 2)")
    e.add_argument("--seed", type=options.seed, default=None,
                   help="sampling seed (default: the fit's seed + 1,000,003, a stream apart from the fit's)")
    e.add_argument("--space", default=None, help="the space file (default: the one the fit recorded)")
    e.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    e.set_defaults(func=_run_eval)

    r = psub.add_parser("predict", help="predicted latency of zoo networks or spec files (at the predictor's input)")
    r.add_argument("file", metavar="FILE")
    r.add_argument("specs", nargs="+", metavar="NAME_OR_SPEC")
    r.add_argument("--json", action="store_true", help="print a JSON list")
    r.set_defaults(func=_run_predict)


def _progress(line: str) -> None:
    print(f"\r{line}", end="", file=sys.stderr, flush=True)


def _run_fit(args: argparse.Namespace) -> int:
    from archlab.core.errors import ArchlabError
    from archlab.estimators.latency_fit import FitOptions, fit_from_csv, fit_predictor, format_fit
    from archlab.estimators.latency_model import write_predictor
    opts = FitOptions(device=args.device, threads=args.threads, batch=args.batch, img_size=args.img_size,
                      in_chans=args.in_chans, num_classes=args.num_classes, backend=args.backend,
                      max_seconds=args.max_seconds, part_seconds=args.part_seconds, max_parts=args.max_parts,
                      seed=args.seed)
    if args.device_name and not args.from_csv:
        raise ArchlabError("--device-name names the device of a --from-csv table; a fit that measures here "
                           "records this machine's")
    if args.from_csv:
        if args.n is not None:
            raise ArchlabError("give -n or --from-csv, not both: a CSV fit uses every row of the table")
        data = fit_from_csv(args.space, args.from_csv, opts, device=args.device_name)
    elif args.n is None:
        raise ArchlabError("give -n N (networks to measure here) or --from-csv FILE")
    else:
        data = fit_predictor(args.space, args.n, opts, progress=None if args.json else _progress)
        if not args.json:
            print(file=sys.stderr)
    write_predictor(args.out, data)
    if args.json:
        print(json.dumps({"file": args.out, "target": data["target"], "space": data["space"], "fit": data["fit"],
                          "cv": data["cv"], "selected": data["selected"]}, indent=2))
    else:
        print(format_fit(data, args.out))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from archlab.estimators.latency_fit import evaluate, format_evaluation
    result = evaluate(args.file, args.n, seed=args.seed, space_path=args.space,
                      progress=None if args.json else _progress)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(file=sys.stderr)
        print(format_evaluation(result))
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from archlab.arch.resolve import resolve_spec
    from archlab.estimators.latency_model import load_predictor
    pred = load_predictor(args.file)
    t = pred.target
    rows = []
    for name in args.specs:
        spec = resolve_spec(name, img_size=t["img_size"], num_classes=t["num_classes"]).replace(
            in_chans=t["in_chans"])
        rows.append({"name": name, "arch_id": spec.arch_id, "selected": pred.selected,
                     **{f"{k}_ms": ms for k, ms in pred.predict_all(spec).items()}})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            kinds = "  ".join(f"{k} {row[f'{k}_ms']:8.3f} ms" for k in pred.kinds)
            print(f"{row['name']:24s} {kinds}  (selected: {pred.selected}; on {t['device_name']})")
    return 0
