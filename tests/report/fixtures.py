"""Small synthetic run folders in the documented formats, for the report tests only.

The architectures, parameter counts and MACs are real (analytic, from ArchSpecs); the top-1 and latency values
are made up by a seeded formula, since the tests check drawing and escaping, not results. Search folders follow
docs/run_folder.md; ablation folders are written by archlab.ablation.ladder's own summarising and writing code.
"""
from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import yaml

from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec, make_divisible
from archlab.nn.complexity import complexity
from archlab.search.results import summary_dict, write_table

REPO = Path(__file__).resolve().parents[2]

# trial number -> the outcome a fixture search forces on it (others complete)
OUTCOMES = {3: ("failed", "RuntimeError: injected fault"),
            5: ("skipped", "latency 9.1 ms > 1.5 x 2.4 ms of the front's most accurate point"),
            7: ("stopped", ""), 11: ("stopped", ""),
            9: ("failed", "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB")}


def sample_params(rng: random.Random) -> dict[str, Any]:
    """One point of a small mobile-like space: depths, width multiplier, kernel, expansion, activation, SE."""
    return {"depth1": rng.randint(1, 3), "depth2": rng.randint(1, 3), "depth3": rng.randint(1, 4),
            "width_mult": rng.choice([0.5, 0.75, 1.0, 1.25]), "kernel": rng.choice([3, 5, 7]),
            "expand": rng.choice([3, 6]), "act": rng.choice(["relu", "hardswish"]), "se": rng.choice([False, True])}


def spec_for(params: dict[str, Any], number: int) -> ArchSpec:
    """The ArchSpec a fixture trial's parameters decode to (three inverted-residual stages on 32x32 grey)."""
    widths = [make_divisible(w * params["width_mult"], 8) for w in (16, 24, 40)]
    depths = (params["depth1"], params["depth2"], params["depth3"])
    stages = tuple(StageSpec(block="inverted_residual", depth=d, width=w, stride=1 if i == 0 else 2,
                             kernel_size=params["kernel"], expand_ratio=float(params["expand"]), act=params["act"],
                             se_ratio=0.25 if params["se"] else 0.0)
                   for i, (d, w) in enumerate(zip(depths, widths)))
    return ArchSpec(stem=StemSpec(type="conv", width=16, kernel_size=3, stride=1, act=params["act"]), stages=stages,
                    head=HeadSpec(), img_size=32, in_chans=1, num_classes=10, name=f"trial-{number:04d}")


