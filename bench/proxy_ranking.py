"""Zero-cost proxy quality: rank agreement of every proxy with trained top-1 on the shipped 144-network table.

The table (bench/data/efficiency_table.csv, written by bench/make_efficiency_table.py: every point of
bench/data/efficiency_space.yaml trained for 2 epochs on 4,000 Fashion-MNIST images at 32 px) is the ground
truth. Each network is rebuilt from its params_* columns (its arch_id must equal the table's), initialised with
torch seed --seed, and scored by every registered proxy on the same minibatches of the table's own training
data; the aggregates are formed over the 144 networks. Reported per proxy: Spearman and Kendall (tau-b)
against top-1 with 95% percentile bootstrap intervals over networks, the paired bootstrap interval of its
Spearman minus each baseline's (#params, MACs), whether it beats both (both differences' intervals above 0),
and its time per network on one thread: process CPU time (what it costs on a free core) and wall time
(which includes waiting for a core when other jobs share the machine). Nothing is fitted: no proxy or
aggregate has a parameter tuned on this table or any other.
Run: .venv/bin/python -m bench.proxy_ranking [--seed 0] [--batch-size 32] [--boot 2000] [--limit N]
(writes bench/results/proxy_ranking.json)
"""
from __future__ import annotations

import argparse
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


def load_table(limit: int | None = None) -> tuple[list[Any], list[float]]:
    """The table's specs, rebuilt from their parameters (arch_id checked), and their trained top-1."""
    import pandas as pd

    from archlab.space.search_space import load_space
    table = pd.read_csv(TABLE)
    if limit:
        table = table.iloc[:limit]
    space = load_space(SPACE)
    cols = [c for c in table.columns if c.startswith("params_")]
    specs = []
    for _, row in table.iterrows():
        params = {c.removeprefix("params_"): row[c].item() if hasattr(row[c], "item") else row[c] for c in cols}
        spec = space.decode(params, img_size=32, in_chans=1, num_classes=10)
        if spec.arch_id != row["arch_id"]:
            raise SystemExit(f"{TABLE}: row {params} rebuilds as {spec.arch_id}, the table says {row['arch_id']}")
        specs.append(spec)
    return specs, [float(v) for v in table["top1"]]


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
    """Spearman, Kendall and bootstrap intervals per proxy, and paired intervals against the baselines."""
    rng = np.random.default_rng(seed)
    n = len(top1)
    samples = [rng.integers(0, n, n) for _ in range(boot)]
    out: dict[str, dict] = {}
    boot_rho = {name: np.array([_spearman(s[i], top1[i]) for i in samples]) for name, s in scores.items()}
    for name, s in scores.items():
        taus = np.array([_kendall(s[i], top1[i]) for i in samples])
        row = {"spearman": _spearman(s, top1), "spearman_ci": _interval(boot_rho[name]),
               "kendall": _kendall(s, top1), "kendall_ci": _interval(taus)}
        for base in BASELINES:
            row[f"minus_{base}_ci"] = _interval(boot_rho[name] - boot_rho[base])
        row["beats_baselines"] = all(row[f"minus_{b}_ci"][0] > 0 for b in BASELINES) and name not in BASELINES
        out[name] = row
    return out


def _interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def score_table(specs: list[Any], *, seed: int, batch_size: int) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Every proxy and aggregate on every network, and each proxy's seconds per network."""
    import torch

    from archlab.estimators.aggregate import AGGREGATES
    from archlab.estimators.proxies import PROXIES
    from archlab.estimators.score import proxy_data, score_specs
    from archlab.measure.data import load_data
    torch.set_num_threads(1)
    data = load_data("fashion_mnist", img_size=32, in_chans=1, limit=4000, seed=0, val_fraction=0.05)
    batches = proxy_data(data, batch_size=batch_size, seed=seed)
    names = PROXIES.names()
    scores: dict[str, list[float]] = {name: [] for name in names}
    seconds: dict[str, list] = {}  # name -> [wall, CPU] seconds per network
    start = time.time()
    for i, spec in enumerate(specs, start=1):
        (row,) = score_specs([spec], batches, names, seed=seed, times=seconds)
        for name in names:
            scores[name].append(float(row[name]))
        if i % 12 == 0:
            print(f"{i}/{len(specs)} networks scored ({time.time() - start:.0f} s)", flush=True)
    for name in AGGREGATES.names():
        scores[name] = AGGREGATES.get(name)(scores)
    return scores, seconds


