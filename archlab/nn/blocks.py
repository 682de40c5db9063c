"""The five block families, registered by name, each with its analytic cost beside its module.

Every block has the constructor `(in_chs, out_chs, stride, stage, *, drop_path, layer_scale_init)` and a
static `cost(c, in_chs, out_chs, stride, stage, *, layer_scale_init)`, so stages and networks only loop.
The ConvNeXt ablation ladder (Liu et al. 2022) is configurations of `bottleneck` (steps 0-6: depthwise
groups, inverted expansion) and `convnext` (steps 7-16: kernel, activation and norm type and count).
"""
from __future__ import annotations

import torch
from timm.layers import DropPath, LayerScale2d, SEModule
from torch import nn

from archlab.arch.spec import BLOCKS, StageSpec, make_divisible, mid_channels
from archlab.core.registry import Registry
from archlab.nn.layers import ACT_LAYERS, Cost, conv_norm_act, make_act

__all__ = ["BLOCKS_REGISTRY", "Block", "BasicBlock", "BottleneckBlock", "ConvNeXtBlock", "InvertedResidual",
           "PlainBlock", "block_class"]

BLOCKS_REGISTRY: Registry[type[Block]] = Registry("block family")


class Block(nn.Module):
    """Base of all block families: one constructor signature and a static cost."""

    has_skip: bool = False  # residual families set it where the block adds its input back

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__()

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        """Add this block's parameters and MACs to `c` and move `c` to the output side."""
        raise NotImplementedError

    def zero_init_last(self) -> None:
        """Zero the scale of the residual branch's last norm, so the block starts as its shortcut (timm's name).

        Goyal et al. 2017 ("zero gamma"); a no-op for blocks without a skip or without a norm at the branch's end.
        """
        if not self.has_skip:
            return
        last = self.branch[-1]
        norm = last[1] if isinstance(last, nn.Sequential) and len(last) > 1 else None
        if isinstance(norm, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm) and norm.weight is not None:
            nn.init.zeros_(norm.weight)


def block_class(name: str) -> type[Block]:
    """The registered block class for a family name."""
    return BLOCKS_REGISTRY.get(name)


def _groups(stage: StageSpec, channels: int) -> int:
    return 1 if stage.group_width is None else channels // stage.group_width


def _shortcut(in_chs: int, out_chs: int, stride: int, stage: StageSpec) -> nn.Module:
    """Identity, or a 1x1 strided projection + norm where the shape changes (ResNet option B)."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return conv_norm_act(in_chs, out_chs, 1, stride, norm=stage.norm, act="none", bias=stage.bias)


def _shortcut_cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, size: int) -> None:
    if stride != 1 or in_chs != out_chs:
        side = Cost(size)
        side.cna(in_chs, out_chs, 1, stride, norm=stage.norm, bias=stage.bias)
        c.params += side.params
        c.macs += side.macs


@BLOCKS_REGISTRY.register("plain")
class PlainBlock(Block):
    """Plain (VGG/AlexNet/LeNet): kxk conv -> norm -> act, no skip."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        self.conv = conv_norm_act(in_chs, out_chs, stage.kernel_size, stride, padding=stage.pad,
                                  norm=stage.norm, act=stage.act, bias=stage.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        c.cna(in_chs, out_chs, stage.kernel_size, stride, padding=stage.pad, norm=stage.norm, bias=stage.bias)


class _Residual(Block):
    """Shared residual plumbing: branch -> [layer scale] -> drop path -> + shortcut -> [act]."""

    def _finish(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, drop_path: float,
                post_act: str) -> None:
        self.shortcut = _shortcut(in_chs, out_chs, stride, stage)
        self.has_skip = True
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = make_act(post_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop_path(self.branch(x)) + self.shortcut(x))


