"""Search efficiency: hypervolume after N trials for NSGA-II and MOTPE vs random, on a fixed trained table.

Each sampler searches bench/data/efficiency_space.yaml through archlab's define-by-run decoder; a trial's
objectives (top-1, latency) are looked up in bench/data/efficiency_table.csv (made once by
bench/make_efficiency_table.py). Median hypervolume over 5 seeds at N trials, as a ratio to random sampling
(goal >= 1.15x at N = 24). Run: .venv/bin/python -m bench.search_efficiency
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import optuna
import pandas as pd

from archlab.pareto import as_minimization, hypervolume
from archlab.search import make_sampler
from archlab.space import load_space
from archlab.study import Study
from bench.common import write_result
from bench.make_efficiency_table import SPACE, TABLE

DIRECTIONS = ["maximize", "minimize"]
GOAL = 1.15


def run(sampler: str, seed: int, n_trials: int, table: pd.DataFrame, space: object) -> list[float]:
    """Hypervolume after each trial of one seeded search."""
    lookup = table.set_index("arch_id")
    study_cfg = Study(name="bench", space=SPACE, sampler=sampler,
                      sampler_args={"population_size": 8} if sampler == "nsga2" else {}, seed=seed)
    study = optuna.create_study(directions=DIRECTIONS, sampler=make_sampler(study_cfg))
    values = table[["top1", "latency_ms"]].to_numpy(float)
    ref = as_minimization(values, DIRECTIONS).max(axis=0) + 1e-9  # the worst corner of the whole table
    seen: list[list[float]] = []
    history = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.suggest(trial, img_size=32, in_chans=1, num_classes=10)
        row = lookup.loc[spec.arch_id]
        return float(row["top1"]), float(row["latency_ms"])

    for _ in range(n_trials):
        trial = study.ask()
        values_t = objective(trial)
        study.tell(trial, values_t)
        seen.append(list(values_t))
        history.append(hypervolume(np.array(seen), DIRECTIONS, ref))
    return history


def main() -> None:
    """Compare samplers over seeds and print the ratios to random."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = pd.read_csv(TABLE)
    space = load_space(SPACE)
    best = hypervolume(table[["top1", "latency_ms"]].to_numpy(float), DIRECTIONS,
                       as_minimization(table[["top1", "latency_ms"]].to_numpy(float), DIRECTIONS).max(axis=0) + 1e-9)
    results = {}
    for sampler in ("random", "nsga2", "motpe"):
        finals = [run(sampler, seed, args.trials, table, space)[-1] for seed in range(args.seeds)]
        results[sampler] = {"median_hv": statistics.median(finals), "per_seed": finals}
    base = results["random"]["median_hv"]
    for sampler, r in results.items():
        r["ratio_to_random"] = r["median_hv"] / base
        r["share_of_table_hv"] = r["median_hv"] / best
        print(f"{sampler:7s} median hypervolume after {args.trials} trials {r['median_hv']:.3f} "
              f"({r['share_of_table_hv']:.1%} of the whole table's), {r['ratio_to_random']:.2f}x random")
    path = write_result("search_efficiency", {"trials": args.trials, "seeds": args.seeds, "goal": GOAL,
                                              "table_size": len(table), "table_hv": best, "results": results})
    print(f"written {path}")


if __name__ == "__main__":
    main()
