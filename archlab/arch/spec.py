"""Declarative CNN architecture specs: frozen, validated, serialisable, torch-free.

An `ArchSpec` is a stem, a tuple of stages (rows of identical blocks, as in torchvision's `MBConvConfig`
tables and timm's `ByoBlockCfg`) and a head. Every canonical network in `archlab.arch.zoo` and every point of a
search space is one. Nothing here imports torch, so specs can be made, validated, hashed and compared in
microseconds (pycls AnyNet, Radosavovic et al. 2020, is the model for "one generic network").
"""
from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from archlab.core.errors import SpecError, did_you_mean
from archlab.core.schema import Range, Schema

__all__ = [
    "ACTS", "BLOCKS", "DOWNSAMPLES", "NORMS", "STEMS", "ArchSpec", "HeadSpec", "StageSpec", "StemSpec",
    "conv_out", "make_divisible", "load_spec",
]

# Names the torch side registers; kept here so specs validate without importing torch.
# archlab.nn.blocks checks at import that its registries hold exactly these names.
BLOCKS = ("plain", "basic", "bottleneck", "inverted_residual", "convnext", "inception", "shuffle")
STEMS = ("conv", "deep", "patchify", "identity")
NORMS = ("batchnorm", "layernorm", "none")
ACTS = ("relu", "relu6", "silu", "hardswish", "gelu", "tanh", "none")
GATES = ("sigmoid", "hard_sigmoid")
DOWNSAMPLES = ("stride", "layer", "pool", "pool_overlap", "pool_ceil", "pool_overlap_ceil")
STEM_POOLS = ("none", "max", "max_nopad", "max_ceil")
HEAD_POOLS = ("avg", "max", "none")
PADDINGS = ("same", "valid")
COUNTS = ("all", "one")


