"""Latency measurement quality: repeatability, and immunity to training running beside it.

1. Repeatability: 5 zoo networks at 224 px, batch 1, 1 thread, each measured 10 times by `measure_latency`;
   the coefficient of variation of the 10 raw medians and of the 10 drift-corrected figures (`nominal_ms`, what
   a search ranks by; goal <= 3%). ONNX Runtime medians are recorded beside them.
2. Training beside it: 10 architectures of the mobile space at the default study's 32 px / 1 channel are
   measured alone, while another process trains (1 thread each, 2 cores) and yields to the measurement lock
   (archlab's default), and while it trains ignoring the lock; the three alternate (--cycles). Spearman rank
   correlation of each with the alone ranking (goal >= 0.98 with the lock), the median slow-down, and the
   alone-vs-alone agreement between cycles (the machine's own noise floor). Every measurement uses the
   machine-wide default lock, so other archlab trainers on the machine pause too, as in a search.
Run: .venv/bin/python -m bench.latency [--repeats 10]   (writes bench/results/latency.json)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import write_result

CV_GOAL, SPEARMAN_GOAL = 0.03, 0.98
CV_NETWORKS = ("mobilenet_v3_small", "mobilenet_v2", "efficientnet_b0", "resnet18", "resnet50")

TRAINER = r"""
import sys, torch
from pathlib import Path
from archlab.measure.data import load_data
from archlab.arch.spec import ArchSpec, StageSpec, StemSpec
from archlab.measure.train import Budget, train
torch.set_num_threads(1)
data = load_data("fashion_mnist", img_size=32, in_chans=1, limit=20000, val_limit=500)
spec = ArchSpec(stem=StemSpec(width=32, stride=1), stages=(StageSpec(block="basic", depth=2, width=32, stride=2),
                StageSpec(block="basic", depth=2, width=64, stride=2)), img_size=32, in_chans=1, num_classes=10)
Path(sys.argv[1]).write_text("started")
train(spec, data, recipe="proxy", budget=Budget(seconds=3600), memory_format="contiguous",
      yield_to_measurement=sys.argv[2] == "yield")
"""


def repeatability(repeats: int, max_seconds: float) -> dict[str, Any]:
    """CV of `repeats` medians per zoo network (eager), plus one ONNX Runtime median each."""
    from archlab.arch.zoo import get_spec
    from archlab.measure.latency import BackendUnavailable, measure_latency
    from archlab.nn.build import build_model
    rows = {}
    for name in CV_NETWORKS:
        model = build_model(get_spec(name))
        runs = [measure_latency(model, threads=1, max_seconds=max_seconds) for _ in range(repeats)]
        medians, nominal = [r.median_ms for r in runs], [r.nominal_ms for r in runs]
        cv = statistics.stdev(medians) / statistics.fmean(medians)
        cv_nominal = statistics.stdev(nominal) / statistics.fmean(nominal)
        try:
            ort = measure_latency(model, threads=1, max_seconds=max_seconds, backend="onnxruntime").median_ms
        except BackendUnavailable as err:
            ort = None
            print(f"  onnxruntime skipped: {err}")
        rows[name] = {"medians_ms": medians, "cv": cv, "nominal_ms": nominal, "cv_nominal": cv_nominal,
                      "onnxruntime_median_ms": ort}
        print(f"  {name}: median {statistics.median(medians):.2f} ms over {repeats} measurements, CV {cv:.2%} raw, "
              f"{cv_nominal:.2%} drift-corrected (goal <= {CV_GOAL:.0%}); onnxruntime {ort and f'{ort:.2f} ms'}",
              flush=True)
    return {"networks": rows, "max_cv": max(r["cv"] for r in rows.values()),
            "max_cv_nominal": max(r["cv_nominal"] for r in rows.values()), "goal": CV_GOAL}


def _measure_all(specs: list[Any], max_seconds: float) -> list[float]:
    from archlab.measure.latency import measure_latency
    return [measure_latency(s, threads=1, max_seconds=max_seconds).latency_ms for s in specs]  # as a search ranks


def _with_trainer(mode: str, specs: list[Any], max_seconds: float) -> list[float]:
    """Medians measured while a background process trains, yielding to the lock (`yield`) or not (`ignore`)."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "started"
        proc = subprocess.Popen([sys.executable, "-c", TRAINER, str(marker), mode])
        try:
            deadline = time.time() + 120
            while not marker.exists() and time.time() < deadline and proc.poll() is None:
                time.sleep(0.2)
            if not marker.exists():
                raise RuntimeError(f"the background trainer did not start (exit code {proc.poll()})")
            time.sleep(3)  # past the layout choice and into steady training
            return _measure_all(specs, max_seconds)
        finally:
            proc.terminate()
            proc.wait(30)


