"""Fit and evaluate latency predictors (archlab.estimators.latency_model) from latencies measured here or imported.

`fit_predictor` measures N seeded networks of a space with the latency protocol (archlab.measure.latency) and
times every distinct part once (nn-Meter's kernel view, Zhang et al. 2021); `fit_from_csv` takes a table
measured on another device instead; `evaluate` measures M new networks twice and sets the predictors' errors
beside the measurement's own repeatability, the bound no predictor fitted on such measurements can beat.
"""
from __future__ import annotations

import csv
import io
import json
import math
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from archlab.arch.spec import ArchSpec
from archlab.core.errors import ArchlabError, SpecError, shorten
from archlab.estimators.latency_model import (
    KINDS,
    NETWORK_FEATURES,
    PART_FEATURES,
    decompose,
    fit_gbm,
    fit_linear,
    load_predictor,
    lookup_parts,
    network_features,
    part_features,
    part_modules,
    predict_model,
    space_hash,
)
from archlab.measure.latency import LatencyProtocol, device_name, measure_latency, software_stack
from archlab.nn.build import build_model
from archlab.space.search_space import SearchSpace

__all__ = ["EVAL_SEED_OFFSET", "FitOptions", "denoised_latencies", "evaluate", "fit_from_csv", "fit_predictor",
           "format_evaluation", "format_fit", "load_space_file", "rank_metrics", "sample_networks"]

EVAL_SEED_OFFSET = 1_000_003   # eval draws from seed + this unless told: a stream apart from the fit's
_NO_VALID_AFTER = 500          # draws after which a space with no valid network at this input is given up
MIN_NETWORKS = 4               # the fewest networks a fit (with its cross-validation) accepts
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class FitOptions:
    """How a predictor is fitted: the input networks see, the measurement protocol and the part budget."""

    device: str = "cpu"
    threads: int = 1
    batch: int = 1
    img_size: int | None = None      # None: the space's own
    in_chans: int | None = None
    num_classes: int | None = None
    backend: str = "eager"
    max_seconds: float = 1.0         # latency protocol time cap per network
    part_seconds: float = 0.3        # latency protocol time cap per distinct part
    max_parts: int | None = None     # time at most this many distinct parts, most frequent first (None: all)
    seed: int = 0
    lock_dir: str | None = None      # the measurement lock's folder (None: archlab's shared default)

    def protocol(self, max_seconds: float) -> LatencyProtocol:
        """The latency protocol with this time cap."""
        return LatencyProtocol(batch=self.batch, device=self.device, threads=self.threads, backend=self.backend,
                               max_seconds=max_seconds, lock_dir=self.lock_dir)


# --- spaces and samples ---------------------------------------------------------------------------------------

def load_space_file(path: str | Path) -> tuple[SearchSpace, dict[str, Any]]:
    """A search space and what a predictor file records of it: name, file and content hash."""
    from archlab.core.yamlio import load_yaml_text, read_text_file
    from archlab.space.search_space import load_space
    space = load_space(path)
    data = load_yaml_text(read_text_file(path), file=str(path))
    return space, {"name": space.name, "file": str(Path(path).resolve()), "hash": space_hash(data)}


def sample_networks(space: SearchSpace, n: int, *, seed: int, img_size: int | None = None,
                    in_chans: int | None = None, num_classes: int | None = None,
                    exclude: frozenset[str] = frozenset()) -> list[ArchSpec]:
    """`n` distinct feasible networks of `space` drawn with `seed` (the same seed gives the same list); arch ids in
    `exclude` are skipped. A space none of whose draws is a valid network at this input is an ArchlabError."""
    if n < 1:
        raise ArchlabError(f"the number of networks must be >= 1, got {n}")
    seen, out, first_error, valid = set(exclude), [], None, 0
    limit = max(2000, 500 * n)
    for tries, (params, spec) in enumerate(space.candidates(seed=seed, img_size=img_size, in_chans=in_chans,
                                                            num_classes=num_classes), start=1):
        if spec is None and first_error is None:
            first_error = _decode_error(space, params, img_size, in_chans, num_classes)
        valid += spec is not None
        if spec is not None and spec.arch_id not in seen and not space.violations(spec):
            seen.add(spec.arch_id)
            out.append(spec)
            if len(out) == n:
                return out
        if tries >= limit or (tries >= _NO_VALID_AFTER and not valid):
            limit = tries
            break
    where = f"{space.file}: " if space.file else ""
    size = f" at --img-size {img_size}" if img_size else ""
    why = f"; the first invalid draw: {first_error}" if first_error and len(out) == 0 else ""
    raise ArchlabError(f"{where}found only {len(out)} of {n} distinct feasible networks{size} in {limit:,} random "
                       f"draws{why}")


