"""Analytic parameters and multiply-accumulates (MACs) of an ArchSpec, without building a module.

MACs count convolutions and linear layers only (bias, norm, activation and pooling excluded), which is
what torch.utils.flop_counter counts (its FLOPs are 2 x MACs) and what torchvision's `_ops` reports.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from archlab.arch.spec import ArchSpec, StageSpec
from archlab.nn.build import STEMS_REGISTRY, AuxHead, Stage, head_features, stem_width
from archlab.nn.layers import Cost

__all__ = ["Complexity", "PartCost", "clear_stage_costs", "complexity", "params_macs", "stage_cost"]


@dataclass(frozen=True, slots=True)
class PartCost:
    """Cost of one part of a network (stem, a stage, the head) and the side of its output map."""

    name: str
    params: int
    macs: int
    out_size: int
    out_chs: int


@dataclass(frozen=True, slots=True)
class Complexity:
    """Whole-network parameters and MACs at `img_size`, with the per-part breakdown."""

    params: int
    macs: int
    img_size: int
    parts: tuple[PartCost, ...]

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return asdict(self)


_STAGE_COSTS: dict[tuple[StageSpec, int, int, float], tuple[int, int, int]] = {}
_STAGE_COSTS_LIMIT = 100_000


def stage_cost(stage: StageSpec, in_chs: int, size: int, layer_scale_init: float) -> tuple[int, int, int]:
    """(params, macs, out_size) of one stage entered at `size` px with `in_chs` channels, memoised.

    A pure function of its arguments (specs are frozen), so the cache never changes a result; it makes the
    search-space constraint check (archlab.space.search_space) fast, where the same stages recur in many candidates.
    """
    key = (stage, in_chs, size, layer_scale_init)
    hit = _STAGE_COSTS.get(key)
    if hit is None:
        hit = _closed_form(stage, in_chs, size, layer_scale_init) if stage.depth > 3 else None
        if hit is None:
            c = Cost(size)
            Stage.cost(c, in_chs, stage, layer_scale_init)
            hit = (c.params, c.macs, c.size)
        if len(_STAGE_COSTS) >= _STAGE_COSTS_LIMIT:
            _STAGE_COSTS.clear()
        _STAGE_COSTS[key] = hit
    return hit


def _closed_form(stage: StageSpec, in_chs: int, size: int, layer_scale_init: float) -> tuple[int, int, int] | None:
    """A stage's cost as first block + (depth - 1) x repeated block, so a deep stage costs three blocks' work.

    Every block after the first has the same channels and stride 1; where the second and third blocks cost
    the same and keep the map size, so do all the others. Otherwise (valid padding shrinks the map) this
    returns None and the caller walks the blocks.
    """
    costs = []
    for depth in (1, 2, 3):
        c = Cost(size)
        Stage.cost(c, in_chs, replace(stage, depth=depth), layer_scale_init)
        costs.append((c.params, c.macs, c.size))
    (p1, m1, s1), (p2, m2, s2), (p3, m3, s3) = costs
    if not (s1 == s2 == s3 and p3 - p2 == p2 - p1 and m3 - m2 == m2 - m1):
        return None
    extra = stage.depth - 1
    return p1 + extra * (p2 - p1), m1 + extra * (m2 - m1), s1


def clear_stage_costs() -> None:
    """Empty the stage-cost memo (for benchmarks that time cold calls)."""
    _STAGE_COSTS.clear()


def _walk(spec: ArchSpec, close: Callable[[str, Cost, int], None] | None = None) -> Cost:
    """Walk stem, stages and head as the builder does, calling `close` after each part."""
    c = Cost(spec.img_size)
    STEMS_REGISTRY.get(spec.stem.type).cost(c, spec.in_chans, spec.stem)
    chs = stem_width(spec)
    if close:
        close("stem", c, chs)
    for i, stage in enumerate(spec.stages):
        params, macs, c.size = stage_cost(stage, chs, c.size, spec.layer_scale_init)
        c.params += params
        c.macs += macs
        chs = stage.width
        if close:
            close(f"stages[{i}]", c, chs)
    head = spec.head
    for i in head.aux:  # training-time classifiers: parameters only, they do not run in eval mode
        c.params += AuxHead.params(spec.stages[i].width, spec.num_classes)
    if head.conv_width is not None:
        c.cna(chs, head.conv_width, 1)
        chs = head.conv_width
    feats = head_features(head, chs, c.size)
    c.norm(head.norm, chs)
    for width in head.hidden:
        c.linear(feats, width)
        feats = width
    c.linear(feats, spec.num_classes)
    if close:
        close("head", c, spec.num_classes)
    return c


def complexity(spec: ArchSpec) -> Complexity:
    """Parameters and MACs of `spec`, walking stem, stages and head as the builder does."""
    parts: list[PartCost] = []
    done = [0, 0]   # running totals: summing the parts at every close made a deep network quadratic

    def close(name: str, c: Cost, chs: int) -> None:
        parts.append(PartCost(name, c.params - done[0], c.macs - done[1], c.size, chs))
        done[0], done[1] = c.params, c.macs

    c = _walk(spec, close)
    return Complexity(params=c.params, macs=c.macs, img_size=spec.img_size, parts=tuple(parts))


def params_macs(spec: ArchSpec) -> tuple[int, int]:
    """(params, macs) of `spec`, equal to complexity()'s, without the per-part breakdown (constraint checks)."""
    c = _walk(spec)
    return c.params, c.macs
