"""ShuffleNet V2 units (Ma et al. 2018): channel split, a 1x1 -> dw kxk -> 1x1 branch, concatenation, shuffle."""
from __future__ import annotations

import torch
from torch import nn

from archlab.arch.families import shuffle_branch_width
from archlab.arch.spec import StageSpec
from archlab.nn.blocks.base import BLOCKS_REGISTRY, Block
from archlab.nn.layers import Cost, conv_norm_act


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave `groups` channel groups: (g, c/g) -> (c/g, g), as ShuffleNet."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


@BLOCKS_REGISTRY.register("shuffle")
class ShuffleUnit(Block):
    """ShuffleNet V2: split -> [1x1 -> kxk dw -> 1x1] on one part -> concat -> shuffle; the downsampling unit
    runs [kxk dw -> 1x1] on the whole input as its second branch instead of passing channels through.

    `split_ratio` of the output width goes through the conv branch (ShuffleNet V2: half). The two-branch unit
    is used where the stride is 2 or the width changes, so any stage shape is a valid unit.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        branch, k, norm, bias = shuffle_branch_width(stage), stage.kernel_size, stage.norm, stage.bias
        self.keep = out_chs - branch
        self.split = stride == 1 and in_chs == out_chs
        self.branch1: nn.Module = nn.Identity()
        if not self.split:
            self.branch1 = nn.Sequential(
                conv_norm_act(in_chs, in_chs, k, stride, groups=in_chs, norm=norm, act="none", bias=bias),
                conv_norm_act(in_chs, self.keep, 1, norm=norm, act=stage.act, bias=bias))
        first = branch if self.split else in_chs
        self.branch2 = nn.Sequential(
            conv_norm_act(first, branch, 1, norm=norm, act=stage.act, bias=bias),
            conv_norm_act(branch, branch, k, stride, groups=branch, norm=norm, act="none", bias=bias),
            conv_norm_act(branch, branch, 1, norm=norm, act=stage.act, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split:
            out = torch.cat((x[:, :self.keep], self.branch2(x[:, self.keep:])), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        branch, k, norm, bias = shuffle_branch_width(stage), stage.kernel_size, stage.norm, stage.bias
        split = stride == 1 and in_chs == out_chs
        size = c.size
        if not split:
            side = Cost(size)
            side.cna(in_chs, in_chs, k, stride, groups=in_chs, norm=norm, bias=bias)
            side.cna(in_chs, out_chs - branch, 1, norm=norm, bias=bias)
            c.params, c.macs = c.params + side.params, c.macs + side.macs
        c.cna(branch if split else in_chs, branch, 1, norm=norm, bias=bias)
        c.cna(branch, branch, k, stride, groups=branch, norm=norm, bias=bias)
        c.cna(branch, branch, 1, norm=norm, bias=bias)
