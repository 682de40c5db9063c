"""The ablation replay as text: the step table, the setting, and the agreement verdict in plain words."""
from __future__ import annotations

from archlab.ablation.summary import AblationReport

__all__ = ["format_report"]


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_report(report: AblationReport) -> str:
    """The replay as a readable table, the setting, and the agreement verdict in plain words."""
    ladder, setting = report.ladder, report.setting
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
    text = [f"{ladder.name}: {ladder.title}" if ladder.title else ladder.name]
    if ladder.source:
        text.append(f"paper: {ladder.source}")
    budget = ", ".join(f"{k} {v:g}" for k, v in setting["budget"].items())
    text.append(f"proxy: {setting['dataset']} at {setting['img_size']} px ({setting['in_chans']} ch), every row "
                f"reduced to width x{setting['width']:g}, depth x{setting['depth']:g}; budget {budget} per "
                f"(row, seed); seeds {', '.join(map(str, report.seeds))}")
    text.append(f"params/GMACs: full-size network at 224 px (or @N px), analytic. latency: {setting['latency']} "
                f"[{setting['device_name']}]")
    text.append("")
    for i, row in enumerate(lines):
        text.append("  ".join(cell.rjust(w) if j not in (1, 2) else cell.ljust(w)
                              for j, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            text.append("-" * len(text[-1]))
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
        text.append(f"Training time: {report.train_wall_s / 60:.1f} min summed over (row, seed); this invocation "
                    f"took {report.wall_s / 60:.1f} min.")
    else:
        text.append("Not trained (--no-train, or no results yet): proxy top-1 and the agreement need training.")
    if report.out:
        text.append(f"Run folder: {report.out}")
    return "\n".join(text)