def beside_training(max_seconds: float, cycles: int) -> dict[str, Any]:
    """Latency ranks of 10 mobile-space points: alone, beside a yielding trainer, beside a non-yielding one.

    The three conditions alternate `cycles` times and each point's median over cycles is compared, so a change
    in the machine's other load hits every condition; alone-vs-alone agreement between cycles is the noise floor.
    """
    from scipy.stats import spearmanr

    from archlab.space.search_space import load_space
    specs = [s for _, s in load_space("search_spaces/mobile.yaml").sample(10, seed=1, img_size=32, in_chans=1,
                                                                            num_classes=10)]
    modes = ("alone", "yield", "ignore")
    runs: dict[str, list[list[float]]] = {m: [] for m in modes}
    for cycle in range(cycles):
        for mode in modes:
            runs[mode].append(_measure_all(specs, max_seconds) if mode == "alone" else
                              _with_trainer(mode, specs, max_seconds))
        print(f"  cycle {cycle + 1}/{cycles} done", flush=True)
    med = {m: [statistics.median(c[i] for c in runs[m]) for i in range(len(specs))] for m in modes}
    out: dict[str, Any] = {"arch_ids": [s.arch_id for s in specs], "cycles": cycles, "latency_ms": runs,
                           "median_latency_ms": med, "goal": SPEARMAN_GOAL}
    floor = [float(spearmanr(a, b).statistic) for i, a in enumerate(runs["alone"]) for b in runs["alone"][i + 1:]]
    out["spearman_alone_vs_alone"] = floor
    print(f"  noise floor: alone vs alone (between cycles) Spearman {', '.join(f'{x:.3f}' for x in floor)}")
    for mode in ("yield", "ignore"):
        out[f"spearman_{mode}"] = float(spearmanr(med["alone"], med[mode]).statistic)
        out[f"slowdown_{mode}"] = statistics.median(b / a for a, b in zip(med["alone"], med[mode]))
        print(f"  beside a trainer that {'yields to' if mode == 'yield' else 'ignores'} the lock: Spearman "
              f"{out[f'spearman_{mode}']:.3f} vs alone, median slow-down {out[f'slowdown_{mode}']:.2f}x", flush=True)
    return out


def main() -> None:
    """Both experiments; figures to bench/results/latency.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=3.0, help="time cap per measurement")
    parser.add_argument("--cycles", type=int, default=3, help="alternations of alone / yielding / ignoring")
    parser.add_argument("--skip-cv", action="store_true")
    parser.add_argument("--skip-beside", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    if not args.skip_cv:
        print("repeatability (224 px, batch 1, 1 thread, eager):")
        out["repeatability"] = repeatability(args.repeats, args.max_seconds)
    if not args.skip_beside:
        print("latency beside training (mobile space at 32 px, batch 1, 1 thread):")
        out["beside_training"] = beside_training(args.max_seconds, args.cycles)
    out["load_average_at_end"] = os.getloadavg()
    print(f"written {write_result('latency', out)}")


if __name__ == "__main__":
    main()
