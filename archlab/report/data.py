"""What a report shows, computed from run folders: small data objects for the plot functions to draw.

Reading is separate from computing: `load_search_run` / `load_ablation_run` read a folder's files (never a live
study), and every other function here is pure (tables and dicts in, frozen dataclasses or DataFrames out), so
the figures can be tested without a browser. Pareto sets and hypervolume come from `archlab.search.pareto`;
parameter importance is Optuna's fANOVA (Hutter et al., "An Efficient Approach for Assessing Hyperparameter
Importance", ICML 2014) run on an in-memory Optuna study rebuilt from the table's complete rows.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from archlab.core.errors import ArchlabError, SpecError, did_you_mean, shorten
from archlab.core.yamlio import read_text_file
from archlab.search.pareto import as_minimization, default_reference, pareto_mask

__all__ = ["AblationRun", "ArchInfo", "FrontComparison", "HypervolumeCurve", "Importance", "LadderPaths",
           "ParallelDim", "ScatterSet", "SearchRun", "ablation_table", "agreement_points", "arch_info",
           "axis_type", "best_values", "change_deltas", "compare_fronts", "detect_kind", "hypervolume_curves",
           "ladder_paths",
           "load_ablation_run", "load_run", "load_search_run", "metric_labels", "parallel_dims", "param_columns",
           "param_importance", "run_labels", "scatter_set", "sweep_points", "sweep_top1", "top_params",
           "trial_rows"]

DEFAULT_METRICS = ("top1", "latency_ms")
DEFAULT_DIRECTIONS = ("maximize", "minimize")
METRIC_LABELS = {"top1": "top-1 (%)", "latency_ms": "latency (ms)", "params": "parameters", "macs": "MACs",
                 "top1_partial": "top-1 at stop (%)"}


# --- reading run folders --------------------------------------------------------------------------------------

def detect_kind(run_dir: Path) -> str:
    """'search' or 'ablation', from the files a folder holds; ArchlabError when it is neither."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ArchlabError(f"{run_dir}: is a file, not a run folder (archlab search and ablate write folders)")
    if not run_dir.is_dir():
        raise ArchlabError(f"{run_dir}: no such run folder")
    if (run_dir / "ablation.json").exists():
        return "ablation"
    if (run_dir / "trials.parquet").exists() or (run_dir / "trials.csv").exists():
        return "search"
    if (run_dir / "ladder.yaml").exists() or (run_dir / "results.jsonl").exists():
        raise ArchlabError(f"{run_dir}: an ablation run without ablation.json (it is written when `archlab "
                           "ablate` finishes); rerun the same command with the same --out to resume and finish it")
    if (run_dir / "study.yaml").exists():
        raise ArchlabError(f"{run_dir}: a search run with no trials table yet (trials.csv / trials.parquet)")
    raise ArchlabError(f"{run_dir}: not a run folder: expected trials.csv or trials.parquet (a search, see "
                       "docs/run_folder.md) or ablation.json (an ablation, see docs/ablation.md)")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = read_text_file(path)   # the file boundary: regular file, size cap, UTF-8
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArchlabError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except (RecursionError, ValueError):
        raise ArchlabError(f"{path}: not valid JSON (nested too deep, or a number too long)") from None
    if not isinstance(data, dict):
        raise ArchlabError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    from archlab.core.yamlio import load_yaml_file
    data = load_yaml_file(path)
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True, eq=False)
class ArchInfo:
    """One trial's architecture: a one-line summary, the per-part stage table and the spec file's text."""

    arch_id: str
    summary: str
    rows: tuple[dict[str, Any], ...]
    yaml: str
    params: int
    macs: int
    error: str = ""                  # why the spec could not be read (the YAML is still offered)


@dataclass(frozen=True, eq=False)
class SearchRun:
    """A search run folder as read: the trials table, its objectives, the study as run and the bookkeeping."""

    path: Path
    name: str                        # the study's name
    table: pd.DataFrame
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    study: dict[str, Any]            # study.yaml as run
    state: dict[str, Any]            # state.json
    summary: dict[str, Any]          # summary.json ({} while a search still runs)
    archs: dict[int, ArchInfo]       # trial number -> architecture, for trials with a spec file
    latency_env: tuple[dict[str, Any], ...] = ()   # distinct device/stack settings in latency_cache.json
    space_text: str = ""
    # where latency_ms comes from: {"source": "measured", ...} or "predicted" with the predictor's description
    latency: dict[str, Any] = field(default_factory=lambda: {"source": "measured"})

    @property
    def latency_predicted(self) -> bool:
        """Whether this run's latencies were predicted by a latency predictor file, not measured."""
        return self.latency.get("source") == "predicted"

    @property
    def sampler(self) -> str:
        """The sampler's short name as written in the study."""
        s = self.study.get("sampler", "nsga2")
        return str(s.get("name", "?")) if isinstance(s, dict) else str(s)


