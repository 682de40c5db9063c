"""Plot functions: the data objects of `archlab.report.data` drawn as plotly figures (no computing here).

Every user string that reaches a figure (study and step names, labels, architecture summaries) is escaped
with `html.escape`, because plotly renders a subset of HTML in trace names, hover text and tick labels and
decodes the entities back for display.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from archlab.core.fmt import format_count
from archlab.report.data import (
    METRIC_LABELS,
    AblationRun,
    HypervolumeCurve,
    Importance,
    ParallelDim,
    ScatterSet,
    SearchRun,
    ablation_table,
    agreement_points,
    axis_type,
    change_deltas,
    ladder_paths,
    sweep_points,
    sweep_top1,
)

__all__ = ["PALETTE", "ablation_budget_figure", "ablation_budget_top1_figure", "ablation_latency_figure",
           "ablation_macs_figure", "ablation_top1_figure",
           "agreement_figure", "deltas_figure", "front_figure", "hypervolume_figure", "importance_figure",
           "parallel_figure"]

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")
PAPER = "#ea580c"
PROXY = "#2563eb"
FONT = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt_metric(metric: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if metric in ("params", "macs"):
        return format_count(float(value))
    if metric in ("top1", "top1_partial"):
        return f"{float(value):.2f}%"
    if metric.endswith("_ms"):
        return f"{float(value):.3g} ms"
    return f"{float(value):.4g}"


def _layout(fig: go.Figure, *, title: str = "", height: int = 440, **kw: Any) -> go.Figure:
    fig.update_layout(template="plotly_white", height=height, font=dict(family=FONT, size=13, color="#1f2937"),
                      title=dict(text=title, x=0.01, font=dict(size=15)) if title else None,
                      margin=dict(l=64, r=24, t=80 if title else 48, b=56), hoverlabel=dict(font_family=FONT),
                      legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0,
                                  font=dict(size=12)), **kw)
    return fig


def _hover(run: SearchRun, label: str, number: int, extra: str = "") -> str:
    """Hover text of one trial: number, run, top-1, latency, size and the architecture in a few lines."""
    parts = [f"<b>trial {number}</b> · {_e(label)}"]
    rows = run.table[run.table["number"] == number]
    if len(rows):
        r = rows.iloc[0]
        latency = _fmt_metric("latency_ms", r["latency_ms"]) if "latency_ms" in r.index else ""
        vals = [f"top-1 {_fmt_metric('top1', r['top1'])}" if "top1" in r.index and r["top1"] == r["top1"] else "",
                f"{latency} (predicted)" if run.latency_predicted and latency not in ("", "-") else latency]
        parts.append(" · ".join(v for v in vals if v and v != "-"))
        parts.append(f"{format_count(r.get('params'))} params · {format_count(r.get('macs'))} MACs")
    if extra:
        parts.append(extra)
    arch = run.archs.get(number)
    if arch and arch.summary:
        stages = arch.summary.split(" > ")
        parts += [_e(" > ".join(stages[i:i + 3])) for i in range(0, len(stages), 3)]
    return "<br>".join(p for p in parts if p)


def front_figure(runs: Sequence[SearchRun], labels: Sequence[str], sets: Sequence[ScatterSet], *,
                 title: str = "", height: int = 480, show_stopped: bool = False,
                 axis_labels: Mapping[str, str] = METRIC_LABELS) -> go.Figure:
    """Top-1 against one cost: each run's 2-D front as a staircase, dominated trials faded; click selects.
    `axis_labels` names the metrics (a predicted latency says so: archlab.report.data.metric_labels)."""
    fig = go.Figure()
    x_metric, y_metric = sets[0].x, sets[0].y
    xs: list[float] = []
    for s in sets:
        run, label, color = runs[s.run], labels[s.run], PALETTE[s.run % len(PALETTE)]
        xs += list(s.front[x_metric]) + list(s.dominated[x_metric])
        if len(s.dominated):
            fig.add_trace(go.Scatter(
                x=s.dominated[x_metric].tolist(), y=s.dominated[y_metric].tolist(), mode="markers",
                name=f"{_e(label)} · dominated",
                legendgroup=f"run{s.run}", marker=dict(color=color, size=8, opacity=0.28, line=dict(width=0)),
                customdata=[[s.run, int(n)] for n in s.dominated["number"]],
                text=[_hover(run, label, int(n)) for n in s.dominated["number"]],
                hovertemplate="%{text}<extra></extra>"))
        if len(s.front):
            fig.add_trace(go.Scatter(
                x=s.front[x_metric].tolist(), y=s.front[y_metric].tolist(), mode="lines+markers",
                name=f"{_e(label)} · front",
                legendgroup=f"run{s.run}", line=dict(color=color, width=2, shape="hv"),
                marker=dict(color=color, size=11, line=dict(color="white", width=1.5)),
                customdata=[[s.run, int(n)] for n in s.front["number"]],
                text=[_hover(run, label, int(n), "<i>on the front</i>") for n in s.front["number"]],
                hovertemplate="%{text}<extra></extra>"))
        if show_stopped and len(s.stopped):
            fig.add_trace(go.Scatter(
                x=s.stopped[x_metric].tolist(), y=s.stopped["top1_partial"].tolist(), mode="markers",
                visible="legendonly",
                name=f"{_e(label)} · stopped early (top-1 at stop, not final)", legendgroup=f"run{s.run}",
                marker=dict(color=color, size=7, symbol="x-thin", line=dict(color=color, width=1.5), opacity=0.6),
                customdata=[[s.run, int(n)] for n in s.stopped["number"]],
                text=[_hover(run, label, int(n), f"stopped early at top-1 {p:.2f}% (not a final value)")
                      for n, p in zip(s.stopped["number"], s.stopped["top1_partial"])],
                hovertemplate="%{text}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="selected", showlegend=False, hoverinfo="skip",
                             meta="selection", marker=dict(size=22, symbol="circle-open", color="#111827",
                                                           line=dict(width=2.5))))
    _layout(fig, title=title, height=height, clickmode="event", hovermode="closest")
    fig.update_xaxes(title=_e(axis_labels.get(x_metric, x_metric)), type=axis_type(xs), zeroline=False)
    fig.update_yaxes(title=_e(axis_labels.get(y_metric, y_metric)), zeroline=False)
    return fig


def hypervolume_figure(curves: Sequence[HypervolumeCurve], labels: Sequence[str], *, title: str = "") -> go.Figure:
    """Hypervolume after each completed trial, one line per run (shared reference point per objective set)."""
    fig = go.Figure()
    for c in curves:
        color = PALETTE[c.run % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=list(range(1, len(c.hypervolume) + 1)), y=c.hypervolume, mode="lines+markers",
            name=_e(labels[c.run]), line=dict(color=color, width=2, shape="hv"), marker=dict(size=5, color=color),
            customdata=[[c.run, n] for n in c.numbers],
            hovertemplate=f"<b>{_e(labels[c.run])}</b><br>after %{{x}} completed trials (last: trial "
                          "%{customdata[1]})<br>hypervolume %{y:.4g}<extra></extra>"))
    ref = ""
    if curves:
        ref = "reference point: " + ", ".join(f"{METRIC_LABELS.get(m, m)} {v:.4g}"
                                              for m, v in zip(curves[0].metrics, curves[0].reference))
    _layout(fig, title=title, height=380, hovermode="closest")
    fig.update_xaxes(title="completed trials (completion order)")
    fig.update_yaxes(title="hypervolume", rangemode="tozero")
    if ref:
        fig.add_annotation(text=_e(ref), xref="paper", yref="paper", x=1, y=0.02, xanchor="right", showarrow=False,
                           font=dict(size=11, color="#6b7280"))
    return fig


def importance_figure(importances: Sequence[Importance], labels: Sequence[str], *, title: str = "",
                      top: int = 12, axis_labels: Mapping[str, str] = METRIC_LABELS) -> go.Figure:
    """Horizontal bars of parameter importance (the `top` most important), one panel per objective, one colour
    per run."""
    metrics = list(dict.fromkeys(m for imp in importances for m in imp.values))
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), shared_yaxes=True, horizontal_spacing=0.06)
    params = sorted({p for imp in importances for v in imp.values.values() for p in v},
                    key=lambda p: sum(v.get(p, 0.0) for imp in importances for v in imp.values.values()))[-top:]
    for imp in importances:
        color = PALETTE[imp.run % len(PALETTE)]
        for j, m in enumerate(metrics):
            vals = imp.values.get(m, {})
            fig.add_trace(go.Bar(
                y=[_e(p) for p in params], x=[vals.get(p, 0.0) for p in params], orientation="h",
                name=_e(labels[imp.run]), legendgroup=f"run{imp.run}", showlegend=j == 0 and len(importances) > 1,
                marker_color=color,
                hovertemplate=f"{_e(labels[imp.run])}<br>%{{y}}: %{{x:.3f}}<extra>{_e(m)}</extra>"), row=1, col=j + 1)
    _layout(fig, title=title, height=max(300, 110 + 26 * len(params) * max(1, len(importances))),
            barmode="group", bargap=0.25)
    for j, m in enumerate(metrics):
        fig.update_xaxes(title=_e(f"importance for {axis_labels.get(m, m)}"), range=[0, 1], row=1, col=j + 1)
    return fig


def parallel_figure(dims: Sequence[ParallelDim], numbers: Sequence[int], *, color_by: str = "top-1 (%)",
                    title: str = "") -> go.Figure:
    """Parallel coordinates over the search dimensions and the objectives, coloured by top-1."""
    color = next((d.values for d in dims if d.label == color_by), dims[-1].values if dims else ())
    formats = {"parameters": "~s", "MACs": "~s", "top-1 (%)": ".1f", "latency (ms)": ".3~g"}
    pdims = []
    for d in dims:
        spec: dict[str, Any] = dict(label=_e(d.label), values=list(d.values))
        if d.ticktext:
            # parcoords draws tick labels as plain text (d3 .text()), unlike its axis labels: escaping here would
            # show "&lt;"; raw strings are safe (the browser test checks an injected value stays text)
            spec.update(tickvals=list(range(len(d.ticktext))), ticktext=list(d.ticktext),
                        range=[-0.25, len(d.ticktext) - 0.75])
        elif d.ticks:
            pad = 0.04 * ((d.ticks[-1] - d.ticks[0]) or 1.0)
            spec.update(tickvals=list(d.ticks), ticktext=[f"{v:g}" for v in d.ticks],
                        range=[d.ticks[0] - pad, d.ticks[-1] + pad])
        else:
            spec.update(tickformat=formats.get(d.label, ".3~g"))
        pdims.append(spec)
    fig = go.Figure(go.Parcoords(dimensions=pdims, line=dict(color=list(color), colorscale="Viridis",
                                                             showscale=True, colorbar=dict(title=_e(color_by))),
                                 labelangle=0 if len(dims) <= 10 else -20, labelside="top",
                                 rangefont=dict(size=10, color="#6b7280"), tickfont=dict(size=11)))
    _layout(fig, title=title, height=440)
    fig.update_layout(margin=dict(l=50, r=30, t=90 if title else 64, b=36))
    return fig


# --- ablation ----------------------------------------------------------------------------------------------

def _ticks(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return dict(tickmode="array", tickvals=[int(s["index"]) for s in steps],
                ticktext=[_e(s["step"]) for s in steps], tickangle=-35)


def _branch_xy(paths: Any, values: Mapping[int, float | None]) -> tuple[list, list]:
    xs: list[Any] = []
    ys: list[Any] = []
    for parent, child in paths.branches:
        if values.get(parent) is not None and values.get(child) is not None:
            xs += [parent, child, None]
            ys += [values[parent], values[child], None]
    return xs, ys


def ablation_top1_figure(run: AblationRun, *, title: str = "") -> go.Figure:
    """The ladder: proxy top-1 (mean +- std, seeds as dots) beside the paper's top-1; side branches hang off."""
    steps = run.steps
    t = ablation_table(steps).set_index("index")
    paths = ladder_paths(steps)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    names = {int(s["index"]): _e(s["step"]) for s in steps}
    trained = t["top1_mean"].notna().any()
    for col, std, color, label, secondary in (("top1_mean", "top1_std", PROXY, "proxy top-1", False),
                                              ("paper_top1", "paper_top1_std", PAPER, "paper top-1", True)):
        if not t[col].notna().any():
            continue
        values = {i: (None if np.isnan(v) else float(v)) for i, v in t[col].items()}
        main = [i for i in paths.main if values.get(i) is not None]
        # a column with no std at all (a paper without per-row std) holds None, not NaN
        err = [float(v) if v is not None and v == v else 0.0 for v in (t.at[i, std] for i in main)]
        dash = "solid" if not secondary else "dash"
        fig.add_trace(go.Scatter(
            x=main, y=[values[i] for i in main], mode="lines+markers", name=label + " (adopted rows)",
            line=dict(color=color, width=2.5, dash=dash), marker=dict(size=9, color=color),
            error_y=dict(type="data", array=err, visible=True, thickness=1.2, width=4, color=color),
            text=[names[i] for i in main],
            hovertemplate=f"<b>%{{text}}</b><br>{label} %{{y:.2f}}% ± %{{error_y.array:.2f}}<extra></extra>"),
            secondary_y=secondary)
        bx, by = _branch_xy(paths, values)
        if bx:
            fig.add_trace(go.Scatter(
                x=bx, y=by, mode="lines+markers", name=label + " (side branches)",
                line=dict(color=color, width=1.5, dash="dot"),
                marker=dict(size=[0 if k % 3 == 0 else 10 for k in range(len(bx))], color="white",
                            symbol="diamond", line=dict(color=color, width=2)),
                text=[names.get(x, "") if x is not None else "" for x in bx],
                hovertemplate=f"<b>%{{text}}</b> (side branch)<br>{label} %{{y:.2f}}%<extra></extra>"),
                secondary_y=secondary)
    seeds_x, seeds_y, seeds_t = [], [], []
    for s in steps:
        for k, v in enumerate(s.get("top1_seeds") or []):
            seeds_x.append(int(s["index"]) + (k - 1) * 0.08)
            seeds_y.append(float(v))
            seeds_t.append(names[int(s["index"])])
    if seeds_x:
        fig.add_trace(go.Scatter(x=seeds_x, y=seeds_y, mode="markers", name="proxy top-1, each seed",
                                 marker=dict(size=5, color=PROXY, opacity=0.35), text=seeds_t,
                                 hovertemplate="<b>%{text}</b><br>one seed: %{y:.2f}%<extra></extra>"),
                      secondary_y=False)
    _layout(fig, title=title, height=480, hovermode="closest")
    fig.update_xaxes(**_ticks(steps))
    fig.update_yaxes(title_text="proxy top-1 (%)", color=PROXY, secondary_y=False, showgrid=True)
    fig.update_yaxes(title_text="paper top-1 (%)", color=PAPER, secondary_y=True, showgrid=False)
    if not trained:
        fig.add_annotation(text="not trained yet: proxy top-1 needs `archlab ablate` without --no-train",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                           font=dict(size=13, color="#6b7280"))
    return fig


