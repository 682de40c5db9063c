"""Train every architecture of bench/data/efficiency_space.yaml once and write the lookup table.

The table (bench/data/efficiency_table.csv) is what bench/search_efficiency.py searches: a fixed, shipped
ground truth, so samplers can be compared over many seeds without training again.
Run: .venv/bin/python -m bench.make_efficiency_table [--epochs 2 --limit 5000 --workers 2]
"""
from __future__ import annotations

import argparse
import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SPACE = HERE / "data" / "efficiency_space.yaml"
TABLE = HERE / "data" / "efficiency_table.csv"


def grid() -> list[dict]:
    """Every parameter assignment of the (unconditional, all-categorical) benchmark space."""
    from archlab.space.search_space import load_space
    dims = load_space(SPACE).dimensions
    names = [d.name for d in dims]
    return [dict(zip(names, values)) for values in itertools.product(*(d.choices for d in dims))]


def evaluate(job: tuple[dict, int, int, float]) -> dict:
    """Train and time one architecture on one thread; returns its table row."""
    params, limit, seed, epochs = job
    import torch
    torch.set_num_threads(1)
    from archlab.measure.data import load_data
    from archlab.measure.latency import measure_latency
    from archlab.measure.train import Budget, train
    from archlab.nn.complexity import complexity
    from archlab.space.search_space import load_space
    data = load_data("fashion_mnist", img_size=32, in_chans=1, limit=limit, seed=seed, val_fraction=0.05)
    spec = load_space(SPACE).decode(params, img_size=32, in_chans=1, num_classes=data.num_classes)
    start = time.perf_counter()
    result = train(spec, data, recipe="proxy", budget=Budget(epochs=epochs), seed=seed, threads=1)
    latency = measure_latency(spec, batch=1, threads=1, max_seconds=3.0)
    cost = complexity(spec)
    return {**{f"params_{k}": v for k, v in params.items()}, "arch_id": spec.arch_id, "params": cost.params,
            "macs": cost.macs, "top1": result.top1, "latency_ms": latency.median_ms, "latency_cv": latency.cv,
            "train_s": time.perf_counter() - start}


def main() -> None:
    """Evaluate the whole grid with a pool of single-threaded workers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    jobs = [(p, args.limit, args.seed, args.epochs) for p in grid()]
    start = time.time()
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for i, row in enumerate(pool.map(evaluate, jobs), start=1):
            rows.append(row)
            if i % 12 == 0:
                print(f"{i}/{len(jobs)} trained ({time.time() - start:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(TABLE, index=False)
    print(f"{len(table)} architectures in {time.time() - start:.0f} s: top-1 {table.top1.min():.1f}-"
          f"{table.top1.max():.1f} %, latency {table.latency_ms.min():.2f}-{table.latency_ms.max():.2f} ms; "
          f"written {TABLE}")


if __name__ == "__main__":
    main()
