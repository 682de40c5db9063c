"""Compound scaling as pure ArchSpec -> ArchSpec functions (Tan and Le, "EfficientNet", ICML 2019).

Widths are rounded with make_divisible(channels * width, 8) and depths with ceil, as torchvision builds
EfficientNet-B1..B7 from B0's table; resolution is rounded to the nearest pixel.
"""
from __future__ import annotations

import math
from dataclasses import replace

from archlab.arch.families import rescale_stage
from archlab.arch.spec import ArchSpec, make_divisible
from archlab.core.errors import SpecError

__all__ = ["compound_multipliers", "scale", "scale_compound"]


def scale(spec: ArchSpec, *, width: float = 1.0, depth: float = 1.0, resolution: float | int = 1.0,
          divisor: int = 8) -> ArchSpec:
    """Scale stem, stage and head-conv widths by `width`, depths by `depth` and the input side.

    A stage's width fields are its family's (`Family.rescale`): an Inception stage rescales each branch.

    `resolution` is a multiplier when it is a float and an absolute side in pixels when it is an int
    (the released EfficientNets use fixed sides: 240, 260, ... 600).
    """
    for key, value in (("width", width), ("depth", depth), ("resolution", resolution)):
        if isinstance(value, bool) or not value > 0:
            raise SpecError(key, "multiplier must be > 0", value)

    def chs(c: int) -> int:
        return c if width == 1.0 else make_divisible(c * width, divisor)

    stages = tuple(replace(rescale_stage(s, chs) if width != 1.0 else s, depth=int(math.ceil(s.depth * depth)))
                   for s in spec.stages)
    stem = replace(spec.stem, width=chs(spec.stem.width)) if spec.stem.type != "identity" else spec.stem
    head = spec.head
    if head.conv_width is not None:
        head = replace(head, conv_width=chs(head.conv_width))
    img_size = resolution if isinstance(resolution, int) else int(round(spec.img_size * resolution))
    return replace(spec, stem=stem, stages=stages, head=head, img_size=img_size)


def compound_multipliers(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15
                         ) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers alpha^phi, beta^phi, gamma^phi."""
    return alpha ** phi, beta ** phi, gamma ** phi


def scale_compound(spec: ArchSpec, phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15
                   ) -> ArchSpec:
    """Compound-scale `spec` by coefficient `phi` (depth alpha^phi, width beta^phi, resolution gamma^phi)."""
    d, w, r = compound_multipliers(phi, alpha, beta, gamma)
    return scale(spec, width=w, depth=d, resolution=r)
