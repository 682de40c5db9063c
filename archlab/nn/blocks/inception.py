"""Inception (Szegedy et al. 2015, GoogLeNet): four parallel branches, concatenated.

torchvision's GoogLeNet names its third branch "5x5" but builds it with a 3x3 convolution (a known quirk,
kept for its released weights); the zoo's `googlenet` reproduces that with `branch3_kernel: 3`, and a searched
block may give the branch a true 5x5.
"""
from __future__ import annotations

import torch
from torch import nn

from archlab.arch.families import inception_pool_width
from archlab.arch.spec import StageSpec
from archlab.nn.blocks.base import BLOCKS_REGISTRY, Block
from archlab.nn.layers import Cost, conv_norm_act


@BLOCKS_REGISTRY.register("inception")
class InceptionBlock(Block):
    """Inception: [1x1 | 1x1 -> kxk | 1x1 -> k3xk3 | 3x3 max-pool -> 1x1], each conv-norm-act, concatenated.

    Branch widths are the stage's `branch1`, `branch2_reduce`/`branch2`, `branch3_reduce`/`branch3`; the pool
    branch gets what they leave of `width`. A strided block strides every branch (the pool too).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        k3 = stage.branch3_kernel or stage.kernel_size

        def cna(a: int, b: int, k: int, s: int = 1) -> nn.Module:
            return conv_norm_act(a, b, k, s, norm=stage.norm, act=stage.act, bias=stage.bias)

        self.branch1 = cna(in_chs, stage.branch1, 1, stride)
        self.branch2 = nn.Sequential(cna(in_chs, stage.branch2_reduce, 1),
                                     cna(stage.branch2_reduce, stage.branch2, stage.kernel_size, stride))
        self.branch3 = nn.Sequential(cna(in_chs, stage.branch3_reduce, 1),
                                     cna(stage.branch3_reduce, stage.branch3, k3, stride))
        # torchvision pools with ceil_mode=True at stride 1, where ceil and floor agree; floor keeps a strided
        # pool the same side as the strided convs
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride, 1), cna(in_chs, inception_pool_width(stage), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        size, k3 = c.size, stage.branch3_kernel or stage.kernel_size
        norm, bias = stage.norm, stage.bias
        branches = ((stage.branch1, 0, 1), (stage.branch2, stage.branch2_reduce, stage.kernel_size),
                    (stage.branch3, stage.branch3_reduce, k3))
        for width, reduce, k in branches:
            side = Cost(size)
            if reduce:
                side.cna(in_chs, reduce, 1, norm=norm, bias=bias).cna(reduce, width, k, stride, norm=norm, bias=bias)
            else:
                side.cna(in_chs, width, 1, stride, norm=norm, bias=bias)
            c.params, c.macs = c.params + side.params, c.macs + side.macs
        c.pool(3, stride, 1).cna(in_chs, inception_pool_width(stage), 1, norm=norm, bias=bias)