@dataclass(frozen=True, eq=False)
class AblationRun:
    """An ablation run folder as read: ablation.json (steps, agreement, setting) and the ladder file as run."""

    path: Path
    name: str
    doc: dict[str, Any]              # ablation.json
    steps: tuple[dict[str, Any], ...]
    ladder_text: str
    records: tuple[dict[str, Any], ...]
    sweep: dict[str, Any] | None = None   # the budget sweep this run is one budget of (the parent's sweep.json)


def _objectives(study: Mapping[str, Any], summary: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Objective names and directions: summary.json, else the study's `objectives`, else top-1 vs latency."""
    if summary.get("metrics") and summary.get("directions"):
        return tuple(summary["metrics"]), tuple(summary["directions"])
    raw = study.get("objectives")
    if isinstance(raw, list) and raw:
        from archlab.search.study import OBJECTIVES
        names, dirs = [], []
        for item in raw:
            item = {"name": item} if isinstance(item, str) else dict(item) if isinstance(item, dict) else {}
            name = item.get("name")
            names.append(name)
            dirs.append(item.get("direction", OBJECTIVES.get(name, "maximize") if isinstance(name, str) else None))
        return tuple(names), tuple(dirs)
    return DEFAULT_METRICS, DEFAULT_DIRECTIONS


def _check_objectives(metrics: Sequence[Any], directions: Sequence[Any], table: pd.DataFrame, run_dir: Path) -> None:
    """The objectives a report plots: columns of the trials table, each maximised or minimised (from summary.json,
    else study.yaml; a hand edit was a traceback)."""
    summary = run_dir / "summary.json"
    where = str(summary) if summary.exists() else str(run_dir / "study.yaml")
    if len(metrics) != len(directions) or len(metrics) < 1:
        raise SpecError("metrics", f"must name as many objectives as directions ({len(directions)})", list(metrics),
                        file=where)
    for metric, direction in zip(metrics, directions):
        if not isinstance(metric, str) or metric not in table.columns:
            raise SpecError("metrics", "must name columns of the trials table" + did_you_mean(
                str(metric), [str(c) for c in table.columns if not str(c).startswith("params_")], list_valid=False),
                metric, file=where)
        if direction not in ("maximize", "minimize"):
            raise SpecError("directions", "must each be maximize or minimize", direction, file=where)


def load_search_run(run_dir: str | Path) -> SearchRun:
    """Read a search run folder (docs/run_folder.md): table, study, state, summary, trial specs, latency settings."""
    from archlab.search.results import load_table, table_file
    run_dir = Path(run_dir)
    try:
        table = load_table(run_dir)
    except (OSError, ValueError) as err:  # pandas' parser errors end in a newline: one line is kept
        raise ArchlabError(f"{table_file(run_dir)}: cannot read the trials table "
                           f"({shorten(' '.join(str(err).split()))})") from None
    for col in ("number", "state"):
        if col not in table.columns:
            raise ArchlabError(f"{run_dir}: the trials table has no {col!r} column (see docs/run_folder.md)")
    study = _read_yaml(run_dir / "study.yaml")
    summary = _read_json(run_dir / "summary.json")
    for key, kinds, rule in (("metrics", list, "must be a list of objective names"),
                             ("directions", list, "must be a list of maximize or minimize"),
                             ("wall_s", (int, float), "must be a number of seconds")):
        value = summary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise SpecError(key, rule, value, file=str(run_dir / "summary.json"))
    metrics, directions = _objectives(study, summary)
    _check_objectives(metrics, directions, table, run_dir)
    table = _checked_table(table, table_file(run_dir), metrics)
    archs: dict[int, ArchInfo] = {}
    for number in table["number"].astype(int):
        spec_file = run_dir / "trials" / f"{number:04d}" / "spec.yaml"
        if spec_file.exists():
            archs[int(number)] = arch_info(read_text_file(spec_file), file=str(spec_file))
    cache = _read_json(run_dir / "latency_cache.json")
    space = run_dir / "space.yaml"
    state = _read_json(run_dir / "state.json")
    return SearchRun(path=run_dir, name=str(study.get("name") or summary.get("study") or run_dir.name),
                     table=table, metrics=metrics, directions=directions, study=study,
                     state=state, summary=summary, archs=archs,
                     latency_env=latency_settings(cache.values()),
                     space_text=read_text_file(space) if space.exists() else "",
                     latency=_latency_source(study, state, summary, table))


# columns of the trials table that a report computes with: numbers, empty where a trial has none
_NUMBER_COLUMNS = ("params", "macs", "latency_ms", "latency_raw_ms", "latency_p90_ms", "latency_cv",
                   "latency_repeats", "top1", "top1_partial", "epochs_run", "trial_s", "train_s", "images_per_s",
                   "paused_s")
_MAX_TRIAL = 10 ** 9  # Optuna numbers trials from 0; a study of 10^6 trials is already far past any budget


def _checked_table(table: pd.DataFrame, file: Path, metrics: Sequence[str]) -> pd.DataFrame:
    """The trials table with whole trial numbers and numeric number columns; a cell the report cannot compute
    with (a hand-edited or foreign table) is an ArchlabError naming the file, the line, the column and the value."""
    def refuse(mask: Any, col: str, rule: str) -> None:
        i = int(np.flatnonzero(np.asarray(mask))[0])
        value = table[col].iloc[i]
        shown = shorten(repr(value.item() if hasattr(value, "item") else value))
        raise ArchlabError(f"{file}: {_row_place(file, i)}: column {col!r} {rule}, got {shown}")

    numbers = pd.to_numeric(table["number"], errors="coerce").astype(float)
    whole = numbers.notna() & (numbers >= 0) & (numbers <= _MAX_TRIAL) & (numbers % 1 == 0)
    if not whole.all():
        refuse(~whole, "number", f"must be a whole trial number in [0, {_MAX_TRIAL:,}]")
    if numbers.duplicated().any():
        refuse(numbers.duplicated(), "number", "must name each trial once")
    changed: dict[str, pd.Series] = {"number": numbers.astype("int64")}
    for col in (c for c in dict.fromkeys((*_NUMBER_COLUMNS, *metrics)) if c in table.columns):
        raw = table[col]
        if pd.api.types.is_bool_dtype(raw):
            refuse(raw.notna(), col, "must be a number")
        values = pd.to_numeric(raw, errors="coerce")
        given = raw.notna() & (raw.astype(str).str.strip() != "")
        if (values.isna() & given).any():
            refuse(values.isna() & given, col, "must be a number (or empty)")
        if col in metrics and (~np.isfinite(values.astype(float)) & values.notna()).any():
            refuse(~np.isfinite(values.astype(float)) & values.notna(), col, "must be a finite number (an objective)")
        if not pd.api.types.is_numeric_dtype(raw):
            changed[col] = values.astype(float)
    return table.assign(**changed)


def _row_place(file: Path, index: int) -> str:
    """'line N' of a CSV table's row `index` (a quoted cell may span lines), else 'row N'."""
    if file.suffix == ".csv":
        import csv
        import io
        try:
            reader = csv.reader(io.StringIO(read_text_file(file).removeprefix("\ufeff")))
            next(reader, None)
            start, k = reader.line_num + 1, 0
            for cells in reader:
                if cells:   # pandas skips blank lines
                    if k == index:
                        return f"line {start}"
                    k += 1
                start = reader.line_num + 1
        except (ArchlabError, csv.Error):
            pass
    return f"row {index + 1}"


def _latency_source(study: Mapping[str, Any], state: Mapping[str, Any], summary: Mapping[str, Any],
                    table: pd.DataFrame) -> dict[str, Any]:
    """Where a run's latency comes from: summary.json, else state.json (written when a session starts), else what
    the study and the trials table say (a run folder written before archlab recorded it)."""
    for doc in (summary, state):
        if isinstance(doc.get("latency"), dict) and doc["latency"].get("source") in ("measured", "predicted"):
            return dict(doc["latency"])
    lat = study.get("latency") if isinstance(study.get("latency"), dict) else {}
    rows = table["latency_source"] if "latency_source" in table.columns else pd.Series(dtype=object)
    if lat.get("predictor") or (rows == "predicted").any():
        return {"source": "predicted", "predictor": lat.get("predictor")}
    return {"source": "measured"}


def metric_labels(runs: Sequence[SearchRun]) -> dict[str, str]:
    """Axis and column labels of the metrics; latency says it was predicted, with the device and the predictor
    file, where any run's was (and in which runs, when only some were)."""
    predicted = [r for r in runs if r.latency_predicted]
    if not predicted:
        return dict(METRIC_LABELS)
    whats = []
    for r in predicted:
        device = r.latency.get("device_name") or r.latency.get("device")
        file = Path(str(r.latency["predictor"])).name if r.latency.get("predictor") else "unknown predictor file"
        whats.append(", ".join(str(x) for x in (device, file) if x))
    which = "" if len(predicted) == len(runs) else " in " + ", ".join(r.name for r in predicted)
    return {**METRIC_LABELS, "latency_ms": f"latency (predicted{which}, {'; '.join(dict.fromkeys(whats))}; ms)"}


def load_ablation_run(run_dir: str | Path) -> AblationRun:
    """Read an ablation run folder (docs/ablation.md): ablation.json, the ladder as run, the per-seed records."""
    run_dir = Path(run_dir)
    doc = _read_json(run_dir / "ablation.json")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) and "step" in s and "index" in s for s in steps):
        raise ArchlabError(f"{run_dir / 'ablation.json'}: steps must be a list of step objects with 'index' and "
                           "'step' (see docs/ablation.md)")
    _check_ablation(doc, steps, str(run_dir / "ablation.json"))
    records = []
    results = run_dir / "results.jsonl"
    if results.exists():
        for line in read_text_file(results).splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run
            if isinstance(rec, dict):
                records.append(rec)
    ladder = run_dir / "ladder.yaml"
    return AblationRun(path=run_dir, name=str(doc.get("study") or run_dir.name), doc=doc,
                       steps=tuple(sorted(steps, key=lambda s: int(s["index"]))),
                       ladder_text=read_text_file(ladder) if ladder.exists() else "", records=tuple(records),
                       sweep=_ablation_sweep(run_dir))