def _kind_colors(steps: Sequence[Mapping[str, Any]], color: str) -> dict[str, Any]:
    branch = [s.get("kind") == "branch" for s in steps]
    return dict(color=[("rgba(0,0,0,0)" if b else color) for b in branch],
                line=dict(color=color, width=[2 if b else 0 for b in branch]),
                pattern=dict(shape=["/" if b else "" for b in branch], fgcolor=color, size=6))


def ablation_macs_figure(run: AblationRun, *, title: str = "") -> go.Figure:
    """GMACs of each full-size row beside the paper's GFLOPs (multiply-accumulates); branches hatched."""
    steps = run.steps
    t = ablation_table(steps)
    fig = go.Figure()
    idx = list(t["index"])
    notes = [f"<br>{_e(n)}" if n else "" for n in t["gflops_note"]]
    vs = [f"{100 * v:+.1f}% vs paper" if v == v and v is not None else "no published figure"
          for v in t["macs_vs_paper"]]
    fig.add_trace(go.Bar(x=idx, y=t["gmacs"], name="archlab (analytic, full size at 224)",
                         marker=_kind_colors(steps, PROXY), text=[_e(s) for s in t["step"]], textposition="none",
                         customdata=[[v, n] for v, n in zip(vs, notes)],
                         hovertemplate="<b>%{text}</b><br>%{y:.3f} GMACs, %{customdata[0]}%{customdata[1]}"
                                       "<extra></extra>"))
    if t["paper_gflops"].notna().any():
        fig.add_trace(go.Bar(x=idx, y=t["paper_gflops"], name="paper GFLOPs (= GMACs)",
                             marker=_kind_colors(steps, PAPER), text=[_e(s) for s in t["step"]],
                             textposition="none",
                             customdata=notes, hovertemplate="<b>%{text}</b><br>paper %{y:.2f} GFLOPs%{customdata}"
                                                             "<extra></extra>"))
    flagged = t[t["gflops_note"] != ""]
    for _, r in flagged.iterrows():
        top = max(v for v in (r["gmacs"], r["paper_gflops"]) if v is not None and v == v)
        fig.add_annotation(x=r["index"], y=top, text="*", showarrow=False, yshift=10, font=dict(size=16))
    _layout(fig, title=title, height=400, barmode="group", bargap=0.25, hovermode="closest")
    fig.update_xaxes(**_ticks(steps))
    fig.update_yaxes(title="GMACs")
    return fig


