"""Search efficiency: hypervolume after N trials for NSGA-II and MOTPE vs random, on a fixed trained table.

Each sampler searches bench/data/efficiency_space.yaml through archlab's define-by-run decoder; a trial's
objectives (top-1, latency) are looked up in bench/data/efficiency_table.csv (made once by
bench/make_efficiency_table.py). As in `archlab search`, an architecture already tried is answered from its
trial (archlab.search.searcher.tell_duplicate) and not counted: N trials are N architectures trained, for every sampler
(random included). Median hypervolume over 5 seeds at N trials, as a ratio to random sampling (goal >= 1.15x at
N = 24), and the same over --more-seeds seeds, since 5 seeds leave the median uncertain by about +-10%.
Run: .venv/bin/python -m bench.search_efficiency
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import optuna
import pandas as pd

from archlab.search.engine import make_sampler
from archlab.search.pareto import as_minimization, hypervolume
from archlab.search.searcher import MAX_DUPLICATES_IN_A_ROW, tell_duplicate
from archlab.search.study import Study, load_study
from archlab.space.search_space import load_space
from bench.common import write_result
from bench.make_efficiency_table import SPACE, TABLE
from bench.proxy_quality import DEFAULT_STUDY

DIRECTIONS = ["maximize", "minimize"]
GOAL = 1.15


def run(sampler: str, seed: int, n_trials: int, table: pd.DataFrame, space: object, *,
        sampler_args: dict | None = None, dedup: bool = True) -> list[float]:
    """Hypervolume after each trial of one seeded search (`dedup` False: re-proposals are trials too)."""
    lookup = table.set_index("arch_id")
    study_cfg = Study(name="bench", space=SPACE, sampler=sampler, sampler_args=sampler_args or {}, seed=seed)
    study = optuna.create_study(directions=DIRECTIONS, sampler=make_sampler(study_cfg))
    values = table[["top1", "latency_ms"]].to_numpy(float)
    ref = as_minimization(values, DIRECTIONS).max(axis=0) + 1e-9  # the worst corner of the whole table
    seen: list[list[float]] = []
    tried: dict[str, int] = {}
    history = []
    while len(seen) < n_trials:
        for attempt in range(MAX_DUPLICATES_IN_A_ROW + 1):  # the engine's rule: re-proposals answered, then retrained
            trial = study.ask()
            arch_id = space.suggest(trial, img_size=32, in_chans=1, num_classes=10).arch_id
            if not dedup or arch_id not in tried or attempt == MAX_DUPLICATES_IN_A_ROW:
                break
            tell_duplicate(study, trial, tried[arch_id])
        values_t = (float(lookup.loc[arch_id, "top1"]), float(lookup.loc[arch_id, "latency_ms"]))
        study.tell(trial, values_t)
        tried.setdefault(arch_id, trial.number)
        seen.append(list(values_t))
        history.append(hypervolume(np.array(seen), DIRECTIONS, ref))
    return history


def main() -> None:
    """Compare samplers over seeds and print the ratios to random."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--more-seeds", type=int, default=30)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = pd.read_csv(TABLE)
    space = load_space(SPACE)
    values = table[["top1", "latency_ms"]].to_numpy(float)
    best = hypervolume(values, DIRECTIONS, as_minimization(values, DIRECTIONS).max(axis=0) + 1e-9)
    default = load_study(DEFAULT_STUDY)  # its sampler arguments (the NSGA-II population) for that sampler
    results: dict[str, dict] = {}
    for dedup in (True, False):
        for sampler in ("random", "nsga2", "motpe"):
            sampler_args = dict(default.sampler_args) if default.sampler == sampler else {}
            finals = [run(sampler, seed, args.trials, table, space, sampler_args=sampler_args, dedup=dedup)[-1]
                      for seed in range(max(args.seeds, args.more_seeds))]
            results[f"{sampler}{'' if dedup else '_no_dedup'}"] = {
                "sampler_args": sampler_args, "dedup": dedup, "per_seed": finals,
                "median_hv": statistics.median(finals[:args.seeds]),
                "median_hv_more_seeds": statistics.median(finals), "mean_hv_more_seeds": statistics.fmean(finals)}
    for name, r in results.items():
        base = results["random" if r["dedup"] else "random_no_dedup"]
        r["ratio_to_random"] = r["median_hv"] / base["median_hv"]
        r["ratio_to_random_more_seeds"] = r["median_hv_more_seeds"] / base["median_hv_more_seeds"]
        r["mean_ratio_more_seeds"] = r["mean_hv_more_seeds"] / base["mean_hv_more_seeds"]
        r["share_of_table_hv"] = r["median_hv_more_seeds"] / best
        print(f"{name:16s} after {args.trials} trials: median of {args.seeds} seeds "
              f"{r['ratio_to_random']:.2f}x random; over {args.more_seeds} seeds median "
              f"{r['ratio_to_random_more_seeds']:.2f}x, mean "
              f"{r['mean_ratio_more_seeds']:.2f}x ({r['share_of_table_hv']:.0%} of the whole table's hypervolume)")
    path = write_result("search_efficiency", {"trials": args.trials, "seeds": args.seeds, "more_seeds": args.more_seeds,
                                              "goal": GOAL, "table_size": len(table), "table_hv": best,
                                              "results": results})
    print(f"written {path}")


if __name__ == "__main__":
    main()
