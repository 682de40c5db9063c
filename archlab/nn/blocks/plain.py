"""Plain blocks (LeCun et al. 1998, Krizhevsky et al. 2012, Simonyan and Zisserman 2015): conv -> norm -> act."""
from __future__ import annotations

import torch

from archlab.arch.spec import StageSpec
from archlab.nn.blocks.base import BLOCKS_REGISTRY, Block
from archlab.nn.layers import Cost, conv_norm_act


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