def main() -> None:
    """Score the table, correlate, print the table and write bench/results/proxy_ranking.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and minibatch seed")
    parser.add_argument("--batch-size", type=int, default=None, help="images per minibatch (default: the library's)")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--limit", type=int, default=None, help="only the first N networks (a quick check)")
    args = parser.parse_args()
    from archlab.estimators.score import DEFAULT_BATCH
    batch_size = args.batch_size or DEFAULT_BATCH
    specs, top1 = load_table(args.limit)
    t0 = time.time()
    scores, seconds = score_table(specs, seed=args.seed, batch_size=batch_size)
    wall = time.time() - t0
    result = correlations({k: np.array(v, dtype=float) for k, v in scores.items()}, np.array(top1),
                          boot=args.boot, seed=args.seed)
    for name, row in result.items():
        if name in seconds:
            wall_ms, cpu_ms = ([pair[k] * 1000 for pair in seconds[name]] for k in (0, 1))
            row.update(cpu_ms_median=statistics.median(cpu_ms), cpu_ms_p90=float(np.percentile(cpu_ms, 90)),
                       cpu_ms_max=max(cpu_ms), wall_ms_median=statistics.median(wall_ms), wall_ms_max=max(wall_ms))
    print(format_table(result))
    beats = [n for n, r in result.items() if r["beats_baselines"]]
    print("beat both baselines (paired 95% interval of the Spearman difference above 0): "
          + (", ".join(beats) if beats else "none"))
    path = write_result("proxy_ranking", {
        "table": str(TABLE.relative_to(HERE.parent)), "networks": len(specs), "seed": args.seed,
        "batch_size": batch_size, "minibatches": 2, "bootstrap": args.boot, "wall_s": wall,
        "load_average_1_5_15": list(os.getloadavg()),  # other jobs on the machine inflate the times
        "beat_both_baselines": beats, "proxies": result,
        # every network's scores, so other questions (partial correlations, subsets) need no re-run
        "networks_scored": [{"arch_id": spec.arch_id, "top1": y, **{k: (v[i] if math.isfinite(v[i]) else None)
                                                                   for k, v in scores.items()}}
                            for i, (spec, y) in enumerate(zip(specs, top1))]})
    print(f"written {path}")


def format_table(result: dict[str, dict]) -> str:
    """The measured table as text, one row per proxy."""
    lines = [f"{'proxy':17} {'Spearman':>8} {'95% CI':>15} {'Kendall':>8} {'95% CI':>15} "
             f"{'-params CI':>15} {'-MACs CI':>15} {'CPU ms':>7} {'p90':>5} {'max':>5} {'wall ms':>7}"]
    for name, r in result.items():
        def ci(key: str, r: dict = r) -> str:
            return f"[{r[key][0]:+.2f}, {r[key][1]:+.2f}]"
        ms = (f"{r['cpu_ms_median']:7.0f} {r['cpu_ms_p90']:5.0f} {r['cpu_ms_max']:5.0f} {r['wall_ms_median']:7.0f}"
              if "cpu_ms_median" in r else f"{'-':>7} {'-':>5} {'-':>5} {'-':>7}")
        lines.append(f"{name:17} {r['spearman']:+8.3f} {ci('spearman_ci'):>15} {r['kendall']:+8.3f} "
                     f"{ci('kendall_ci'):>15} {ci('minus_params_ci'):>15} {ci('minus_macs_ci'):>15} {ms}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
