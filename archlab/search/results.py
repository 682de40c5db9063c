"""The trials table of a search run, built from its Optuna storage, and what is computed from it.

One row per trial that ran (infeasible samples rejected before building are counted, not listed):
number, state, search parameters (`params_<name>`, Optuna's convention), arch_id, params, macs, latency
statistics, top1, epochs run, wall time, error, and (added by the engine) `weights`, where the run folder keeps the
trial's weights. The Pareto set and the hypervolume over time come from it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from archlab.core.files import atomic_write
from archlab.search.pareto import default_reference, hypervolume_history, pareto_mask

__all__ = ["STATE_ATTR", "TABLE_STATES", "TRIAL_ATTRS", "TRIED_STATES", "front_table", "hypervolume_table",
           "latency_note", "load_table", "load_trials", "savings", "summary_dict", "table_file", "write_table"]

STATE_ATTR = "archlab_state"  # user attribute holding archlab's outcome of a trial
TABLE_STATES = ("complete", "stopped", "skipped", "failed", "interrupted")
# outcomes that count toward a study's `trials`: every table state but interrupted (those are re-run)
TRIED_STATES = tuple(s for s in TABLE_STATES if s != "interrupted")
# latency_source: "measured" (timed on the study's device) or "predicted" (the study's latency.predictor file)
TRIAL_ATTRS = ("arch_id", "params", "macs", "latency_ms", "latency_source", "latency_raw_ms", "latency_p90_ms",
               "latency_cv", "latency_repeats", "top1", "top1_partial", "epochs_run", "trial_s", "train_s",
               "images_per_s", "paused_s", "node_id", "hostname", "gpu_ids", "error", "weights_error")


def load_trials(optuna_study: Any, metric_names: Sequence[str]) -> pd.DataFrame:
    """The trials table of an Optuna study run by archlab."""
    rows = []
    for t in optuna_study.get_trials(deepcopy=False):
        state = t.user_attrs.get(STATE_ATTR)
        if state not in TABLE_STATES:
            continue
        row: dict[str, Any] = {"number": t.number, "state": state}
        row.update({a: t.user_attrs.get(a) for a in TRIAL_ATTRS})
        if state == "complete" and t.values:
            row.update(dict(zip(metric_names, t.values)))
        row["datetime_start"] = t.datetime_start
        row["datetime_complete"] = t.datetime_complete
        row.update({f"params_{k}": v for k, v in t.params.items()})
        rows.append(row)
    columns = ["number", "state", *TRIAL_ATTRS, "datetime_start", "datetime_complete"]
    table = pd.DataFrame(rows, columns=list(dict.fromkeys(columns + [c for r in rows for c in r])))
    return table.sort_values("number").reset_index(drop=True)


def write_table(table: pd.DataFrame, run_dir: str | Path) -> None:
    """Write trials.csv and trials.parquet, each atomically (archlab.core.files)."""
    run_dir = Path(run_dir)
    atomic_write(run_dir / "trials.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(run_dir / "trials.parquet", lambda tmp: table.to_parquet(tmp, index=False))


def table_file(run_dir: str | Path) -> Path:
    """The file a run's trials table is read from: trials.parquet, else trials.csv."""
    run_dir = Path(run_dir)
    return run_dir / "trials.parquet" if (run_dir / "trials.parquet").exists() else run_dir / "trials.csv"


def load_table(run_dir: str | Path) -> pd.DataFrame:
    """Read a run's trials table (Parquet, else CSV)."""
    path = table_file(run_dir)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _complete(table: pd.DataFrame, metric_names: Sequence[str]) -> pd.DataFrame:
    done = table[table["state"] == "complete"].dropna(subset=list(metric_names))
    return done.sort_values("datetime_complete", kind="stable") if "datetime_complete" in done else done


