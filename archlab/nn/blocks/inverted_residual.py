"""MBConv (Sandler et al. 2018 MobileNetV2; Howard et al. 2019 MobileNetV3; Tan and Le 2019 EfficientNet)."""
from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from archlab.arch.spec import StageSpec, mid_channels
from archlab.nn.blocks.base import BLOCKS_REGISTRY, Block, se_channels, squeeze_excite
from archlab.nn.layers import Cost, conv_norm_act


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
            layers.append(squeeze_excite(stage, in_chs, mid, act))
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
