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

__all__ = ["GENERATORS", "Generator", "check_regnet_param", "regnet_stages", "regnet_widths"]

QUANT = 8  # RegNet's width quantum


@dataclass(frozen=True, slots=True)
class Generator:
    """A named design-space rule: its parameters (name -> default, None if required), the rule and its checks."""

    name: str
    params: dict[str, Any]
    fn: Callable[..., tuple[dict[str, Any], ...]]   # keyword parameters -> stage field dicts
    check: Callable[[str, Any], None]               # one parameter value alone: SpecError(name, rule, value)
    sets: frozenset[str]                            # the StageSpec fields every generated row sets
    doc: str = ""

    def __call__(self, **values: Any) -> tuple[dict[str, Any], ...]:
        """The stages (StageSpec field dicts) for the given parameter values."""
        return self.fn(**values)


GENERATORS: Registry[Generator] = Registry("structure generator")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# parameter -> (holds, rule): each parameter's own rule, so a space file's range is checked value by value
_REGNET_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "depth": (lambda v: _is_int(v) and 1 <= v <= 10_000, "must be an integer in [1, 10000] (blocks in all stages)"),
    "w0": (lambda v: _is_int(v) and 0 < v <= 2 ** 16 and v % QUANT == 0,
           f"must be a positive multiple of {QUANT} (the first block's width), at most 65536"),
    "wa": (lambda v: _is_number(v) and 0 <= v <= 2 ** 16, "must be a number in [0, 65536] (the width slope)"),
    "wm": (lambda v: _is_number(v) and 1 < v <= 64, "must be a number > 1 and <= 64 (the width step between stages)"),
    "group_width": (lambda v: _is_int(v) and 1 <= v <= 2 ** 16, "must be an integer in [1, 65536]"),
    "bottleneck_ratio": (lambda v: _is_number(v) and 0 < v <= 64, "must be a number in (0, 64]"),
    "se_ratio": (lambda v: _is_number(v) and 0 <= v < 1, "must be a number in [0, 1)"),
}


def check_regnet_param(name: str, value: Any) -> None:
    """Raise SpecError(name, rule, value) unless `value` is a valid RegNet generator parameter `name`."""
    holds, rule = _REGNET_RULES[name]
    if not holds(value):
        raise SpecError(name, rule, value)


def regnet_widths(depth: int, w0: int, wa: float, wm: float) -> list[int]:
    """Per-block widths of the quantised linear rule; SpecError names the parameter that gives no valid stage."""
    for name, value in (("depth", depth), ("w0", w0), ("wa", wa), ("wm", wm)):
        check_regnet_param(name, value)
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
    for name, value in (("group_width", group_width), ("bottleneck_ratio", bottleneck_ratio), ("se_ratio", se_ratio)):
        check_regnet_param(name, value)
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
               "se_ratio": 0.0}, regnet_stages, check_regnet_param,
    frozenset({"block", "depth", "width", "stride", "expand_ratio", "group_width", "se_ratio"}),
    "RegNet's quantised linear widths (Radosavovic et al. 2020)"))