def ablation_latency_figure(run: AblationRun, *, title: str = "") -> go.Figure:
    """Measured latency of each row's proxy-size network (median, bar to p90); branches hatched."""
    steps = run.steps
    t = ablation_table(steps)
    fig = go.Figure()
    up = [(p - m) if (p == p and m == m and p is not None and m is not None) else 0.0
          for p, m in zip(t["latency_p90_ms"], t["latency_ms"])]
    fig.add_trace(go.Bar(x=list(t["index"]), y=t["latency_ms"], name="median latency (proxy network)",
                         marker=_kind_colors(steps, "#0f766e"), text=[_e(s) for s in t["step"]], textposition="none",
                         error_y=dict(type="data", symmetric=False, array=up, arrayminus=[0.0] * len(up),
                                      thickness=1.2, width=4, color="#374151"),
                         hovertemplate="<b>%{text}</b><br>median %{y:.3g} ms (bar to p90)<extra></extra>"))
    _layout(fig, title=title, height=400, showlegend=False, hovermode="closest")
    fig.update_xaxes(**_ticks(steps))
    fig.update_yaxes(title="latency (ms)", rangemode="tozero")
    return fig


def ablation_budget_figure(run: AblationRun, *, title: str = "") -> go.Figure:
    """Agreement vs budget: Spearman rho (with its p in the hover) and the share of changes in the paper's
    direction, one point per budget of the sweep this run belongs to."""
    pts = sweep_points(run.sweep or {})
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if len(pts):
        share = [a / t if t else None for a, t in zip(pts["direction_agree"], pts["direction_total"])]
        p_text = ["-" if p != p or p is None else f"{p:.2g}" for p in pts["spearman_p"]]
        fig.add_trace(go.Scatter(
            x=list(pts["multiplier"]), y=list(pts["spearman"]), mode="lines+markers", name="Spearman rho",
            line=dict(color=PROXY, width=2.5), customdata=p_text,
            hovertemplate="budget x%{x:g}<br>rho %{y:+.2f} (p = %{customdata})<extra></extra>"), secondary_y=False)
        fig.add_trace(go.Scatter(
            x=list(pts["multiplier"]), y=share, mode="lines+markers", name="changes in the paper's direction",
            line=dict(color=PAPER, width=2, dash="dash"),
            hovertemplate="budget x%{x:g}<br>%{y:.0%} of changes agree<extra></extra>"), secondary_y=True)
    _layout(fig, title=title, height=380, hovermode="closest")
    fig.update_xaxes(title="budget (multiple of the ladder's)", type="log")
    fig.update_yaxes(title="Spearman rho", range=[-1.05, 1.05], secondary_y=False)
    fig.update_yaxes(title="share of changes agreeing", range=[0, 1.05], tickformat=".0%", secondary_y=True)
    return fig


