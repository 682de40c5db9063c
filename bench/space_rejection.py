"""Rejection throughput of search-space sampling: random candidates drawn and checked against the space's
parameter/MAC constraints analytically, against building each module and counting its parameters.

Run: .venv/bin/python -m bench.space_rejection   (goal: >= 10,000 candidates/s on the default study's setting,
the mobile space decoded for Fashion-MNIST at 32 px; writes bench/results/space_rejection.json)

"Cold" starts from empty memo tables (section specs and per-stage costs); "warm" is the steady state of a
long search, where the same stages recur. Wall-clock rates are the headline; CPU-time rates are printed too
because the machine is shared (the 1-minute load average at the start is recorded).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from archlab.build import build_model
from archlab.complexity import params_macs
from archlab.layers import count_params
from archlab.space import SearchSpace, clear_caches, load_space
from bench.common import write_result

GOAL = 10_000.0
ROOT = Path(__file__).resolve().parent.parent
CASES = [  # (space, overrides): the default study's proxy setting first
    ("mobile", {"img_size": 32, "in_chans": 1, "num_classes": 10}),
    ("mobile", {}),
    ("resnet_convnext", {"img_size": 32, "in_chans": 1, "num_classes": 10}),
    ("efficientnet_scaling", {}),
]


def analytic_rate(space: SearchSpace, overrides: dict[str, int], n: int, seed: int) -> dict[str, float]:
    """Draw `n` candidates and check each one's constraints; candidates per wall and CPU second."""
    draws = space.candidates(seed=seed, **overrides)
    feasible = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        _, spec = next(draws)
        if spec is not None and not space.violations(spec):
            feasible += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"candidates": n, "per_s": n / wall, "per_cpu_s": n / cpu, "feasible_share": feasible / n}


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
        warm = analytic_rate(space, overrides, 20_000, seed=3)
        decode_only = sampling_rate(space, overrides, 10_000, seed=4)
        base = baseline_rate(space, overrides, 10 if name == "resnet_convnext" else 25, seed=5)
        row = {"space": name, "overrides": overrides, "cold": cold, "warm": warm, "warm_up": warm_up,
               "decode_only_per_s": decode_only, "baseline_build_count": base,
               "speedup_warm_vs_build": warm["per_s"] / base["per_s"],
               "speedup_cold_vs_build": cold["per_s"] / base["per_s"]}
        rows.append(row)
        where = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "as written"
        print(f"{name} ({where}): cold {cold['per_s']:,.0f}/s, warm {warm['per_s']:,.0f}/s "
              f"(CPU time {warm['per_cpu_s']:,.0f}/s), decode only {decode_only:,.0f}/s, "
              f"build+count {base['per_s']:.1f}/s -> x{row['speedup_warm_vs_build']:,.0f} warm, "
              f"x{row['speedup_cold_vs_build']:,.0f} cold; feasible {warm['feasible_share']:.0%}; "
              f"analytic params equal built: {base['params_equal']}")
    headline = rows[0]["warm"]["per_s"]
    print(f"\ndefault study setting (mobile at 32 px): {headline:,.0f} candidates/s warm "
          f"(goal >= {GOAL:,.0f}/s: {'met' if headline >= GOAL else 'NOT met'}); load average {load:.2f}")
    path = write_result("space_rejection", {
        "goal_per_s": GOAL, "headline_per_s": headline, "goal_met": headline >= GOAL, "load_average_1min": load,
        "rows": rows})
    print(f"written {path}")


if __name__ == "__main__":
    main()
