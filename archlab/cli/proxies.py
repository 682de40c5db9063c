"""`archlab proxies SPACE_OR_STUDY -n N`: zero-cost proxy scores of seeded samples of a space."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from archlab.cli import options
from archlab.core.errors import ArchlabError

_SPACE_LIMIT = 4000  # training images loaded for a bare space: proxies read at most a few hundred


def register(sub: argparse._SubParsersAction) -> None:
    """Add `proxies`."""
    p = sub.add_parser("proxies", help="score seeded samples of a space with zero-cost proxies (higher = better)")
    p.add_argument("file", metavar="SPACE_OR_STUDY", help="a search-space file, or a study (its space and data)")
    p.add_argument("-n", type=options.samples, default=8, metavar="N",
                   help=f"number of samples (default 8, at most {options.MAX_SAMPLES:,})")
    p.add_argument("--seed", type=options.seed, default=0, help="seed of the samples, initialisations and minibatches")
    p.add_argument("--img-size", type=options.img_size, default=None,
                   help="input side (default: the study's or the space's)")
    p.add_argument("--proxies", default=None, metavar="A,B",
                   help="comma-separated proxies and aggregates (default: all; see docs/estimators.md)")
    p.add_argument("--dataset", default=None,
                   help="data of the minibatches (default: the study's; fashion_mnist for a space; digits is fastest)")
    p.add_argument("--batch-size", type=options.int_in(2, 65_536, "a minibatch size"), default=None,
                   help="images per minibatch (default 32)")
    p.add_argument("--json", action="store_true", help="print a JSON list: arch_id, params, macs, one key per proxy")
    p.set_defaults(func=_run_proxies)


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _space_and_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """The space to sample and the data to score on, from a study or a bare space file."""
    from archlab.core.yamlio import load_yaml_file
    from archlab.measure.data import DATASETS, load_data
    from archlab.search.study import is_study, load_study
    from archlab.space.search_space import load_space
    path = Path(args.file)
    if is_study(load_yaml_file(path)):
        study = load_study(path)
        space, ds = load_space(study.space), study.dataset
        name, img_size = args.dataset or ds.name, ds.img_size if args.img_size is None else args.img_size
        kwargs = dict(root=ds.root, val_fraction=ds.val_fraction, seed=study.seed, limit=ds.limit)
    else:
        space = load_space(path)
        name = args.dataset or "fashion_mnist"
        img_size = space.sample(1, seed=args.seed)[0][1].img_size if args.img_size is None else args.img_size
        kwargs = dict(limit=_SPACE_LIMIT)
    if img_size < 1:
        raise ArchlabError(f"--img-size must be >= 1, got {img_size}")
    info = DATASETS.lookup(name)
    return space, load_data(name, img_size=img_size, in_chans=info.native_chans, **kwargs)


def _run_proxies(args: argparse.Namespace) -> int:
    from archlab.estimators.score import DEFAULT_BATCH, finite_or_none, resolve_names, score_space
    if args.n < 1:
        raise ArchlabError(f"-n must be >= 1, got {args.n}")
    names = _names(args.proxies)
    resolve_names(names)  # a misspelt proxy fails before any data are loaded
    space, data = _space_and_data(args)
    rows = score_space(space, args.n, data=data, names=names, seed=args.seed,
                       batch_size=DEFAULT_BATCH if args.batch_size is None else args.batch_size)
    if args.json:
        print(json.dumps([{k: finite_or_none(v) if isinstance(v, float) else v for k, v in row.items()}
                          for row in rows], indent=2))
    else:
        print(_table(rows, data))
    return 0


def _table(rows: list[dict[str, Any]], data: Any) -> str:
    from archlab.core.fmt import format_count
    keys = [k for k in rows[0] if k not in ("arch_id", "params", "macs")]
    width = max(10, *(len(k) for k in keys))
    lines = [f"{'arch_id':16}  {'params':>8}  {'MACs':>8}  " + "  ".join(f"{k:>{width}}" for k in keys)]
    for row in rows:
        lines.append(f"{row['arch_id']:16}  {format_count(row['params']):>8}  {format_count(row['macs']):>8}  "
                     + "  ".join(f"{row[k]:>{width}.4g}" for k in keys))
    lines.append(f"{len(rows)} networks scored on {data.name} at {data.in_chans}x{data.img_size}x{data.img_size}; "
                 "higher = predicted better for every column")
    return "\n".join(lines)