def ablation_budget_top1_figure(run: AblationRun, *, title: str = "") -> go.Figure:
    """Per-row proxy top-1 at each budget of the sweep, one line per budget, the paper's top-1 beside them."""
    t = sweep_top1(run.sweep or {})
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    steps = run.steps
    for k, (label, part) in enumerate(t.groupby("label", sort=False) if len(t) else []):
        part = part.sort_values("order")
        fig.add_trace(go.Scatter(
            x=list(part["order"]), y=list(part["top1_mean"]), mode="lines+markers", name=f"proxy, budget x{label}",
            line=dict(color=PALETTE[(k + 2) % len(PALETTE)], width=2), text=[_e(s) for s in part["step"]],
            error_y=dict(type="data", array=[v if v == v else 0.0 for v in part["top1_std"]], visible=True,
                         thickness=1, width=3),
            hovertemplate="<b>%{text}</b><br>%{y:.2f}%<extra>budget x" + _e(label) + "</extra>"), secondary_y=False)
    paper = ablation_table(steps)
    if len(paper) and paper["paper_top1"].notna().any():
        fig.add_trace(go.Scatter(x=list(paper["index"]), y=list(paper["paper_top1"]), mode="markers",
                                 name="paper top-1", marker=dict(color=PAPER, symbol="diamond", size=9)),
                      secondary_y=True)
    _layout(fig, title=title, height=440, hovermode="closest")
    fig.update_xaxes(**_ticks(steps))
    fig.update_yaxes(title="proxy top-1 (%)", secondary_y=False)
    fig.update_yaxes(title="paper top-1 (%)", secondary_y=True)
    return fig