def front_table(table: pd.DataFrame, metric_names: Sequence[str], directions: Sequence[str]) -> pd.DataFrame:
    """The Pareto-optimal completed trials, sorted by the last objective, with their key columns."""
    done = _complete(table, metric_names)
    if done.empty:
        return done
    front = done[pareto_mask(done[list(metric_names)].to_numpy(float), directions)]
    cols = ["number", "arch_id", *metric_names] + [c for c in ("params", "macs") if c not in metric_names]
    cols += [c for c in ("weights",) if c in front]  # where the run folder keeps the trial's weights, if it does
    front = front[cols].sort_values(list(metric_names)[-1]).reset_index(drop=True)
    # counts are integers; the table's columns turn float when a failed row left them empty
    counts = [c for c in ("params", "macs") if c in front and front[c].notna().all()]
    return front.astype({c: "int64" for c in counts})


def hypervolume_table(table: pd.DataFrame, metric_names: Sequence[str], directions: Sequence[str],
                      reference: np.ndarray | None = None) -> pd.DataFrame:
    """Hypervolume after each completed trial, in completion order, against a fixed reference point."""
    done = _complete(table, metric_names)
    if done.empty:
        return pd.DataFrame(columns=["number", "hypervolume"])
    values = done[list(metric_names)].to_numpy(float)
    ref = default_reference(values, directions) if reference is None else reference
    return pd.DataFrame({"number": done["number"].to_numpy(),
                         "hypervolume": hypervolume_history(values, directions, ref)})


def savings(table: pd.DataFrame, max_epochs: float | None) -> dict[str, float]:
    """What early stopping and the latency pre-filter saved, in epochs of training not run."""
    stopped = table[table["state"] == "stopped"]
    skipped = table[table["state"] == "skipped"]
    out: dict[str, float] = {"stopped": len(stopped), "skipped": len(skipped)}
    if max_epochs:
        ran = pd.to_numeric(table["epochs_run"], errors="coerce").fillna(0)
        saved = float((max_epochs - ran[stopped.index]).clip(lower=0).sum()) + max_epochs * len(skipped)
        trained = float(ran[table["state"].isin(["complete", "stopped"])].sum())
        out.update(epochs_saved=saved, epochs_trained=trained,
                   share_saved=saved / (saved + trained) if saved + trained else 0.0)
    return out


def summary_dict(table: pd.DataFrame, metric_names: Sequence[str], directions: Sequence[str],
                 max_epochs: float | None = None) -> dict[str, Any]:
    """Counts by state, the front as records, the final hypervolume and what early stopping saved."""
    counts = {s: int((table["state"] == s).sum()) for s in TABLE_STATES if (table["state"] == s).any()}
    front = front_table(table, metric_names, directions)
    hv = hypervolume_table(table, metric_names, directions)
    return {"counts": counts, "front": front.to_dict(orient="records"),
            "hypervolume": float(hv["hypervolume"].iloc[-1]) if len(hv) else 0.0,
            "metrics": list(metric_names), "directions": list(directions), "savings": savings(table, max_epochs)}


def latency_note(info: Mapping[str, Any] | None) -> str:
    """One line saying a run's latency was predicted: the predictor file, its kind, the device and settings it was
    fitted for and its cross-validated accuracy where the file holds it; '' when the latency was measured."""
    if not info or info.get("source") != "predicted":
        return ""
    device = info.get("device_name") or info.get("device")
    if info.get("device") and info.get("device") != device:   # e.g. "Intel Xeon ... (cpu)"
        device = f"{device} ({info['device']})"
    text = (f"latency predicted, not measured: {info.get('predictor')} ({info.get('kind')} model, fitted on "
            f"{device}, {info.get('threads')} thread(s), batch {info.get('batch')}, img size {info.get('img_size')}")
    cv = info.get("cv")
    if isinstance(cv, Mapping) and {"n", "within_10", "mape"} <= set(cv):
        # out-of-fold predictions: each network predicted by a fit that never saw it
        text += (f"; cross-validated on {cv['n']} networks: {100 * float(cv['within_10']):.0f}% within +-10%, "
                 f"MAPE {float(cv['mape']):.1f}%")
    return text + ")"