# the figures of an ablation.json step a report computes with: numbers, or null where not measured
_STEP_NUMBERS = ("params", "macs", "img_size", "paper_top1", "paper_top1_std", "paper_gflops", "macs_vs_paper",
                 "proxy_params", "proxy_macs", "latency_ms", "latency_p90_ms", "latency_cv", "top1_mean", "top1_std",
                 "n_seeds", "delta", "delta_se", "paper_delta", "budget_multiplier", "budget_images")


def _check_ablation(doc: Mapping[str, Any], steps: Sequence[Mapping[str, Any]], file: str) -> None:
    """What the report reads of an ablation.json, checked (a hand edit was a traceback): whole unique indexes, row
    names, parents that name an earlier row, numbers where numbers belong, mappings for agreement and setting."""
    for key in ("agreement", "setting"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise SpecError(key, "must be an object (or null)", doc[key], file=file)
    seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        index, name, parent = step["index"], step["step"], step.get("parent")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise SpecError(f"steps[{i}].index", "must be a whole number >= 0", index, file=file)
        if index in seen.values():
            raise SpecError(f"steps[{i}].index", "must name each row once", index, file=file)
        if not isinstance(name, str):
            raise SpecError(f"steps[{i}].step", "must be a row name (a string)", name, file=file)
        seen[name] = index
        for key in _STEP_NUMBERS:
            value = step.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise SpecError(f"steps[{i}].{key}", "must be a number (or null)", value, file=file)
        seeds = step.get("top1_seeds")
        if seeds is not None and (not isinstance(seeds, list) or any(
                v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in seeds)):
            raise SpecError(f"steps[{i}].top1_seeds", "must be a list of numbers (or null)", seeds, file=file)
    for i, step in enumerate(steps):   # the ladder's tree: a parent is an earlier row, so there is no cycle
        parent = step.get("parent")    # (a name no row has is drawn without its link, as before)
        if parent is not None and not (isinstance(parent, str) and seen.get(parent, -1) < step["index"]):
            raise SpecError(f"steps[{i}].parent", "must name an earlier row (or be null)", parent, file=file)


def _ablation_sweep(run_dir: Path) -> dict[str, Any] | None:
    """The sweep.json of the budget sweep holding this run folder (as budget-<m>/), if it is one."""
    path = run_dir.parent / "sweep.json"
    if not run_dir.name.startswith("budget-") or not path.exists():
        return None
    doc = _read_json(path)
    points = doc.get("points")
    if not isinstance(points, list) or not all(isinstance(p, dict) and "label" in p for p in points):
        raise ArchlabError(f"{path}: points must be a list of budget objects with 'label' (see docs/ablation.md)")
    for key in ("trends", "toward", "not_toward", "unresolved", "contradicts"):   # row names the report lists
        if doc.get(key) is not None and not isinstance(doc[key], list):
            raise SpecError(key, "must be a list (or null)", doc[key], file=str(path))
    return doc if any(f"budget-{p['label']}" == run_dir.name for p in points) else None


def load_run(run_dir: str | Path) -> SearchRun | AblationRun:
    """Read a run folder of either kind."""
    return load_search_run(run_dir) if detect_kind(Path(run_dir)) == "search" else load_ablation_run(run_dir)


def latency_settings(entries: Any) -> tuple[dict[str, Any], ...]:
    """Distinct (device, device name, software stack, threads, batch, backend, input) of latency measurements."""
    keys = ("device", "device_name", "stack", "threads", "batch", "backend", "img_size")
    seen: dict[tuple, dict[str, Any]] = {}
    for entry in entries:
        if isinstance(entry, dict):
            row = {k: entry.get(k) for k in keys}
            key = tuple(str(v) for v in row.values())
            seen.setdefault(key, dict(row, measurements=0))["measurements"] += 1
    return tuple(seen.values())


# --- architectures ---------------------------------------------------------------------------------------------

def _stage_summary(s: Any) -> str:
    """One stage in a few words: the family's display name, depth, width, kernel and what the family reads."""
    from archlab.arch.families import family
    row = family(s.block)
    text = f"{row.label}x{s.depth} {s.width}ch k{s.kernel_size}"
    detail = row.detail(s)
    if detail:
        text += f" {detail}"
    if s.stride == 2:
        text += " /2"
    return text


def arch_info(yaml_text: str, *, file: str = "spec.yaml") -> ArchInfo:
    """Summary line and per-part table (params, MACs, output shape) of a spec file's text."""
    from archlab.arch.families import family
    from archlab.arch.spec import ArchSpec
    try:
        spec = ArchSpec.from_yaml(yaml_text)
    except SpecError as err:
        return ArchInfo(arch_id="", summary="", rows=(), yaml=yaml_text, params=0, macs=0,
                        error=str(err.with_context(file=file)))
    from archlab.nn.summary import summarize
    info = summarize(spec)
    stem = spec.stem
    stem_text = "no stem" if stem.type == "identity" else f"{stem.type} {stem.kernel_size}x{stem.kernel_size}" \
        f"/{stem.stride} {stem.width}ch"
    summary = " > ".join([stem_text, *(_stage_summary(s) for s in spec.stages)])
    rows: list[dict[str, Any]] = []
    parts = info["parts"]
    rows.append(dict(part="stem", block=stem.type, depth="", width=stem.width, stride=stem.stride,
                     kernel=stem.kernel_size, expand="", groups="", se="", act=stem.act, norm=stem.norm, detail=""))
    for i, s in enumerate(spec.stages):
        groups = "" if s.group_width is None else ("dw" if s.group_width == 1 else f"{s.group_width}/group")
        rows.append(dict(part=f"stage {i + 1}", block=s.block, depth=s.depth, width=s.width, stride=s.stride,
                         kernel=s.kernel_size, expand=f"{s.expand_ratio:g}", groups=groups,
                         se=f"{s.se_ratio:g}" if s.se_ratio else "", act=s.act, norm=s.norm,
                         detail=family(s.block).detail(s)))  # branch widths, split/shuffle, GRN: the family's
    head = spec.head
    rows.append(dict(part="head", block=f"{head.pool} pool" + (f", fc {'-'.join(map(str, head.hidden))}"
                                                                 if head.hidden else ""),
                     depth="", width=head.conv_width or "", stride="", kernel="", expand="", groups="", se="",
                     act=head.act, norm=head.norm, detail=""))
    for row, part in zip(rows, parts):
        row.update(out=f"{part['out_chs']}x{part['out_size']}x{part['out_size']}" if row["part"] != "head"
                   else str(part["out_chs"]), params=int(part["params"]), macs=int(part["macs"]))
    return ArchInfo(arch_id=spec.arch_id, summary=summary, rows=tuple(rows), yaml=yaml_text,
                    params=int(info["params"]), macs=int(info["macs"]))


# --- search: fronts, hypervolume, importance, parallel coordinates, tables -------------------------------------

def run_labels(runs: Sequence[SearchRun]) -> list[str]:
    """Legend labels: the study name, with the sampler (and then the folder) added where names repeat."""
    labels = [r.name for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.name} ({r.sampler})" for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} [{r.path.name}]" for lab, r in zip(labels, runs)]
    return labels


