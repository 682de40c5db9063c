"""Readable summaries of specs: JSON-ready cost summaries and stage tables."""
from __future__ import annotations

from typing import Any

from archlab.arch.spec import ArchSpec
from archlab.core.fmt import format_count

__all__ = ["summarize", "stage_table"]


def summarize(spec: ArchSpec) -> dict[str, Any]:
    """JSON-ready summary: name, arch_id, params, macs, img_size and the per-part costs."""
    from archlab.nn.complexity import complexity  # imports torch; kept out of `archlab show --help`
    cost = complexity(spec)
    return {"name": spec.name or spec.arch_id, "arch_id": spec.arch_id, "params": cost.params, "macs": cost.macs,
            "img_size": spec.img_size, "in_chans": spec.in_chans, "num_classes": spec.num_classes,
            "parts": [dict(name=p.name, params=p.params, macs=p.macs, out_size=p.out_size, out_chs=p.out_chs)
                      for p in cost.parts]}


def stage_table(spec: ArchSpec) -> str:
    """A readable table: one row for the stem, each stage and the head, with output shape, params, MACs."""
    info = summarize(spec)
    rows = [("part", "block", "depth", "width", "stride", "k", "exp", "se", "act", "out", "params", "MACs")]
    stem = spec.stem
    rows.append(("stem", stem.type, "", str(stem.width), str(stem.stride), str(stem.kernel_size), "", "",
                 stem.act, "", "", ""))
    for s in spec.stages:
        rows.append(("", s.block, str(s.depth), str(s.width), str(s.stride), str(s.kernel_size),
                     f"{s.expand_ratio:g}", f"{s.se_ratio:g}" if s.se_ratio else "", s.act, "", "", ""))
    head = spec.head
    hidden = "-".join(str(w) for w in head.hidden)
    rows.append(("head", f"{head.pool} pool", "", str(head.conv_width or ""), "", "", "", "", head.act,
                 "", "", ""))
    for row_i, part in zip(range(1, len(rows)), info["parts"]):
        row = list(rows[row_i])
        row[0] = part["name"] if row_i > 1 and row_i < len(rows) - 1 else row[0]
        row[9] = f"{part['out_chs']}x{part['out_size']}x{part['out_size']}" if part["name"] != "head" \
            else f"{part['out_chs']}" + (f" (fc {hidden})" if hidden else "")
        row[10], row[11] = format_count(part["params"], decimals=2), format_count(part["macs"], decimals=2)
        rows[row_i] = tuple(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{info['name']}  (arch_id {info['arch_id']}, {spec.in_chans}x{spec.img_size}x{spec.img_size} "
             f"input, {spec.num_classes} classes)"]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) if j >= 2 else cell.ljust(w) for j, (cell, w) in
                               enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("-" * len(lines[-1]))
    lines.append(f"total: {info['params']:,} parameters, {info['macs']:,} MACs ({info['macs'] / 1e9:.3f} GMACs)")
    return "\n".join(lines)
