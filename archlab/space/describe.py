"""What `archlab space describe` and `archlab space sample` print: pure data first, then text."""
from __future__ import annotations

import statistics
from typing import Any

from archlab.core.fmt import format_count
from archlab.space.format import Bound
from archlab.space.search_space import SearchSpace

__all__ = ["describe", "format_description", "format_samples", "one_line", "sample_rows"]


def _bound_text(bound: Bound) -> str:
    from archlab.space.search_space import _at_text
    if bound.low is not None and bound.high is not None:
        rule = f"{bound.metric} in [{format_count(bound.low)}, {format_count(bound.high)}]"
    elif bound.high is not None:
        rule = f"{bound.metric} <= {format_count(bound.high)}"
    else:
        rule = f"{bound.metric} >= {format_count(bound.low)}"  # type: ignore[arg-type]
    return rule + _at_text(bound.at)


def one_line(space: SearchSpace) -> str:
    """A one-line summary (what `archlab validate` prints for a valid space)."""
    return f"search space {space.name}: {len(space.dimensions)} dimensions, 10^{space.log10_size():.1f} points"


def describe(space: SearchSpace, *, draws: int = 500, seed: int = 0, img_size: int | None = None,
             in_chans: int | None = None, num_classes: int | None = None) -> dict[str, Any]:
    """JSON-ready description: dimensions, size, constraints, landmarks and statistics of random draws."""
    from archlab.arch.zoo import ZOO
    from archlab.nn.complexity import complexity
    overrides = dict(img_size=img_size, in_chans=in_chans, num_classes=num_classes)
    landmarks = {}
    for name, params in space.landmarks.items():
        spec = space.decode(params, **overrides)
        cost = complexity(spec)
        landmarks[name] = {"zoo": name in ZOO, "arch_id": spec.arch_id, "params": cost.params, "macs": cost.macs,
                           "img_size": spec.img_size, "violations": space.violations(spec)}
    valid = feasible = 0
    macs: list[int] = []
    counts: list[int] = []
    for _, (_, spec) in zip(range(draws), space.candidates(seed=seed, **overrides)):
        if spec is None:
            continue
        valid += 1
        if space.violations(spec):
            continue
        feasible += 1
        cost = complexity(spec)
        macs.append(cost.macs)
        counts.append(cost.params)
    stats = {"draws": draws, "valid": valid, "feasible": feasible}
    for key, values in (("macs", macs), ("params", counts)):
        if values:
            stats[key] = {"min": min(values), "median": int(statistics.median(values)), "max": max(values)}
    return {
        "name": space.name, "file": space.file, "description": space.description, "base": space.base,
        "log10_size": space.log10_size(), "overrides": {k: v for k, v in overrides.items() if v is not None},
        "dimensions": [{"name": d.name, "kind": d.kind, "values": d.describe(), "size": d.size,
                        "condition": d.condition} for d in space.dimensions],
        "constraints": [_bound_text(b) for b in space.constraints],
        "landmarks": landmarks, "random_draws": stats}


def format_description(info: dict[str, Any]) -> str:
    """The description as readable text."""
    lines = [f"search space {info['name']}" + (f"  ({info['file']})" if info["file"] else "")]
    if info["description"]:
        lines.append(f"  {info['description']}")
    size = info["log10_size"]
    lines.append(f"  size: 10^{size:.2f} points (distinct parameter assignments)" if size != float("inf")
                 else "  size: infinite (a continuous range)")
    if info["base"]:
        lines.append(f"  base: {info['base']}")
    if info["overrides"]:
        lines.append("  decoded with " + ", ".join(f"{k}={v}" for k, v in info["overrides"].items()))
    lines.append("  constraints: " + ("; ".join(info["constraints"]) or "none"))
    dims = info["dimensions"]
    lines.append(f"  {len(dims)} dimensions (parameter names as Optuna sees them):")
    width = max([len(d["name"]) for d in dims] + [9])
    vwidth = max([len(d["values"]) for d in dims] + [6])
    lines.append(f"    {'parameter'.ljust(width)}  {'values'.ljust(vwidth)}  applies when")
    for d in dims:
        condition = d["condition"] or "always"
        lines.append(f"    {d['name'].ljust(width)}  {d['values'].ljust(vwidth)}  {condition}".rstrip())
    if info["landmarks"]:
        lines.append("  landmarks (named points):")
        for name, mark in info["landmarks"].items():
            tag = " (zoo network)" if mark["zoo"] else ""
            bad = "; infeasible: " + ", ".join(mark["violations"]) if mark["violations"] else ""
            lines.append(f"    {name}{tag}: {format_count(mark['params'])} params, {format_count(mark['macs'])} MACs at "
                         f"{mark['img_size']} px{bad}")
    stats = info["random_draws"]
    text = (f"  {stats['draws']} uniform random draws: {stats['valid'] / stats['draws']:.0%} valid networks, "
            f"{stats['feasible'] / stats['draws']:.0%} within the constraints")
    lines.append(text)
    for key in ("macs", "params"):
        if key in stats:
            s = stats[key]
            lines.append(f"    feasible {key}: min {format_count(s['min'])}, median {format_count(s['median'])}, "
                         f"max {format_count(s['max'])}")
    return "\n".join(lines)


def sample_rows(space: SearchSpace, n: int, *, seed: int, img_size: int | None = None, in_chans: int | None = None,
                num_classes: int | None = None) -> list[dict[str, Any]]:
    """`n` feasible seeded samples as JSON-ready rows: parameters, arch_id, params, MACs and the spec."""
    from archlab.nn.complexity import complexity
    rows = []
    for i, (params, spec) in enumerate(space.sample(n, seed=seed, img_size=img_size, in_chans=in_chans,
                                                    num_classes=num_classes)):
        cost = complexity(spec)
        rows.append({"index": i, "arch_id": spec.arch_id, "params": cost.params, "macs": cost.macs,
                     "img_size": spec.img_size, "parameters": params, "spec": spec.to_dict()})
    return rows


def format_samples(rows: list[dict[str, Any]]) -> str:
    """Samples as a table, each followed by its parameters."""
    lines = [f"{'#':>3}  {'arch_id':16}  {'params':>8}  {'MACs':>8}  {'img':>4}"]
    for row in rows:
        lines.append(f"{row['index']:>3}  {row['arch_id']:16}  {format_count(row['params']):>8}  {format_count(row['macs']):>8}  "
                     f"{row['img_size']:>4}")
        lines.append("     " + " ".join(f"{k}={_short(v)}" for k, v in row["parameters"].items()))
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "null" if value is None else str(value)