def _decode_error(space: SearchSpace, params: dict[str, Any], img_size: int | None, in_chans: int | None,
                  num_classes: int | None) -> str:
    try:
        space.decode(params, img_size=img_size, in_chans=in_chans, num_classes=num_classes)
    except SpecError as err:
        return str(err)
    return "unknown"


# --- measuring --------------------------------------------------------------------------------------------------

def _measure(thing: Any, protocol: LatencyProtocol, **fields: Any) -> tuple[float, str]:
    """One latency figure and which it is: the drift-corrected `nominal_ms` where measured, else `median_ms`."""
    r = measure_latency(thing, protocol, **fields)
    return r.latency_ms, "nominal_ms" if r.nominal_ms is not None else "median_ms"


def _parts_to_time(keys_per_net: list[list[str]], max_parts: int | None) -> set[str]:
    """The distinct part keys to time: all, or the `max_parts` most frequent (ties: first seen first)."""
    counts: Counter[str] = Counter(k for keys in keys_per_net for k in keys)
    order = sorted(counts, key=lambda k: -counts[k])  # sorted() is stable: ties keep first-seen order
    return set(order if max_parts is None else order[:max_parts])


def _target(options: FitOptions, specs: list[ArchSpec]) -> dict[str, Any]:
    spec = specs[0]
    return {"device": options.device, "device_name": device_name(options.device), "threads": options.threads,
            "batch": options.batch, "backend": options.backend, "stack": software_stack(options.backend),
            "img_size": spec.img_size, "in_chans": spec.in_chans, "num_classes": spec.num_classes,
            "host": platform.node()}


def fit_predictor(space_path: str | Path, n: int, options: FitOptions = FitOptions(),
                  progress: Progress | None = None) -> dict[str, Any]:
    """Measure `n` seeded networks of a space and their distinct parts here; fit every kind; the file's content.

    Networks and their new parts are timed in turn, so slow drift of the machine touches both alike.
    """
    if n < MIN_NETWORKS:
        raise ArchlabError(f"-n must be at least {MIN_NETWORKS} to fit and cross-validate a predictor, got {n}")
    start = time.perf_counter()
    space, info = load_space_file(space_path)
    specs = sample_networks(space, n, seed=options.seed, img_size=options.img_size, in_chans=options.in_chans,
                            num_classes=options.num_classes)
    decomposed = [decompose(s) for s in specs]
    keys = [[p.key for p in parts] for parts in decomposed]
    chosen = _parts_to_time(keys, options.max_parts)
    net_protocol, part_protocol = options.protocol(options.max_seconds), options.protocol(options.part_seconds)
    table: dict[str, float] = {}
    part_rows: list[list[float]] = []
    nets: list[dict[str, Any]] = []
    figures: Counter[str] = Counter()
    part_s = 0.0
    for i, (spec, parts) in enumerate(zip(specs, decomposed)):
        net = build_model(spec)
        ms, net_figure = _measure(net, net_protocol)
        figures[net_figure] += 1
        t0 = time.perf_counter()
        for part, (where, module) in zip(parts, part_modules(net)):
            assert where == part.where  # the meta walk and the real one cut the network alike
            if part.key in chosen and part.key not in table:
                table[part.key], figure = _measure(module, part_protocol, img_size=part.in_shape[-1],
                                                   in_chans=part.in_shape[0])
                figures[figure] += 1
                part_rows.append(part_features(part))
        part_s += time.perf_counter() - t0
        nets.append({"arch_id": spec.arch_id, "latency_ms": ms, "figure": net_figure, "parts": parts})
        if progress:
            progress(f"measured {i + 1}/{n} networks and {len(table)} distinct parts "
                     f"({time.perf_counter() - start:.0f} s)")
    measured_s = time.perf_counter() - start
    models, cv = _fit_models(nets, table, part_rows, specs[0].img_size, options.seed)
    selected = min(cv, key=lambda k: cv[k]["mape"])
    return {"target": _target(options, specs), "space": info, "models": models, "selected": selected, "cv": cv,
            "fit": {"n": n, "seed": options.seed, "source": "measured", "options": asdict(options),
                    "figures": dict(figures), "distinct_parts": len({k for ks in keys for k in ks}),
                    "timed_parts": len(table), "parts_s": round(part_s, 2), "measure_s": round(measured_s, 2),
                    "fit_s": round(time.perf_counter() - start, 2)},
            "train": [{k: v for k, v in r.items() if k != "parts"} for r in nets]}


