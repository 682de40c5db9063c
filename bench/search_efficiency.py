"""Search efficiency: hypervolume after N trials for NSGA-II and MOTPE vs random, on a fixed trained table.

Each sampler searches bench/data/efficiency_space.yaml through archlab's define-by-run decoder; a trial's
objectives (top-1, latency) are looked up in bench/data/efficiency_table.csv (made once by
bench/make_efficiency_table.py). As in `archlab search`, an architecture already tried is answered from its
trial (archlab.search.searcher.tell_duplicate) and not counted: N trials are N architectures trained, for every sampler
(random included). Median hypervolume over 5 seeds at N trials, as a ratio to random sampling (goal >= 1.15x at
N = 24), and the same over --more-seeds seeds, since 5 seeds leave the median uncertain by about +-10%.
Run: .venv/bin/python -m bench.search_efficiency

--to-target: how many trials each sampler needs to reach 95% and 99% of the whole table's hypervolume, over
--seeds seeds (median, IQR, how many never reach it within --cap trials: counted as the cap), without and with
pre-screening (archlab.search.prescreen: the same `choose` and neighbourhood the search uses; the proposal's
neighbours within the table's grid, scored by the proxy's cached value). The proxy scores of every table
network are computed once by archlab's proxy code and cached beside the table (--make-proxies):
  .venv/bin/python -m bench.search_efficiency --make-proxies [--table T --space S --proxies P]
  .venv/bin/python -m bench.search_efficiency --to-target [--table T --space S --proxies P] [--seeds 30]
(writes bench/results/search_efficiency_prescreen.json, or search_efficiency_prescreen_<name>.json for the table
<name>_table.csv)
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from archlab.search.engine import make_sampler
from archlab.search.pareto import as_minimization, hypervolume
from archlab.search.prescreen import Candidate, Neighbourhood, Prescreen, choose, replace_proposal
from archlab.search.searcher import MAX_DUPLICATES_IN_A_ROW, tell_duplicate
from archlab.search.study import Study, load_study
from archlab.space.search_space import load_space
from bench.common import write_result
from bench.make_efficiency_table import SPACE, TABLE
from bench.proxy_quality import DEFAULT_STUDY

DIRECTIONS = ["maximize", "minimize"]
GOAL = 1.15
FIT = dict(img_size=32, in_chans=1, num_classes=10)  # every table is 32 px Fashion-MNIST (make_efficiency_table)
TARGETS = (0.95, 0.99)
SAMPLERS = ("random", "nsga2", "motpe")
CACHED_PROXIES = ("params", "macs", "nwot", "snip", "grad_norm")
PRESCREEN_GOAL = 0.5  # pre-screening reaches 99% in at most half the trials of the best sampler without it


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
    """Compare samplers over seeds: hypervolume after N trials (default) or trials to a share of the table's."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=None, help="5 (default mode), 30 (--to-target)")
    parser.add_argument("--more-seeds", type=int, default=30)
    parser.add_argument("--to-target", action="store_true", help="trials to 95%%/99%% of the table's hypervolume")
    parser.add_argument("--make-proxies", action="store_true", help="score every table network, write --proxies")
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--space", type=Path, default=None, help="default: <name>_space.yaml beside the table")
    parser.add_argument("--proxies", type=Path, default=None, help="default: <name>_proxies.csv beside the table")
    parser.add_argument("--proxy", default="nwot", help="pre-screen proxies, comma-separated")
    parser.add_argument("--rule", default="dominate", help="pre-screen rules, comma-separated (dominate, best)")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--resample", type=int, default=1)
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--cap", type=int, default=None, help="trial cap (default: the table's size)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.make_proxies or args.to_target:
        args.space = args.space or args.table.with_name(args.table.stem.removesuffix("_table") + "_space.yaml")
        args.proxies = args.proxies or args.table.with_name(args.table.stem.removesuffix("_table") + "_proxies.csv")
        (make_proxies if args.make_proxies else to_target)(args)
        return
    args.seeds = args.seeds or 5
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


# --- trials to a share of the table's hypervolume, with and without pre-screening ---------------------------

@dataclass
class Lab:
    """A trained table as a search sees it: each arch_id's objectives, MACs and cached proxy scores."""

    space_file: Path
    space: Any
    values: dict[str, tuple[float, float]]   # arch_id -> (top1, latency_ms)
    macs: dict[str, float]
    scores: dict[str, dict[str, float]]      # proxy -> arch_id -> score
    reference: np.ndarray                    # the worst corner of the whole table
    table_hv: float

    @classmethod
    def load(cls, table_file: Path, space_file: Path, proxies_file: Path | None) -> Lab:
        """The table, its space and (when the file exists) its cached proxy scores."""
        table = pd.read_csv(table_file)
        values = table[["top1", "latency_ms"]].to_numpy(float)
        ref = as_minimization(values, DIRECTIONS).max(axis=0) + 1e-9
        scores: dict[str, dict[str, float]] = {}
        if proxies_file is not None and proxies_file.exists():
            cached = pd.read_csv(proxies_file).set_index("arch_id")
            missing = set(table["arch_id"]) - set(cached.index)
            if missing:
                raise SystemExit(f"{proxies_file} lacks {len(missing)} networks of {table_file}; run --make-proxies")
            scores = {name: {a: float(v) for a, v in cached[name].items()} for name in cached.columns}
        objectives = zip(table["arch_id"], table["top1"], table["latency_ms"])
        return cls(space_file, load_space(space_file), {a: (float(t), float(lat)) for a, t, lat in objectives},
                   dict(zip(table["arch_id"], table["macs"].astype(float))), scores, ref,
                   hypervolume(values, DIRECTIONS, ref))

    def candidate(self, params: dict[str, Any], arch_id: str) -> Candidate:
        """A table network as a pre-screen candidate."""
        return Candidate(dict(params), arch_id, self.macs[arch_id])


def make_proxies(args: argparse.Namespace) -> None:
    """Score every network of the table with archlab's proxy code and write the cache CSV (arch_id + proxies)."""
    import torch

    from archlab.estimators.score import proxy_data, score_specs
    from archlab.measure.data import load_data
    torch.set_num_threads(1)
    table, space = pd.read_csv(args.table), load_space(args.space)
    cols = [c for c in table.columns if c.startswith("params_")]
    specs = []
    for _, row in table.iterrows():
        params = {c.removeprefix("params_"): row[c].item() if hasattr(row[c], "item") else row[c] for c in cols}
        spec = space.decode(params, **FIT)
        if spec.arch_id != row["arch_id"]:
            raise SystemExit(f"{args.table}: row {params} rebuilds as {spec.arch_id}, the table says {row['arch_id']}")
        specs.append(spec)
    # the table's own training images (make_efficiency_table), one minibatch of 32 as the search's pre-screen reads
    data = load_data("fashion_mnist", img_size=32, in_chans=1, limit=4000, seed=0, val_fraction=0.05)
    batch = proxy_data(data, batch_size=32, batches=1, seed=0)
    start = time.time()
    rows = []
    for i, spec in enumerate(specs, start=1):
        rows += score_specs([spec], batch, list(CACHED_PROXIES), seed=0)
        if i % 24 == 0:
            print(f"{i}/{len(specs)} networks scored ({time.time() - start:.0f} s)", flush=True)
    pd.DataFrame(rows)[["arch_id", *CACHED_PROXIES]].to_csv(args.proxies, index=False)
    print(f"written {args.proxies} ({len(rows)} networks, {time.time() - start:.0f} s)")


def _ask_untried(study: optuna.Study, lab: Lab, tried: dict[str, int]) -> tuple[Any, str]:
    """The next proposal; re-proposals answered from their trial as the engine does (then one is retrained)."""
    for attempt in range(MAX_DUPLICATES_IN_A_ROW + 1):
        trial = study.ask()
        arch_id = lab.space.suggest(trial, **FIT).arch_id
        if arch_id not in tried or attempt == MAX_DUPLICATES_IN_A_ROW:
            return trial, arch_id
        tell_duplicate(study, trial, tried[arch_id])
    raise AssertionError("unreachable")


def _prescreen(study: optuna.Study, trial: Any, arch_id: str, lab: Lab, config: Prescreen, seed: int,
               tried: dict[str, int]) -> tuple[Any, str]:
    """The search's pre-screen on a table: neighbours within the grid, scores from the cache."""
    rng = random.Random(f"prescreen:{seed}:{trial.number}")  # the seeding Prescreener.screen uses
    near = Neighbourhood(lab.space, resample=config.resample, **FIT)
    scores = lab.scores[config.proxy]

    def neighbours(n: int) -> list[Candidate]:
        found = near.near(trial.params, rng, n, keep=lambda _, a: a in lab.values, exclude=set(tried) | {arch_id})
        return [lab.candidate(p, a) for p, _, a in found]

    choice = choose(lab.candidate(trial.params, arch_id), neighbours, lambda cs: [scores[c.arch_id] for c in cs],
                    config.candidates, rule=config.rule)
    if not choice.replaced:
        return trial, arch_id
    trial = replace_proposal(study, trial, choice, config.proxy)
    winner = lab.space.suggest(trial, **FIT).arch_id   # the asked trial decodes to the chosen network
    assert winner == choice.winner.arch_id, (winner, choice.winner.arch_id)
    return trial, winner


def curve(sampler: str, seed: int, cap: int, lab: Lab, *, sampler_args: dict | None = None,
          prescreen: Prescreen | None = None, stop_at: float = 1.0) -> list[float]:
    """Share of the table's hypervolume after each trial of one seeded search (a trial: one network trained),
    up to `cap` trials or until the share reaches `stop_at`."""
    cfg = Study(name="bench", space=lab.space_file, sampler=sampler, sampler_args=sampler_args or {}, seed=seed)
    study = optuna.create_study(directions=DIRECTIONS, sampler=make_sampler(cfg))
    seen: list[tuple[float, float]] = []
    tried: dict[str, int] = {}
    shares: list[float] = []
    while len(seen) < cap and (not shares or shares[-1] < stop_at):
        trial, arch_id = _ask_untried(study, lab, tried)
        if prescreen is not None and arch_id not in tried:
            trial, arch_id = _prescreen(study, trial, arch_id, lab, prescreen, seed, tried)
        study.tell(trial, lab.values[arch_id])
        tried.setdefault(arch_id, trial.number)
        seen.append(lab.values[arch_id])
        shares.append(hypervolume(np.array(seen), DIRECTIONS, lab.reference) / lab.table_hv)
    return shares


def trials_to(shares: list[float], target: float) -> int | None:
    """The first trial count at which the share reaches `target` (None: never, within the curve)."""
    return next((i for i, share in enumerate(shares, start=1) if share >= target - 1e-12), None)


def _stats(counts: list[int | None], cap: int) -> dict[str, Any]:
    """Median and IQR of trials to a target, a seed that never reached it counted as the cap."""
    filled = [cap if c is None else c for c in counts]
    q1, med, q3 = (float(np.percentile(filled, q)) for q in (25, 50, 75))
    return {"median": med, "q1": q1, "q3": q3, "not_reached": sum(c is None for c in counts), "per_seed": counts}


def to_target(args: argparse.Namespace) -> None:
    """Trials to 95%/99% of the table's hypervolume per sampler, without and with pre-screening; writes JSON."""
    lab = Lab.load(args.table, args.space, args.proxies)
    cap = args.cap or len(lab.values)
    seeds = args.seeds or 30
    default = load_study(DEFAULT_STUDY)
    screens = [Prescreen(proxy=proxy, candidates=args.candidates, resample=args.resample, rule=rule)
               for proxy in args.proxy.split(",") for rule in args.rule.split(",")]
    for screen in screens:
        if screen.proxy not in lab.scores:
            raise SystemExit(f"{args.proxies} has no {screen.proxy} column; run --make-proxies")
    results: dict[str, dict] = {}
    for sampler in args.samplers.split(","):
        sampler_args = dict(default.sampler_args) if default.sampler == sampler else {}
        for screen in [None, *screens]:
            name = sampler if screen is None else f"{sampler}+{screen.proxy}_{screen.rule}"
            start = time.time()
            curves = [curve(sampler, seed, cap, lab, sampler_args=sampler_args, prescreen=screen,
                            stop_at=max(TARGETS)) for seed in range(seeds)]
            results[name] = {"sampler": sampler, "sampler_args": sampler_args,
                             "prescreen": None if screen is None else screen.to_dict(),
                             "wall_s": time.time() - start}
            for target in TARGETS:
                results[name][f"trials_to_{target:.0%}"] = _stats([trials_to(c, target) for c in curves], cap)
            r95, r99 = (results[name][f"trials_to_{t:.0%}"] for t in TARGETS)
            print(f"{name:28s} trials to 95%: median {r95['median']:5.1f} [IQR {r95['q1']:.0f}-{r95['q3']:.0f}]"
                  f"{_missed(r95, cap)}; to 99%: median {r99['median']:5.1f} [IQR {r99['q1']:.0f}-{r99['q3']:.0f}]"
                  f"{_missed(r99, cap)}  ({time.time() - start:.0f} s)", flush=True)
    plain = [r for r in results.values() if r["prescreen"] is None]
    best = min(plain, key=lambda r: r["trials_to_99%"]["median"])
    best_screened = min((r for r in results.values() if r["prescreen"]), key=lambda r: r["trials_to_99%"]["median"],
                        default=None)
    verdict: dict[str, Any] = {"best_sampler_without": best["sampler"],
                               "its_median_trials_to_99%": best["trials_to_99%"]["median"]}
    if best_screened is not None:
        ratio = best_screened["trials_to_99%"]["median"] / best["trials_to_99%"]["median"]
        verdict.update(best_with_prescreen=next(k for k, v in results.items() if v is best_screened),
                       its_median_trials_to_99_pct=best_screened["trials_to_99%"]["median"], ratio=ratio,
                       goal=PRESCREEN_GOAL, goal_met=ratio <= PRESCREEN_GOAL)
        print(f"99%: best without pre-screening {best['sampler']} (median {best['trials_to_99%']['median']:.1f}); "
              f"best with it {verdict['best_with_prescreen']} (median "
              f"{best_screened['trials_to_99%']['median']:.1f}): ratio {ratio:.2f} (goal <= {PRESCREEN_GOAL})")
    suffix = "" if args.table.resolve() == TABLE.resolve() else "_" + args.table.stem.removesuffix("_table")
    path = write_result(f"search_efficiency_prescreen{suffix}", {
        "table": str(args.table), "space": str(args.space), "proxies": str(args.proxies),
        "table_size": len(lab.values), "table_hv": lab.table_hv, "cap": cap, "seeds": seeds,
        "targets": list(TARGETS), "results": results, "verdict": verdict})
    print(f"written {path}")


def _missed(stats: dict[str, Any], cap: int) -> str:
    return f" ({stats['not_reached']} seeds never, counted as {cap})" if stats["not_reached"] else ""


if __name__ == "__main__":
    main()