def agreement_figure(run: AblationRun, *, title: str = "") -> go.Figure:
    """Proxy top-1 against the paper's, one point per row: the rank agreement the Spearman figure measures."""
    pts = agreement_points(run.steps)
    fig = go.Figure()
    if len(pts):
        colors = [PAPER if k == "branch" else PROXY for k in pts["kind"]]
        fig.add_trace(go.Scatter(
            x=pts["paper_top1"], y=pts["top1_mean"], mode="markers+text", text=[str(i) for i in pts["index"]],
            hovertext=[_e(s) for s in pts["step"]], textposition="top center", textfont=dict(size=10, color="#4b5563"),
            marker=dict(size=10, color=colors, symbol=["diamond" if k == "branch" else "circle"
                                                       for k in pts["kind"]]),
            error_y=dict(type="data", array=[v if v == v and v is not None else 0.0 for v in pts["top1_std"]],
                         thickness=1, width=3, color="#9ca3af"),
            hovertemplate="<b>%{text} %{hovertext}</b><br>paper %{x:.2f}% · proxy %{y:.2f}%<extra></extra>",
            showlegend=False))
    else:
        fig.add_annotation(text="no row has both a paper and a proxy top-1 yet", xref="paper", yref="paper",
                           x=0.5, y=0.5, showarrow=False, font=dict(size=13, color="#6b7280"))
    _layout(fig, title=title, height=400, hovermode="closest")
    fig.update_xaxes(title="paper top-1 (%)")
    fig.update_yaxes(title="proxy top-1 (%)")
    return fig


