"""Scaling: trials per hour of the same search on a 2-node Ray cluster vs a 1-node one (goal >= 1.8x).

Both clusters are real `ray start` clusters on this machine over loopback, one CPU per node; each trial takes
one CPU, so the 2-node cluster runs two trials at a time. The study is bench/data/scaling_study.yaml: a seeded
random sampler and no early stopping, so both clusters train exactly the same architectures (checked: the
arch_id sets must match). Trials per hour = trials / wall time of the whole `run_search` call, Ray start-up,
data loading and the run report included.
Run: .venv/bin/python -m bench.search_scaling [--trials 8]   (writes bench/results/search_scaling.json)
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from archlab.search.engine import run_search
from archlab.search.results import load_table
from bench.common import write_result
from tests.search.raycluster import local_cluster

STUDY = Path(__file__).resolve().parent / "data" / "scaling_study.yaml"
GOAL = 1.8


def trials_per_hour(nodes: int, trials: int) -> dict[str, float]:
    """Run the tiny study on an n-node cluster (concurrency = nodes) and time it."""
    out = Path(tempfile.mkdtemp(prefix=f"archlab-scale{nodes}-")) / "run"
    with local_cluster(n_nodes=nodes, cpus_per_node=1) as address:
        start = time.time()
        run_search(STUDY, trials=trials, out=out, address=address, concurrent=nodes)
        wall = time.time() - start
    table = load_table(out)
    return {"nodes": nodes, "trials": len(table), "wall_s": wall, "trials_per_hour": len(table) / wall * 3600,
            "distinct_nodes_used": int(table["node_id"].nunique()), "arch_ids": sorted(table["arch_id"].dropna()),
            "trial_s_mean": float(table["trial_s"].mean())}


def main() -> None:
    """Measure 1 node then 2 nodes and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    one = trials_per_hour(1, args.trials)
    two = trials_per_hour(2, args.trials)
    ratio = two["trials_per_hour"] / one["trials_per_hour"]
    same_work = one.pop("arch_ids") == two.pop("arch_ids")
    for r in (one, two):
        print(f"{r['nodes']} node(s): {r['trials']} trials in {r['wall_s']:.0f} s = {r['trials_per_hour']:.0f} "
              f"trials/h on {r['distinct_nodes_used']} node(s)")
    print(f"2 nodes / 1 node: {ratio:.2f}x (goal >= {GOAL}x); same architectures on both: {same_work}")
    result = {"one_node": one, "two_nodes": two, "ratio": ratio, "goal": GOAL, "same_work": same_work}
    print(f"written {write_result('search_scaling', result)}")


if __name__ == "__main__":
    main()