def make_search_run(path: Path, *, name: str = "tiny_frontier", sampler: str = "nsga2", n_trials: int = 24,
                    seed: int = 0, description: str = "Synthetic fixture: top-1 vs latency on a tiny space",
                    param_override: dict[int, dict[str, Any]] | None = None) -> Path:
    """Write a search run folder with complete, stopped, skipped and failed trials."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    (path / "trials").mkdir(exist_ok=True)
    (path / "logs").mkdir(exist_ok=True)
    start = datetime(2025, 11, 25, 12, 0, 0)
    rows, cache = [], {}
    for n in range(n_trials):
        params = sample_params(rng)
        params.update((param_override or {}).get(n, {}))
        spec = spec_for({**params, "act": params["act"] if params["act"] in ("relu", "hardswish") else "relu"}, n)
        cost = complexity(spec)
        folder = path / "trials" / f"{n:04d}"
        folder.mkdir(exist_ok=True)
        (folder / "spec.yaml").write_text(spec.to_yaml())
        latency = 0.05 + cost.macs / 4e7 * (1 + 0.05 * rng.gauss(0, 1))
        top1 = 84 + 6 * (1 - math.exp(-cost.macs / 4e6)) + 0.4 * rng.gauss(0, 1) + \
            (0.5 if params["act"] == "hardswish" else 0.0)
        state, error = OUTCOMES.get(n, ("complete", ""))
        t0 = start + timedelta(seconds=40 * n)
        row: dict[str, Any] = {
            "number": n, "state": state, "arch_id": spec.arch_id, "params": cost.params, "macs": cost.macs,
            "latency_ms": latency, "latency_p90_ms": latency * 1.08, "latency_cv": 0.03, "latency_repeats": 50,
            "top1": top1 if state == "complete" else None,
            "top1_partial": top1 - 3 if state == "stopped" else None,
            "epochs_run": {"complete": 2, "stopped": 1}.get(state, 0), "trial_s": 30.0 + n, "train_s": 25.0,
            "images_per_s": 900.0, "paused_s": 0.0, "node_id": "a1b2c3d4e5f6" if n % 2 else "f6e5d4c3b2a1",
            "hostname": "head" if n % 2 else "worker-1", "error": error or None,
            "datetime_start": t0, "datetime_complete": t0 + timedelta(seconds=30 + n)}
        row.update({f"params_{k}": v for k, v in params.items()})
        rows.append(row)
        key = f"{spec.arch_id}|cpu|Fixture CPU|torch 2.14.1|threads=1|batch=1|32|1|eager|contiguous"
        cache[key] = {"median_ms": latency, "p90_ms": latency * 1.08, "cv": 0.03, "repeats": 50, "batch": 1,
                      "img_size": 32, "device": "cpu", "threads": 1, "backend": "eager",
                      "device_name": "Fixture CPU", "stack": "torch 2.14.1", "arch_id": spec.arch_id}
        if state == "failed":
            (path / "logs" / f"trial-{n:04d}.log").write_text(f"Traceback (most recent call last):\n{error}\n")
    table = pd.DataFrame(rows)
    write_table(table, path)
    study = {"name": name, "description": description, "space": "space.yaml",
             "dataset": {"name": "fashion_mnist", "img_size": 32, "limit": 2000}, "recipe": "classic",
             "budget": {"epochs": 2}, "objectives": ["top1", "latency_ms"],
             "latency": {"device": "cpu", "batch": 1, "threads": 1}, "sampler": sampler, "trials": n_trials,
             "seed": seed, "execution": {"cpus_per_trial": 1, "concurrent": 2}}
    (path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    (path / "space.yaml").write_text("# fixture space\nname: tiny\n")
    summary = summary_dict(table, ["top1", "latency_ms"], ["maximize", "minimize"])
    summary.update(wall_s=40.0 * n_trials, infeasible_rejected=2, run_dir=str(path))
    (path / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    state = {"storage": f"sqlite:///{path / 'optuna.db'}", "study": name, "target_trials": n_trials,
             "timeout": None, "elapsed_s": 40.0 * n_trials,
             "sessions": [{"started": "2025-11-25 12:00:00", "resume": False, "interrupted": 0}],
             "ray": [{"ray_version": "2.60.0", "started_locally": True, "address": "127.0.0.1:6379",
                      "auth": "token", "resources": {"CPU": 4.0, "memory": 8e9},
                      "nodes": [{"node_id": "a1b2c3d4e5f6", "ip": "127.0.0.1", "hostname": "head", "alive": True,
                                 "head": True, "resources": {"CPU": 2.0, "memory": 4e9}},
                                {"node_id": "f6e5d4c3b2a1", "ip": "127.0.0.2", "hostname": "worker-1",
                                 "alive": True, "head": False, "resources": {"CPU": 2.0, "memory": 4e9}}]}]}
    (path / "state.json").write_text(json.dumps(state, indent=2))
    (path / "latency_cache.json").write_text(json.dumps(cache, indent=1))
    return path


def make_ablation_run(path: Path, *, ladder_file: Path = REPO / "studies" / "convnext_ablation.yaml",
                      seeds: tuple[int, ...] = (0, 1, 2), trained: bool = True, seed: int = 0) -> Path:
    """Write an ablation run folder (ladder.yaml, results.jsonl, ablation.json/.csv) via archlab.ablation.ladder."""
    from archlab.ablation import (
        AblationReport,
        agreement,
        load_ladder,
        proxy_spec,
        resolve_ladder,
        summarize_steps,
        write_report,
    )
    rng = random.Random(seed)
    ladder = load_ladder(ladder_file)
    rows = resolve_ladder(ladder)
    costs = {r.index: complexity(r.spec) for r in rows}
    proxies = {r.index: proxy_spec(r.spec, ladder.proxy, num_classes=10, in_chans=1) for r in rows}
    proxy_costs = {i: complexity(s) for i, s in proxies.items()}
    latencies = {i: SimpleNamespace(median_ms=0.1 + c.macs / 3e7, latency_ms=0.1 + c.macs / 3e7,
                                    p90_ms=0.12 + c.macs / 2.8e7, cv=0.04)
                 for i, c in proxy_costs.items()}
    records = []
    if trained:
        for r in rows:
            paper = r.row.paper.top1 or 76.0
            for s in seeds:
                records.append({"step": r.name, "index": r.index, "seed": s, "arch_id": proxies[r.index].arch_id,
                                "recipe": r.recipe, "top1": 80 + 0.8 * (paper - 76) + rng.gauss(0, 0.4),
                                "wall_s": 12.0})
    steps = summarize_steps(rows, costs, proxies, proxy_costs, latencies, records, seeds)
    p = ladder.proxy
    setting = {"dataset": p.dataset, "img_size": p.img_size, "in_chans": 1, "num_classes": 10, "width": p.width,
               "depth": p.depth, "val_fraction": p.val_fraction, "limit": p.limit, "budget": p.budget.limits(),
               "recipes": p.recipes, "device": "cpu", "device_name": "Fixture CPU", "threads": 1,
               "complexity": "analytic, full-size network at its own img_size (224)",
               "latency": "fixture values (not measured)", "top1": "fixture values (not trained)"}
    report = AblationReport(ladder=ladder, steps=tuple(steps), agreement=agreement(steps), seeds=tuple(seeds),
                            trained=trained, out=str(path), setting=setting, wall_s=1.0,
                            train_wall_s=12.0 * len(records))
    path.mkdir(parents=True, exist_ok=True)
    (path / "ladder.yaml").write_text(ladder.text)
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(path, report)
    return path


def poison_names(run: Path, text: str) -> None:
    """Put `text` into every user string a report shows (study name, description, step names, params, errors)."""
    if (run / "ablation.json").exists():
        doc = json.loads((run / "ablation.json").read_text())
        doc["study"] = doc["title"] = doc["source"] = doc["verdict"] = text
        for i, s in enumerate(doc["steps"]):
            s["note"] = text
            if i == 1:
                s["step"] = text + "-step"
        (run / "ablation.json").write_text(json.dumps(doc))
        (run / "ladder.yaml").write_text(f"name: x\ntitle: '{text}'\n")
        return
    study = yaml.safe_load((run / "study.yaml").read_text())
    study["name"] = study["description"] = text
    (run / "study.yaml").write_text(yaml.safe_dump(study))
    summary = json.loads((run / "summary.json").read_text())
    summary.pop("study", None)
    (run / "summary.json").write_text(json.dumps(summary))
    table = pd.read_parquet(run / "trials.parquet")
    table["params_act"] = table["params_act"].where(table["number"] != 1, text)
    table["error"] = table["error"].where(table["state"] != "failed", text)
    write_table(table, run)
    spec = run / "trials" / "0002" / "spec.yaml"
    spec.write_text(spec.read_text().replace("name: trial-0002", f"name: {json.dumps(text)}"))


__all__ = ["OUTCOMES", "make_ablation_run", "make_search_run", "poison_names", "spec_for"]
