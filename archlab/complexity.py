"""Analytic parameters and multiply-accumulates (MACs) of an ArchSpec, without building a module.

MACs count convolutions and linear layers only (bias, norm, activation and pooling excluded), which is
what torch.utils.flop_counter counts (its FLOPs are 2 x MACs) and what torchvision's `_ops` reports.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from archlab.build import STEMS_REGISTRY, Stage, head_features, stem_width
from archlab.layers import Cost
from archlab.spec import ArchSpec

__all__ = ["Complexity", "PartCost", "complexity"]


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


def complexity(spec: ArchSpec) -> Complexity:
    """Parameters and MACs of `spec`, walking stem, stages and head as the builder does."""
    c = Cost(spec.img_size)
    parts: list[PartCost] = []

    def close(name: str, chs: int) -> None:
        done = sum(p.params for p in parts), sum(p.macs for p in parts)
        parts.append(PartCost(name, c.params - done[0], c.macs - done[1], c.size, chs))

    STEMS_REGISTRY.get(spec.stem.type).cost(c, spec.in_chans, spec.stem)
    chs = stem_width(spec)
    close("stem", chs)
    for i, stage in enumerate(spec.stages):
        Stage.cost(c, chs, stage, spec.layer_scale_init)
        chs = stage.width
        close(f"stages[{i}]", chs)
    head = spec.head
    if head.conv_width is not None:
        c.cna(chs, head.conv_width, 1)
        chs = head.conv_width
    feats = head_features(head, chs, c.size)
    c.norm(head.norm, chs)
    for width in head.hidden:
        c.linear(feats, width)
        feats = width
    c.linear(feats, spec.num_classes)
    close("head", spec.num_classes)
    return Complexity(params=c.params, macs=c.macs, img_size=spec.img_size, parts=tuple(parts))
