"""Running an ablation ladder: measure every row, train each (row, seed) on the proxy, write a resumable run folder.

`run_ablation` measures analytic parameters and MACs at full size, latency of the proxy-size network here and
proxy-trained top-1 for every seed; a (row, seed) already in the run folder's results.jsonl is not trained again,
so rerunning with the same folder resumes. The folder's format is described in docs/ablation.md.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from archlab.ablation.ladder import Ladder, ProxySetting, ResolvedRow, load_ladder, proxy_spec, resolve_ladder
from archlab.ablation.summary import AblationReport, agreement, summarize_steps
from archlab.arch.spec import ArchSpec
from archlab.core.errors import ArchlabError, SpecError
from archlab.core.files import atomic_write, atomic_write_text
from archlab.core.yamlio import decode_utf8

__all__ = ["CSV_COLUMNS", "budget_images", "default_out", "read_records", "run_ablation", "write_report"]


# --- records (results.jsonl) ---------------------------------------------------------------------------

def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The finished (row, seed) records of a results.jsonl; a torn last line (a killed run) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = path.read_bytes()
    except OSError as err:   # a folder in its place: say which file, not only "Is a directory"
        raise ArchlabError(f"{path}: cannot be read ({err.strerror})") from None
    records = []
    for number, line in enumerate(decode_utf8(data, file=str(path)).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue  # only the line being written when a run died can be torn
        if isinstance(record, dict) and "step" in record and "seed" in record:
            _check_record(record, str(path), number)
            records.append(record)
    return records


def _check_record(record: Mapping[str, Any], file: str, line: int) -> None:
    """A record the summary can use: archlab writes only these, so another is a hand edit, said before training."""
    seed, top1 = record["seed"], record.get("top1")
    if not isinstance(record["step"], str):
        raise SpecError("step", "must be a row name (a string)", record["step"], file=file, line=line)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise SpecError("seed", "must be a whole number in [0, 2^32)", seed, file=file, line=line)
    # NaN passes: json.dumps writes a diverged run's NaN, and the summary treats it as no figure
    if top1 is not None and (isinstance(top1, bool) or not isinstance(top1, (int, float))
                             or (top1 == top1 and not 0.0 <= top1 <= 100.0)):
        raise SpecError("top1", "must be a percentage in [0, 100] (or null)", top1, file=file, line=line)


def _append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line durably; a torn last line from a killed run is closed first so this one stays whole."""
    torn = False
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    with open(path, "a") as f:
        f.write(("\n" if torn else "") + json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_out(ladder: Ladder) -> Path:
    """runs/<study name>-<YYYYmmdd-HHMMSS> under the current directory."""
    return Path("runs") / f"{ladder.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _prepare_out(out: Path, ladder: Ladder) -> None:
    """Create the run folder, or check that an existing one holds the same ladder (then it resumes)."""
    kept = out / "ladder.yaml"
    if kept.exists():
        try:
            previous = load_ladder(kept)
        except SpecError as err:
            raise ArchlabError(f"{out}: holds a ladder.yaml that no longer validates ({err}); use a new --out") \
                from None
        if previous.fingerprint() != ladder.fingerprint():
            raise ArchlabError(f"{out}: holds results of a different ladder (rows, recipes or proxy differ from "
                               f"{ladder.file}); use a new --out to start a fresh run")
        return
    if out.exists() and not out.is_dir():
        raise ArchlabError(f"{out}: is a file, not a run folder; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    # a ladder made in code has no file text: its own YAML is the copy
    atomic_write_text(kept, ladder.text or ladder.to_yaml())


def _setting(ladder: Ladder, in_chans: int, num_classes: int, threads: int) -> dict[str, Any]:
    from archlab.measure.latency import device_name
    p = ladder.proxy
    return {"dataset": p.dataset, "img_size": p.img_size, "in_chans": in_chans, "num_classes": num_classes,
            "width": p.width, "depth": p.depth, "val_fraction": p.val_fraction, "limit": p.limit,
            "budget": p.budget.limits(), "recipes": p.recipes, "device": p.device,
            "device_name": device_name(p.device), "threads": threads,
            "complexity": "analytic, full-size network at its own img_size (224 for ImageNet)",
            "latency": f"median of repeated batch-{p.latency_batch} forward passes of the proxy-size network at "
                       f"{p.img_size} px on {p.device} ({threads} threads), archlab.measure.latency.measure_latency",
            "top1": "proxy top-1 (%) on the validation split carved from the training set"}


def run_ablation(ladder: Ladder | str | Path, *, out: str | Path | None = None, train: bool = True,
                 seeds: Sequence[int] | None = None, log: Log | None = _stderr) -> AblationReport:
    """Measure every row of `ladder` (a Ladder or a ladder file) and (if `train`) train each (row, seed) not yet
    in `out`'s results.jsonl.

    Writes `out`/ladder.yaml, results.jsonl (one line per finished (row, seed)), ablation.json and
    ablation.csv; without `train` and without `out` nothing is written.
    """
    import torch

    if not isinstance(ladder, Ladder):
        ladder = load_ladder(ladder)
    started, started_at = time.perf_counter(), datetime.now().isoformat(timespec="seconds")
    seeds = tuple(ladder.seeds if seeds is None else seeds)
    rows = resolve_ladder(ladder)
    p = ladder.proxy
    threads = p.threads or torch.get_num_threads()
    out_dir = Path(out) if out is not None else (default_out(ladder) if train else None)
    if out_dir is not None:
        _prepare_out(out_dir, ladder)
    data = _ProxyData(ladder)
    # the class count comes from the run folder if it has one, else from the data
    num_classes = _stored_num_classes(out_dir) or data.num_classes(full=train)
    m = _measure(rows, p, num_classes, data.in_chans, threads)
    n_train = len(data.get().train) if train else None
    images = {r.index: budget_images(r, p, n_train) for r in rows}
    records = read_records(out_dir / "results.jsonl") if out_dir is not None else []
    trained_now = 0
    if train and out_dir is not None:
        job = _Training(ladder=ladder, rows=rows, proxies=m.proxies, images=images, get_data=data.get,
                        threads=threads)
        trained_now = _train_missing(job, records, seeds, out_dir, log or (lambda _m: None))
        records = read_records(out_dir / "results.jsonl")
    steps = summarize_steps(rows, m.costs, m.proxies, m.proxy_costs, m.latencies, records, seeds,
                            budget_images=images)
    counted = {(s.step, s.proxy_arch_id) for s in steps}
    train_wall = sum(float(rec.get("wall_s", 0.0)) for rec in records
                     if (rec["step"], rec.get("arch_id")) in counted and rec["seed"] in set(seeds))
    report = AblationReport(ladder=ladder, steps=tuple(steps), agreement=agreement(steps), seeds=seeds,
                            trained=any(s.n_seeds for s in steps), out=None if out_dir is None else str(out_dir),
                            setting=_setting(ladder, data.in_chans, num_classes, threads),
                            wall_s=time.perf_counter() - started, train_wall_s=train_wall, trained_now=trained_now,
                            started=started_at)
    if out_dir is not None:
        write_report(out_dir, report)
    return report


class _ProxyData:
    """The proxy's dataset, loaded once and only when something needs it."""

    def __init__(self, ladder: Ladder) -> None:
        from archlab.measure.data import DATASETS
        self.proxy = ladder.proxy
        self.in_chans = self.proxy.in_chans or DATASETS.get(self.proxy.dataset).native_chans
        self._data: Any = None

    def _load(self, limit: int | None, val_limit: int | None) -> Any:
        from archlab.measure.data import load_data
        p = self.proxy
        return load_data(p.dataset, img_size=p.img_size, in_chans=self.in_chans, root=p.root,
                         val_fraction=p.val_fraction, seed=0, limit=limit, val_limit=val_limit)

    def get(self) -> Any:
        """The training and validation splits the rows train on."""
        if self._data is None:
            self._data = self._load(self.proxy.limit, self.proxy.val_limit)
        return self._data

    def num_classes(self, *, full: bool) -> int:
        """The class count: from the full data when it will train anyway, else from one image of each split
        (without resizing the whole set)."""
        return int(self.get().num_classes if full else self._load(1, 1).num_classes)


@dataclass(frozen=True, slots=True)
class _Measured:
    """Analytic costs (full size and proxy size) and measured proxy latencies, by row index."""

    costs: dict[int, Any]
    proxies: dict[int, ArchSpec]
    proxy_costs: dict[int, Any]
    latencies: dict[int, Any]


def _measure(rows: Sequence[ResolvedRow], p: ProxySetting, num_classes: int, in_chans: int,
             threads: int) -> _Measured:
    from archlab.measure.latency import measure_latency
    from archlab.nn.complexity import complexity
    proxies = {r.index: proxy_spec(r.spec, p, num_classes=num_classes, in_chans=in_chans) for r in rows}
    return _Measured(
        costs={r.index: complexity(r.spec) for r in rows}, proxies=proxies,
        proxy_costs={i: complexity(s) for i, s in proxies.items()},
        latencies={i: measure_latency(spec, batch=p.latency_batch, device=p.device, threads=threads,
                                      max_seconds=p.latency_seconds) for i, spec in proxies.items()})


def budget_images(row: ResolvedRow, proxy: ProxySetting, n_train: int | None) -> int | None:
    """The images `row` trains on per seed, as the trainer counts them (whole batches): None when only a time
    limit bounds it, or when the budget is in epochs and the training-set size is not known (--no-train)."""
    from archlab.measure.recipes import get_recipe
    budget = row.budget(proxy)
    if budget.epochs is not None and n_train is None:
        return None
    recipe = get_recipe(proxy.recipes.get(row.recipe, row.recipe))
    batch = recipe.batch_size if n_train is None else min(recipe.batch_size, n_train)
    if recipe.mixup > 0 or recipe.cutmix > 0:
        batch -= batch % 2   # the trainer pairs images for Mixup/CutMix
    steps = budget.total_steps(n_train or 0, batch)
    return None if steps is None else steps * batch


def _stored_num_classes(out_dir: Path | None) -> int | None:
    """The class count an earlier invocation wrote into the run folder's ablation.json, if any."""
    if out_dir is None:
        return None
    try:
        return int(json.loads((out_dir / "ablation.json").read_text())["setting"]["num_classes"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class _Training:
    """What the missing (row, seed) pairs train with: rows, their proxy specs and image budgets, data, threads."""

    ladder: Ladder
    rows: Sequence[ResolvedRow]
    proxies: Mapping[int, ArchSpec]
    images: Mapping[int, int | None]
    get_data: Callable[[], Any]
    threads: int


def _train_missing(job: _Training, records: Sequence[Mapping[str, Any]], seeds: Sequence[int], out_dir: Path,
                   say: Log) -> int:
    """Train every (row, seed) without a matching record, seed-major so a whole ladder lands early; the count.

    A record matches by row name, seed, proxy arch_id, recipe and (where it states one) the images it trained
    on, so a row whose budget changed trains again.
    """
    from archlab.measure.recipes import get_recipe
    from archlab.measure.train import train

    ladder, rows, proxies, images, threads = job.ladder, job.rows, job.proxies, job.images, job.threads
    p = ladder.proxy
    done = {(rec["step"], rec["seed"], rec.get("arch_id"), rec.get("recipe"), rec.get("budget_images"))
            for rec in records}
    todo = [(seed, r) for seed in seeds for r in rows
            if not {(r.name, seed, proxies[r.index].arch_id, r.recipe, n) for n in (None, images[r.index])} & done]
    if len(todo) < len(seeds) * len(rows):
        say(f"{ladder.name}: resuming {out_dir}: {len(seeds) * len(rows) - len(todo)} of "
            f"{len(seeds) * len(rows)} (row, seed) results kept")
    data = job.get_data() if todo else None
    for k, (seed, r) in enumerate(todo, 1):
        recipe = get_recipe(p.recipes.get(r.recipe, r.recipe))
        budget = r.budget(p)
        result = train(proxies[r.index], data, recipe=recipe, budget=budget, seed=seed, device=p.device,
                       threads=threads)
        record = {"step": r.name, "index": r.index, "seed": seed, "arch_id": proxies[r.index].arch_id,
                  "full_arch_id": r.spec.arch_id, "recipe": r.recipe, "top1": result.top1,
                  "eval_split": result.eval_split, "epochs_run": result.epochs_run,
                  "images_seen": result.images_seen, "wall_s": result.wall_s, "train_s": result.train_s,
                  "images_per_s": result.images_per_s, "memory_format": result.memory_format,
                  "history": [asdict(h) for h in result.history], "dataset": p.dataset, "img_size": p.img_size,
                  "budget": budget.limits(), "budget_multiplier": str(r.budget_multiplier),
                  "budget_images": images[r.index], "finished": datetime.now().isoformat(timespec="seconds")}
        _append_record(out_dir / "results.jsonl", record)
        say(f"[{k}/{len(todo)}] seed {seed} {r.index:>2} {r.name}: top-1 {record['top1']:.2f}% "
            f"({result.wall_s:.0f} s)")
    return len(todo)


# --- writing -------------------------------------------------------------------------------------------

CSV_COLUMNS = ("index", "step", "kind", "parent", "recipe", "budget_multiplier", "budget_images", "params", "macs",
               "img_size", "paper_gflops",
               "macs_vs_paper", "paper_top1", "paper_top1_std", "proxy_params", "proxy_macs", "latency_ms",
               "latency_p90_ms",
               "top1_mean", "top1_std", "n_seeds", "delta", "delta_se", "paper_delta", "direction", "within_noise",
               "arch_id", "proxy_arch_id", "gflops_note")


def write_report(out: str | Path, report: AblationReport) -> None:
    """Write ablation.json and ablation.csv (one row per step) into the run folder, atomically."""
    out = Path(out)
    doc = report.to_dict()
    try:  # keep the history of earlier invocations (the first one's wall time is the replay's cost)
        earlier = json.loads((out / "ablation.json").read_text()).get("invocations", [])
        doc["invocations"] = [i for i in earlier if isinstance(i, dict)] + doc["invocations"]
    except (OSError, ValueError, AttributeError):
        pass
    atomic_write_text(out / "ablation.json", json.dumps(doc, indent=2) + "\n")

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for s in report.steps:
                writer.writerow({k: ("" if v is None else v) for k, v in s.to_dict().items()})
    atomic_write(out / "ablation.csv", write_csv)
