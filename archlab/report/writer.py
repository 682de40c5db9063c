"""`archlab report`: one self-contained, offline HTML page per search or ablation run (or several, overlaid).

A report reads a run folder's files, never a live study (docs/run_folder.md for searches, docs/ablation.md for
ablation ladders). The work is split as the style guide asks: `archlab.report.data` computes small data
objects from the tables (tested), `archlab.report.plots` draws them with plotly, `archlab.report.html` writes
the page; this module decides what goes where and writes the file (and, with kaleido and Chromium present,
a PNG and an SVG of every figure).

Search reports show the Pareto front of top-1 against latency (and MACs, parameters) of NSGA-II (Deb et al.
2002) or any Optuna sampler, the hypervolume (Zitzler & Thiele 1999) over trials, fANOVA parameter
importance (Hutter et al. 2014), parallel coordinates and every trial; ablation reports replay a ladder
such as Liu et al., "A ConvNet for the 2020s", CVPR 2022, beside the paper's figures.
"""
from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from archlab.core.errors import ArchlabError
from archlab.core.files import atomic_write_text
from archlab.core.fmt import format_count
from archlab.measure.chance import ChanceCheck
from archlab.report.chance import ablation_chance, search_chance
from archlab.report.data import (
    METRIC_LABELS,
    AblationRun,
    Importance,
    SearchRun,
    ablation_table,
    best_values,
    compare_fronts,
    hypervolume_curves,
    load_run,
    metric_labels,
    parallel_dims,
    param_columns,
    param_importance,
    run_labels,
    scatter_set,
    sweep_points,
    top_params,
    trial_rows,
)
from archlab.report.html import Column, ReportDoc, Section, cards_html, esc, figure_div, kv_table, render, table_html
from archlab.report.plots import (
    ablation_budget_figure,
    ablation_budget_top1_figure,
    ablation_latency_figure,
    ablation_macs_figure,
    ablation_top1_figure,
    agreement_figure,
    deltas_figure,
    front_figure,
    hypervolume_figure,
    importance_figure,
    parallel_figure,
)
from archlab.search.results import latency_note

__all__ = ["REPORTS_DIR", "REPORTS_ENV", "Figures", "Report", "build_report", "default_out", "export_static",
           "report_name", "write_report", "write_run_report"]

REPORTS_DIR = Path("reports")
TOP_PARAMS = 12                       # parameters in the importance chart
TOP_AXES = 10                         # parameter axes of the parallel coordinates (so each line stays readable)
REPORTS_ENV = "ARCHLAB_REPORTS_DIR"   # overrides the default folder (the test suite points it at a temp dir)
Log = Callable[[str], None]


class Figures(dict):
    """Figures by div id, with the title each is shown under (titles go into the figure on static export)."""

    def __init__(self) -> None:
        super().__init__()
        self.titles: dict[str, str] = {}

    def add(self, fig_id: str, fig: Any, title: str = "", caption: str = "") -> str:
        """Register a figure; returns the escaped placeholder HTML it is drawn into."""
        self[fig_id] = fig
        self.titles[fig_id] = title
        return figure_div(fig_id, caption, title=title)


@dataclass(frozen=True, eq=False)
class Report:
    """A built report: the page's content and its figures by id (plotly Figure objects, for static export)."""

    doc: ReportDoc
    figures: Figures
    name: str


# --- formatting helpers ---------------------------------------------------------------------------------

def _pct(v: Any) -> str:
    return f"{float(v):.2f}"


def _ms(v: Any) -> str:
    return f"{float(v):.3g}"


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _signed(v: Any) -> str:
    return f"{float(v):+.2f}"


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with NaN turned into None."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in df.to_dict(orient="records")]


# --- search reports -------------------------------------------------------------------------------------

def _primary_cost(run: SearchRun) -> str:
    """The cost the main front plots top-1 against: latency when measured, else the study's second objective."""
    if "latency_ms" in run.table.columns and run.table["latency_ms"].notna().any():
        return "latency_ms"
    others = [m for m in run.metrics if m != "top1"]
    return others[0] if others else "macs"


