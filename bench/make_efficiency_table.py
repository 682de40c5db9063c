"""Train every architecture of a small enumerable space once and write its lookup table (resumable).

A table (bench/data/efficiency_table.csv by default) is what bench/search_efficiency.py searches and
bench/proxy_ranking.py ranks against: a fixed, shipped ground truth, so samplers and proxies can be compared
over many seeds without training again. Every point of the space (every dimension categorical, as `grid()`
enumerates it) is trained under one budget rule: `--limit` Fashion-MNIST images at 32 px, `--epochs` of the
"proxy" recipe, one thread per worker; latency is measured at batch 1 on the same thread. Each row is appended
as soon as its network finishes and points whose arch_id is already in the CSV are skipped, so an interrupted
run loses at most the networks in flight; when every point is in, the file is rewritten in grid order. A network
whose loss diverges is recorded at chance (top-1 100 / classes, 10.0 here) and named in the log.
Run: .venv/bin/python -m bench.make_efficiency_table [--space FILE --out CSV] [--workers 1] [--epochs 2 --limit 4000]
(defaults: bench/data/efficiency_space.yaml -> bench/data/efficiency_table.csv; X_space.yaml -> X_table.csv)
"""
from __future__ import annotations

import argparse
import csv
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPACE = HERE / "data" / "efficiency_space.yaml"
TABLE = HERE / "data" / "efficiency_table.csv"
RESULT_COLUMNS = ("arch_id", "params", "macs", "top1", "latency_ms", "latency_cv", "train_s")


@dataclass(frozen=True)
class Job:
    """One table row to make: a point of `space` and the budget rule every row shares."""

    params: dict[str, Any]
    space: Path = SPACE
    limit: int = 4000
    seed: int = 0
    epochs: float = 2.0


def grid(space: Path = SPACE) -> list[dict]:
    """Every parameter assignment of an unconditional, all-categorical space, in a fixed order."""
    from archlab.space.search_space import load_space
    dims = load_space(space).dimensions
    bad = [d.name for d in dims if d.kind != "categorical" or d.condition]
    if bad:
        raise SystemExit(f"{space}: a table needs every dimension categorical and unconditional (the grid is "
                         f"their product), got {', '.join(bad)}")
    names = [d.name for d in dims]
    return [dict(zip(names, values)) for values in itertools.product(*(d.choices for d in dims))]


def columns(space: Path = SPACE) -> list[str]:
    """The table's header: one params_<dimension> column per dimension, then the measured columns."""
    from archlab.space.search_space import load_space
    return [f"params_{d.name}" for d in load_space(space).dimensions] + list(RESULT_COLUMNS)


def arch_ids(points: list[dict], space: Path = SPACE) -> list[str]:
    """The arch_id each point decodes to as a 32 px, 1-channel, 10-class network (no module is built)."""
    from archlab.space.search_space import load_space
    loaded = load_space(space)
    return [loaded.decode(p, img_size=32, in_chans=1, num_classes=10).arch_id for p in points]


def table_for(space: Path) -> Path:
    """A space's default table: <name>_space.yaml -> <name>_table.csv beside it."""
    return space.with_name(space.stem.removesuffix("_space") + "_table.csv")


def evaluate(job: Job) -> dict:
    """Train and time one architecture on one thread; returns its table row."""
    import torch
    torch.set_num_threads(1)
    from archlab.measure.data import load_data
    from archlab.measure.latency import measure_latency
    from archlab.measure.train import Budget, DivergedError, train
    from archlab.nn.complexity import complexity
    from archlab.space.search_space import load_space
    data = load_data("fashion_mnist", img_size=32, in_chans=1, limit=job.limit, seed=job.seed, val_fraction=0.05)
    spec = load_space(job.space).decode(job.params, img_size=32, in_chans=1, num_classes=data.num_classes)
    start = time.perf_counter()
    try:
        top1 = train(spec, data, recipe="proxy", budget=Budget(epochs=job.epochs), seed=job.seed, threads=1).top1
    except DivergedError as err:  # a real outcome of the budget rule, kept so that the grid stays complete
        top1 = 100.0 / data.num_classes
        print(f"{spec.arch_id} {job.params}: {err}; recorded at chance, top-1 {top1:.1f} %", flush=True)
    latency = measure_latency(spec, batch=1, threads=1, max_seconds=3.0)
    cost = complexity(spec)
    return {**{f"params_{k}": v for k, v in job.params.items()}, "arch_id": spec.arch_id, "params": cost.params,
            "macs": cost.macs, "top1": top1, "latency_ms": latency.median_ms, "latency_cv": latency.cv,
            "train_s": time.perf_counter() - start}


