"""Analytic complexity vs building the module and counting with FlopCounterMode, over the whole zoo.

Run: .venv/bin/python -m bench.complexity   (goal: analytic >= 100x faster; writes bench/results/complexity.json)
"""
from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from archlab.arch.zoo import get_spec, zoo_names
from archlab.nn.build import build_model
from archlab.nn.complexity import clear_stage_costs, complexity
from bench.common import write_result

GOAL = 100.0


def measured(name: str) -> tuple[float, int, int]:
    """Seconds to build `name` on the CPU and count its parameters and MACs the ordinary way."""
    spec = get_spec(name)
    start = time.perf_counter()
    model = build_model(spec).eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, spec.in_chans, spec.img_size, spec.img_size))
    return time.perf_counter() - start, params, counter.get_total_flops() // 2


def analytic(name: str, repeats: int = 20) -> tuple[float, int, int]:
    """Seconds per analytic complexity() call (spec construction included)."""
    elapsed = 0.0
    for _ in range(repeats):
        clear_stage_costs()  # cold: the stage-cost memo would otherwise answer every repeat from cache
        start = time.perf_counter()
        cost = complexity(get_spec(name))
        elapsed += time.perf_counter() - start
    return elapsed / repeats, cost.params, cost.macs


def main() -> None:
    """Time both paths for every zoo network and print the speed ratio."""
    torch.set_num_threads(2)
    rows = []
    for name in zoo_names():
        t_build, p_build, m_build = measured(name)
        t_fast, p_fast, m_fast = analytic(name)
        rows.append({"name": name, "build_s": t_build, "analytic_s": t_fast, "speedup": t_build / t_fast,
                     "params_equal": p_build == p_fast, "macs_rel_err": abs(m_fast - m_build) / m_build})
        print(f"{name:20s} build+count {t_build * 1e3:9.1f} ms  analytic {t_fast * 1e6:8.1f} us  "
              f"x{t_build / t_fast:9.0f}  params equal: {p_build == p_fast}")
    total_build = sum(r["build_s"] for r in rows)
    total_fast = sum(r["analytic_s"] for r in rows)
    ratio = total_build / total_fast
    print(f"\nzoo total: build+FlopCounterMode {total_build:.2f} s, analytic {total_fast * 1e3:.2f} ms: "
          f"{ratio:.0f}x faster (goal >= {GOAL:.0f}x), min per-network {min(r['speedup'] for r in rows):.0f}x")
    path = write_result("complexity", {"speedup_total": ratio, "speedup_min": min(r["speedup"] for r in rows),
                                       "goal": GOAL, "all_params_equal": all(r["params_equal"] for r in rows),
                                       "max_macs_rel_err": max(r["macs_rel_err"] for r in rows), "rows": rows})
    print(f"written {path}")


if __name__ == "__main__":
    main()