def param_columns(table: pd.DataFrame) -> list[str]:
    """The search-space parameter columns (`params_<name>`, Optuna's naming)."""
    return [c for c in table.columns if c.startswith("params_")]


def _complete(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    cols = [m for m in metrics if m in table.columns]
    if len(cols) < len(metrics):
        return table.iloc[0:0]
    return table[table["state"] == "complete"].dropna(subset=cols)


def axis_type(values: Sequence[float]) -> str:
    """'log' when positive values span more than 20x, else 'linear'."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(arr) < 2 or arr.min() <= 0:
        return "linear"
    return "log" if arr.max() / arr.min() > 20 else "linear"


@dataclass(frozen=True, eq=False)
class ScatterSet:
    """One run's trials in one (x, y) plane: the 2-D front sorted by x, the dominated ones, stopped ones."""

    run: int
    x: str
    y: str
    front: pd.DataFrame              # number, x, y (sorted by x)
    dominated: pd.DataFrame
    stopped: pd.DataFrame            # number, x, top1_partial (not final values)


def scatter_set(table: pd.DataFrame, run: int, x: str, y: str = "top1", *, x_direction: str = "minimize",
                y_direction: str = "maximize") -> ScatterSet:
    """Split the complete trials into the 2-D Pareto front of (y, x) and the dominated rest."""
    empty = pd.DataFrame(columns=["number", x, y])
    done = _complete(table, [x, y])
    if done.empty:
        front = dominated = empty
    else:
        mask = pareto_mask(done[[y, x]].to_numpy(float), [y_direction, x_direction])
        front = done[mask][["number", x, y]].sort_values([x, y]).reset_index(drop=True)
        dominated = done[~mask][["number", x, y]].reset_index(drop=True)
    stopped = pd.DataFrame(columns=["number", x, "top1_partial"])
    if y == "top1" and "top1_partial" in table.columns and x in table.columns:
        stopped = table[(table["state"] == "stopped")].dropna(subset=[x, "top1_partial"])[
            ["number", x, "top1_partial"]].reset_index(drop=True)
    return ScatterSet(run=run, x=x, y=y, front=front, dominated=dominated, stopped=stopped)


@dataclass(frozen=True, eq=False)
class HypervolumeCurve:
    """Hypervolume after each completed trial (completion order) against a reference shared by comparable runs."""

    run: int
    numbers: tuple[int, ...]         # trial numbers in completion order
    hypervolume: tuple[float, ...]
    reference: tuple[float, ...]     # in the objectives' own units and directions
    metrics: tuple[str, ...]


def hypervolume_curves(runs: Sequence[SearchRun]) -> list[HypervolumeCurve]:
    """One curve per run; runs with the same objectives share one reference point so their curves compare."""
    from archlab.search.results import hypervolume_table
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(runs):
        groups.setdefault((r.metrics, r.directions), []).append(i)
    curves: dict[int, HypervolumeCurve] = {}
    for (metrics, directions), members in groups.items():
        done = [_complete(runs[i].table, metrics) for i in members]
        values = [d[list(metrics)].to_numpy(float) for d in done if len(d)]
        if not values:
            continue
        ref = default_reference(np.concatenate(values), directions)
        signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
        for i in members:
            hv = hypervolume_table(runs[i].table, list(metrics), list(directions), reference=ref)
            if len(hv):
                curves[i] = HypervolumeCurve(run=i, numbers=tuple(int(n) for n in hv["number"]),
                                             hypervolume=tuple(float(v) for v in hv["hypervolume"]),
                                             reference=tuple(float(v) for v in ref * signs), metrics=metrics)
    return [curves[i] for i in sorted(curves)]


@dataclass(frozen=True, eq=False)
class Importance:
    """Optuna parameter importance per objective for one run, or why it could not be computed."""

    run: int
    values: dict[str, dict[str, float]]   # metric -> parameter -> importance (sums to 1 per metric)
    n_trials: int
    evaluator: str
    note: str = ""


def _distributions(table: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """Optuna distributions inferred from the values each params_ column took (all trials, not only complete)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    dists: dict[str, Any] = {}
    for col in columns:
        values = table[col].dropna()
        if values.empty:
            continue
        name = col[len("params_"):]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            dists[name] = CategoricalDistribution(sorted(set(values.tolist()), key=str))
        elif np.all(np.mod(values.to_numpy(float), 1.0) == 0):
            dists[name] = IntDistribution(int(values.min()), int(values.max()))
        else:
            dists[name] = FloatDistribution(float(values.min()), float(values.max()))
    return dists


def _param_value(dist: Any, value: Any) -> Any:
    from optuna.distributions import IntDistribution
    if isinstance(dist, IntDistribution):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def param_importance(table: pd.DataFrame, metrics: Sequence[str], directions: Sequence[str], *, run: int = 0,
                     evaluator: str = "fanova", seed: int = 0) -> Importance:
    """fANOVA (or PED-ANOVA) importance of each search parameter for each objective, from the complete trials."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
    done = _complete(table, metrics)
    columns = param_columns(table)
    if len(done) < 4:
        return Importance(run, {}, len(done), evaluator, f"needs at least 4 complete trials, the run has {len(done)}")
    dists = _distributions(table, columns)
    varying = {k: d for k, d in dists.items() if not d.single()}
    if not varying:
        return Importance(run, {}, len(done), evaluator, "no search parameter took more than one value")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" line per report
    try:
        study = optuna.create_study(directions=list(directions),
                                    sampler=optuna.samplers.RandomSampler(seed=seed))  # in memory, never stored
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in done.iterrows():
        params = {k: _param_value(d, row[f"params_{k}"]) for k, d in dists.items()
                  if not pd.isna(row[f"params_{k}"])}
        study.add_trial(optuna.trial.create_trial(values=[float(row[m]) for m in metrics], params=params,
                                                  distributions={k: dists[k] for k in params}))
    values: dict[str, dict[str, float]] = {}
    notes = []
    for i, metric in enumerate(metrics):
        ev = FanovaImportanceEvaluator(seed=seed) if evaluator == "fanova" else PedAnovaImportanceEvaluator()
        try:
            imp = optuna.importance.get_param_importances(study, evaluator=ev, target=lambda t, i=i: t.values[i])
        except (RuntimeError, ValueError) as err:  # Optuna refuses degenerate data (e.g. constant targets)
            notes.append(f"{metric}: {err}")
            continue
        values[metric] = {k: float(v) for k, v in imp.items()}
    return Importance(run, values, len(done), evaluator, "; ".join(notes))


@dataclass(frozen=True, eq=False)
class ParallelDim:
    """One axis of a parallel-coordinates plot; categorical values are coded 0..n-1 with tick labels."""

    label: str
    values: tuple[float, ...]
    ticktext: tuple[str, ...] = ()   # categorical: the category of each code
    ticks: tuple[float, ...] = ()    # numeric with few distinct values: exactly those values


def top_params(importance: Importance | None, table: pd.DataFrame, k: int) -> list[str]:
    """Up to k search parameters: the most important over all objectives, else the first that vary."""
    if importance is not None and importance.values:
        total: dict[str, float] = {}
        for per_metric in importance.values.values():
            for name, v in per_metric.items():
                total[name] = total.get(name, 0.0) + v
        return sorted(total, key=lambda name: -total[name])[:k]
    varying = [c[len("params_"):] for c in param_columns(table) if table[c].nunique(dropna=True) > 1]
    return varying[:k]


def parallel_dims(table: pd.DataFrame, metrics: Sequence[str], params: Sequence[str] | None = None, *,
                  labels: Mapping[str, str] = METRIC_LABELS) -> tuple[list[ParallelDim], list[int]]:
    """Axes over the search parameters (all, or `params` in that order) then the objectives (named by `labels`),
    for the complete trials; also their trial numbers."""
    done = _complete(table, metrics)
    dims: list[ParallelDim] = []
    columns = param_columns(table) if params is None else [f"params_{p}" for p in params
                                                           if f"params_{p}" in table.columns]
    for col in columns:
        values = done[col]
        if values.isna().all():
            continue
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            distinct = sorted({float(v) for v in table[col].dropna()})
            dims.append(ParallelDim(col[len("params_"):], tuple(float(v) for v in values.fillna(np.nan)),
                                    ticks=tuple(distinct) if len(distinct) <= 8 else ()))
        else:
            cats = sorted({str(v) for v in values.dropna()})
            codes = {c: float(i) for i, c in enumerate(cats)}
            dims.append(ParallelDim(col[len("params_"):], tuple(codes.get(str(v), np.nan) if not pd.isna(v)
                                                               else np.nan for v in values), tuple(cats)))
    for m in [*metrics, *(c for c in ("params", "macs") if c not in metrics and c in table.columns)]:
        dims.append(ParallelDim(labels.get(m, m), tuple(float(v) for v in done[m])))
    return dims, [int(n) for n in done["number"]]


def trial_rows(run: SearchRun) -> pd.DataFrame:
    """The trial table as shown: every trial that ran (failed ones with their reason) and whether it is on the front."""
    t = run.table.copy()
    done = _complete(t, run.metrics)
    on_front = set()
    if len(done):
        on_front = set(done["number"][pareto_mask(done[list(run.metrics)].to_numpy(float), run.directions)])
    t["on_front"] = t["number"].isin(on_front)
    t["arch"] = [run.archs[int(n)].summary if int(n) in run.archs else "" for n in t["number"]]
    cols = ["number", "state", "on_front", *[m for m in run.metrics if m in t.columns]]
    cols += [c for c in ("top1", "top1_partial", "latency_ms", "latency_source", "latency_cv", "params", "macs",
                         "epochs_run", "trial_s", "hostname") if c in t.columns and c not in cols]
    cols += param_columns(t) + ["arch"] + [c for c in ("arch_id", "error") if c in t.columns]
    return t[cols].sort_values("number").reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class FrontComparison:
    """The front of several runs pooled: which run found each point, and per-run counts."""

    metrics: tuple[str, ...]
    front: pd.DataFrame              # run, number, arch_id, metrics..., sorted by the last metric
    per_run: pd.DataFrame            # run, complete, own_front, in_pooled_front, shared_archs
    shared: dict[str, list[int]] = field(default_factory=dict)   # arch_id -> runs that trained it


def compare_fronts(runs: Sequence[SearchRun]) -> FrontComparison | None:
    """Pool the complete trials of runs with the same objectives and find the pooled Pareto front."""
    if not runs:
        return None
    metrics, directions = runs[0].metrics, runs[0].directions
    same = [i for i, r in enumerate(runs) if r.metrics == metrics and r.directions == directions]
    frames = []
    for i in same:
        d = _complete(runs[i].table, metrics)
        cols = ["number", *metrics] + [c for c in ("arch_id", "params", "macs") if c in d.columns
                                       and c not in metrics]
        frames.append(d[cols].assign(run=i))
    pooled = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if pooled.empty:
        return None
    mask = pareto_mask(pooled[list(metrics)].to_numpy(float), directions)
    front = pooled[mask].sort_values(list(metrics)[-1]).reset_index(drop=True)
    owners: dict[str, set[int]] = {}
    if "arch_id" in pooled.columns:
        for aid, run in zip(pooled["arch_id"], pooled["run"]):
            if isinstance(aid, str) and aid:
                owners.setdefault(aid, set()).add(int(run))
    shared = {a: sorted(r) for a, r in owners.items() if len(r) > 1}
    rows = []
    for i in same:
        mine = pooled[pooled["run"] == i]
        own = pareto_mask(mine[list(metrics)].to_numpy(float), directions).sum() if len(mine) else 0
        rows.append(dict(run=i, complete=len(mine), own_front=int(own),
                         in_pooled_front=int((front["run"] == i).sum()),
                         shared_archs=sum(1 for a in set(mine.get("arch_id", [])) if a in shared)))
    return FrontComparison(metrics=tuple(metrics), front=front, per_run=pd.DataFrame(rows), shared=shared)


def best_values(table: pd.DataFrame, metrics: Sequence[str], directions: Sequence[str]) -> dict[str, float]:
    """Best value of each objective over the complete trials."""
    done = _complete(table, metrics)
    if done.empty:
        return {}
    loss = as_minimization(done[list(metrics)].to_numpy(float), directions)
    return {m: float(done[m].iloc[int(np.argmin(loss[:, j]))]) for j, m in enumerate(metrics)}


# --- ablation ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LadderPaths:
    """How the ladder is drawn: the adopted rows joined in order, and each side branch off its parent."""

    main: tuple[int, ...]                    # step indices of the adopted rows (base, steps, rungs)
    branches: tuple[tuple[int, int], ...]    # (parent index, branch index)


def ladder_paths(steps: Sequence[Mapping[str, Any]]) -> LadderPaths:
    """Adopted rows form the main line; a branch row hangs off the row it was measured against."""
    by_name = {s["step"]: int(s["index"]) for s in steps}
    main, branches = [], []
    for s in steps:
        if s.get("kind") == "branch":
            parent = by_name.get(s.get("parent"))
            if parent is not None:
                branches.append((parent, int(s["index"])))
        else:
            main.append(int(s["index"]))
    return LadderPaths(tuple(main), tuple(branches))


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def ablation_table(steps: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per step: cost at full size vs the paper, proxy latency and top-1 over seeds, and the deltas."""
    rows = []
    for s in steps:
        macs, paper_g = _num(s.get("macs")), _num(s.get("paper_gflops"))
        rows.append(dict(
            index=int(s["index"]), step=str(s["step"]), kind=str(s.get("kind", "")), parent=s.get("parent") or "",
            recipe=s.get("recipe") or "", params=_num(s.get("params")),
            gmacs=None if macs is None else macs / 1e9, paper_gflops=paper_g,
            macs_vs_paper=_num(s.get("macs_vs_paper")), latency_ms=_num(s.get("latency_ms")),
            latency_p90_ms=_num(s.get("latency_p90_ms")), paper_top1=_num(s.get("paper_top1")),
            paper_top1_std=_num(s.get("paper_top1_std")), top1_mean=_num(s.get("top1_mean")),
            top1_std=_num(s.get("top1_std")), n_seeds=int(s.get("n_seeds") or 0), delta=_num(s.get("delta")),
            delta_se=_num(s.get("delta_se")), paper_delta=_num(s.get("paper_delta")),
            direction=s.get("direction") or "", within_noise=s.get("within_noise"),
            note=str(s.get("note") or ""), gflops_note=str(s.get("gflops_note") or ""),
            ceiling=str(s.get("ceiling") or ""), img_size=s.get("img_size"),
            budget_multiplier=_num(s.get("budget_multiplier")), budget_images=_num(s.get("budget_images"))))
    return pd.DataFrame(rows)


def sweep_points(sweep: Mapping[str, Any]) -> pd.DataFrame:
    """Agreement vs budget: one row per budget (multiplier, Spearman and its p, directions, changes beyond
    noise)."""
    rows = [dict(multiplier=_num(p.get("multiplier")), label=str(p["label"]), spearman=_num(p.get("spearman")),
                 spearman_p=_num(p.get("spearman_p")), direction_agree=int(p.get("direction_agree") or 0),
                 direction_total=int(p.get("direction_total") or 0), beyond_noise=int(p.get("beyond_noise") or 0),
                 train_wall_s=_num(p.get("train_wall_s")))
            for p in sweep.get("points") or []]
    return pd.DataFrame(rows)


def sweep_top1(sweep: Mapping[str, Any]) -> pd.DataFrame:
    """Per-row proxy top-1 at each budget: one row per (step, budget), in the ladder's order."""
    rows = []
    for p in sweep.get("points") or []:
        std = p.get("top1_std") or {}
        for order, (step, top1) in enumerate((p.get("top1") or {}).items()):
            rows.append(dict(order=order, step=str(step), label=str(p["label"]), multiplier=_num(p.get("multiplier")),
                             top1_mean=_num(top1), top1_std=_num(std.get(step))))
    return pd.DataFrame(rows)


def change_deltas(steps: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows compared with a parent: the paper's and the proxy's change, and whether their directions agree."""
    t = ablation_table(steps)
    if t.empty:
        return t
    t = t[t["parent"] != ""]
    return t[["index", "step", "kind", "parent", "paper_delta", "delta", "delta_se", "direction",
              "within_noise"]].reset_index(drop=True)


def agreement_points(steps: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows with both a published and a proxy top-1: what the Spearman rank correlation is computed over."""
    t = ablation_table(steps)
    if t.empty:
        return t
    return t.dropna(subset=["paper_top1", "top1_mean"])[["index", "step", "kind", "paper_top1", "top1_mean",
                                                         "top1_std", "n_seeds"]].reset_index(drop=True)
