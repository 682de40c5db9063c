"""Zero-cost proxy quality: rank agreement of every proxy with trained top-1 on a trained table.

A table (bench/data/<name>_table.csv, written by bench/make_efficiency_table.py: every point of
bench/data/<name>_space.yaml trained for 2 epochs on 4,000 Fashion-MNIST images at 32 px) is the ground truth:
`efficiency` (144 inverted-residual networks, the default) or `families` (MBConv / ShuffleNet V2 / ConvNeXt V2).
Each network is rebuilt from its params_* columns (its arch_id must equal the table's), initialised with
torch seed --seed, and scored by every registered proxy on the same minibatches of the table's own training
data; the aggregates are formed over the table's networks. Reported per proxy: Spearman and Kendall (tau-b)
against top-1 with 95% percentile bootstrap intervals over networks, the paired bootstrap interval of its
Spearman minus each baseline's (#params, MACs), whether it beats each baseline (that difference's interval
above 0) and both, and its time per network on one thread: process CPU time (what it costs on a free core) and
wall time (which includes waiting for a core when other jobs share the machine). Nothing is fitted: no proxy
or aggregate has a parameter tuned on this table or any other.
Every network's scores are cached beside the table in <table stem>_proxies.csv (arch_id, then one column per
proxy and aggregate; seed 0 and the default batch size; other settings add _seed<S>_batch<B> to the name),
appended as each network is scored, so a rerun or an interrupted run scores only what is missing (--rescore
ignores the cache); times are reported for the networks scored in the run.
Run: .venv/bin/python -m bench.proxy_ranking [--table CSV [--space FILE]] [--seed 0] [--batch-size 32] [--boot 2000]
(writes bench/results/proxy_ranking.json for the default table, proxy_ranking_<name>.json for another)
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_result

HERE = Path(__file__).resolve().parent
SPACE = HERE / "data" / "efficiency_space.yaml"
TABLE = HERE / "data" / "efficiency_table.csv"
BASELINES = ("params", "macs")


def space_for(table: Path) -> Path:
    """A table's space: <name>_table.csv -> <name>_space.yaml beside it."""
    return table.with_name(table.stem.removesuffix("_table") + "_space.yaml")


def cache_for(table: Path, *, seed: int = 0, batch_size: int | None = None) -> Path:
    """Where a table's per-network proxy scores are cached: <table stem>_proxies.csv beside it."""
    from archlab.estimators.score import DEFAULT_BATCH
    batch_size = batch_size or DEFAULT_BATCH
    suffix = "" if (seed, batch_size) == (0, DEFAULT_BATCH) else f"_seed{seed}_batch{batch_size}"
    return table.with_name(f"{table.stem}_proxies{suffix}.csv")


