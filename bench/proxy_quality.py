"""Proxy quality: can a short training rank architectures? Seed-to-seed noise and rank agreement.

8 architectures of the mobile space (search_spaces/mobile.yaml under the default study's MACs cap: with
--pick first, the first seeded samples, as the default study samples them; with --pick span, the samples at 8
MACs quantiles of the first 200, from the cheapest networks to the cap as a front runs; 8 small
inverted-residual specs of our own if the space is absent) are trained under each candidate proxy budget with
2 seeds, 2 trials at a time on 1 thread each, as the default search runs them. Reported per budget: top-1
per architecture and seed, the pooled seed-to-seed std of top-1, the spread of top-1 across architectures,
Spearman and Kendall rank correlations between the two seeds (and, with --reference, between the proxy and a
longer training), trial wall time and the projected wall time of a 12-trial search. The recommended default is
the cheapest budget whose seed-to-seed Spearman reaches 0.8 and whose 12-trial search fits 15 minutes.
`default_no_zero_init` is the default budget with the residual branches left at PyTorch's initialisation.
Run: .venv/bin/python -m bench.proxy_quality [--pick first|span] [--budgets A,B] [--reference]
(writes bench/results/proxy_quality.json for --pick first, proxy_quality_span.json for --pick span)
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, write_result

# Candidate proxy budgets: training subset, validation subset, epochs, input side, recipe.
BUDGETS: dict[str, dict[str, Any]] = {
    "s5k_e2": dict(limit=5000, val_limit=2000, epochs=2, img_size=32, recipe="proxy"),
    "s10k_e1": dict(limit=10000, val_limit=2000, epochs=1, img_size=32, recipe="proxy"),
    "s8k_e2": dict(limit=8000, val_limit=2000, epochs=2, img_size=32, recipe="proxy"),
    "s5k_e2_28px": dict(limit=5000, val_limit=2000, epochs=2, img_size=28, recipe="proxy"),
    "s5k_e2_classic": dict(limit=5000, val_limit=2000, epochs=2, img_size=32, recipe="classic"),
    "s10k_e3": dict(limit=10000, val_limit=2000, epochs=3, img_size=32, recipe="proxy"),
    "s10k_e2_val5k": dict(limit=10000, val_limit=5000, epochs=2, img_size=32, recipe="proxy"),
}
DEFAULT_STUDY = Path("studies/mobile_frontier.yaml")


def _default_budget() -> dict[str, Any]:
    """The per-trial budget the default study trains with (its data subset, epochs, size and recipe)."""
    from archlab.search.study import load_study
    study = load_study(DEFAULT_STUDY)
    return dict(limit=study.dataset.limit, val_limit=study.dataset.val_limit, epochs=study.budget.epochs,
                img_size=study.dataset.img_size, recipe=study.recipe)


REFERENCE = dict(limit=20000, val_limit=None, epochs=3, img_size=32, recipe="proxy")  # whole 6k validation split
SEARCH_TRIALS, SEARCH_LANES, SEARCH_GOAL_S = 12, 2, 15 * 60
SPEARMAN_GOAL = 0.8


def architectures(n: int = 8, pick: str = "first") -> tuple[str, list[Any]]:
    """(source, specs): n seeded samples of the mobile space at 32 px / 1 channel / 10 classes that the default
    study would train (its MACs cap at that size): the first n ("first"), or ("span") the samples at the n
    MACs quantiles of the first 200, so the set runs from the cheapest networks to the cap as a front does."""
    space_file = Path("search_spaces/mobile.yaml")
    try:
        from archlab.nn.complexity import complexity
        from archlab.search.study import load_study
        from archlab.space.search_space import load_space
        if space_file.is_file():
            space = load_space(space_file)
            cap = load_study(DEFAULT_STUDY).constraints.get("max_macs", float("inf"))
            pool = 200 if pick == "span" else n
            drawn = [spec for _, spec in space.sample(20 * pool, seed=0, img_size=32, in_chans=1, num_classes=10)]
            feasible = [s for s in drawn if complexity(s).macs <= cap][:pool]
            if pick == "span":
                feasible.sort(key=lambda s: (complexity(s).macs, s.arch_id))
                feasible = [feasible[int((i + 0.5) * len(feasible) / n)] for i in range(n)]
            return f"{space_file} ({pick} {n})", feasible
    except ImportError:
        pass
    from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec
    specs = []
    for i in range(n):
        w, d, k, e = (16, 24, 32, 40)[i % 4], 1 + i % 3, (3, 5)[i % 2], (3.0, 6.0)[(i // 2) % 2]
        stages = (StageSpec(block="inverted_residual", depth=1, width=w, stride=2, expand_ratio=e, kernel_size=k),
                  StageSpec(block="inverted_residual", depth=d, width=2 * w, stride=2, expand_ratio=e, kernel_size=k),
                  StageSpec(block="inverted_residual", depth=d, width=4 * w, stride=2, expand_ratio=e, kernel_size=k))
        specs.append(ArchSpec(stem=StemSpec(width=16, stride=1), stages=stages, head=HeadSpec(conv_width=8 * w),
                              img_size=32, in_chans=1, num_classes=10, name=f"ir{i}"))
    return "bench/proxy_quality.py fallback", specs


def _init_worker(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def _run_trial(job: tuple[int, int, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """Train one (architecture, seed) under one budget; runs in a worker process."""
    from archlab.arch.spec import ArchSpec
    from archlab.measure.data import load_data
    from archlab.measure.train import Budget, train
    arch_i, seed, spec_dict, cfg = job
    spec = ArchSpec.from_dict(spec_dict).replace(img_size=cfg["img_size"])
    start = time.perf_counter()
    data = load_data("fashion_mnist", img_size=cfg["img_size"], in_chans=1, limit=cfg["limit"],
                     val_limit=cfg["val_limit"])
    load_s = time.perf_counter() - start
    res = train(spec, data, recipe=cfg["recipe"], budget=Budget(epochs=cfg["epochs"]), seed=seed)
    return {"arch": arch_i, "seed": seed, "top1": res.top1, "wall_s": res.wall_s, "data_s": load_s,
            "images_per_s": res.images_per_s, "memory_format": res.memory_format, "probe_s": res.probe_s,
            "history": [h.val_top1 for h in res.history]}


def _rank_stats(a: list[float], b: list[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr
    return {"spearman": float(spearmanr(a, b).statistic), "kendall": float(kendalltau(a, b).statistic)}


def evaluate_budget(name: str, cfg: dict[str, Any], specs: list[Any], seeds: list[int], workers: int,
                    threads: int) -> dict[str, Any]:
    """Train every architecture with every seed under `cfg`; the quality figures."""
    jobs = [(i, s, spec.to_dict(), cfg) for i, spec in enumerate(specs) for s in seeds]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(threads,)) as pool:
        rows = []
        for row in pool.imap_unordered(_run_trial, jobs):
            rows.append(row)
            print(f"  [{name}] arch {row['arch']} seed {row['seed']}: top-1 {row['top1']:.2f}%  "
                  f"{row['wall_s']:.1f} s  {row['images_per_s']:.0f} img/s  {row['memory_format']}", flush=True)
    wall = time.perf_counter() - start
    top1 = {(r["arch"], r["seed"]): r["top1"] for r in rows}
    per_seed = [[top1[(i, s)] for i in range(len(specs))] for s in seeds]
    means = [statistics.fmean(top1[(i, s)] for s in seeds) for i in range(len(specs))]
    out: dict[str, Any] = {"config": cfg, "seeds": seeds, "top1": per_seed, "mean_top1": means, "rows": rows,
                           "bench_wall_s": wall}
    if len(seeds) >= 2:
        # pooled within-architecture std over seeds
        out["seed_std"] = math.sqrt(statistics.fmean(statistics.variance([top1[(i, s)] for s in seeds])
                                                     for i in range(len(specs))))
        out["arch_spread_std"] = statistics.stdev(means)
        out["signal_to_noise"] = out["arch_spread_std"] / max(out["seed_std"], 1e-9)
        out.update({f"seeds_{k}": v for k, v in _rank_stats(per_seed[0], per_seed[1]).items()})
    trial_s = [r["wall_s"] + r["data_s"] for r in rows]
    out["trial_s_mean"] = statistics.fmean(trial_s)
    out["trial_s_max"] = max(trial_s)
    out["search12_projected_s"] = SEARCH_TRIALS / SEARCH_LANES * out["trial_s_mean"]
    return out


def main() -> None:
    """Evaluate the candidate budgets (and optionally a reference) and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="default,s5k_e2,s10k_e1", help="comma-separated names of BUDGETS "
                        "(default: the default study's own budget)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--workers", type=int, default=SEARCH_LANES, help="trials in parallel")
    parser.add_argument("--threads", type=int, default=1, help="threads per trial")
    parser.add_argument("--reference", action="store_true", help="also train each architecture once for longer")
    parser.add_argument("--merge", action="store_true", help="keep budgets already in the results file")
    parser.add_argument("--pick", choices=("first", "span"), default="first",
                        help="the first 8 samples, or 8 spanning the MACs range")
    args = parser.parse_args()
    result_name = "proxy_quality" if args.pick == "first" else "proxy_quality_span"
    default = _default_budget()  # read from the study file when run, not on import
    recipe = default["recipe"] if isinstance(default["recipe"], dict) else {"base": default["recipe"]}
    budgets = {**BUDGETS, "default": default,
               "default_no_zero_init": {**default, "recipe": {**recipe, "zero_init_last": False}}}
    source, specs = architectures(8, args.pick)
    seeds = [int(s) for s in args.seeds.split(",")]
    previous: dict[str, Any] = {}
    path = RESULTS / f"{result_name}.json"
    if args.merge and path.is_file():
        previous = json.loads(path.read_text())
    results: dict[str, Any] = dict(previous.get("budgets", {}))
    print(f"{len(specs)} architectures from {source}; seeds {seeds}; {args.workers} trials x {args.threads} thread")
    for name in args.budgets.split(","):
        results[name] = evaluate_budget(name, budgets[name], specs, seeds, args.workers, args.threads)
        r = results[name]
        print(f"{name}: seed std {r['seed_std']:.2f} pts, arch spread {r['arch_spread_std']:.2f} pts, seed Spearman "
              f"{r['seeds_spearman']:.2f}, Kendall {r['seeds_kendall']:.2f}; trial {r['trial_s_mean']:.0f} s "
              f"(max {r['trial_s_max']:.0f}), 12-trial search ~{r['search12_projected_s'] / 60:.1f} min", flush=True)
    reference = previous.get("reference")
    if args.reference:
        reference = evaluate_budget("reference", REFERENCE, specs, [0], args.workers, args.threads)
    if reference:
        for r in results.values():
            r.update({f"reference_{k}": v for k, v in _rank_stats(r["mean_top1"], reference["mean_top1"]).items()})
    fits = [n for n, r in results.items() if r["search12_projected_s"] <= SEARCH_GOAL_S]
    ranks = [n for n in fits if r_ok(results[n])]
    chosen = min(ranks or fits or list(results), key=lambda n: results[n]["trial_s_mean"])
    summary = {"load_average_at_end": os.getloadavg(), "architectures": source, "arch_ids": [s.arch_id for s in specs],
               "budgets": results,
               "reference": reference,
               "recommended": {"name": chosen, "ranks": bool(ranks), **budgets.get(chosen, {})},
               "goal": {"seeds_spearman": SPEARMAN_GOAL, "search12_s": SEARCH_GOAL_S}}
    if ranks:
        print(f"recommended default proxy budget: {chosen} {budgets.get(chosen)}")
    else:  # say so: the cheapest fitting budget is only a fallback, not a proxy that ranks
        print(f"no budget reaches seed Spearman {SPEARMAN_GOAL} (and the reference's, if measured); the cheapest "
              f"that fits the search time is {chosen} {budgets.get(chosen)}")
    print(f"written {write_result(result_name, summary)}")


def r_ok(r: dict[str, Any]) -> bool:
    """Does a budget rank: seed-to-seed Spearman at the goal (and agreement with the reference if measured)."""
    return r.get("seeds_spearman", 0.0) >= SPEARMAN_GOAL and r.get("reference_spearman", 1.0) >= SPEARMAN_GOAL


if __name__ == "__main__":
    main()
