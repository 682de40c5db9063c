"""What each block family reads from a StageSpec, its inner width, its own rules and its display name.

One `Family` row per family, torch-free, so the spec (validation, `mid_channels`), the search-space language
(which fields apply to a family), the ablation steps and the reports ask the family instead of keeping their
own lists. The family's module and analytic `cost()` live beside each other in `archlab.nn.blocks.<name>`;
this row is the torch-free half of the same family (archlab.arch must not import torch).
See docs/search_spaces.md, "Adding a block family".
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archlab.core.errors import SpecError
from archlab.core.registry import Registry

if TYPE_CHECKING:
    from archlab.arch.spec import StageSpec

__all__ = ["FAMILIES", "STAGE_SHARED", "Family", "check_owned_field", "family", "family_fields", "inception_pool_width",
           "owner_of", "rescale_stage", "shuffle_branch_width"]

# Fields every stage reads whatever its family; the rest are read only by the families that list them.
STAGE_SHARED = frozenset({"block", "depth", "width", "stride", "downsample", "kernel_size", "norm", "act", "bias"})
_SE = frozenset({"se_ratio", "se_gate", "se_act", "se_base"})
INCEPTION_FIELDS = ("branch1", "branch2_reduce", "branch2", "branch3_reduce", "branch3")


def _no_check(stage: StageSpec) -> None:
    return None


def _rescale_width(values: Mapping[str, Any], chs: Callable[[int], int]) -> dict[str, Any]:
    return {"width": chs(values["width"])}


@dataclass(frozen=True, slots=True)
class Family:
    """A block family's torch-free facts: the fields it reads, its inner width, its rules and its labels."""

    name: str
    label: str                                          # short display name ("MBConv", "ShuffleV2")
    reads: frozenset[str]                               # StageSpec fields read beyond STAGE_SHARED
    mid: Callable[[StageSpec, int], int]                # inner (grouped/depthwise) width for `in_chs` input
    owns: frozenset[str] = frozenset()                  # fields no other family may set away from their default
    check: Callable[[StageSpec], None] = _no_check     # its own rules: raises SpecError(field, rule, value)
    detail: Callable[[StageSpec], str] = lambda s: ""   # family-specific part of an architecture-table row
    layer_scale: bool = False                           # reads ArchSpec.layer_scale_init
    grouped: bool = False                               # reads group_width (the spec checks it divides `mid`)
    # the width fields of a stage (its field values) rescaled by `chs` (width scaling, the ablation proxy)
    rescale: Callable[[Mapping[str, Any], Callable[[int], int]], dict[str, Any]] = _rescale_width


FAMILIES: Registry[Family] = Registry("block family")


def family(name: str) -> Family:
    """The Family row registered as `name`."""
    return FAMILIES.get(name)


def family_fields() -> dict[str, frozenset[str]]:
    """Family name -> the StageSpec fields it reads beyond STAGE_SHARED (the space language's applicability)."""
    return {name: FAMILIES.get(name).reads for name in FAMILIES}


def owner_of(field_name: str) -> str | None:
    """The family that owns `field_name` (no other family may set it), or None for a shared field."""
    for name in FAMILIES:
        if field_name in FAMILIES.get(name).owns:
            return name
    return None


def check_owned_field(field_name: str, value: int | None) -> None:
    """The rule an owned field's value must meet on its own (a branch width > 0, an odd kernel)."""
    if field_name in INCEPTION_FIELDS:
        _positive(field_name, value)
    elif field_name == "branch3_kernel" and value is not None and value % 2 == 0:
        raise SpecError(field_name, "must be odd (same padding)", value)


def rescale_stage(stage: StageSpec, chs: Callable[[int], int]) -> StageSpec:
    """`stage` with its family's width fields rescaled by `chs` (scaling, the ablation proxy's reduction)."""
    from dataclasses import fields, replace
    values = {f.name: getattr(stage, f.name) for f in fields(stage)}
    return replace(stage, **family(stage.block).rescale(values, chs))


def _add(row: Family) -> Family:
    return FAMILIES.register(row.name)(row)


def _positive(path: str, value: int | None) -> None:
    if value is None or value <= 0:
        raise SpecError(path, "must be > 0 (a branch width of 0 leaves the branch without channels)", value)


# --- plain, basic, bottleneck, inverted residual, convnext ------------------------------------------------

_add(Family("plain", "plain", frozenset({"padding"}), lambda s, c: s.width))
_add(Family("basic", "basic", frozenset(), lambda s, c: s.width))


def _bneck_mid(stage: StageSpec, in_chs: int) -> int:
    return max(1, int(stage.width * stage.expand_ratio))