def load_table(limit: int | None = None, *, table: Path = TABLE, space: Path | None = None) -> tuple[list[Any],
                                                                                                      list[float]]:
    """The table's specs, rebuilt from their parameters (arch_id checked), and their trained top-1."""
    import pandas as pd

    from archlab.space.search_space import load_space
    rows = pd.read_csv(table)
    if limit:
        rows = rows.iloc[:limit]
    loaded = load_space(space or space_for(table))
    cols = [c for c in rows.columns if c.startswith("params_")]
    specs = []
    for _, row in rows.iterrows():
        params = {c.removeprefix("params_"): row[c].item() if hasattr(row[c], "item") else row[c] for c in cols}
        spec = loaded.decode(params, img_size=32, in_chans=1, num_classes=10)
        if spec.arch_id != row["arch_id"]:
            raise SystemExit(f"{table}: row {params} rebuilds as {spec.arch_id}, the table says {row['arch_id']}")
        specs.append(spec)
    return specs, [float(v) for v in rows["top1"]]


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata
    return rankdata(np.where(np.isnan(values), -np.inf, values))  # a failed score ranks lowest


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _kendall(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau
    tau = kendalltau(_ranks(a), _ranks(b)).statistic
    return 0.0 if math.isnan(tau) else float(tau)


def correlations(scores: dict[str, np.ndarray], top1: np.ndarray, *, boot: int, seed: int) -> dict[str, dict]:
    """Spearman, Kendall and bootstrap intervals per proxy, and paired intervals against each baseline.

    `beats_<baseline>` is True where the paired 95% interval of (its Spearman - the baseline's) lies above 0;
    `beats_baselines` where it beats both. A baseline never beats itself or the other baseline.
    """
    rng = np.random.default_rng(seed)
    n = len(top1)
    samples = np.stack([rng.integers(0, n, n) for _ in range(boot)])
    out: dict[str, dict] = {}
    boot_rho = {name: _boot_spearman(s, top1, samples) for name, s in scores.items()}
    for name, s in scores.items():
        taus = np.array([_kendall(s[i], top1[i]) for i in samples])
        row = {"spearman": _spearman(s, top1), "spearman_ci": _interval(boot_rho[name]),
               "kendall": _kendall(s, top1), "kendall_ci": _interval(taus)}
        for base in BASELINES:
            row[f"minus_{base}_ci"] = _interval(boot_rho[name] - boot_rho[base])
            row[f"beats_{base}"] = name not in BASELINES and row[f"minus_{base}_ci"][0] > 0
        row["beats_baselines"] = all(row[f"beats_{b}"] for b in BASELINES)
        out[name] = row
    return out


def _boot_spearman(a: np.ndarray, b: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """_spearman on every resample (a row of `samples`) at once."""
    from scipy.stats import rankdata
    ra = rankdata(np.where(np.isnan(a), -np.inf, a)[samples], axis=1)
    rb = rankdata(b[samples], axis=1)
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    norm = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (ra * rb).sum(axis=1) / norm, 0.0)  # a constant resample carries no order


def _interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def read_cache(path: Path | None, names: list[str]) -> dict[str, dict[str, float]]:
    """arch_id -> scores of `names` from a cache file (empty when there is none; a missing column is an error)."""
    if path is None or not path.exists():
        return {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [n for n in names if n not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: no column for {', '.join(missing)}; rerun with --rescore")
        return {row["arch_id"]: {n: _float(row[n]) for n in names} for row in reader}


def _float(text: str) -> float:
    return float(text) if text not in ("", "nan", "None") else math.nan  # an empty cell is a failed score


def _append_cache(path: Path, names: list[str], arch_id: str, row: dict[str, float]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["arch_id", *names])
        writer.writerow([arch_id, *(repr(row[n]) if math.isfinite(row[n]) else "" for n in names)])


def write_cache(path: Path, arch_ids: list[str], scores: dict[str, list[float]]) -> None:
    """Rewrite the cache complete, in table order, with the aggregates over the whole table (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch_id", *scores])
        for i, arch_id in enumerate(arch_ids):
            writer.writerow([arch_id, *(repr(v[i]) if math.isfinite(v[i]) else "" for v in scores.values())])
    os.replace(tmp, path)


def score_table(specs: list[Any], *, seed: int, batch_size: int,
                cache: Path | None = None) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Every proxy and aggregate on every network (cached ones read back), and each proxy's seconds per network."""
    import torch

    from archlab.estimators.aggregate import AGGREGATES
    from archlab.estimators.proxies import PROXIES
    from archlab.estimators.score import proxy_data, score_specs
    from archlab.measure.data import load_data
    torch.set_num_threads(1)
    names = PROXIES.names()
    cached = read_cache(cache, names)
    todo = [spec for spec in specs if spec.arch_id not in cached]
    seconds: dict[str, list] = {}  # name -> [wall, CPU] seconds per network scored now
    if todo:
        data = load_data("fashion_mnist", img_size=32, in_chans=1, limit=4000, seed=0, val_fraction=0.05)
        batches = proxy_data(data, batch_size=batch_size, seed=seed)
        print(f"{len(specs) - len(todo)} networks read from {cache}, {len(todo)} to score", flush=True)
    start = time.time()
    for i, spec in enumerate(todo, start=1):
        (row,) = score_specs([spec], batches, names, seed=seed, times=seconds)
        cached[spec.arch_id] = {name: float(row[name]) for name in names}
        if cache is not None:
            _append_cache(cache, names, spec.arch_id, cached[spec.arch_id])
        if i % 12 == 0 or i == len(todo):
            elapsed = time.time() - start
            print(f"{i}/{len(todo)} networks scored ({elapsed:.0f} s, ETA {elapsed / i * (len(todo) - i):.0f} s)",
                  flush=True)
    scores = {name: [cached[spec.arch_id][name] for spec in specs] for name in names}
    for name in AGGREGATES.names():
        scores[name] = AGGREGATES.get(name)(scores)
    if cache is not None:
        write_cache(cache, [spec.arch_id for spec in specs], scores)
    return scores, seconds


def _add_times(result: dict[str, dict], seconds: dict[str, list]) -> None:
    """Each proxy's CPU and wall milliseconds per network (median, p90, max) into its result row."""
    for name, row in result.items():
        if seconds.get(name):
            wall_ms, cpu_ms = ([pair[k] * 1000 for pair in seconds[name]] for k in (0, 1))
            row.update(cpu_ms_median=statistics.median(cpu_ms), cpu_ms_p90=float(np.percentile(cpu_ms, 90)),
                       cpu_ms_max=max(cpu_ms), wall_ms_median=statistics.median(wall_ms), wall_ms_max=max(wall_ms))


def verdict(result: dict[str, dict]) -> dict[str, list[str]]:
    """The proxies that beat #params, MACs and both (paired 95% interval of the Spearman difference above 0)."""
    return {key: [n for n, r in result.items() if r[f"beats_{key}"]] for key in ("params", "macs", "baselines")}


def main() -> None:
    """Score the table, correlate, print the table and the verdict, and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE, help="a trained table (default: the 144-network one)")
    parser.add_argument("--space", type=Path, default=None, help="its space (default: <name>_space.yaml beside it)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and minibatch seed")
    parser.add_argument("--batch-size", type=int, default=None, help="images per minibatch (default: the library's)")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (>= 1000)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N networks (a quick check; no cache)")
    parser.add_argument("--rescore", action="store_true", help="score every network again (rewrites the cache)")
    args = parser.parse_args()
    if args.boot < 1000:
        parser.error(f"--boot must be >= 1000 for a 95% interval, got {args.boot}")
    from archlab.estimators.score import DEFAULT_BATCH
    batch_size = args.batch_size or DEFAULT_BATCH
    space = args.space or space_for(args.table)
    specs, top1 = load_table(args.limit, table=args.table, space=space)
    cache = None if args.limit else cache_for(args.table, seed=args.seed, batch_size=batch_size)
    if cache is not None and args.rescore:
        cache.unlink(missing_ok=True)
    t0 = time.time()
    scores, seconds = score_table(specs, seed=args.seed, batch_size=batch_size, cache=cache)
    wall = time.time() - t0
    result = correlations({k: np.array(v, dtype=float) for k, v in scores.items()}, np.array(top1),
                          boot=args.boot, seed=args.seed)
    _add_times(result, seconds)
    beats = verdict(result)
    name = args.table.stem.removesuffix("_table")
    print(f"{name}: {len(specs)} networks")
    print(format_table(result))
    for key, label in (("params", "#params"), ("macs", "MACs"), ("baselines", "both baselines")):
        print(f"beat {label} (paired 95% interval of the Spearman difference above 0): "
              + (", ".join(beats[key]) if beats[key] else "none"))
    path = write_result("proxy_ranking" if args.table.resolve() == TABLE else f"proxy_ranking_{name}", {
        "table": _shown(args.table), "space": _shown(space), "networks": len(specs), "seed": args.seed,
        "batch_size": batch_size, "minibatches": 2, "bootstrap": args.boot, "wall_s": wall,
        "scores_cache": _shown(cache) if cache else None, "timed_networks": len(next(iter(seconds.values()), [])),
        "load_average_1_5_15": list(os.getloadavg()),  # other jobs on the machine inflate the times
        "beat_params": beats["params"], "beat_macs": beats["macs"], "beat_both_baselines": beats["baselines"],
        "proxies": result,
        # every network's scores, so other questions (partial correlations, subsets) need no re-run
        "networks_scored": [{"arch_id": spec.arch_id, "top1": y, **{k: (v[i] if math.isfinite(v[i]) else None)
                                                                   for k, v in scores.items()}}
                            for i, (spec, y) in enumerate(zip(specs, top1))]})
    print(f"written {path}")


def _shown(path: Path) -> str:
    """A path relative to the repository when inside it (result files stay machine-independent)."""
    path = path.resolve()
    return str(path.relative_to(HERE.parent)) if path.is_relative_to(HERE.parent) else str(path)


def format_table(result: dict[str, dict]) -> str:
    """The measured table as text, one row per proxy."""
    lines = [f"{'proxy':17} {'Spearman':>8} {'95% CI':>15} {'Kendall':>8} {'95% CI':>15} "
             f"{'-params CI':>15} {'-MACs CI':>15} {'beats':>11} {'CPU ms':>7} {'p90':>5} {'max':>5} {'wall ms':>7}"]
    for name, r in result.items():
        def ci(key: str, r: dict = r) -> str:
            return f"[{r[key][0]:+.2f}, {r[key][1]:+.2f}]"
        beats = "+".join(b for b in BASELINES if r[f"beats_{b}"]) or "-"
        ms = (f"{r['cpu_ms_median']:7.0f} {r['cpu_ms_p90']:5.0f} {r['cpu_ms_max']:5.0f} {r['wall_ms_median']:7.0f}"
              if "cpu_ms_median" in r else f"{'-':>7} {'-':>5} {'-':>5} {'-':>7}")
        lines.append(f"{name:17} {r['spearman']:+8.3f} {ci('spearman_ci'):>15} {r['kendall']:+8.3f} "
                     f"{ci('kendall_ci'):>15} {ci('minus_params_ci'):>15} {ci('minus_macs_ci'):>15} {beats:>11} {ms}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