def _trial_payload(run: SearchRun, rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """What the detail panel shows for each trial: values, search parameters, architecture, spec file."""
    out: dict[str, dict[str, Any]] = {}
    value_cols = [c for c in ("top1", "top1_partial", "latency_ms", "latency_source", "latency_p90_ms", "latency_cv",
                              "params",
                              "macs", "epochs_run", "trial_s", "train_s", "images_per_s", "hostname")
                  if c in run.table.columns]
    table = run.table.set_index("number", drop=False)
    on_front = dict(zip(rows["number"], rows["on_front"]))
    for number in table.index:
        r = table.loc[number]
        n = int(number)
        arch = run.archs.get(n)
        out[str(n)] = dict(
            number=n, state=str(r["state"]), on_front=bool(on_front.get(number, False)),
            values={c: (r[c].item() if hasattr(r[c], "item") else r[c]) for c in value_cols if not pd.isna(r[c])},
            params={c[len("params_"):]: (r[c].item() if hasattr(r[c], "item") else r[c])
                    for c in param_columns(run.table) if not pd.isna(r[c])},
            error=None if "error" not in r.index or pd.isna(r["error"]) else str(r["error"]),
            spec_path=str(run.path / "trials" / f"{n:04d}" / "spec.yaml"),
            arch=None if arch is None else dict(arch_id=arch.arch_id, summary=arch.summary, rows=list(arch.rows),
                                                yaml=arch.yaml, params=arch.params, macs=arch.macs,
                                                error=arch.error))
    return out


def _trial_columns(runs: Sequence[SearchRun], multi: bool, labels: dict[str, str]) -> list[Column]:
    cols = [Column("run_label", "run")] if multi else []
    cols += [Column("number", "#", _num, "num"), Column("state", "state"),
             Column("on_front", "front", lambda v: "\u2605" if v else "", "front", "on the study's Pareto front"),
             Column("top1", "top-1 %", _pct, "num"),
             Column("top1_partial", "top-1 at stop", _pct, "num", "validation top-1 when ASHA stopped it (not final)"),
             Column("latency_ms", "latency ms" if labels["latency_ms"] == METRIC_LABELS["latency_ms"] else
                    labels["latency_ms"], _ms, "num"), Column("params", "params", format_count, "num"),
             Column("macs", "MACs", format_count, "num"), Column("epochs_run", "epochs", _num, "num"),
             Column("trial_s", "wall s", lambda v: f"{float(v):.1f}", "num")]
    if any(r.latency_predicted for r in runs):   # said on every row: predicted (the predictor file) or measured
        cols.append(Column("latency_source", "latency from", str, "", "predicted by the run's latency predictor "
                           "file, or measured on its device"))
    cols += [Column("error", "reason (failed / skipped)", str, "err"), Column("arch", "architecture", str, "mono wrap")]
    names = list(dict.fromkeys(c for r in runs for c in param_columns(r.table)))
    return cols + [Column(c, c[len("params_"):], _num, "num") for c in names]


@dataclass
class _SearchView:
    """What every section of a search report reads: the runs, their labels, trial rows, curves and pooled front."""
    runs: Sequence[SearchRun]
    figures: Figures
    labels: list[str]
    rows: list[pd.DataFrame]
    curves: list[Any]
    comparison: Any
    links_from: Path | None = None   # the report's folder: links to run files are relative to it (else absolute)
    labels_of: dict[str, str] = field(default_factory=lambda: dict(METRIC_LABELS))   # metric -> axis/column label

    @property
    def multi(self) -> bool:
        return len(self.runs) > 1

    @property
    def hv_final(self) -> dict[int, float]:
        return {c.run: c.hypervolume[-1] for c in self.curves}


def _state_counts(run: SearchRun) -> dict[str, int]:
    return {k: int(v) for k, v in run.table["state"].value_counts().items()}


def _metric_text(metric: str, value: Any) -> str:
    return _pct(value) if metric == "top1" else (_ms(value) if metric.endswith("_ms") else format_count(value))


def _overview_runs(v: _SearchView) -> Section:
    """Several runs: one row per run with its counts, best values, own/pooled front and final hypervolume."""
    comparison, hv_final = v.comparison, v.hv_final
    per_run = {} if comparison is None else {int(r["run"]): r for r in _records(comparison.per_run)}
    ov = []
    for i, run in enumerate(v.runs):
        c, best = _state_counts(run), best_values(run.table, run.metrics, run.directions)
        ov.append(dict(run=v.labels[i], sampler=run.sampler, trials=len(run.table), complete=c.get("complete", 0),
                       stopped=c.get("stopped", 0), skipped=c.get("skipped", 0), failed=c.get("failed", 0),
                       front=per_run.get(i, {}).get("own_front"), pooled=per_run.get(i, {}).get("in_pooled_front"),
                       top1=best.get("top1"), latency=best.get("latency_ms"), hv=hv_final.get(i),
                       wall=run.summary.get("wall_s") or run.state.get("elapsed_s")))
    body = table_html(ov, [Column("run", "run"), Column("sampler", "sampler"),
                           Column("trials", "trials", _num, "num"),
                           Column("complete", "complete", _num, "num"), Column("stopped", "stopped", _num, "num"),
                           Column("skipped", "skipped", _num, "num"), Column("failed", "failed", _num, "num"),
                           Column("front", "own front", _num, "num"),
                           Column("pooled", "on pooled front", _num, "num",
                                  "points of the front of all runs pooled that this run found"),
                           Column("top1", "best top-1 %", _pct, "num"),
                           Column("latency", "fastest ms" + (" (predicted)" if any(r.latency_predicted for r in v.runs)
                                                             else ""), _ms, "num"),
                           Column("hv", "hypervolume", lambda x: f"{x:.4g}", "num",
                                  "against one reference point shared by all runs"),
                           Column("wall", "wall time", lambda x: f"{float(x) / 60:.1f} min", "num")],
                      sortable=False)
    notes = "".join(_chance_verdict(search_chance(run)).replace('class="verdict chance">',
                                                                  f'class="verdict chance">{esc(v.labels[i])}: ')
                    for i, run in enumerate(v.runs))
    notes += "".join(_latency_line(run, f"{v.labels[i]}: ") for i, run in enumerate(v.runs))
    return Section("overview", "Overview", notes + body,
                   "Each run's outcome; hypervolumes share one reference point, so they compare.")


def _overview_run(v: _SearchView) -> Section:
    """One run: cards with trial counts, front size, sampler, best values, hypervolume and wall time."""
    run, hv_final = v.runs[0], v.hv_final
    c, best = _state_counts(run), best_values(run.table, run.metrics, run.directions)
    wall = run.summary.get("wall_s") or run.state.get("elapsed_s")
    cards = [("trials", str(len(run.table)), ", ".join(f"{n} {k}" for k, n in c.items())),
             ("Pareto front", str(int(v.rows[0]["on_front"].sum())),
              "architectures no other trial beats on every objective"),
             ("sampler", run.sampler, f"seed {run.study.get('seed', 0)}")]
    cards += [(f"best {v.labels_of.get(m, m)}", _metric_text(m, best[m]), "over complete trials")
              for m in run.metrics if m in best]
    if 0 in hv_final:
        cards.append(("hypervolume", f"{hv_final[0]:.4g}", "final, see the curve below"))
    if wall:
        cards.append(("wall time", f"{float(wall) / 60:.1f} min", f"{run.summary.get('infeasible_rejected', 0)} "
                                                                  "infeasible samples rejected unbuilt"))
    return Section("overview", "Overview", _chance_verdict(search_chance(run)) + _latency_line(run)
                   + cards_html(cards), str(run.study.get("description") or ""))


def _latency_line(run: SearchRun, prefix: str = "") -> str:
    """The run summary's line on predicted latency: the predictor file, kind, device, threads, batch, input and
    cross-validated accuracy ('' when the latency was measured)."""
    note = latency_note(run.latency) if run.latency_predicted else ""
    if run.latency_predicted and not note:   # an older run folder: the study still names the file
        note = f"latency predicted, not measured: {run.latency.get('predictor') or 'by a latency predictor file'}"
    return f'<p class="note latency-predicted">{esc(prefix + note)}</p>' if note else ""


def _chance_verdict(check: ChanceCheck | None) -> str:
    """The 'budget too small to rank' warning above an overview ('' when the values rank)."""
    message = check.message() if check is not None else ""
    return f'<div class="verdict chance">{esc(message)}</div>' if message else ""


def _front_section(v: _SearchView) -> tuple[Section, list[Any]]:
    """The front against the primary cost (clickable), plus smaller fronts against MACs and parameters."""
    runs, labels = v.runs, v.labels
    cost = _primary_cost(runs[0])
    sets = [scatter_set(r.table, i, cost) for i, r in enumerate(runs)]
    side = []
    for metric in ("macs", "params"):
        if metric != cost and all(metric in r.table.columns for r in runs):
            side.append(v.figures.add(
                f"fig-front-{metric}", front_figure(runs, labels, [scatter_set(r.table, i, metric)
                                                                   for i, r in enumerate(runs)], height=400,
                                                   axis_labels=v.labels_of),
                f"top-1 vs {v.labels_of[metric]} (the front of this pair)"))
    detail = ('<aside class="detail" id="detail"><p class="hint">Click a point (or a table row) to see its '
              'architecture, stage by stage, and download its spec file.</p></aside>')
    caption = ("Large points joined by a staircase: the Pareto front (no other trial is both more accurate and "
               "cheaper). Faded points: dominated trials.")
    if any(len(s.stopped) for s in sets):
        caption += " Stopped trials (partial top-1, not final) can be switched on in the legend."
    pair = "" if set(runs[0].metrics) == {"top1", cost} else " (the front of this pair)"
    main = v.figures.add("fig-front", front_figure(runs, labels, sets, height=520, show_stopped=True,
                                                   axis_labels=v.labels_of),
                         f"top-1 vs {v.labels_of.get(cost, cost)}{pair}", caption)
    body = f'<div class="grid-main">{main}{detail}</div><div class="arch-panel" id="detail-arch"></div>'
    if side:
        body += f'<div class="grid2">{"".join(side)}</div>'
    how = "predicted" if any(r.latency_predicted for r in runs) else "measured"
    return Section("front", "Pareto front", body, f"Top-1 against {how} latency, MACs and parameters" +
                   (", every run overlaid." if v.multi else ".")), sets


def _architectures_section(v: _SearchView) -> Section | None:
    """Every architecture on the (pooled) front with its objectives, costs and which runs found it."""
    comparison, labels, runs, multi = v.comparison, v.labels, v.runs, v.multi
    if comparison is None:
        return None
    f = comparison.front.copy()
    f["run_label"] = [labels[int(i)] for i in f["run"]]
    f["arch"] = [runs[int(i)].archs[int(n)].summary if int(n) in runs[int(i)].archs else ""
                 for i, n in zip(f["run"], f["number"])]
    f["shared"] = [", ".join(labels[j] for j in comparison.shared.get(a, []) if j != int(i))
                   if isinstance(a, str) else "" for a, i in zip(f.get("arch_id", [""] * len(f)), f["run"])]
    cols = ([Column("run_label", "found by")] if multi else []) + [Column("number", "trial", _num, "num")]
    cols += [Column(m, v.labels_of.get(m, m), lambda x, m=m: _metric_text(m, x), "num")
             for m in comparison.metrics]
    cols += [Column(c, METRIC_LABELS[c], format_count, "num") for c in ("params", "macs")
             if c in f.columns and c not in comparison.metrics]
    cols += [Column("arch", "architecture", str, "mono wrap")]
    if multi:
        cols.append(Column("shared", "also trained by", str))
    files = [runs[int(i)].path / "trials" / f"{int(n):04d}" / "weights.safetensors"
             for i, n in zip(f["run"], f["number"])]
    if any(p.is_file() for p in files):   # the search kept these trials' weights (study option keep_weights)
        f["weights"] = [f"trials/{p.parent.name}/{p.name}" if p.is_file() else None for p in files]
        f["weights_href"] = [_file_link(p, v.links_from) for p in files]
        cols.append(Column("weights", "weights", str, "mono", "the trained weights the run folder kept "
                           "(safetensors); `archlab export RUN_DIR:NUMBER` exports them",
                           link=lambda r: r.get("weights_href")))
    body = table_html(_records(f), cols, row_attrs=lambda r: {"data-run": int(r["run"]),
                                                               "data-number": int(r["number"])})
    lead = ("The front of all runs pooled, and which search found each point: compare the architectures, "
            "not only the curves. Click a row for its stage table." if multi else
            "Every architecture on the front, cheapest last objective first. Click a row for its stage table.")
    return Section("architectures", "Architectures on the front", body, lead)


def _file_link(path: Path, links_from: Path | None) -> str:
    """A link to a run file: relative to the report's folder when known (the pair can move together), else
    the file's absolute path."""
    if links_from is None:
        return str(path.resolve())
    return Path(os.path.relpath(path.resolve(), links_from.resolve())).as_posix()


def _progress_section(v: _SearchView) -> tuple[Section | None, list[Importance]]:
    """Hypervolume over trials and fANOVA parameter importance (the importances are reused by the next section)."""
    labels, multi = v.labels, v.multi
    parts = []
    if v.curves:
        parts.append(v.figures.add("fig-hv", hypervolume_figure(v.curves, labels), "hypervolume over trials",
                                   "Volume of objective space the front dominates, after each completed trial; "
                                   "higher is better. Click a point for the trial that raised it."))
    importances = [param_importance(r.table, r.metrics, r.directions, run=i) for i, r in enumerate(v.runs)]
    usable = [imp for imp in importances if imp.values]
    notes = [f"{labels[imp.run]}: {imp.note}" for imp in importances if imp.note]
    if usable:
        n = ", ".join(f"{labels[imp.run]}: {imp.n_trials}" for imp in usable) if multi else str(usable[0].n_trials)
        n_params = len({p for imp in usable for vals in imp.values.values() for p in vals})
        shown = f"the {TOP_PARAMS} most important of {n_params} parameters; " if n_params > TOP_PARAMS else ""
        parts.append(v.figures.add("fig-importance", importance_figure(usable, labels, top=TOP_PARAMS,
                                                                       axis_labels=v.labels_of),
                                   "parameter importance",
                                   f"Optuna's fANOVA evaluator on the complete trials ({n}); {shown}few trials make "
                                   "it noisy." + (" " + "; ".join(notes) if notes else "")))
    elif notes:
        parts.append(f'<p class="note">Parameter importance: {esc("; ".join(notes))}</p>')
    section = (Section("progress", "Hypervolume and parameter importance", f'<div class="grid2">{"".join(parts)}</div>')
               if parts else None)
    return section, importances


def _dimensions_section(v: _SearchView, importances: Sequence[Importance]) -> Section | None:
    """Parallel coordinates over the most important search parameters and the objectives, one per run."""
    blocks = []
    for i, r in enumerate(v.runs):
        names = top_params(importances[i], r.table, TOP_AXES)
        dims, numbers = parallel_dims(r.table, r.metrics, names, labels=v.labels_of)
        if numbers and len(dims) > 1:
            blocks.append(v.figures.add(f"fig-parallel-{i}", parallel_figure(dims, numbers),
                                        v.labels[i] if v.multi else ""))
    if not blocks:
        return None
    n_all = max(len(param_columns(r.table)) for r in v.runs)
    which = (f"the {TOP_AXES} parameters most important by fANOVA (all {n_all} are in the trial table)"
             if n_all > TOP_AXES else "the search parameters")
    return Section("dimensions", "Search dimensions", "".join(blocks),
                   f"Every complete trial as one line across {which} and the objectives, coloured by "
                   "top-1; drag along an axis to filter.")


def _trials_section(v: _SearchView) -> Section:
    """Every trial of every run in one sortable, filterable table."""
    all_rows = pd.concat([r.assign(run=i, run_label=v.labels[i]) for i, r in enumerate(v.rows)], ignore_index=True)
    states = [s for s in ("complete", "stopped", "skipped", "failed", "interrupted") if (all_rows["state"] == s).any()]
    toolbar = ('<div class="toolbar" data-table="trials-table"><input type="search" placeholder="filter: text in any '
               'column">' + "".join(f'<button type="button" data-state="{esc(s)}">{esc(s)}</button>' for s in states)
               + '<span class="count"></span></div>')
    body = toolbar + table_html(
        _records(all_rows), _trial_columns(v.runs, v.multi, v.labels_of), table_id="trials-table",
        row_attrs=lambda r: {"data-run": int(r["run"]), "data-number": int(r["number"]), "data-state": r["state"]},
        cell_class=lambda key, r: f"st-{r['state']}" if key == "state" else "")
    return Section("trials", "All trials", body, "Every trial that ran, failed and skipped ones with "
                                                 "their reason. Click a header to sort, a row for details.")


def _settings_sections(v: _SearchView) -> list[Section]:
    """The study as run (with its YAML and space) and the environment it ran in."""
    blocks = []
    for i, r in enumerate(v.runs):
        head = f"<h3>{esc(v.labels[i])}</h3>" if v.multi else ""
        items = list(r.study.items()) or [("study.yaml", "missing from the run folder")]
        blocks.append(head + kv_table(items) + _details("study.yaml as run", _yaml_text(r.path / "study.yaml"))
                      + (_details("space.yaml (search space as run)", r.space_text) if r.space_text else ""))
    return [Section("settings", "Study settings", "".join(blocks), "The study as run, from its run folder."),
            Section("environment", "Environment", "".join(_environment(r, v.labels[i], v.multi)
                                                          for i, r in enumerate(v.runs)) + _generator_env(),
                    _LATENCY_LEADS[sum(r.latency_predicted for r in v.runs) and
                                   1 + all(r.latency_predicted for r in v.runs)]
                    + ", which Ray nodes ran the trials, and the software.")]


# the environment's lead by how many runs predicted their latency: none, some, all
_LATENCY_LEADS = ("Where latency was measured", "Where latency was measured or which file predicted it",
                  "Which file predicted latency")


def _search_sections(runs: Sequence[SearchRun], figures: Figures, links_from: Path | None = None,
                     ) -> tuple[list[Section], dict[str, Any]]:
    """The sections of a search report, in page order, and the JSON payload its page script reads."""
    v = _SearchView(runs=runs, figures=figures, labels=run_labels(runs), rows=[trial_rows(r) for r in runs],
                    curves=hypervolume_curves(runs), comparison=compare_fronts(runs), links_from=links_from,
                    labels_of=metric_labels(runs))
    front, sets = _front_section(v)
    progress, importances = _progress_section(v)
    sections = [_overview_runs(v) if v.multi else _overview_run(v), front, _architectures_section(v), progress,
                _dimensions_section(v, importances), _trials_section(v), *_settings_sections(v)]
    initial = None
    for i, s in enumerate(sets):
        if len(s.front):
            initial = [i, int(s.front.sort_values("top1", ascending=False)["number"].iloc[0])]
            break
    data = dict(trials=[_trial_payload(r, v.rows[i]) for i, r in enumerate(runs)], labels=v.labels,
                clickable=[k for k in figures if k.startswith("fig-front") or k == "fig-hv"], initial=initial)
    return [s for s in sections if s is not None], data


def _yaml_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _details(summary: str, text: str) -> str:
    if not text:
        return ""
    return f'<details><summary>{esc(summary)}</summary><pre class="yaml">{esc(text)}</pre></details>'


def _environment(run: SearchRun, label: str, multi: bool) -> str:
    out = [f"<h3>{esc(label)}</h3>" if multi else ""]
    lat = run.study.get("latency") or {}
    if run.latency_predicted:
        out.append("<h3>Latency predictions</h3>" + _latency_line(run)
                   + kv_table((k, v) for k, v in run.latency.items() if k != "source"))
    else:
        out.append("<h3>Latency measurements</h3>")
    if run.latency_env:
        out.append(table_html(list(run.latency_env), [Column(k, k, _num) for k in (
            "device", "device_name", "stack", "threads", "batch", "backend", "img_size", "measurements")],
            sortable=False))
    elif not run.latency_predicted:
        out.append(f'<p class="note">No latency_cache.json; the study measures on {esc(lat or "cpu, batch 1")}.</p>')
    t = run.table
    if "hostname" in t.columns and t["hostname"].notna().any():
        by_host = (t.assign(node=t.get("node_id", "").fillna("").astype(str).str[:12])
                   .groupby(["hostname", "node"], dropna=False)["state"].value_counts().unstack(fill_value=0)
                   .reset_index())
        cols = [Column("hostname", "host"), Column("node", "Ray node id")] + \
               [Column(s, s, _num, "num") for s in by_host.columns if s not in ("hostname", "node")]
        out.append("<h3>Where the trials ran</h3>" + table_html(_records(by_host), cols, sortable=False))
    clusters = run.state.get("ray") or []
    if clusters:
        out.append("<h3>Ray cluster of each session (state.json)</h3>")
        for cluster in clusters if isinstance(clusters, list) else [clusters]:
            if not isinstance(cluster, dict):
                continue
            nodes = cluster.get("nodes")
            out.append(kv_table([(key, _resources(v) if key == "resources" else v)
                                 for key, v in cluster.items() if key != "nodes"]))
            if isinstance(nodes, list) and nodes and all(isinstance(n, dict) for n in nodes):
                keys = list(dict.fromkeys(key for n in nodes for key in n))
                out.append(table_html(nodes, [Column(key, key, _node_cell(key)) for key in keys], sortable=False))
    for key in ("versions", "environment"):
        if isinstance(run.state.get(key), dict):
            out.append(f"<h3>{esc(key)}</h3>" + kv_table(run.state[key].items()))
    rest = [(k, v) for k, v in run.state.items()
            if k not in ("ray", "versions", "environment", "sessions", "latency")]   # latency: shown above
    sessions = run.state.get("sessions") or []
    if rest or sessions:
        out.append("<h3>Run bookkeeping (state.json)</h3>" + kv_table(rest))
        if isinstance(sessions, list) and sessions and all(isinstance(s, dict) for s in sessions):
            keys = list(dict.fromkeys(k for s in sessions for k in s))
            out.append(table_html(sessions, [Column(k, k, _num) for k in keys], sortable=False))
    return "".join(out)


def _resources(value: Any) -> Any:
    """Ray resources as 'CPU 2, GPU 1, memory 12.8 GiB' (byte counts in GiB)."""
    if not isinstance(value, dict):
        return value
    parts = []
    for key, v in value.items():
        if isinstance(v, (int, float)) and "memory" in key:
            parts.append(f"{key} {v / 2**30:.1f} GiB")
        else:
            parts.append(f"{key} {v:g}" if isinstance(v, (int, float)) else f"{key} {v}")
    return ", ".join(parts)


def _node_cell(key: str) -> Callable[[Any], str]:
    """How one field of a Ray node is shown: resources summarised, ids shortened, the rest as text."""
    def show(v: Any) -> str:
        if key == "resources":
            return str(_resources(v))
        if key == "node_id" and isinstance(v, str) and len(v) > 16:
            return v[:16] + "\u2026"
        return _num(v) if not isinstance(v, (dict, list)) else json.dumps(v, default=str)
    return show


def _generator_env() -> str:
    from importlib.metadata import PackageNotFoundError, version

    import plotly
    try:
        archlab_version = version("archlab")
    except PackageNotFoundError:  # running from a source tree that was never installed
        archlab_version = "source tree"
    versions = [("archlab", archlab_version), ("python", platform.python_version()), ("plotly", plotly.__version__)]
    for mod in ("optuna", "pandas"):
        try:
            versions.append((mod, __import__(mod).__version__))
        except ImportError:
            pass
    return "<h3>This report was written with</h3>" + kv_table(versions)


# --- ablation reports -----------------------------------------------------------------------------------

@dataclass
class _AblationView:
    """What every section of one ablation run's report reads."""
    run: AblationRun
    prefix: str
    tag: str
    figures: Figures

    @property
    def doc(self) -> dict[str, Any]:
        return self.run.doc

    @property
    def setting(self) -> dict[str, Any]:
        return self.run.doc.get("setting") or {}

    @property
    def agreement(self) -> dict[str, Any]:
        return self.run.doc.get("agreement") or {}


def _ablation_overview(v: _AblationView, t: pd.DataFrame) -> Section:
    """Cards: rows, seeds, the proxy, rank and direction agreement, training time; the verdict above them."""
    doc, setting, ag, tag, prefix = v.doc, v.setting, v.agreement, v.tag, v.prefix
    seeds = doc.get("seeds") or []
    cards = [("rows", str(len(t)), f"{int((t['kind'] == 'branch').sum())} side branches" if len(t) else ""),
             ("seeds", str(len(seeds)), ", ".join(map(str, seeds))),
             ("proxy", f"{setting.get('dataset', '?')} {setting.get('img_size', '')} px",
              f"width x{setting.get('width', 1):g}, depth x{setting.get('depth', 1):g}" if setting else "")]
    if ag.get("spearman") is not None:
        cards.append(("Spearman rho", f"{ag['spearman']:+.2f}", f"p = {ag.get('spearman_p', float('nan')):.2g}, "
                                                                 f"{ag.get('n_ranked', 0)} rows"))
    if ag.get("direction_total"):
        cards.append(("direction agrees", f"{ag['direction_agree']} / {ag['direction_total']}",
                      f"{ag.get('agree_beyond_noise', 0)} beyond 2 SE of seed noise"))
    if doc.get("train_wall_s"):
        cards.append(("training time", f"{doc['train_wall_s'] / 60:.1f} min", "summed over (row, seed)"))
    verdict = doc.get("verdict") or ""
    body = (_chance_verdict(ablation_chance(v.run)) + (f'<div class="verdict">{esc(verdict)}</div>' if verdict
                                                       else "") + cards_html(cards))
    if doc.get("source"):
        body += f'<p class="note">Paper figures: {esc(doc["source"])}</p>'
    if not doc.get("trained"):
        body += '<p class="note">Not trained (--no-train, or no results yet): proxy top-1 and the agreement need ' \
                'training.</p>'
    return Section(f"{prefix}overview", f"Overview{tag}", body, str(doc.get("title") or v.run.name))


def _ablation_ladder_and_cost(v: _AblationView) -> list[Section]:
    """Top-1 per step beside the paper, then MACs and latency per step."""
    setting, tag, prefix, figures = v.setting, v.tag, v.prefix, v.figures
    run = v.run
    sections = []
    top1 = figures.add(f"{prefix}fig-top1", ablation_top1_figure(run), "top-1 per step: proxy beside the paper",
                       "Adopted rows are joined in order; side branches (dotted, hollow diamonds) hang off the row "
                       "they were measured against and are not adopted. Error bars: one standard deviation over "
                       "seeds (paper: as published); small dots: single seeds.")
    sections.append(Section(f"{prefix}ladder", f"The ladder{tag}", top1,
                            "Each row is one change applied to the last adopted row. Left axis: proxy top-1 trained "
                            "here; right axis: the paper's ImageNet top-1."))

    lat_note = str(setting.get("latency") or "")
    device = setting.get("device_name") or setting.get("device") or ""
    macs = figures.add(f"{prefix}fig-macs", ablation_macs_figure(run), "GMACs per step (full size) vs paper",
                       "Analytic multiply-accumulates of each full-size network; the paper's 'GFLOPs' count the "
                       "same. * a published figure with a note (hover).")
    latency = figures.add(f"{prefix}fig-latency", ablation_latency_figure(run), "latency per step (proxy network)",
                          f"{lat_note} [{device}]".strip())
    sections.append(Section(f"{prefix}cost", f"Cost{tag}", f'<div class="grid2">{macs}{latency}</div>',
                            "Hatched bars: side branches."))
    return sections


def _ablation_agreement(v: _AblationView) -> Section:
    """Proxy against paper: the scatter, the per-change deltas and the agreement statistics."""
    ag, tag, prefix, figures = v.agreement, v.tag, v.prefix, v.figures
    run = v.run
    disagree = ag.get("disagree") or []
    scatter = figures.add(f"{prefix}fig-agree", agreement_figure(run), "proxy vs paper top-1, one point per row",
                          "Labels are step numbers (see the table below). Rank agreement: rows further right in the "
                          "paper should sit higher here.")
    deltas = figures.add(f"{prefix}fig-deltas", deltas_figure(run), "each change: paper vs proxy",
                         "Green: same direction as the paper; red: opposite; grey: the paper did not change or no "
                         "proxy result. Faded: the proxy change is within 2 SE of seed noise.")
    body = f'<div class="grid2">{scatter}{deltas}</div>'
    body += kv_table([("Spearman rank correlation", "-" if ag.get("spearman") is None else f"{ag['spearman']:+.3f}"),
                      ("p value", "-" if ag.get("spearman_p") is None else f"{ag['spearman_p']:.3g}"),
                      ("rows ranked", ag.get("n_ranked", 0)),
                      ("changes in the paper's direction", f"{ag.get('direction_agree', 0)} of "
                                                           f"{ag.get('direction_total', 0)}"),
                      ("... of them beyond 2 SE of seed noise", ag.get("agree_beyond_noise", 0)),
                      ("proxy changes within seed noise", ag.get("within_noise", 0)),
                      ("opposite direction", ", ".join(map(str, disagree)) or "none")])
    return (Section(f"{prefix}agreement", f"Agreement{tag}", body,
                            "How far the cheap proxy tracks the paper, over the rows that have both top-1s."))



def _direction_text(value: Any) -> str:
    return {"agree": "agrees", "disagree": "opposite", "paper_flat": "paper flat"}.get(value, value or "")


def _ablation_steps(v: _AblationView, t: pd.DataFrame) -> Section:
    """Every step in one table: costs, latency, top-1s with their noise, and the change against its parent."""
    prefix, tag = v.prefix, v.tag
    cols = [Column("index", "#", _num, "num"), Column("step", "step"), Column("kind", "kind"),
            Column("parent", "compared with"), Column("recipe", "recipe"),
            Column("budget_images", "images / seed", lambda v: format_count(v), "num"),
            Column("params", "params", format_count, "num"),
            Column("gmacs", "GMACs", lambda v: f"{v:.3f}", "num"),
            Column("paper_gflops", "paper GFLOPs", lambda v: f"{v:.2f}", "num"),
            Column("macs_vs_paper", "vs paper", lambda v: f"{round(100 * v, 1) + 0.0:+.1f}%", "num"),
            Column("latency_ms", "latency ms", _ms, "num"),
            Column("paper_top1", "paper top-1", _pct, "num"), Column("paper_top1_std", "\u00b1", _pct, "num"),
            Column("top1_mean", "proxy top-1", _pct, "num"), Column("top1_std", "\u00b1 std", _pct, "num"),
            Column("n_seeds", "seeds", _num, "num"), Column("delta", "\u0394 proxy", _signed, "num"),
            Column("delta_se", "\u00b1 SE", _pct, "num"), Column("paper_delta", "\u0394 paper", _signed, "num"),
            Column("direction", "direction", _direction_text),
            Column("within_noise", "within noise", lambda v: "yes" if v else "no"),
            Column("ceiling", "ceiling removed", str, "wrap"), Column("note", "note", str, "wrap"),
            Column("gflops_note", "GFLOPs note", str, "wrap")]
    # optional text columns only where some row has one (the history ladder's ceilings, the paper's notes)
    cols = [c for c in cols if c.key not in ("ceiling", "note", "gflops_note") or (t[c.key] != "").any()]
    body = table_html(_records(t), cols, row_attrs=lambda r: {"class": r["kind"]},
                      cell_class=lambda k, r: f"dir-{r['direction']}" if k == "direction" else "")
    return (Section(f"{prefix}steps", f"Every step{tag}", body,
                            "\u0394: change from the row in 'compared with' (the last adopted row); SE: standard "
                            "error over seeds; 'within noise': |\u0394| < 2 SE."))



def _ablation_setting(v: _AblationView) -> Section:
    """How the rows were reduced, trained and timed, with the ladder file as run."""
    doc, setting, tag, prefix = v.doc, v.setting, v.tag, v.prefix
    run = v.run
    items = [(k, v) for k, v in setting.items()]
    items += [(k, doc[k]) for k in ("base", "ladder_file", "seeds", "wall_s") if k in doc]
    body = kv_table(items) + _details("the ladder file as run (ladder.yaml)", run.ladder_text)
    if run.ladder_text:
        import base64
        href = "data:application/x-yaml;base64," + base64.b64encode(run.ladder_text.encode()).decode()
        body += (f'<p><a href="{esc(href)}" download="{esc(_safe_name(run.name))}-ladder.yaml">'
                 'Download the ladder file</a></p>')
    return (Section(f"{prefix}setting", f"Setting{tag}", body,
                            "How every row was reduced, trained and timed here."))


def _ablation_budget_sweep(v: _AblationView) -> list[Section]:
    """Agreement vs budget, when this run is one budget of a sweep: one point per budget, per-row top-1 lines
    per budget, and which changes move toward the paper as the budget grows."""
    sweep = v.run.sweep
    if not sweep:
        return []
    pts = sweep_points(sweep)
    rows = [{"budget": f"x{r.label}", "spearman": r.spearman, "p": r.spearman_p,
             "direction": f"{r.direction_agree} / {r.direction_total}",
             "beyond": f"{r.beyond_noise} / {r.direction_total}",
             "train": None if r.train_wall_s is None else r.train_wall_s / 60} for r in pts.itertuples()]
    cols = [Column("budget", "budget"), Column("spearman", "Spearman rho", _signed, "num"),
            Column("p", "p", lambda x: f"{x:.2g}", "num"), Column("direction", "direction agrees", str, "num"),
            Column("beyond", "changes beyond 2 SE", str, "num"),
            Column("train", "training min", lambda x: f"{x:.1f}", "num")]
    agree = v.figures.add(f"{v.prefix}fig-budget", ablation_budget_figure(v.run), "agreement vs budget",
                          "Spearman rank correlation of proxy vs paper top-1 (left) and the share of changes in "
                          "the paper's direction (right), one point per budget.")
    lines = v.figures.add(f"{v.prefix}fig-budget-top1", ablation_budget_top1_figure(v.run),
                          "proxy top-1 per row at each budget",
                          "One line per budget (error bars: one std over seeds); diamonds: the paper's top-1.")
    first, last = (pts["label"].iloc[0], pts["label"].iloc[-1]) if len(pts) else ("?", "?")

    def names(key: str) -> str:
        return ", ".join(map(str, sweep.get(key) or [])) or "none"
    honesty = kv_table([(f"moves toward the paper from x{first} to x{last}", names("toward")),
                        ("does not (the gap stays or grows)", names("not_toward")),
                        ("cannot be resolved (within 2 SE at every budget)", names("unresolved")),
                        ("contradicted beyond 2 SE at every budget", names("contradicts"))])
    body = table_html(rows, cols) + f'<div class="grid2">{agree}{lines}</div>' + honesty
    return [Section(f"{v.prefix}budget", f"Agreement vs budget{v.tag}", body,
                    "The same ladder replayed at several multiples of its proxy budget (this page is one of "
                    "them); agreement is a finding at each budget, not a target.")]


def _ablation_sections(run: AblationRun, prefix: str, multi: bool, figures: Figures) -> list[Section]:
    """The sections of one ablation run's report, in page order."""
    v = _AblationView(run=run, prefix=prefix, tag=f" \u00b7 {run.name}" if multi else "", figures=figures)
    t = ablation_table(run.steps)
    return [_ablation_overview(v, t), *_ablation_ladder_and_cost(v), _ablation_agreement(v),
            *_ablation_budget_sweep(v), _ablation_steps(v, t), _ablation_setting(v)]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_")[:80] or "report"


# --- the report -----------------------------------------------------------------------------------------

def build_report(run_dirs: Sequence[str | Path], *, links_from: Path | None = None) -> Report:
    """Read the run folders and lay out the page: searches overlaid in one set of sections, ablations after.

    `links_from` is the folder the report will be written to: links to run files (kept weights) are made
    relative to it; without it they are absolute paths.
    """
    if not run_dirs:
        raise ArchlabError("report: name at least one run folder")
    runs = [load_run(Path(d)) for d in run_dirs]
    searches = [r for r in runs if isinstance(r, SearchRun)]
    ablations = [r for r in runs if isinstance(r, AblationRun)]
    sections: list[Section] = []
    figures = Figures()
    data: dict[str, Any] = {}
    if searches:
        s, data = _search_sections(searches, figures, links_from)
        sections += s
    for k, ab in enumerate(ablations):
        prefix = f"ab{k}-" if searches or len(ablations) > 1 else ""
        sections += _ablation_sections(ab, prefix, bool(searches) or len(ablations) > 1, figures)
    names = [r.name for r in runs]
    if len(runs) == 1:
        kind = "search" if searches else "ablation"
        title = f"{names[0]} · {kind} report"
        first = runs[0]
        subtitle = str(first.study.get("description") or "") if isinstance(first, SearchRun) else \
            str(first.doc.get("title") or "")
    else:
        title = " vs ".join(dict.fromkeys(names)) if len(set(names)) > 1 else f"{names[0]}: {len(runs)} runs compared"
        subtitle = "Runs overlaid: " + ", ".join(run_labels(searches)) if searches else ""
    meta = ["runs: " + ", ".join(str(Path(d)) for d in run_dirs),
            "written " + time.strftime("%Y-%m-%d %H:%M")]
    doc = ReportDoc(title=title, subtitle=subtitle, meta=meta, sections=sections,
                    figures={k: f.to_plotly_json() for k, f in figures.items()}, data=data)
    return Report(doc=doc, figures=figures, name=report_name(run_dirs))


def report_name(run_dirs: Sequence[str | Path]) -> str:
    """The report's default file stem: the run folders' names (reports/<name>.html)."""
    name = "_vs_".join(dict.fromkeys(_run_label(Path(d).resolve()) for d in run_dirs))
    if len(name) > 120:
        name = f"{_run_label(Path(run_dirs[0]).resolve())}_and_{len(run_dirs) - 1}_more"
    return _safe_name(name)


def _run_label(run_dir: Path) -> str:
    """A run folder's name; one budget of a sweep (SWEEP/budget-M/) is named with its sweep, since every sweep
    has a budget-1 and their reports would overwrite one another."""
    if run_dir.name.startswith("budget-") and (run_dir.parent / "sweep.json").is_file():
        return f"{run_dir.parent.name}_{run_dir.name}"
    return run_dir.name


def default_out(report_name: str) -> Path:
    """reports/<run name>.html under the current directory (or under $ARCHLAB_REPORTS_DIR when set)."""
    return Path(os.environ.get(REPORTS_ENV) or REPORTS_DIR) / f"{report_name}.html"


def export_static(figures: Figures, folder: Path, *, formats: Sequence[str] = ("png", "svg"),
                  log: Log | None = None) -> list[Path]:
    """A PNG and an SVG of every figure via kaleido (which drives a local Chrome/Chromium); [] and a note if absent."""
    say = log or (lambda _m: None)
    try:
        import kaleido  # noqa: F401 - plotly's static export engine
        import plotly.graph_objects as go
        import plotly.io as pio
    except ImportError:
        say("static export skipped: kaleido is not installed (pip install kaleido; it needs Chrome or Chromium)")
        return []
    folder.mkdir(parents=True, exist_ok=True)
    figs, files = [], []
    for fid, fig in figures.items():
        titled = go.Figure(fig).update_layout(title=dict(text=esc(figures.titles.get(fid, "")), x=0.01),
                                              margin=dict(t=90))
        for fmt in formats:
            figs.append(titled)
            files.append(folder / f"{fid.removeprefix('fig-')}.{fmt}")
    try:
        pio.write_images(figs, files, width=[1200] * len(figs), height=[None] * len(figs))
    except Exception as err:
        say(f"static export skipped: kaleido could not render ({type(err).__name__}: {err}); it needs Chrome or "
            "Chromium (Debian: apt-get install chromium)")
        return []
    return files


def write_report(run_dirs: Sequence[str | Path], out: str | Path | None = None, *, static: bool = False,
                 log: Log | None = None) -> Path:
    """Write the HTML report of one or more run folders (default reports/<run name>.html); returns its path."""
    from plotly.offline import get_plotlyjs
    if out is not None and Path(out).suffix.lower() not in (".html", ".htm"):
        raise ArchlabError(f"--out {out}: must name an .html file")
    path = Path(out) if out is not None else default_out(report_name(run_dirs))
    report = build_report([Path(d) for d in run_dirs], links_from=path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, render(report.doc, get_plotlyjs()))
    except OSError as err:
        raise ArchlabError(f"{path}: cannot write the report ({err.strerror or err})") from None
    if static:
        files = export_static(report.figures, path.with_name(path.stem + "_figures"), log=log)
        if files and log:
            log(f"static figures: {len(files)} files in {files[0].parent}")
    return path


def write_run_report(run_dir: Path) -> Path | None:
    """The HTML report of the run; a failure here is reported but never loses the finished search."""
    try:
        return write_report([run_dir])
    except Exception as err:
        print(f"archlab: warning: the report could not be written ({type(err).__name__}: {err}); "
              f"try `archlab report {run_dir}`", file=sys.stderr)
        return None