# --- fitting ------------------------------------------------------------------------------------------------------

def _fit_models(nets: list[dict[str, Any]], table: dict[str, float], part_rows: list[list[float]], img_size: int,
                seed: int) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Every kind fitted on all networks, and each kind's k-fold cross-validated error on them.

    Each network's out-of-fold prediction by each kind is added to its row (`cv_<kind>_ms`).
    """
    x = np.asarray([network_features(r["parts"], img_size) for r in nets])
    y = np.asarray([r["latency_ms"] for r in nets])
    models: dict[str, Any] = {"linear": fit_linear(x, np.log(y), NETWORK_FEATURES),
                              "gbm": fit_gbm(x, np.log(y), NETWORK_FEATURES, seed)}
    summed = None
    if table:
        ys = np.log([table[k] for k in table])
        part_model = fit_linear(np.asarray(part_rows), ys, PART_FEATURES)
        lookup: dict[str, Any] = {"table": table, "part_model": part_model, "intercept": 0.0, "slope": 1.0}
        summed = np.asarray([lookup_parts(lookup, r["parts"])[0] for r in nets])
        lookup["intercept"], lookup["slope"] = _overhead_fit(summed, y)
        models["lookup"] = lookup
    preds = _cross_validate(x, y, summed, seed)
    for kind, values in preds.items():
        for row, value in zip(nets, values):
            row[f"cv_{kind}_ms"] = float(value)
    return models, {k: rank_metrics(p, y) for k, p in preds.items()}


def _overhead_fit(summed: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Network = intercept + slope x (sum of parts), by least absolute relative error; the intercept >= 0.

    Absolute, not squared: a network measured while its process lost the core is far too slow, and a squared
    loss would bend the line towards it. Solved as iteratively reweighted least squares. A negative intercept
    (noise) would predict negative times for small networks, so then the line goes through the origin.
    """
    def irls(a: np.ndarray) -> np.ndarray:
        b, w = np.ones_like(y), np.ones_like(y)
        coef = np.zeros(a.shape[1])
        for _ in range(50):
            coef, *_ = np.linalg.lstsq(a * w[:, None], b * w, rcond=None)
            w = 1.0 / np.sqrt(np.maximum(np.abs(a @ coef - b), 1e-6))
        return coef

    coef = irls(np.stack([np.ones_like(summed), summed], axis=1) / y[:, None])
    if coef[0] < 0:
        return 0.0, float(irls((summed / y)[:, None])[0])
    return float(coef[0]), float(coef[1])


