"""What every block family shares: the base class, the registry, shortcuts and the residual plumbing.

Every block has the constructor `(in_chs, out_chs, stride, stage, *, drop_path, layer_scale_init)` and a
static `cost(c, in_chs, out_chs, stride, stage, *, layer_scale_init)`, so stages and networks only loop
(pycls AnyNet's shape). A family's torch-free facts (fields it reads, inner width, rules, display name) are
its row in `archlab.arch.families`.
"""
from __future__ import annotations

import torch
from timm.layers import DropPath, SEModule
from torch import nn

from archlab.arch.spec import StageSpec, make_divisible
from archlab.core.registry import Registry
from archlab.nn.layers import ACT_LAYERS, Cost, conv_norm_act, make_act

__all__ = ["BLOCKS_REGISTRY", "Block", "Residual", "block_class", "groups_of", "se_channels", "shortcut",
           "shortcut_cost", "squeeze_excite"]

BLOCKS_REGISTRY: Registry[type[Block]] = Registry("block family")


class Block(nn.Module):
    """Base of all block families: one constructor signature and a static cost."""

    # residual families set it where the block adds its input back; no class-level annotation, because
    # TorchScript cannot resolve a postponed one (`from __future__ import annotations`) and must script blocks
    has_skip = False

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


def groups_of(stage: StageSpec, channels: int) -> int:
    """Groups of a grouped conv over `channels` (1 when the stage has no group width)."""
    return 1 if stage.group_width is None else channels // stage.group_width


def se_channels(stage: StageSpec, in_chs: int, mid: int) -> int:
    """Squeeze width: from the block input, floored (EfficientNet, RegNet Y) or from the mid width to /8 (MobileNetV3).

    torchvision's RegNet rounds `se_ratio * width_in`; its widths are multiples of 8, where floor and round agree.
    """
    if stage.se_base == "mid":
        return make_divisible(int(mid * stage.se_ratio), 8)
    return max(1, int(in_chs * stage.se_ratio))


def squeeze_excite(stage: StageSpec, in_chs: int, mid: int, act: str) -> nn.Module:
    """timm's SEModule on `mid` channels: the stage's squeeze width, activation (default: the block's) and gate."""
    se_act = ACT_LAYERS.get(stage.se_act or act) or nn.Identity
    return SEModule(mid, rd_channels=se_channels(stage, in_chs, mid), act_layer=se_act, gate_layer=stage.se_gate)


def shortcut(in_chs: int, out_chs: int, stride: int, stage: StageSpec) -> nn.Module:
    """Identity, or a 1x1 strided projection + norm where the shape changes (ResNet option B)."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return conv_norm_act(in_chs, out_chs, 1, stride, norm=stage.norm, act="none", bias=stage.bias)


def shortcut_cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, size: int) -> None:
    """The cost of `shortcut` entered at `size` px (added to `c` without moving its side)."""
    if stride != 1 or in_chs != out_chs:
        side = Cost(size)
        side.cna(in_chs, out_chs, 1, stride, norm=stage.norm, bias=stage.bias)
        c.params += side.params
        c.macs += side.macs


class Residual(Block):
    """Shared residual plumbing: branch -> [layer scale] -> drop path -> + shortcut -> [act]."""

    def _finish(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, drop_path: float,
                post_act: str) -> None:
        self.shortcut = shortcut(in_chs, out_chs, stride, stage)
        self.has_skip = True
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = make_act(post_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop_path(self.branch(x)) + self.shortcut(x))
