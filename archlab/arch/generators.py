"""Design-space generators: a few numbers in, a tuple of stages out (pure, torch-free).

Radosavovic et al., "Designing Network Design Spaces", CVPR 2020 (pycls `generate_regnet`, torchvision's
`BlockParams.from_init_params`): RegNet's per-block widths follow the linear rule u_j = w0 + wa * j, quantised
to powers of wm times w0 and to multiples of 8; runs of equal width become stages. The search-space language's
`generate:` section (docs/search_spaces.md) calls a generator here by name, and the zoo's RegNets are its points.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archlab.arch.spec import make_divisible
from archlab.core.errors import SpecError
from archlab.core.registry import Registry

__all__ = ["GENERATORS", "Generator", "regnet_stages", "regnet_widths"]

QUANT = 8  # RegNet's width quantum


@dataclass(frozen=True, slots=True)
class Generator:
    """A named design-space rule: its parameters (name -> default, None if required) and the function."""

    name: str
    params: dict[str, Any]
    fn: Callable[..., tuple[dict[str, Any], ...]]   # keyword parameters -> stage field dicts
    doc: str = ""

    def __call__(self, **values: Any) -> tuple[dict[str, Any], ...]:
        """The stages (StageSpec field dicts) for the given parameter values."""
        return self.fn(**values)


GENERATORS: Registry[Generator] = Registry("structure generator")


def regnet_widths(depth: int, w0: int, wa: float, wm: float) -> list[int]:
    """Per-block widths of the quantised linear rule; SpecError names the parameter that gives no valid stage."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise SpecError("depth", "must be an integer >= 1 (blocks in the whole network)", depth)
    if isinstance(w0, bool) or not isinstance(w0, int) or w0 <= 0 or w0 % QUANT:
        raise SpecError("w0", f"must be a positive multiple of {QUANT}", w0)
    if not wa >= 0:
        raise SpecError("wa", "must be >= 0 (the width slope)", wa)
    if not wm > 1:
        raise SpecError("wm", "must be > 1 (the width multiplier between stages)", wm)
    widths = []
    for j in range(depth):
        capacity = round(math.log((w0 + wa * j) / w0) / math.log(wm))  # which power of wm the block rounds to
        widths.append(int(round(w0 * wm ** capacity / QUANT) * QUANT))
    return widths


def regnet_stages(*, depth: int, w0: int, wa: float, wm: float, group_width: int, bottleneck_ratio: float = 1.0,
                  se_ratio: float = 0.0) -> tuple[dict[str, Any], ...]:
    """RegNet's stages: bottleneck rows (depth, width, stride 2, group width, bottleneck ratio, SE ratio).

    Widths and group widths are made compatible as torchvision does: the group width is capped at the
    bottleneck width, and the bottleneck width rounded to a multiple of it.
    """
    if isinstance(group_width, bool) or not isinstance(group_width, int) or group_width < 1:
        raise SpecError("group_width", "must be an integer >= 1", group_width)
    if not bottleneck_ratio > 0:
        raise SpecError("bottleneck_ratio", "must be > 0", bottleneck_ratio)
    widths = regnet_widths(depth, w0, wa, wm)
    runs: list[list[int]] = []  # [width, depth] per run of equal widths
    for width in widths:
        if runs and runs[-1][0] == width:
            runs[-1][1] += 1
        else:
            runs.append([width, 1])
    stages = []
    for width, blocks in runs:
        bottleneck = int(width * bottleneck_ratio)
        group = min(group_width, bottleneck)
        bottleneck = make_divisible(bottleneck, group)
        stages.append(dict(block="bottleneck", depth=blocks, width=int(bottleneck / bottleneck_ratio), stride=2,
                           expand_ratio=bottleneck_ratio, group_width=group, se_ratio=se_ratio))
    return tuple(stages)


GENERATORS.register("regnet")(Generator(
    "regnet", {"depth": None, "w0": None, "wa": None, "wm": None, "group_width": None, "bottleneck_ratio": 1.0,
               "se_ratio": 0.0}, regnet_stages, "RegNet's quantised linear widths (Radosavovic et al. 2020)"))