# Bounds of the numbers a spec holds: far above every real network (ConvNeXt-XL is 2048 wide, ResNet-152 has 36
# blocks in a stage, EfficientNet-B7 reads 600 px), low enough that an error comes before any cost overflows.
# The reader (archlab.core.schema) checks them, and they hold for specs made in code as well.
MAX_WIDTH = 2 ** 16
MAX_STAGE_DEPTH = 10 ** 4
MAX_IMG_SIZE = 8192
MAX_KERNEL = 1024
Width = Annotated[int, Range(gt=0, le=MAX_WIDTH)]
Depth = Annotated[int, Range(gt=0, le=MAX_STAGE_DEPTH)]
Kernel = Annotated[int, Range(gt=0, le=MAX_KERNEL)]
Ratio = Annotated[float, Range(gt=0, le=1024)]    # expansion ratios
BranchWidth = Annotated[int, Range(ge=0, le=MAX_WIDTH)]   # 0 only where the family has no such branch


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `value` to a multiple of `divisor`, never more than 10% down (torchvision/timm rounding).

    Rewritten rather than imported from timm.layers because this module must not import torch.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def conv_out(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output side of a convolution or pooling window over `size` pixels."""
    return (size + 2 * padding - kernel_size) // stride + 1


# (kernel, stride, padding, ceil_mode) of the max-pools a stem or a stage may end with; kernel 0 means
# "the stage's stride". GoogLeNet pools with ceil_mode=True (torchvision), which keeps a last partial window.
STEM_POOL_WINDOWS = {"max": (3, 2, 1, False), "max_nopad": (3, 2, 0, False), "max_ceil": (3, 2, 0, True)}
STAGE_POOL_WINDOWS = {"pool": (0, 0, 0, False), "pool_overlap": (3, 2, 0, False), "pool_ceil": (0, 0, 0, True),
                      "pool_overlap_ceil": (3, 2, 0, True)}


def stage_pool_window(downsample: str, stride: int) -> tuple[int, int, int, bool] | None:
    """(kernel, stride, padding, ceil_mode) of the max-pool after a stage's blocks, or None."""
    window = STAGE_POOL_WINDOWS.get(downsample)
    if window is None or stride == 1:
        return None
    kernel, step, pad, ceil = window
    return (kernel or stride, step or stride, pad, ceil)


def pool_out(size: int, kernel_size: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """Output side of a max-pool, with PyTorch's ceil_mode rule (a last window must start inside the input)."""
    if not ceil_mode:
        return conv_out(size, kernel_size, stride, padding)
    out = -(-(size + 2 * padding - kernel_size) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _fail(path: str, rule: str, value: object) -> typing.NoReturn:
    raise SpecError(path, rule, value)


def _check_choice(path: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(path, "must be one of " + ", ".join(choices) + did_you_mean(str(value), choices,
                                                                                     list_valid=False), value)


def _check_positive(path: str, value: int | float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        _fail(path, "must be >= 0" if allow_zero else "must be > 0", value)


@dataclass(frozen=True, slots=True)
class StemSpec(Schema):
    """The stem: `conv` (kxk/s conv-norm-act [+ 3x3/2 max-pool]), `deep` (three 3x3), `patchify`, `identity`.

    ResNet is conv k7 s2 + max-pool, MobileNet/EfficientNet conv k3 s2, the small-image stem conv k3 s1,
    ConvNeXt patchify k4 (stride = kernel, bias, optional norm, no activation).
    """

    type: str = "conv"
    width: Width = 64
    kernel_size: Kernel = 3
    stride: Kernel = 2
    # None: kernel_size // 2 for conv and deep, 0 for patchify
    padding: Annotated[int, Range(le=MAX_KERNEL)] | None = None
    pool: str = "none"           # max: 3x3/2 pad 1 (ResNet); max_nopad: 3x3/2 no pad (AlexNet)
    norm: str = "batchnorm"
    act: str = "relu"

    def __post_init__(self) -> None:
        self._normalise()
        _check_choice("type", self.type, STEMS)
        if self.padding is not None and self.padding < 0:
            _fail("padding", "must be >= 0", self.padding)
        if self.type in ("patchify", "identity") and self.pool != "none":
            _fail("pool", f"must be none for a {self.type} stem", self.pool)
        if self.type == "patchify" and self.kernel_size != self.stride:
            _fail("stride", f"must equal kernel_size ({self.kernel_size}) for a patchify stem", self.stride)
        _check_choice("pool", self.pool, STEM_POOLS)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("act", self.act, ACTS)

    @property
    def pad(self) -> int:
        """Padding actually applied by the stem's (first) convolution."""
        if self.padding is not None:
            return self.padding
        return 0 if self.type == "patchify" else self.kernel_size // 2

    def out_size(self, size: int) -> int:
        """Spatial side after the stem for an input side `size`."""
        if self.type == "identity":
            return size
        size = conv_out(size, self.kernel_size, self.stride, self.pad)
        if self.pool in STEM_POOL_WINDOWS:
            size = pool_out(size, *STEM_POOL_WINDOWS[self.pool])
        return size


@dataclass(frozen=True, slots=True)
class StageSpec(Schema):
    """One stage: `depth` blocks of one family; only the first block changes width and resolution.

    Which fields a family reads, and its own rules, are the family's (`archlab.arch.families`): plain/basic
    use kernel_size; bottleneck adds expand_ratio (of the output width), group_width and se_*;
    inverted_residual uses expand_ratio (of the input width), se_*; convnext (depthwise conv first) uses
    expand_ratio (of the output width), acts, norms and grn; inception its branch widths; shuffle split_ratio.
    """

    block: str                        # a name in BLOCKS
    depth: Depth
    width: Width                      # output channels of every block in the stage
    stride: int = 1
    kernel_size: Kernel = 3
    expand_ratio: Ratio = 1.0         # > 1 inverted, < 1 bottleneck
    group_width: Width | None = None    # None dense, 1 depthwise, g: ResNeXt groups of g channels
    se_ratio: float = 0.0             # 0 disables squeeze-excitation
    se_gate: str = "sigmoid"
    se_act: str | None = None         # None: the block's activation
    se_base: str = "in"               # squeeze width from block input (EfficientNet) or mid width (MobileNetV3)
    act: str = "relu"
    norm: str = "batchnorm"
    acts: str = "all"                 # convnext family: an activation after every conv, or one in the MLP
    norms: str = "all"                # convnext family: a norm after every conv, or one after the dw conv
    downsample: str = "stride"        # stride: in-block; layer: norm + kxk/k conv; pool(_overlap): max-pool after
    padding: str = "same"
    bias: bool | None = None          # None: a conv has a bias exactly when no BatchNorm follows it
    branch1: BranchWidth = 0          # inception: the 1x1 branch's width
    branch2_reduce: BranchWidth = 0   # inception: the 1x1 reduction before the kxk branch
    branch2: BranchWidth = 0          # inception: the kxk branch's width
    branch3_reduce: BranchWidth = 0   # inception: the 1x1 reduction before the second kxk branch
    branch3: BranchWidth = 0          # inception: the second kxk branch's width; the pool branch gets the rest
    branch3_kernel: Kernel | None = None   # inception: the second branch's kernel (None: kernel_size)
    split_ratio: Annotated[float, Range(gt=0, lt=1)] = 0.5   # shuffle: share of channels through the conv branch
    grn: bool = False                 # convnext: global response norm after the MLP activation (ConvNeXt V2)

    def __post_init__(self) -> None:
        self._normalise()
        _check_choice("block", self.block, BLOCKS)
        if self.stride not in (1, 2):
            _fail("stride", "must be 1 or 2", self.stride)
        _check_choice("padding", self.padding, PADDINGS)
        if self.padding == "same" and self.kernel_size % 2 == 0:
            _fail("kernel_size", "must be odd with same padding", self.kernel_size)
        if self.padding == "valid" and self.block != "plain":
            _fail("padding", "may be valid only for the plain family", self.padding)
        if not 0.0 <= self.se_ratio < 1.0:
            _fail("se_ratio", "must be in [0, 1)", self.se_ratio)
        _check_choice("se_gate", self.se_gate, GATES)
        if self.se_act is not None:
            _check_choice("se_act", self.se_act, ACTS)
        _check_choice("se_base", self.se_base, ("in", "mid"))
        _check_choice("act", self.act, ACTS)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("acts", self.acts, COUNTS)
        _check_choice("norms", self.norms, COUNTS)
        _check_choice("downsample", self.downsample, DOWNSAMPLES)
        _check_family(self)

    @property
    def pad(self) -> int:
        """Padding of the stage's kxk convs."""
        return self.kernel_size // 2 if self.padding == "same" else 0

    def out_size(self, size: int) -> int:
        """Spatial side after this stage for an input side `size`."""
        if self.downsample == "layer":
            size = conv_out(size, self.stride, self.stride, 0)
        first_stride = self.stride if self.downsample == "stride" else 1
        size = conv_out(size, self.kernel_size, first_stride, self.pad)
        # later blocks keep the side with same padding and shrink it by k - 1 with valid padding
        size -= (self.depth - 1) * (self.kernel_size - 1 - 2 * self.pad)
        window = stage_pool_window(self.downsample, self.stride)
        if window is not None:
            size = pool_out(size, *window)
        return size


@dataclass(frozen=True, slots=True)
class HeadSpec(Schema):
    """The head: [1x1 conv-norm-act] -> pool -> [norm] -> [hidden FC-act-dropout ...] -> dropout -> FC."""

    conv_width: Width | None = None     # MobileNet/EfficientNet's final 1x1 conv
    pool: str = "avg"
    pool_size: Kernel = 1                # adaptive pooling output side: 7 for VGG, 6 for AlexNet
    norm: str = "none"                # norm after pooling (ConvNeXt: layernorm)
    hidden: tuple[Width, ...] = ()      # hidden FC widths: (4096, 4096) for VGG, (1280,) for MobileNetV3
    act: str = "relu"
    dropout: float = 0.0
    # stages whose output also feeds an auxiliary classifier (GoogLeNet's training-time heads after inception
    # 4a and 4d: (4, 7) in the zoo's googlenet): off by default, as torchvision's evaluated network
    aux: tuple[Annotated[int, Range(ge=0, le=MAX_STAGE_DEPTH)], ...] = ()

    def __post_init__(self) -> None:
        self._normalise()
        _check_choice("pool", self.pool, HEAD_POOLS)
        if len(set(self.aux)) != len(self.aux):
            _fail("aux", "must not name a stage twice", list(self.aux))
        _check_choice("norm", self.norm, NORMS)
        _check_choice("act", self.act, ACTS)
        if not 0.0 <= self.dropout < 1.0:
            _fail("dropout", "must be in [0, 1)", self.dropout)


@dataclass(frozen=True, slots=True)
class ArchSpec(Schema):
    """A whole network: stem -> stages -> head, for `img_size` inputs with `in_chans` channels."""

    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec = field(default_factory=HeadSpec)
    img_size: Annotated[int, Range(gt=0, le=MAX_IMG_SIZE)] = 224
    in_chans: Width = 3
    num_classes: Annotated[int, Range(gt=0, le=10 ** 6)] = 1000
    drop_path_rate: float = 0.0       # stochastic depth, linear over all residual blocks (timm's schedule)
    layer_scale_init: float = 0.0     # convnext family: 0 disables layer scale
    bn_eps: float = 1e-5              # every BatchNorm's epsilon (torchvision's MobileNetV3, EfficientNet-B5..B7: 1e-3)
    bn_momentum: float = 0.1          # every BatchNorm's running-stat momentum (the TF-trained ports: 0.01)
    name: str = ""                    # a label only: not part of arch_id

    def __post_init__(self) -> None:
        self._normalise()
        if not self.stages:
            _fail("stages", "must hold at least one stage", list(self.stages))
        if not 0.0 <= self.drop_path_rate < 1.0:
            _fail("drop_path_rate", "must be in [0, 1)", self.drop_path_rate)
        _check_positive("layer_scale_init", self.layer_scale_init, allow_zero=True)
        if not 0.0 < self.bn_eps < 1.0:
            _fail("bn_eps", "must be in (0, 1)", self.bn_eps)
        if not 0.0 < self.bn_momentum <= 1.0:
            _fail("bn_momentum", "must be in (0, 1]", self.bn_momentum)
        size = self.stem.out_size(self.img_size)
        if size < 1:
            _fail("img_size", f"is too small: the stem leaves {size} px", self.img_size)
        in_chs = self.stem.width if self.stem.type != "identity" else self.in_chans
        for i, stage in enumerate(self.stages):
            _check_groups(f"stages[{i}]", stage, in_chs)
            size = stage.out_size(size)
            if size < 1:
                _fail("img_size", f"is too small: stages[{i}] leaves {size} px", self.img_size)
            in_chs = stage.width
        for j, index in enumerate(self.head.aux):
            if not 0 <= index < len(self.stages):
                _fail(f"head.aux[{j}]", f"must name a stage (0..{len(self.stages) - 1})", index)
        if self.head.pool == "none" and self.head.pool_size != 1:
            _fail("head.pool_size", "must be 1 when head.pool is none", self.head.pool_size)

    @property
    def arch_id(self) -> str:
        """Stable content hash of the architecture (the name is left out)."""
        data = self.to_dict()
        data.pop("name")
        for key, default in _LATE_FIELDS.items():
            if data.get(key) == default:
                data.pop(key)
        if not data["head"].get("aux"):
            data["head"].pop("aux", None)
        for stage in data["stages"]:
            for key, default in _LATE_STAGE_FIELDS.items():
                if stage.get(key) == default:
                    stage.pop(key)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def num_blocks(self) -> int:
        """Total number of blocks over all stages."""
        return sum(s.depth for s in self.stages)

    def to_json(self) -> str:
        """The spec as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def to_yaml(self) -> str:
        """The spec as YAML (block style, keys in field order)."""
        import yaml  # kept local: PyYAML is only needed for YAML
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        """Parse a spec from JSON text (within the file boundary's depth and duplicate-key checks)."""
        from archlab.core.yamlio import load_json_text
        return cls.from_dict(load_json_text(text))

    @classmethod
    def from_yaml(cls, text: str) -> ArchSpec:
        """Parse a spec from YAML text (safe loader only)."""
        from archlab.core.yamlio import load_yaml_text
        return cls.from_dict(load_yaml_text(text))

    def replace(self, **changes: Any) -> ArchSpec:
        """A copy with `changes` applied (validated again)."""
        return replace(self, **changes)

    def with_stages(self, **changes: Any) -> ArchSpec:
        """A copy with the same `changes` applied to every stage."""
        return replace(self, stages=tuple(replace(s, **changes) for s in self.stages))


# Fields added after arch ids were first published: left out of the hash at their default, so every id
# recorded in a run folder or golden file before they existed still names the same architecture.
_LATE_FIELDS: dict[str, object] = {"bn_eps": 1e-5, "bn_momentum": 0.1}
_LATE_STAGE_FIELDS: dict[str, object] = {"branch1": 0, "branch2_reduce": 0, "branch2": 0, "branch3_reduce": 0,
                                         "branch3": 0, "branch3_kernel": None, "split_ratio": 0.5, "grn": False}


def _check_family(stage: StageSpec) -> None:
    """The family's own rules, and no field another family owns set away from its default (GRN on a ResNet)."""
    from archlab.arch.families import FAMILIES  # the families module reads StageSpec: imported when first used
    for name in FAMILIES:
        row = FAMILIES.get(name)
        if name == stage.block:
            row.check(stage)
            continue
        for key in row.owns:
            if getattr(stage, key) != StageSpec.__dataclass_fields__[key].default:
                raise SpecError(key, f"applies only to the {name} family, not {stage.block}", getattr(stage, key))


def _check_groups(path: str, stage: StageSpec, in_chs: int) -> None:
    """Group width must divide the grouped conv's channels in every block of the stage."""
    if stage.group_width is None:
        return
    for chs in {mid_channels(stage, in_chs), mid_channels(stage, stage.width)}:
        if chs % stage.group_width:
            raise SpecError(f"{path}.group_width", f"must divide the grouped conv's {chs} channels",
                            stage.group_width)


def mid_channels(stage: StageSpec, in_chs: int) -> int:
    """Width of a block's inner (grouped or depthwise) conv, as its family defines it."""
    from archlab.arch.families import family
    return family(stage.block).mid(stage, in_chs)


def load_spec(path: str | Path) -> ArchSpec:
    """Read an ArchSpec from a .json, .yaml or .yml file; errors name the file, line, key path, rule and value."""
    # size, depth, duplicate keys and UTF-8 are checked at the file boundary (archlab.core.yamlio)
    spec: ArchSpec = ArchSpec.load(path)
    return spec
