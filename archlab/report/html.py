"""The HTML writer: one self-contained page (plotly.js inlined once, no CDN, works offline from file://).

Escaping rules, applied here and nowhere else: text and attributes go through `html.escape`; data for the
page's script travels in one `<script type="application/json">` block whose `<`, `>` and `&` are written as
\\u003c, \\u003e, \\u0026 (so `</script>` or `<!--` inside a study name cannot end or comment out the block, and
`</` never appears in it); the script builds the detail panel with `textContent`, never `innerHTML`.
"""
from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Column", "ReportDoc", "Section", "cards_html", "esc", "figure_div", "json_script", "kv_table",
           "render", "table_html"]


def esc(text: Any) -> str:
    """HTML-escape any value for text or a quoted attribute."""
    return html.escape("" if text is None else str(text), quote=True)


def json_script(data: Any, *, element_id: str) -> str:
    """A JSON data block that no string inside it can break out of (Django's json_script rule)."""
    from plotly.utils import PlotlyJSONEncoder  # numpy arrays, NaN -> null, plotly objects
    text = json.dumps(data, cls=PlotlyJSONEncoder, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


@dataclass(frozen=True)
class Column:
    """One table column: the key in each row, its header, how a value is shown, its CSS class."""

    key: str
    label: str
    fmt: Callable[[Any], str] = lambda v: "" if v is None else str(v)
    cls: str = ""
    title: str = ""                  # header tooltip
    link: Callable[[Mapping[str, Any]], str | None] | None = None   # a row's href for the cell (escaped), if any


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def table_html(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *, table_id: str = "",
               sortable: bool = True, row_attrs: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
               cell_class: Callable[[str, Mapping[str, Any]], str] | None = None) -> str:
    """An escaped HTML table; sortable tables carry each cell's raw value in data-v for the sorter."""
    head = "".join(f'<th class="{esc(c.cls)}" title="{esc(c.title)}">{esc(c.label)}</th>' for c in columns)
    body = []
    for row in rows:
        attrs = row_attrs(row) if row_attrs else {}
        attr_text = "".join(f' {esc(k)}="{esc(v)}"' for k, v in attrs.items())
        cells = []
        for c in columns:
            value = row.get(c.key)
            shown = "" if _missing(value) else c.fmt(value)
            sort_value = "" if _missing(value) else (value if isinstance(value, (int, float)) else str(value))
            extra = cell_class(c.key, row) if cell_class else ""
            href = c.link(row) if c.link and shown else None
            text = f'<a href="{esc(href)}">{esc(shown)}</a>' if href else esc(shown)
            cells.append(f'<td class="{esc(" ".join(filter(None, (c.cls, extra))))}" data-v="{esc(sort_value)}">'
                         f'{text}</td>')
        body.append(f"<tr{attr_text}>{''.join(cells)}</tr>")
    cls = "data sortable" if sortable else "data"
    tid = f' id="{esc(table_id)}"' if table_id else ""
    return (f'<div class="table-wrap"><table class="{cls}"{tid}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def kv_table(items: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table; dict and list values are shown as compact JSON."""
    rows = []
    for key, value in items:
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, default=str)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        rows.append(f"<tr><th>{esc(key)}</th><td>{esc(value)}</td></tr>")
    return f'<table class="kv">{"".join(rows)}</table>'


def cards_html(cards: Iterable[tuple[str, str, str]]) -> str:
    """A row of figure cards: (label, big value, small note)."""
    out = [f'<div class="card"><div class="card-label">{esc(label)}</div><div class="card-value">{esc(value)}'
           f'</div><div class="card-note">{esc(note)}</div></div>' for label, value, note in cards]
    return f'<div class="cards">{"".join(out)}</div>'


def figure_div(fig_id: str, caption: str = "", *, title: str = "", cls: str = "") -> str:
    """The placeholder a figure is drawn into, with an escaped title above and caption below."""
    head = f'<h3 class="fig-title">{esc(title)}</h3>' if title else ""
    cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
    return f'<figure class="fig {esc(cls)}">{head}<div class="plot" id="{esc(fig_id)}"></div>{cap}</figure>'


@dataclass(frozen=True)
class Section:
    """A titled part of the page; `body` is HTML already built from the escaping helpers above."""

    id: str
    title: str
    body: str
    lead: str = ""                   # one plain-text sentence under the title (escaped here)


@dataclass(frozen=True)
class ReportDoc:
    """Everything the page shows: sections, figures (plotly JSON by div id) and the data its script reads."""

    title: str
    subtitle: str
    meta: Sequence[str]
    sections: Sequence[Section]
    figures: Mapping[str, Any]       # div id -> plotly figure as a dict
    data: Mapping[str, Any] = field(default_factory=dict)   # trials for the detail panel, click targets


def render(doc: ReportDoc, plotly_js: str) -> str:
    """The whole page as one string."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in doc.sections)
    body = "".join(
        f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>'
        + (f'<p class="lead">{esc(s.lead)}</p>' if s.lead else "") + s.body + "</section>"
        for s in doc.sections)
    meta = " · ".join(esc(m) for m in doc.meta)
    payload = dict(doc.data, figures=doc.figures)
    if "</script" in plotly_js.lower():  # never true for plotly's bundle; inlining would break the page if it were
        raise ValueError("plotly.js bundle contains '</script'")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="archlab report">
<title>{esc(doc.title)}</title>
<style>{CSS}</style>
<script>{plotly_js}</script>
</head>
<body>
<header class="top"><div class="wrap">
<div class="brand">archlab report</div>
<h1>{esc(doc.title)}</h1>
<p class="subtitle">{esc(doc.subtitle)}</p>
<p class="meta">{meta}</p>
</div></header>
<nav class="toc"><div class="wrap">{nav}</div></nav>
<main class="wrap">{body}</main>
<footer class="wrap"><p>Self-contained: plotly.js is embedded, nothing is loaded from the network. Written by
<code>archlab report</code> from the run folders' files.</p></footer>
{json_script(payload, element_id="report-data")}
<script>{JS}</script>
</body>
</html>
"""


CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7fb;--card:#fff;--accent:#2563eb;
--ok:#16a34a;--bad:#dc2626;--warn:#d97706;--font:Inter,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
*{box-sizing:border-box}
body{margin:0;font-family:var(--font);color:var(--ink);background:var(--bg);font-size:14px;line-height:1.5}
.wrap{max-width:1320px;margin:0 auto;padding:0 24px}
header.top{background:linear-gradient(120deg,#0f172a,#1e3a8a);color:#f8fafc;padding:22px 0 18px}
header.top h1{margin:2px 0 4px;font-size:26px;font-weight:650;letter-spacing:-.01em;word-break:break-word}
.brand{font-size:12px;text-transform:uppercase;letter-spacing:.12em;color:#93c5fd}
.subtitle{margin:0 0 6px;color:#cbd5e1;max-width:980px}
.meta{margin:0;color:#94a3b8;font-size:12px;word-break:break-all}
nav.toc{position:sticky;top:0;z-index:10;background:rgba(255,255,255,.94);backdrop-filter:blur(6px);
border-bottom:1px solid var(--line)}
nav.toc .wrap{display:flex;gap:4px;overflow-x:auto;padding-top:6px;padding-bottom:6px}
nav.toc a{color:var(--ink);text-decoration:none;padding:5px 10px;border-radius:6px;white-space:nowrap;font-size:13px}
nav.toc a:hover{background:#eef2ff;color:var(--accent)}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;margin:18px 0;padding:18px 20px;
box-shadow:0 1px 2px rgba(15,23,42,.04)}
section h2{margin:0 0 4px;font-size:18px;font-weight:650}
section h3{margin:16px 0 6px;font-size:15px;font-weight:600}
p.lead{margin:0 0 12px;color:var(--muted);max-width:1000px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:8px 0 4px}
.card{border:1px solid var(--line);border-radius:10px;padding:10px 12px;background:#fbfcfe}
.card-label{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.card-value{font-size:20px;font-weight:650;margin-top:2px;word-break:break-word}
.card-note{font-size:12px;color:var(--muted)}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.grid-main{display:grid;grid-template-columns:minmax(0,2fr) minmax(320px,1fr);gap:16px;align-items:start}
@media (max-width:1000px){.grid2,.grid-main{grid-template-columns:1fr}}
figure.fig{margin:0;min-width:0}
.plot{width:100%;min-height:260px}
p.caption{margin:4px 4px 0;color:var(--muted);font-size:12px}
.detail{border:1px solid var(--line);border-radius:10px;padding:12px 14px;background:#fbfcfe;max-height:600px;overflow:auto}
.detail h3{margin:0 0 2px}
h3.fig-title{margin:4px 0 0 6px;font-size:14px;font-weight:600;color:#111827}
.metrics{display:grid;grid-template-columns:1fr 1fr;gap:6px 14px;margin:10px 0}
.metrics .m-label{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.metrics .m-value{font-size:15px;font-weight:600;font-variant-numeric:tabular-nums}
.chips{display:flex;flex-wrap:wrap;gap:5px;margin:4px 0 8px}
.chip{font-size:12px;background:#eef2ff;color:#3730a3;border-radius:6px;padding:2px 7px;font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.arch-panel{margin-top:14px;border-top:1px dashed var(--line);padding-top:10px}
.arch-panel h3{margin:0 0 4px}
.detail .hint{color:var(--muted)}
.detail .arch{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;color:#374151;margin:6px 0}
.detail a.download{display:inline-block;margin:8px 8px 4px 0;padding:6px 12px;border-radius:7px;background:var(--accent);
color:#fff;text-decoration:none;font-weight:600;font-size:13px}
.detail a.download:hover{background:#1d4ed8}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;background:#eef2ff;color:#3730a3}
.badge.complete,.badge.agree{background:#dcfce7;color:#166534}
.badge.failed,.badge.disagree{background:#fee2e2;color:#991b1b}
.badge.stopped,.badge.noise{background:#fef3c7;color:#92400e}
.badge.skipped,.badge.interrupted,.badge.paper_flat{background:#e5e7eb;color:#374151}
.table-wrap{overflow:auto;max-height:640px;border:1px solid var(--line);border-radius:8px}
table.data{border-collapse:collapse;width:100%;font-size:12.5px}
table.data th{position:sticky;top:0;background:#f3f4f6;text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);
white-space:nowrap;font-weight:600;z-index:1}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:hover{background:#e5e7eb}
table.sortable th.asc::after{content:" \\25B2";font-size:9px}
table.sortable th.desc::after{content:" \\25BC";font-size:9px}
table.data td{padding:5px 8px;border-bottom:1px solid #f1f5f9;vertical-align:top}
table.data td[class^="st-"],table.data td[class*=" st-"]{white-space:nowrap}
table.data td.num,table.data th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.data td.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:11.5px}
table.data td.wrap{min-width:260px;max-width:520px}
table.data td.err{color:var(--bad);min-width:240px;max-width:520px}
table.data tr[data-number]{cursor:pointer}
table.data tbody tr:hover{background:#f8fafc}
table.data tr.selected{background:#dbeafe !important}
table.data tr.branch td{color:#6b7280;font-style:italic}
table.data td.st-complete::before,table.data td.st-failed::before,table.data td.st-stopped::before,
table.data td.st-skipped::before,table.data td.st-interrupted::before{content:"";display:inline-block;width:8px;height:8px;
border-radius:50%;margin-right:6px;vertical-align:middle}
td.st-complete::before{background:var(--ok)}td.st-failed::before{background:var(--bad)}
td.st-stopped::before{background:var(--warn)}td.st-skipped::before,td.st-interrupted::before{background:#9ca3af}
td.dir-agree{color:#166534;font-weight:600}td.dir-disagree{color:#991b1b;font-weight:600}
td.front{color:var(--accent);font-weight:700}
table.kv{border-collapse:collapse;font-size:13px;width:100%}
table.kv th{text-align:left;color:var(--muted);font-weight:500;padding:4px 12px 4px 0;white-space:nowrap;vertical-align:top;width:1%}
table.kv td{padding:4px 0;word-break:break-word}
table.stage{border-collapse:collapse;font-size:12px;width:100%;margin-top:6px}
table.stage th,table.stage td{padding:3px 6px;border-bottom:1px solid #eef0f3;text-align:right;white-space:nowrap}
table.stage th{background:#f3f4f6;font-weight:600}
table.stage td:first-child,table.stage th:first-child,table.stage td:nth-child(2),table.stage th:nth-child(2){text-align:left}
.toolbar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:6px 0 10px}
.toolbar input{padding:6px 10px;border:1px solid #d1d5db;border-radius:7px;min-width:260px;font:inherit}
.toolbar button{padding:5px 10px;border:1px solid #d1d5db;border-radius:999px;background:#fff;cursor:pointer;font:inherit;font-size:12px}
.toolbar button.on{background:#1e3a8a;color:#fff;border-color:#1e3a8a}
.toolbar .count{color:var(--muted);font-size:12px}
.verdict{border-left:4px solid var(--accent);background:#eff6ff;padding:10px 14px;border-radius:6px;margin:6px 0 10px;white-space:pre-line}
.note{color:var(--muted);font-size:12.5px}
pre.yaml{background:#0f172a;color:#e2e8f0;padding:12px 14px;border-radius:8px;overflow:auto;max-height:420px;font-size:12px}
details{margin:8px 0}details summary{cursor:pointer;color:var(--accent);font-weight:600}
footer{color:var(--muted);font-size:12px;padding-bottom:28px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;background:#f1f5f9;padding:1px 4px;border-radius:4px}
"""

JS = r"""
(function () {
  'use strict';
  var DATA = JSON.parse(document.getElementById('report-data').textContent);
  var FIGS = DATA.figures || {};
  var CLICK = DATA.clickable || [];
  var CONFIG = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ['lasso2d', 'select2d'],
                toImageButtonOptions: {format: 'svg'}};

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  function human(n) {
    if (n === null || n === undefined || n === '') { return '-'; }
    var units = [['G', 1e9], ['M', 1e6], ['K', 1e3]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(n) >= units[i][1]) { return (n / units[i][1]).toPrecision(3) + units[i][0]; }
    }
    return String(Math.round(n));
  }
  function fmt(key, v) {
    if (v === null || v === undefined || v === '') { return '-'; }
    if (typeof v !== 'number') { return String(v); }
    if (key === 'params' || key === 'macs') { return human(v); }
    if (key.indexOf('top1') === 0) { return v.toFixed(2) + ' %'; }
    if (key.slice(-3) === '_ms') { return v.toPrecision(3) + ' ms'; }
    if (key === 'images_per_s') { return Math.round(v).toLocaleString('en-US'); }
    if (key.slice(-2) === '_s') { return v.toFixed(1) + ' s'; }
    return String(Math.round(v * 1e4) / 1e4);
  }
  function kv(pairs) {
    var t = el('table', {'class': 'kv'});
    pairs.forEach(function (p) { t.appendChild(el('tr', {}, [el('th', {}, [p[0]]), el('td', {}, [p[1]])])); });
    return t;
  }
  function safeName(s) { return String(s).replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 80); }

  // --- figures -------------------------------------------------------------------------------------------
  Object.keys(FIGS).forEach(function (id) {
    var div = document.getElementById(id);
    if (!div) { return; }
    var fig = FIGS[id];
    Plotly.newPlot(div, fig.data, fig.layout, CONFIG);
    if (CLICK.indexOf(id) >= 0) {
      div.on('plotly_click', function (ev) {
        var p = ev && ev.points && ev.points[0];
        if (p && p.customdata && p.customdata.length === 2) { select(p.customdata[0], p.customdata[1], false); }
      });
    }
  });

  // --- the selected trial --------------------------------------------------------------------------------
  function markInFigures(run, number) {
    CLICK.forEach(function (id) {
      var div = document.getElementById(id);
      if (!div || !div.data) { return; }
      var sel = -1, x = [], y = [];
      div.data.forEach(function (tr, i) {
        if (tr.meta === 'selection') { sel = i; return; }
        (tr.customdata || []).forEach(function (cd, j) {
          if (cd && cd[0] === run && cd[1] === number && x.length === 0) { x.push(tr.x[j]); y.push(tr.y[j]); }
        });
      });
      if (sel >= 0) { Plotly.restyle(div, {x: [x], y: [y]}, [sel]); }
    });
  }

  function stageTable(rows) {
    var cols = [['part', 'part'], ['block', 'block'], ['depth', 'd'], ['width', 'width'], ['stride', 's'],
                ['kernel', 'k'], ['expand', 'exp'], ['groups', 'groups'], ['se', 'SE'], ['act', 'act'],
                ['norm', 'norm'], ['detail', 'family'],
                ['out', 'output'], ['params', 'params'], ['macs', 'MACs']];
    var head = el('tr', {}, cols.map(function (c) { return el('th', {}, [c[1]]); }));
    var body = rows.map(function (r) {
      return el('tr', {}, cols.map(function (c) {
        var v = r[c[0]];
        return el('td', {}, [c[0] === 'params' || c[0] === 'macs' ? human(v) : (v === null ? '' : String(v))]);
      }));
    });
    return el('div', {'class': 'table-wrap'}, [el('table', {'class': 'stage'}, [el('thead', {}, [head]),
                                                                               el('tbody', {}, body)])]);
  }

  var LABELS = {top1: 'top-1', top1_partial: 'top-1 at stop', latency_ms: 'latency', latency_source: 'latency from', latency_p90_ms: 'latency p90',
                latency_cv: 'latency CV', params: 'parameters', macs: 'MACs', epochs_run: 'epochs',
                trial_s: 'trial wall time', train_s: 'training time', images_per_s: 'images / s', hostname: 'host'};

  function select(run, number, scroll) {
    var panel = document.getElementById('detail');
    var archPanel = document.getElementById('detail-arch') || panel;
    var runs = DATA.trials || [];
    var t = runs[run] && runs[run][String(number)];
    if (!panel || !t) { return; }
    panel.textContent = '';
    if (archPanel !== panel) { archPanel.textContent = ''; }
    var label = (DATA.labels || [])[run] || '';
    panel.appendChild(el('h3', {}, ['trial ' + number]));
    var badge = el('span', {'class': 'badge ' + t.state}, [t.state + (t.on_front ? ', on the front' : '')]);
    panel.appendChild(el('div', {'class': 'note'}, [label + ' \u00b7 ', badge]));
    var grid = el('div', {'class': 'metrics'});
    Object.keys(t.values).forEach(function (k) {
      grid.appendChild(el('div', {}, [el('div', {'class': 'm-label'}, [LABELS[k] || k]),
                                      el('div', {'class': 'm-value'}, [fmt(k, t.values[k])])]));
    });
    panel.appendChild(grid);
    if (t.error) { panel.appendChild(el('p', {'class': 'note', 'style': 'color:#991b1b'}, ['reason: ' + t.error])); }
    var ps = Object.keys(t.params || {});
    if (ps.length) {
      panel.appendChild(el('div', {'class': 'm-label'}, ['search parameters']));
      panel.appendChild(el('div', {'class': 'chips'}, ps.map(function (k) {
        return el('span', {'class': 'chip'}, [k + ' = ' + String(t.params[k])]);
      })));
    }
    var a = t.arch;
    if (!a) {
      panel.appendChild(el('p', {'class': 'note'},
                           ['no spec file for this trial (it failed before its architecture was written)']));
    } else {
      if (a.summary) { panel.appendChild(el('div', {'class': 'arch'}, [a.summary])); }
      var link = el('a', {'class': 'download', 'download': safeName(label) + '-trial-' + number + '-spec.yaml'},
                    ['Download spec.yaml']);
      link.href = 'data:application/x-yaml;charset=utf-8,' + encodeURIComponent(a.yaml);
      panel.appendChild(link);
      panel.appendChild(el('div', {'class': 'note'}, ['archlab show ' + t.spec_path]));
      var box = archPanel === panel ? panel : archPanel;
      box.appendChild(el('h3', {}, ['Architecture of trial ' + number + (label ? ' (' + label + ')' : '')]));
      if (a.error) { box.appendChild(el('p', {'class': 'note'}, [a.error])); }
      if (a.rows && a.rows.length) { box.appendChild(stageTable(a.rows)); }
      if (a.params) {
        box.appendChild(el('p', {'class': 'note'}, ['total ' + a.params.toLocaleString('en-US') + ' parameters, ' +
                                                  a.macs.toLocaleString('en-US') + ' MACs; arch_id ' + a.arch_id]));
      }
      box.appendChild(el('details', {}, [el('summary', {}, ['spec.yaml']), el('pre', {'class': 'yaml'}, [a.yaml])]));
    }
    document.querySelectorAll('tr.selected').forEach(function (r) { r.classList.remove('selected'); });
    document.querySelectorAll('tr[data-run="' + run + '"][data-number="' + number + '"]').forEach(function (r) {
      r.classList.add('selected');
    });
    markInFigures(run, number);
    if (scroll) { panel.scrollIntoView({behavior: 'smooth', block: 'center'}); }
    panel.setAttribute('data-selected', run + ':' + number);
  }
  window.archlabSelect = select;

  // --- tables: sort, filter, click -----------------------------------------------------------------------
  function sortTable(table, col, th) {
    var asc = th.getAttribute('data-dir') !== 'asc';
    table.querySelectorAll('th').forEach(function (h) {
      h.removeAttribute('data-dir');
      h.classList.remove('asc', 'desc');
    });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    th.classList.add(asc ? 'asc' : 'desc');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var a = r1.cells[col].getAttribute('data-v'), b = r2.cells[col].getAttribute('data-v');
      if (a === '' && b === '') { return 0; }
      if (a === '') { return 1; }
      if (b === '') { return -1; }
      var na = Number(a), nb = Number(b), c;
      if (!isNaN(na) && !isNaN(nb)) { c = na - nb; } else { c = a.localeCompare(b); }
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('th').forEach(function (th, i) {
      th.addEventListener('click', function () { sortTable(table, i, th); });
    });
  });
  document.querySelectorAll('tr[data-number]').forEach(function (tr) {
    tr.addEventListener('click', function () {
      select(Number(tr.getAttribute('data-run')), Number(tr.getAttribute('data-number')), true);
    });
  });
  document.querySelectorAll('.toolbar[data-table]').forEach(function (bar) {
    var table = document.getElementById(bar.getAttribute('data-table'));
    var input = bar.querySelector('input');
    var count = bar.querySelector('.count');
    var buttons = bar.querySelectorAll('button[data-state]');
    function apply() {
      var q = (input.value || '').toLowerCase();
      var on = [];
      buttons.forEach(function (b) { if (b.classList.contains('on')) { on.push(b.getAttribute('data-state')); } });
      var shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var ok = (!q || r.textContent.toLowerCase().indexOf(q) >= 0) &&
                 (on.length === 0 || on.indexOf(r.getAttribute('data-state')) >= 0);
        r.style.display = ok ? '' : 'none';
        if (ok) { shown++; }
      });
      if (count) { count.textContent = shown + ' of ' + table.tBodies[0].rows.length + ' trials'; }
    }
    input.addEventListener('input', apply);
    buttons.forEach(function (b) { b.addEventListener('click', function () { b.classList.toggle('on'); apply(); }); });
    apply();
  });

  if (DATA.initial) { select(DATA.initial[0], DATA.initial[1], false); }
})();
"""