@BLOCKS_REGISTRY.register("basic")
class BasicBlock(_Residual):
    """Basic residual (ResNet-18/34): kxk conv -> norm -> act -> kxk conv -> norm (+ skip) -> act."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        k, norm, bias = stage.kernel_size, stage.norm, stage.bias
        self.branch = nn.Sequential(
            conv_norm_act(in_chs, out_chs, k, stride, norm=norm, act=stage.act, bias=bias),
            conv_norm_act(out_chs, out_chs, k, norm=norm, act="none", bias=bias))
        self._finish(in_chs, out_chs, stride, stage, drop_path, stage.act)

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        size = c.size
        c.cna(in_chs, out_chs, stage.kernel_size, stride, norm=stage.norm, bias=stage.bias)
        c.cna(out_chs, out_chs, stage.kernel_size, norm=stage.norm, bias=stage.bias)
        _shortcut_cost(c, in_chs, out_chs, stride, stage, size)


@BLOCKS_REGISTRY.register("bottleneck")
class BottleneckBlock(_Residual):
    """Bottleneck (ResNet-50+/ResNeXt/wide): 1x1 -> kxk grouped (stride) -> 1x1, norm+act between (+ skip).

    The inner width is `out_chs * expand_ratio` (0.25 ResNet, 4 the ConvNeXt ladder's inverted bottleneck);
    `group_width` 1 makes the kxk conv depthwise.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        mid = mid_channels(stage, in_chs)
        norm, act, bias = stage.norm, stage.act, stage.bias
        self.branch = nn.Sequential(
            conv_norm_act(in_chs, mid, 1, norm=norm, act=act, bias=bias),
            conv_norm_act(mid, mid, stage.kernel_size, stride, groups=_groups(stage, mid), norm=norm, act=act,
                          bias=bias),
            conv_norm_act(mid, out_chs, 1, norm=norm, act="none", bias=bias))
        self._finish(in_chs, out_chs, stride, stage, drop_path, act)

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        size, mid = c.size, mid_channels(stage, in_chs)
        c.cna(in_chs, mid, 1, norm=stage.norm, bias=stage.bias)
        c.cna(mid, mid, stage.kernel_size, stride, groups=_groups(stage, mid), norm=stage.norm, bias=stage.bias)
        c.cna(mid, out_chs, 1, norm=stage.norm, bias=stage.bias)
        _shortcut_cost(c, in_chs, out_chs, stride, stage, size)


def se_channels(stage: StageSpec, in_chs: int, mid: int) -> int:
    """Squeeze width: from the block input, floored (EfficientNet) or from the mid width to /8 (MobileNetV3)."""
    if stage.se_base == "mid":
        return make_divisible(int(mid * stage.se_ratio), 8)
    return max(1, int(in_chs * stage.se_ratio))


@BLOCKS_REGISTRY.register("inverted_residual")
class InvertedResidual(Block):
    """MBConv: [1x1 expand -> norm -> act] -> kxk depthwise -> norm -> act [-> SE] -> 1x1 project -> norm (+ skip).

    The skip exists only where stride is 1 and widths match (MobileNetV2/V3, EfficientNet).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        mid = mid_channels(stage, in_chs)
        norm, act, bias = stage.norm, stage.act, stage.bias
        layers: list[nn.Module] = []
        if mid != in_chs:
            layers.append(conv_norm_act(in_chs, mid, 1, norm=norm, act=act, bias=bias))
        layers.append(conv_norm_act(mid, mid, stage.kernel_size, stride, groups=mid, norm=norm, act=act, bias=bias))
        if stage.se_ratio > 0:
            se_act = ACT_LAYERS.get(stage.se_act or act) or nn.Identity
            layers.append(SEModule(mid, rd_channels=se_channels(stage, in_chs, mid), act_layer=se_act,
                                   gate_layer=stage.se_gate))
        layers.append(conv_norm_act(mid, out_chs, 1, norm=norm, act="none", bias=bias))
        self.branch = nn.Sequential(*layers)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.drop_path = DropPath(drop_path) if drop_path > 0 and self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return self.drop_path(out) + x if self.has_skip else out

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        mid = mid_channels(stage, in_chs)
        if mid != in_chs:
            c.cna(in_chs, mid, 1, norm=stage.norm, bias=stage.bias)
        c.cna(mid, mid, stage.kernel_size, stride, groups=mid, norm=stage.norm, bias=stage.bias)
        if stage.se_ratio > 0:
            rd = se_channels(stage, in_chs, mid)
            c.linear(mid, rd).linear(rd, mid)  # two 1x1 convs with bias on the pooled 1x1 map
        c.cna(mid, out_chs, 1, norm=stage.norm, bias=stage.bias)


@BLOCKS_REGISTRY.register("convnext")
class ConvNeXtBlock(_Residual):
    """ConvNeXt: kxk depthwise -> norm [-> act] -> 1x1 expand [-> norm] -> act -> 1x1 [-> norm] -> layer scale (+ skip).

    `norms="one"`/`acts="one"` give ConvNeXt's single LN and GELU; `"all"` give the ladder's steps 7-12
    (a norm after every conv, ReLU/GELU after every conv and after the sum). The depthwise conv takes the
    stride when downsampling is in-block, with a 1x1 projection on the skip.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        mid = int(out_chs * stage.expand_ratio)
        every = stage.norms == "all"
        many_acts = stage.acts == "all"
        no_norm = "none"
        self.branch = nn.Sequential(
            conv_norm_act(in_chs, in_chs, stage.kernel_size, stride, groups=in_chs, norm=stage.norm,
                          act=stage.act if many_acts else "none", bias=stage.bias),
            conv_norm_act(in_chs, mid, 1, norm=stage.norm if every else no_norm, act=stage.act, bias=stage.bias),
            conv_norm_act(mid, out_chs, 1, norm=stage.norm if every else no_norm, act="none", bias=stage.bias),
            LayerScale2d(out_chs, layer_scale_init) if layer_scale_init > 0 else nn.Identity())
        self._finish(in_chs, out_chs, stride, stage, drop_path, stage.act if many_acts else "none")

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        size, mid = c.size, int(out_chs * stage.expand_ratio)
        inner_norm = stage.norm if stage.norms == "all" else "none"
        c.cna(in_chs, in_chs, stage.kernel_size, stride, groups=in_chs, norm=stage.norm, bias=stage.bias)
        c.cna(in_chs, mid, 1, norm=inner_norm, bias=stage.bias)
        c.cna(mid, out_chs, 1, norm=inner_norm, bias=stage.bias)
        if layer_scale_init > 0:
            c.params += out_chs
        _shortcut_cost(c, in_chs, out_chs, stride, stage, size)


assert tuple(BLOCKS_REGISTRY) == BLOCKS  # spec.py names what is registered here
