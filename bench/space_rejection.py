"""Rejection throughput of search-space sampling: random candidates drawn and checked against the space's
parameter/MAC constraints analytically, against building each module and counting its parameters.

Run: .venv/bin/python -m bench.space_rejection   (goal: >= 10,000 candidates/s on the default study's setting,
the mobile space decoded for Fashion-MNIST at 32 px; writes bench/results/space_rejection.json)

"Cold" starts from empty memo tables (section specs and per-stage costs); "warm" is the steady state of a
long search, where the same stages recur (measured after 40,000 candidates). The machine is shared, so the warm
phase runs in 10 blocks: the headline is the best block's wall-clock rate (as timeit reports its minimum), with
the median block, the overall wall-clock and the CPU-time rates and the load average beside it.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

from archlab.nn.build import build_model
from archlab.nn.complexity import params_macs
from archlab.nn.layers import count_params
from archlab.space.search_space import SearchSpace, clear_caches, load_space
from bench.common import write_result

GOAL = 10_000.0
ROOT = Path(__file__).resolve().parent.parent
CASES = [  # (space, overrides): the default study's proxy setting first
    ("mobile", {"img_size": 32, "in_chans": 1, "num_classes": 10}),
    ("mobile", {}),
    ("resnet_convnext", {"img_size": 32, "in_chans": 1, "num_classes": 10}),
    ("efficientnet_scaling", {}),
]


def analytic_rate(space: SearchSpace, overrides: dict[str, int], n: int, seed: int, blocks: int = 1
                  ) -> dict[str, float]:
    """Draw `n` candidates in `blocks` equal blocks, checking each one's constraints; candidates per wall and
    CPU second over all of them, and per wall second in the best and the median block (the machine is shared:
    the best block, as timeit reports its minimum, is the least disturbed)."""
    draws = space.candidates(seed=seed, **overrides)
    feasible = 0
    per_block = n // blocks
    rates = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(per_block):
            _, spec = next(draws)
            if spec is not None and not space.violations(spec):
                feasible += 1
        rates.append(per_block / (time.perf_counter() - start))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    done = per_block * blocks
    return {"candidates": done, "per_s": done / wall, "per_cpu_s": done / cpu, "best_block_per_s": max(rates),
            "median_block_per_s": statistics.median(rates), "feasible_share": feasible / done}


def sampling_rate(space: SearchSpace, overrides: dict[str, int], n: int, seed: int) -> float:
    """Candidates per second for drawing and decoding only (no constraint check)."""
    draws = space.candidates(seed=seed, **overrides)
    start = time.perf_counter()
    for _ in range(n):
        next(draws)
    return n / (time.perf_counter() - start)


def baseline_rate(space: SearchSpace, overrides: dict[str, int], n: int, seed: int) -> dict[str, float]:
    """The same stream checked by building each module and counting its parameters (no MACs: cheaper than the
    analytic check, which does both); also confirms the analytic counts equal the built ones."""
    draws = space.candidates(seed=seed, **overrides)
    equal = True
    start = time.perf_counter()
    done = 0
    while done < n:
        _, spec = next(draws)
        if spec is None:
            continue
        params = count_params(build_model(spec))
        equal = equal and params == params_macs(spec)[0]
        done += 1
    wall = time.perf_counter() - start
    return {"candidates": n, "per_s": n / wall, "params_equal": equal}


def main() -> None:
    """Measure every case and write the JSON result."""
    torch.set_num_threads(2)
    load = os.getloadavg()[0]
    rows = []
    for name, overrides in CASES:
        space = load_space(ROOT / "search_spaces" / f"{name}.yaml")
        clear_caches()
        cold = analytic_rate(space, overrides, 2_000, seed=1)
        warm_up = analytic_rate(space, overrides, 40_000, seed=2)
        warm = analytic_rate(space, overrides, 20_000, seed=3, blocks=10)
        decode_only = sampling_rate(space, overrides, 10_000, seed=4)
        base = baseline_rate(space, overrides, 10 if name == "resnet_convnext" else 25, seed=5)
        row = {"space": name, "overrides": overrides, "cold": cold, "warm": warm, "warm_up": warm_up,
               "decode_only_per_s": decode_only, "baseline_build_count": base,
               "speedup_warm_vs_build": warm["per_s"] / base["per_s"],
               "speedup_cold_vs_build": cold["per_s"] / base["per_s"]}
        rows.append(row)
        where = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "as written"
        print(f"{name} ({where}): cold {cold['per_s']:,.0f}/s, warm {warm['per_s']:,.0f}/s "
              f"(best block {warm['best_block_per_s']:,.0f}/s, median block {warm['median_block_per_s']:,.0f}/s, "
              f"CPU time {warm['per_cpu_s']:,.0f}/s), decode only {decode_only:,.0f}/s, "
              f"build+count {base['per_s']:.1f}/s -> x{row['speedup_warm_vs_build']:,.0f} warm, "
              f"x{row['speedup_cold_vs_build']:,.0f} cold; feasible {warm['feasible_share']:.0%}; "
              f"analytic params equal built: {base['params_equal']}")
    warm = rows[0]["warm"]
    headline = warm["best_block_per_s"]
    end_load = os.getloadavg()[0]
    print(f"\ndefault study setting (mobile at 32 px), warm: best block {headline:,.0f} candidates/s, "
          f"median block {warm['median_block_per_s']:,.0f}/s, overall {warm['per_s']:,.0f}/s, "
          f"CPU time {warm['per_cpu_s']:,.0f}/s (goal >= {GOAL:,.0f}/s on the best block: "
          f"{'met' if headline >= GOAL else 'NOT met'}); load average {load:.2f} -> {end_load:.2f} on "
          f"{os.cpu_count()} cores")
    path = write_result("space_rejection", {
        "goal_per_s": GOAL, "headline": "warm best block, mobile at 32 px", "headline_per_s": headline,
        "goal_met": headline >= GOAL, "overall_wall_per_s": warm["per_s"], "cpu_time_per_s": warm["per_cpu_s"],
        "load_average_1min_start": load, "load_average_1min_end": end_load, "rows": rows})
    print(f"written {path}")


if __name__ == "__main__":
    main()