def _bneck_detail(stage: StageSpec) -> str:
    parts = [f"e{stage.expand_ratio:g}"]
    if stage.group_width == 1:
        parts.append("dw")
    elif stage.group_width:
        parts.append(f"g{stage.group_width}")
    if stage.se_ratio:
        parts.append(f"SE {stage.se_ratio:g}")
    return " ".join(parts)


# RegNet X is this family with a group width, RegNet Y adds SE after the grouped conv (torchvision's order)
_add(Family("bottleneck", "bneck", frozenset({"expand_ratio", "group_width"}) | _SE, _bneck_mid,
            detail=_bneck_detail, grouped=True))


def _mbconv_mid(stage: StageSpec, in_chs: int) -> int:
    from archlab.arch.spec import make_divisible
    # torchvision MBConv/MobileNetV2: expansion of the *input* width, rounded to a multiple of 8
    return in_chs if stage.expand_ratio == 1.0 else make_divisible(in_chs * stage.expand_ratio, 8)


_add(Family("inverted_residual", "MBConv", frozenset({"expand_ratio"}) | _SE, _mbconv_mid,
            detail=lambda s: " ".join(p for p in (f"e{s.expand_ratio:g}" if s.expand_ratio != 1.0 else "",
                                                  f"SE {s.se_ratio:g}" if s.se_ratio else "") if p)))

# always depthwise (group_width is not read); the depthwise conv comes first, on the block's input
_add(Family("convnext", "ConvNeXt", frozenset({"expand_ratio", "acts", "norms", "grn"}), lambda s, c: c,
            owns=frozenset({"grn"}), layer_scale=True,
            detail=lambda s: f"e{s.expand_ratio:g}" + (" GRN" if s.grn else "")))


# --- inception ------------------------------------------------------------------------------------------------

def inception_pool_width(stage: StageSpec) -> int:
    """Width of the pool branch's 1x1 conv: what the other three branches leave of `width`."""
    return stage.width - stage.branch1 - stage.branch2 - stage.branch3


def _inception_check(stage: StageSpec) -> None:
    for name in (*INCEPTION_FIELDS, "branch3_kernel"):
        check_owned_field(name, getattr(stage, name))
    if inception_pool_width(stage) <= 0:
        raise SpecError("width", "must exceed branch1 + branch2 + branch3 "
                        f"({stage.branch1 + stage.branch2 + stage.branch3}): the pool branch gets the rest",
                        stage.width)


def _inception_detail(s: StageSpec) -> str:
    k3 = s.branch3_kernel or s.kernel_size
    return (f"1x1 {s.branch1} | {s.branch2_reduce}>{s.kernel_size}x{s.kernel_size} {s.branch2} | "
            f"{s.branch3_reduce}>{k3}x{k3} {s.branch3} | pool {inception_pool_width(s)}")


def _inception_rescale(values: Mapping[str, Any], chs: Callable[[int], int]) -> dict[str, Any]:
    """Every branch rescaled on its own, the pool branch too; the width is their sum again."""
    out = {name: chs(values[name]) for name in INCEPTION_FIELDS}
    pool = values["width"] - values["branch1"] - values["branch2"] - values["branch3"]
    out["width"] = out["branch1"] + out["branch2"] + out["branch3"] + chs(max(pool, 1))
    return out


_INCEPTION_OWN = frozenset({*INCEPTION_FIELDS, "branch3_kernel"})
_add(Family("inception", "Inception", _INCEPTION_OWN, lambda s, c: s.width, owns=_INCEPTION_OWN,
            check=_inception_check, detail=_inception_detail, rescale=_inception_rescale))


# --- shufflenet v2 --------------------------------------------------------------------------------------------

def shuffle_branch_width(stage: StageSpec) -> int:
    """Channels through the unit's conv branch (the rest pass the split, or the stride-2 unit's other branch)."""
    return round(stage.width * stage.split_ratio)


def _shuffle_check(stage: StageSpec) -> None:
    branch = stage.width * stage.split_ratio
    if abs(branch - round(branch)) > 1e-9 or not 0 < round(branch) < stage.width:
        raise SpecError("split_ratio", f"must split width {stage.width} into two whole, non-empty parts "
                        f"(width x split_ratio = {branch:g})", stage.split_ratio)
    if stage.width % 2:
        raise SpecError("width", "must be even: the channel shuffle interleaves two groups", stage.width)


_add(Family("shuffle", "ShuffleV2", frozenset({"split_ratio"}), lambda s, c: shuffle_branch_width(s),
            owns=frozenset({"split_ratio"}), check=_shuffle_check,
            detail=lambda s: f"split {s.split_ratio:g} shuffle 2"))