def _cross_validate(x: np.ndarray, y: np.ndarray, summed: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    """k-fold (k = min(5, n)) out-of-fold predictions of each kind; lookup's table of part times is fixed (parts
    are timed alone, not fitted to network latencies), only its overhead fit is refitted per fold."""
    from sklearn.model_selection import KFold
    preds = {k: np.zeros_like(y) for k in KINDS if k != "lookup" or summed is not None}
    for train, test in KFold(n_splits=min(5, len(y)), shuffle=True, random_state=seed).split(x):
        preds["linear"][test] = np.exp(predict_model(fit_linear(x[train], np.log(y[train]), NETWORK_FEATURES),
                                                    x[test]))
        preds["gbm"][test] = np.exp(predict_model(fit_gbm(x[train], np.log(y[train]), NETWORK_FEATURES, seed),
                                                  x[test]))
        if summed is not None:
            a, b = _overhead_fit(summed[train], y[train])
            preds["lookup"][test] = a + b * summed[test]
    return preds


def rank_metrics(predicted: Any, reference: Any) -> dict[str, float]:
    """Share within +-10% and +-5% of the reference, mean absolute percentage error, Spearman and Kendall."""
    from scipy.stats import kendalltau, spearmanr
    p, r = np.asarray(predicted, dtype=float), np.asarray(reference, dtype=float)
    rel = np.abs(p - r) / r
    out = {"n": int(len(r)), "within_10": float(np.mean(rel <= 0.10)), "within_5": float(np.mean(rel <= 0.05)),
           "mape": float(100 * np.mean(rel)), "max_error": float(100 * np.max(rel))}
    constant = len(r) < 3 or np.ptp(r) == 0 or np.ptp(p) == 0
    out["spearman"] = float("nan") if constant else float(spearmanr(p, r).statistic)
    out["kendall"] = float("nan") if constant else float(kendalltau(p, r).statistic)
    return out


# --- CSV import ---------------------------------------------------------------------------------------------------

CSV_TARGET_COLUMNS = ("threads", "batch")   # optional; constant over the table when present
MAX_CSV_LATENCY_MS = 1e7   # 2.8 hours per inference: a larger figure is a unit error, and breaks the fit


def fit_from_csv(space_path: str | Path, csv_path: str | Path, options: FitOptions = FitOptions(), *,
                 device: str | None = None) -> dict[str, Any]:
    """Fit the regressor kinds on a latency table measured elsewhere (columns: docs/estimators.md).

    Columns: `latency_ms`, `device` (one value; or `device` given here for a table without that column), and
    either `spec` (an ArchSpec as JSON, or a zoo network's name) or the space's parameter columns (bare or as a
    run folder's `params_<name>`); optional `threads` and `batch`. Rows with an empty `latency_ms` (a failed
    trial) are skipped. The lookup kind needs parts timed on the device, so a CSV fit holds `linear` and `gbm`
    only. A bad cell is an ArchlabError naming the file, the line, the column and the value.
    """
    from archlab.core.yamlio import read_text_file
    start = time.perf_counter()
    space, info = load_space_file(space_path)
    name = str(csv_path)
    rows = _csv_records(name, read_text_file(csv_path))
    target = _csv_target(name, [r for _, r in rows], device, options)
    _csv_network_columns(name, space, set(rows[0][1]))
    specs, y = [], []
    for line, row in rows:
        if row["latency_ms"].strip():
            specs.append(_csv_spec(space, row, f"{name}: line {line}", options))
            y.append(_csv_latency(row["latency_ms"], f"{name}: line {line}"))
    shapes = {(s.in_chans, s.img_size, s.num_classes) for s in specs}
    if len(shapes) > 1:
        raise ArchlabError(f"{name}: every network must have the same input and classes, got {sorted(shapes)}")
    if len(specs) < MIN_NETWORKS:
        raise ArchlabError(f"{name}: needs at least {MIN_NETWORKS} rows with a latency to fit, got {len(specs)}")
    nets = [{"arch_id": s.arch_id, "latency_ms": ms, "parts": decompose(s)} for s, ms in zip(specs, y)]
    models, cv = _fit_models(nets, {}, [], specs[0].img_size, options.seed)
    return {"target": {**target, "img_size": specs[0].img_size, "in_chans": specs[0].in_chans,
                       "num_classes": specs[0].num_classes},
            "space": info, "models": models, "selected": min(cv, key=lambda k: cv[k]["mape"]), "cv": cv,
            "fit": {"n": len(specs), "seed": options.seed, "source": f"csv {Path(csv_path).resolve()}",
                    "skipped_rows": len(rows) - len(specs), "fit_s": round(time.perf_counter() - start, 2)},
            "train": [{k: v for k, v in r.items() if k != "parts"} for r in nets]}


def denoised_latencies(specs: Sequence[ArchSpec], latencies: Sequence[float], *, kind: str = "linear",
                       seed: int = 0) -> list[float]:
    """A study's own noisy latencies replaced by a regressor's fit to them (in-sample): issue 16's denoising.

    The regressor shares strength across networks (a layer costs about the same in every network), so where
    single measurements scatter (a shared machine) its figures can rank the networks closer to a quiet
    re-measurement than the measurements themselves; bench/latency_predictor.py measures whether they do.
    """
    if kind not in ("linear", "gbm"):
        raise ArchlabError(f"denoising uses a network-level regressor (linear or gbm), got {kind!r}")
    if len(specs) != len(latencies) or len(specs) < MIN_NETWORKS:
        raise ArchlabError(f"denoising needs as many latencies as networks and at least {MIN_NETWORKS} of them, "
                           f"got {len(specs)} networks and {len(latencies)} latencies")
    x = np.asarray([network_features(decompose(s), s.img_size) for s in specs])
    y = np.log(np.asarray(latencies, dtype=float))
    model = fit_linear(x, y, NETWORK_FEATURES) if kind == "linear" else fit_gbm(x, y, NETWORK_FEATURES, seed)
    return np.exp(predict_model(model, x)).tolist()


def _csv_records(name: str, text: str) -> list[tuple[int, dict[str, str]]]:
    """The table's rows, each with the line it starts on (a quoted cell may span lines: a spec as indented JSON);
    a row with more or fewer cells than the header is refused."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))  # a spreadsheet's byte-order mark
    out, start = [], 2
    try:
        header = reader.fieldnames or []
        twice = sorted({c for c in header if header.count(c) > 1})
        if twice:   # DictReader keeps the last column of a name: the other would be ignored without a word
            raise ArchlabError(f"{name}: line 1: column {shorten(repr(twice[0]), 60)} is named twice in the header")
        for row in reader:
            if None in row:  # cells past the header's last column
                raise ArchlabError(f"{name}: line {start}: has {len(row) - 1 + len(row[None])} cells, but the header "
                                   f"names {len(row) - 1} columns")
            missing = [c for c, v in row.items() if v is None]
            if missing:
                raise ArchlabError(f"{name}: line {start}: column {missing[0]!r} is missing (the row has "
                                   f"{len(row) - len(missing)} cells, the header names {len(row)} columns)")
            out.append((start, row))
            start = reader.line_num + 1
    except csv.Error as err:
        raise ArchlabError(f"{name}: line {reader.line_num}: not a CSV row ({err})") from None
    if not out:
        raise ArchlabError(f"{name}: holds no rows (a header with latency_ms, device and spec or the space's "
                           "parameter columns, then one row per network)")
    return out


def _csv_network_columns(name: str, space: SearchSpace, columns: set[str]) -> None:
    """A table must say which network each row is: a `spec` column or some of the space's parameter columns."""
    names = {d.name for d in space.dimensions}
    if "spec" not in columns and not {c.removeprefix("params_") for c in columns} & names:
        raise ArchlabError(f"{name}: has no 'spec' column and none of the space's parameter columns "
                           f"({shorten(', '.join(sorted(names)))}; bare or as params_<name>), so no row says which "
                           f"network it timed (columns: {shorten(', '.join(sorted(columns)))})")


def _csv_target(name: str, rows: list[dict[str, str]], device: str | None, options: FitOptions) -> dict[str, Any]:
    """The device and settings a CSV table was measured with, from its columns (or `device`)."""
    columns = set(rows[0])
    if "latency_ms" not in columns:
        raise ArchlabError(f"{name}: has no 'latency_ms' column (columns: {shorten(', '.join(sorted(columns)))})")
    if "device" in columns:
        devices = sorted({r["device"] for r in rows})
        if len(devices) != 1 or not devices[0].strip():
            raise ArchlabError(f"{name}: column device must hold one device name, got {shorten(repr(devices))}")
        if device and device != devices[0]:   # the option would be silently ignored
            raise ArchlabError(f"{name}: column device says {shorten(repr(devices[0]), 60)}, but --device-name says "
                               f"{shorten(repr(device), 60)}: give the device once")
        device = devices[0]
    elif not device:
        raise ArchlabError(f"{name}: has no 'device' column: add one, or name the device the table was measured "
                           "on (--device-name)")
    target = {"device": device, "device_name": device, "threads": options.threads, "batch": options.batch,
              "backend": "unknown (imported)", "stack": "unknown (imported)", "host": ""}
    for column in CSV_TARGET_COLUMNS:
        if column in columns:
            values = sorted({r[column].strip() for r in rows})
            if len(values) != 1 or not values[0].isdigit() or int(values[0]) < 1:
                raise ArchlabError(f"{name}: column {column} must hold one whole number >= 1 on every row, got "
                                   f"{shorten(repr(values))}")
            target[column] = int(values[0])
    return target


def _csv_latency(text: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ArchlabError(f"{where}: latency_ms must be a positive number of milliseconds, got {shorten(repr(text))}")
    if value > MAX_CSV_LATENCY_MS:   # 1e308 passed and made the fit's error figures 10^22 %
        raise ArchlabError(f"{where}: latency_ms must be at most {MAX_CSV_LATENCY_MS:,.0f} ms (a unit error?), got "
                           f"{shorten(repr(text))}")
    return value


def _csv_spec(space: SearchSpace, row: dict[str, str], where: str, options: FitOptions) -> ArchSpec:
    """The row's network: its `spec` cell (ArchSpec JSON or a zoo name), or the space decoded from its parameter
    columns; a bad cell is an ArchlabError naming the column and the value."""
    overrides = {"img_size": options.img_size, "in_chans": options.in_chans, "num_classes": options.num_classes}
    if "spec" in row:
        return _csv_spec_cell(row["spec"], where, {k: v for k, v in overrides.items() if v is not None})
    names = {d.name for d in space.dimensions}
    params, column_of = {}, {}
    for column, text in row.items():
        key = column.removeprefix("params_") if column.removeprefix("params_") in names else column
        if key in names:
            column_of[key] = column
            if text != "":
                params[key] = _cell(text)
    try:
        return space.decode(params, **overrides)
    except SpecError as err:
        key = err.path.removeprefix("params.")
        if key not in names:   # not one cell's fault: the network the row's cells make breaks a rule
            raise ArchlabError(f"{where}: the network of this row's parameter columns: {err}") from None
        got = f", got {shorten(repr(err.value))}" if err.show_value else ""
        raise ArchlabError(f"{where}: column {column_of.get(key, key)!r} {err.rule}{got}") from None


def _csv_spec_cell(text: str, where: str, changes: dict[str, Any]) -> ArchSpec:
    """A `spec` cell: an ArchSpec as JSON (archlab space sample --json) or the name of a zoo network."""
    from archlab.arch.zoo import get_spec
    text = text.strip()
    try:
        if text.startswith("{"):
            spec = ArchSpec.from_json(text)
            return replace(spec, **changes) if changes else spec
        if not text:
            raise ArchlabError("is empty")
        if text.startswith(("[", '"')):   # JSON, but no object: not a zoo name either (no list of the whole zoo)
            raise ArchlabError("a JSON cell must be an object, {...}")
        return get_spec(text, **changes)
    except ArchlabError as err:
        raise ArchlabError(f"{where}: column 'spec' must hold an ArchSpec as JSON or a zoo network name "
                           f"({err}), got {shorten(repr(text))}") from None


def _cell(text: str) -> Any:
    """A CSV cell as a parameter value: JSON where it parses (numbers, true, null, lists), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# --- evaluation ---------------------------------------------------------------------------------------------------

def evaluate(path: str | Path, m: int, *, seed: int | None = None, space_path: str | Path | None = None,
             lock_dir: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Measure `m` networks the fit never saw, twice each; every kind's errors against the first measurement, and
    the second measurement's against the first: the repeatability no predictor of such measurements can beat."""
    if m < 2:
        raise ArchlabError(f"-n must be at least 2 to rank networks, got {m}")
    t = load_predictor(path).target
    if not (t["device"] == "cpu" or t["device"].startswith("cuda")):
        raise ArchlabError(f"{path}: was fitted on a table from device {t['device']!r}; eval measures on this "
                           "machine, so it needs a predictor fitted here (archlab predictor fit SPACE -n N)")
    here = device_name(t["device"])
    pred = load_predictor(path, device_name=here)  # eval measures here: the file must be for this machine
    space, info = load_space_file(space_path or pred.data["space"].get("file", ""))
    pred = load_predictor(path, device_name=here, space=info["hash"])
    fit = pred.data["fit"]
    seed = fit.get("seed", 0) + EVAL_SEED_OFFSET if seed is None else seed
    train_ids = frozenset(r["arch_id"] for r in pred.data["train"])
    specs = sample_networks(space, m, seed=seed, img_size=t["img_size"], in_chans=t["in_chans"],
                            num_classes=t["num_classes"], exclude=train_ids)
    options = FitOptions(device=t["device"], threads=t["threads"], batch=t["batch"], backend=t["backend"],
                         lock_dir=lock_dir)
    protocol = options.protocol(fit.get("options", {}).get("max_seconds", 1.0))
    predictions: dict[str, list[float]] = {k: [] for k in pred.kinds}
    hits = total = 0
    for spec in specs:
        parts = decompose(spec)
        for kind, ms in pred.predict_all(spec, parts).items():
            predictions[kind].append(ms)
        if "lookup" in pred.kinds:
            hits += lookup_parts(pred.data["models"]["lookup"], parts)[1]
            total += len(parts)
    first, second = [], []
    for label, out in (("first", first), ("second", second)):  # two passes: the repeat is minutes apart
        for i, spec in enumerate(specs):
            out.append(_measure(spec, protocol)[0])
            if progress:
                progress(f"{label} measurement {i + 1}/{m}")
    return {"file": str(path), "space": info["name"], "n": m, "seed": seed, "selected": pred.selected,
            "target": {k: t[k] for k in ("device", "device_name", "threads", "batch", "img_size")},
            "stack_here": software_stack(t["backend"]),
            "kinds": {k: rank_metrics(v, first) for k, v in predictions.items()},
            "repeatability": rank_metrics(second, first),
            "lookup_table_hits": None if not total else hits / total,
            "networks": [{"arch_id": s.arch_id, "first_ms": a, "second_ms": b,
                          **{f"{k}_ms": predictions[k][i] for k in predictions}}
                         for i, (s, a, b) in enumerate(zip(specs, first, second))]}


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def format_evaluation(result: dict[str, Any]) -> str:
    """The evaluation as a table: one row per kind, then the measurement's own repeatability."""
    t = result["target"]
    lines = [f"{result['file']}: {result['n']} new networks of {result['space']} (seed {result['seed']}), "
             f"{t['device_name']}, {t['threads']} thread(s), batch {t['batch']}, {t['img_size']} px",
             f"{'predictor':24s} {'+-10%':>7} {'+-5%':>7} {'Spearman':>9} {'MAPE':>7} {'max err':>8}"]
    rows = [(f"{k}{' (selected)' if k == result['selected'] else ''}", v) for k, v in result["kinds"].items()]
    rows.append(("repeat measurement", result["repeatability"]))
    for label, r in rows:
        lines.append(f"{label:24s} {_pct(r['within_10']):>7} {_pct(r['within_5']):>7} {r['spearman']:9.3f} "
                     f"{r['mape']:6.1f}% {r['max_error']:7.1f}%")
    rep = result["repeatability"]
    lines.append(f"errors are against the first measurement; the repeat row is the second against the first: "
                 f"a predictor fitted on such measurements cannot do much better than {_pct(rep['within_10']).strip()}"
                 f" within +-10% or Spearman {rep['spearman']:.3f}")
    if result.get("lookup_table_hits") is not None:
        lines.append(f"lookup: {_pct(result['lookup_table_hits']).strip()} of these networks' parts were in the "
                     "table; the rest came from its part model")
    return "\n".join(lines)


def format_fit(data: dict[str, Any], path: str | Path) -> str:
    """A short summary of a fitted predictor: target, sizes, cross-validated errors per kind."""
    t, fit = data["target"], data["fit"]
    lines = [f"{path}: latency predictor for {data['space']['name']} on {t['device_name']} ({t['device']}, "
             f"{t['threads']} thread(s), batch {t['batch']}, {t['in_chans']}x{t['img_size']}x{t['img_size']}), "
             f"{fit['n']} networks, {fit['fit_s']:.1f} s"]
    if "timed_parts" in fit:
        lines.append(f"parts: {fit['timed_parts']} of {fit['distinct_parts']} distinct parts timed "
                     f"({fit['parts_s']:.1f} s); figures used: "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(fit["figures"].items())))
    lines.append(f"{'kind':24s} {'CV +-10%':>9} {'CV MAPE':>8} {'Spearman':>9}")
    for kind, r in data["cv"].items():
        label = f"{kind}{' (selected)' if kind == data['selected'] else ''}"
        lines.append(f"{label:24s} {_pct(r['within_10']):>9} {r['mape']:7.1f}% {r['spearman']:9.3f}")
    return "\n".join(lines)
