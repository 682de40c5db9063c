"""Residual blocks: basic and bottleneck (He et al. 2016; Xie et al. 2017 ResNeXt; Radosavovic et al. 2020 RegNet).

The ConvNeXt ablation ladder (Liu et al. 2022) runs its steps 0-6 as bottleneck configurations (depthwise
groups, inverted expansion); RegNet X is the bottleneck with a group width, RegNet Y adds SE after the
grouped conv, squeezing from the block's input width (torchvision's `SqueezeExcitation` placement).
"""
from __future__ import annotations

from torch import nn

from archlab.arch.spec import StageSpec, mid_channels
from archlab.nn.blocks.base import BLOCKS_REGISTRY, Residual, groups_of, se_channels, shortcut_cost, squeeze_excite
from archlab.nn.layers import Cost, conv_norm_act


@BLOCKS_REGISTRY.register("basic")
class BasicBlock(Residual):
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
        shortcut_cost(c, in_chs, out_chs, stride, stage, size)


@BLOCKS_REGISTRY.register("bottleneck")
class BottleneckBlock(Residual):
    """Bottleneck (ResNet-50+/ResNeXt/wide/RegNet): 1x1 -> kxk grouped (stride) [-> SE] -> 1x1 (+ skip).

    The inner width is `out_chs * expand_ratio` (0.25 ResNet, 1 RegNet, 4 the ConvNeXt ladder's inverted
    bottleneck); `group_width` 1 makes the kxk conv depthwise.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        mid = mid_channels(stage, in_chs)
        norm, act, bias = stage.norm, stage.act, stage.bias
        layers = [conv_norm_act(in_chs, mid, 1, norm=norm, act=act, bias=bias),
                  conv_norm_act(mid, mid, stage.kernel_size, stride, groups=groups_of(stage, mid), norm=norm,
                                act=act, bias=bias)]
        if stage.se_ratio > 0:
            layers.append(squeeze_excite(stage, in_chs, mid, act))
        layers.append(conv_norm_act(mid, out_chs, 1, norm=norm, act="none", bias=bias))
        self.branch = nn.Sequential(*layers)
        self._finish(in_chs, out_chs, stride, stage, drop_path, act)

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        size, mid = c.size, mid_channels(stage, in_chs)
        c.cna(in_chs, mid, 1, norm=stage.norm, bias=stage.bias)
        c.cna(mid, mid, stage.kernel_size, stride, groups=groups_of(stage, mid), norm=stage.norm, bias=stage.bias)
        if stage.se_ratio > 0:
            rd = se_channels(stage, in_chs, mid)
            c.linear(mid, rd).linear(rd, mid)  # two 1x1 convs with bias on the pooled 1x1 map
        c.cna(mid, out_chs, 1, norm=stage.norm, bias=stage.bias)
        shortcut_cost(c, in_chs, out_chs, stride, stage, size)