def done_ids(out: Path, header: list[str]) -> set[str]:
    """arch_ids already in the table at `out` (none if it does not exist); a different header is an error."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != header:
            raise SystemExit(f"{out}: its columns {reader.fieldnames} are not this space's {header}; "
                             "give another --out or remove the file")
        return {row["arch_id"] for row in reader}


def append_row(out: Path, header: list[str], row: dict) -> None:
    """Append one row (writing the header first into a new file) and flush it to disk."""
    new = not out.exists() or out.stat().st_size == 0
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def run_jobs(jobs: list[Job], workers: int, fn: Callable[[Job], dict] = evaluate) -> Iterator[dict]:
    """Each job's row as it finishes: in this process with one worker, else in a pool of `workers`."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        pending: set[Future] = set()
        queue = iter(jobs)
        for job in itertools.islice(queue, workers):  # no more in flight than workers: a kill loses little
            pending.add(pool.submit(fn, job))
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                for job in itertools.islice(queue, 1):
                    pending.add(pool.submit(fn, job))
                yield future.result()


def make_table(space: Path, out: Path, *, workers: int = 1, limit: int = 4000, seed: int = 0, epochs: float = 2.0,
               fn: Callable[[Job], dict] = evaluate, log: Callable[[str], None] = print) -> int:
    """Train every point of `space` not yet in `out`, appending rows; returns how many were trained now."""
    points = grid(space)
    header = columns(space)
    ids = arch_ids(points, space)
    done = done_ids(out, header)
    todo = [Job(p, space, limit, seed, epochs) for p, i in zip(points, ids) if i not in done]
    log(f"{space.name}: {len(points)} points, {len(points) - len(todo)} already in {out}, {len(todo)} to train "
        f"({workers} worker{'s' * (workers != 1)})")
    start = time.time()
    for n, row in enumerate(run_jobs(todo, workers, fn), start=1):
        append_row(out, header, row)
        elapsed = time.time() - start
        log(f"{len(points) - len(todo) + n}/{len(points)} trained: {row['arch_id']} top-1 {row['top1']:.1f} % "
            f"in {row['train_s']:.1f} s; {elapsed:.0f} s so far, ETA {elapsed / n * (len(todo) - n):.0f} s")
    if set(ids) <= done_ids(out, header):
        _sort_rows(out, ids)
    return len(todo)


def _sort_rows(out: Path, order: Iterable[str]) -> None:
    """Rewrite a complete table in grid order (atomically), whatever order its rows finished in."""
    import pandas as pd
    table = pd.read_csv(out, dtype={"arch_id": str})
    rank = {arch_id: i for i, arch_id in enumerate(order)}
    table = table.sort_values("arch_id", key=lambda s: s.map(rank), kind="stable")
    tmp = out.with_name(out.name + ".tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, out)


def main() -> None:
    """Evaluate the whole grid with single-threaded workers and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", type=Path, default=SPACE, help="an all-categorical space file")
    parser.add_argument("--out", type=Path, default=None, help="the table (default: the space's own, see above)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="single-threaded processes (default 1)")
    args = parser.parse_args()
    out = args.out or table_for(args.space)
    start = time.time()
    make_table(args.space, out, workers=args.workers, limit=args.limit, seed=args.seed, epochs=args.epochs)
    import pandas as pd
    table = pd.read_csv(out)
    print(f"{len(table)} architectures ({time.time() - start:.0f} s this run): top-1 {table.top1.min():.1f}-"
          f"{table.top1.max():.1f} %, latency {table.latency_ms.min():.2f}-{table.latency_ms.max():.2f} ms, "
          f"train {table.train_s.sum() / 60:.1f} min in all; written {out}")


if __name__ == "__main__":
    main()