def deltas_figure(run: AblationRun, *, title: str = "") -> go.Figure:
    """Each change's effect on top-1, the paper's beside the proxy's (+- 2 SE); green agrees, red opposes."""
    d = change_deltas(run.steps)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("paper: change in top-1 (points)", "proxy: change in top-1 (+- 2 SE)"))
    if len(d):
        names = [f"{int(i)} {_e(s)}" for i, s in zip(d["index"], d["step"])]
        colors = [{"agree": "#16a34a", "disagree": "#dc2626"}.get(v, "#9ca3af") for v in d["direction"]]
        faded = [0.45 if n else 1.0 for n in d["within_noise"].fillna(False)]
        fig.add_trace(go.Bar(y=names, x=d["paper_delta"], orientation="h", marker=dict(color=colors),
                             name="paper", hovertemplate="%{y}<br>paper %{x:+.2f}<extra></extra>"), row=1, col=1)
        se = [2 * v if v == v and v is not None else 0.0 for v in d["delta_se"]]
        fig.add_trace(go.Bar(y=names, x=d["delta"], orientation="h", marker=dict(color=colors, opacity=faded),
                             error_x=dict(type="data", array=se, thickness=1.2, width=3, color="#374151"),
                             name="proxy", hovertemplate="%{y}<br>proxy %{x:+.2f} ± %{error_x.array:.2f}"
                                                         "<extra></extra>"), row=1, col=2)
    _layout(fig, title=title, height=max(320, 90 + 24 * len(d)), showlegend=False, hovermode="closest")
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11))
    fig.update_xaxes(zeroline=True, zerolinecolor="#6b7280", zerolinewidth=1.5)
    fig.update_annotations(font=dict(size=12))
    return fig
