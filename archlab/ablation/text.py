"""The ablation replay as text: the step table, the setting, and the agreement verdict in plain words; a budget
sweep's agreement against budget."""
from __future__ import annotations

from typing import TYPE_CHECKING

from archlab.ablation.summary import AblationReport
from archlab.measure.chance import chance_check

if TYPE_CHECKING:
    from archlab.ablation.sweep import SweepReport

__all__ = ["format_report", "format_sweep"]


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _step_table(report: AblationReport) -> list[str]:
    """One aligned line per row under a header and a rule."""
    head = ["#", "step", "kind", "params", "GMACs", "paper", "vs paper", "lat ms", "cv", "paper top1", "proxy top1",
            "d proxy", "d paper", "dir"]
    lines: list[list[str]] = [head]
    for s in report.steps:
        proxy_top1 = "-" if s.top1_mean is None else (f"{s.top1_mean:.2f}" + (f" +- {s.top1_std:.2f}"
                                                                              if s.top1_std is not None else ""))
        d_proxy = "-" if s.delta is None else (f"{s.delta:+.2f}" + (f" +- {s.delta_se:.2f}" if s.delta_se is not None
                                                                    else ""))
        vs = "-" if s.macs_vs_paper is None else f"{100 * s.macs_vs_paper:+.1f}%" + ("*" if s.gflops_note else "")
        direction = {"agree": "ok", "disagree": "OPP", "paper_flat": "flat"}.get(s.direction or "", "-")
        if s.within_noise and direction in ("ok", "OPP"):
            direction += " (noise)"
        gmacs = f"{s.macs / 1e9:.{3 if s.macs >= 1e7 else 5}f}" + ("" if s.img_size == 224 else f"@{s.img_size}")
        lines.append([str(s.index), s.step, s.kind, f"{s.params / 1e6:.2f}M", gmacs,
                      _fmt(s.paper_gflops, ".2f"), vs, _fmt(s.latency_ms, ".2f"), _fmt(s.latency_cv, ".2f"),
                      _fmt(s.paper_top1, ".2f"), proxy_top1, d_proxy, _fmt(s.paper_delta, "+.2f"), direction])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text: list[str] = []
    for i, row in enumerate(lines):
        text.append("  ".join(cell.rjust(w) if j not in (1, 2) else cell.ljust(w)
                              for j, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            text.append("-" * len(text[-1]))
    return text


def format_report(report: AblationReport) -> str:
    """The replay as a readable table, the setting, and the agreement verdict in plain words."""
    ladder, setting = report.ladder, report.setting
    text = [f"{ladder.name}: {ladder.title}" if ladder.title else ladder.name]
    if ladder.source:
        text.append(f"paper: {ladder.source}")
    budget = ", ".join(f"{k} {v:g}" for k, v in setting["budget"].items())
    text.append(f"proxy: {setting['dataset']} at {setting['img_size']} px ({setting['in_chans']} ch), every row "
                f"reduced to width x{setting['width']:g}, depth x{setting['depth']:g}; budget {budget} per "
                f"(row, seed); seeds {', '.join(map(str, report.seeds))}")
    scaled = [s for s in report.steps if s.budget_multiplier != 1.0]
    if scaled:
        images = sorted({s.budget_images for s in scaled if s.budget_images is not None})
        text.append(f"budget multiplier: {len(scaled)} of {len(report.steps)} rows train "
                    f"{', '.join(sorted({f'x{s.budget_multiplier:.4g}' for s in scaled}))} the budget"
                    + (f" ({', '.join(f'{n:,}' for n in images)} images per seed)" if images else "")
                    + " (each row's `note` and `budget_multiplier` say why)")
    text.append(f"params/GMACs: full-size network at 224 px (or @N px), analytic. latency: {setting['latency']} "
                f"[{setting['device_name']}]")
    text.append("")
    text.extend(_step_table(report))
    notes = [f"  * {s.step}: {s.gflops_note}" for s in report.steps if s.gflops_note]
    if notes:
        text.append("")
        text.extend(notes)
    text.append("")
    text.append("d proxy / d paper: change from the parent row (the last adopted row); +- is one standard error "
                "over seeds. dir: ok = same direction as the paper, OPP = opposite, (noise) = |d| < 2 SE.")
    noisy = [s.step for s in report.steps if s.latency_cv is not None and s.latency_cv > 0.2]
    if noisy:
        text.append(f"Latency: {len(noisy)} of {len(report.steps)} rows were timed with a coefficient of variation "
                    "above 0.2 (the machine was busy); compare their latencies with care, or rerun --no-train "
                    "on an idle machine.")
    if report.trained:
        text.append(report.agreement.sentence())
        chance = chance_check([s.top1_mean for s in report.steps], int(setting.get("num_classes") or 0))
        if chance is not None and chance.near_chance:   # a ranking of noise is said to be one
            text.append(chance.message())
        text.append(f"Training time: {report.train_wall_s / 60:.1f} min summed over (row, seed); this invocation "
                    f"took {report.wall_s / 60:.1f} min.")
    else:
        text.append("Not trained (--no-train, or no results yet): proxy top-1 and the agreement need training.")
    if report.out:
        text.append(f"Run folder: {report.out}")
    return "\n".join(text)


def format_sweep(sweep: SweepReport) -> str:
    """Agreement vs budget: one line per budget, per-row top-1 per budget, and which steps move toward the
    paper as the budget grows."""
    ladder = sweep.ladder
    base = ", ".join(f"{k} {v:g}" for k, v in ladder.proxy.budget.limits().items())
    text = [f"{ladder.name}: agreement vs budget (multiples of the ladder's budget: {base} per (row, seed))", ""]
    head = ["budget", "Spearman", "p", "direction", "beyond 2 SE", "train min"]
    lines = [head]
    for p in sweep.points:
        a = p.report.agreement
        lines.append([f"x{p.label}", _fmt(a.spearman, "+.2f"), _fmt(a.spearman_p, ".2g"),
                      f"{a.direction_agree}/{a.direction_total}", f"{p.beyond_noise}/{a.direction_total}",
                      f"{p.report.train_wall_s / 60:.1f}"])
    text += _table(lines)
    text.append("")
    labels = [f"x{p.label}" for p in sweep.points]
    rows = [["#", "step", "paper top1", *labels]]
    for s in sweep.points[0].report.steps:
        cells = [str(s.index), s.step, _fmt(s.paper_top1, ".2f")]
        for p in sweep.points:
            t = p.report.steps[s.index]
            cells.append("-" if t.top1_mean is None else f"{t.top1_mean:.2f}" +
                         (f" +- {t.top1_std:.2f}" if t.top1_std is not None else ""))
        rows.append(cells)
    text += _table(rows)
    text.append("")
    text += _trend_lines(sweep)
    if sweep.out:
        text.append(f"Sweep folder: {sweep.out} (one run folder per budget, sweep.json, sweep.csv)")
    return "\n".join(text)


def _table(lines: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    out = []
    for i, row in enumerate(lines):
        out.append("  ".join(cell.ljust(w) if j == 1 else cell.rjust(w)
                             for j, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            out.append("-" * len(out[-1]))
    return out


def _trend_lines(sweep: SweepReport) -> list[str]:
    """The honesty lines: which changes move toward the paper as the budget grows, which the proxy cannot
    resolve, which it contradicts at every budget."""
    if not any(p.report.trained for p in sweep.points):
        return ["Not trained (--no-train, or no results yet): agreement vs budget needs training."]
    first, last = sweep.points[0].label, sweep.points[-1].label
    toward = [t.step for t in sweep.trends if t.toward is True]
    away = [t.step for t in sweep.trends if t.toward is False]
    unresolved = [t.step for t in sweep.trends if t.unresolved]
    contradicts = [t.step for t in sweep.trends if t.contradicts]
    out = [f"From budget x{first} to x{last}, the proxy's change moves toward the paper's on {len(toward)} of "
           f"{len(toward) + len(away)} changes" + (f": {', '.join(toward)}." if toward else "."),
           f"Not toward the paper (the gap stays or grows): {', '.join(away) or 'none'}."]
    if len(sweep.points) > 1:
        out.append(f"Cannot be resolved here (within 2 SE of seed noise at every budget): "
                   f"{', '.join(unresolved) or 'none'}.")
        out.append(f"Contradicted beyond noise at every budget: {', '.join(contradicts) or 'none'}.")
    return out
