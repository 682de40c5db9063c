"""ConvNeXt (Liu et al. 2022) and ConvNeXt V2's global response norm (Woo et al. 2023)."""
from __future__ import annotations

from timm.layers import LayerScale2d
from timm.layers.grn import GlobalResponseNorm  # public module, not re-exported by timm.layers
from torch import nn

from archlab.arch.spec import StageSpec
from archlab.nn.blocks.base import BLOCKS_REGISTRY, Residual, shortcut_cost
from archlab.nn.layers import Cost, conv_norm_act


@BLOCKS_REGISTRY.register("convnext")
class ConvNeXtBlock(Residual):
    """ConvNeXt: kxk dw -> norm [-> act] -> 1x1 expand [-> norm] -> act [-> GRN] -> 1x1 [-> norm] -> scale (+ skip).

    `norms="one"`/`acts="one"` give ConvNeXt's single LN and GELU; `"all"` give the ladder's steps 7-12
    (a norm after every conv, ReLU/GELU after every conv and after the sum). The depthwise conv takes the
    stride when downsampling is in-block, with a 1x1 projection on the skip. `grn` adds ConvNeXt V2's global
    response norm after the MLP activation (timm's GlobalResponseNorm: gamma and beta start at zero, so the
    block starts as V1's); V2 drops layer scale, which is `layer_scale_init: 0` on the spec.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *, drop_path: float = 0.0,
                 layer_scale_init: float = 0.0) -> None:
        super().__init__(in_chs, out_chs, stride, stage)
        mid = int(out_chs * stage.expand_ratio)
        every = stage.norms == "all"
        many_acts = stage.acts == "all"
        inner_norm = stage.norm if every else "none"
        layers = [
            conv_norm_act(in_chs, in_chs, stage.kernel_size, stride, groups=in_chs, norm=stage.norm,
                          act=stage.act if many_acts else "none", bias=stage.bias),
            conv_norm_act(in_chs, mid, 1, norm=inner_norm, act=stage.act, bias=stage.bias)]
        if stage.grn:
            layers.append(GlobalResponseNorm(mid, eps=1e-6, channels_last=False))
        layers += [conv_norm_act(mid, out_chs, 1, norm=inner_norm, act="none", bias=stage.bias),
                   LayerScale2d(out_chs, layer_scale_init) if layer_scale_init > 0 else nn.Identity()]
        self.branch = nn.Sequential(*layers)
        self._finish(in_chs, out_chs, stride, stage, drop_path, stage.act if many_acts else "none")

    @staticmethod
    def cost(c: Cost, in_chs: int, out_chs: int, stride: int, stage: StageSpec, *,
             layer_scale_init: float = 0.0) -> None:
        size, mid = c.size, int(out_chs * stage.expand_ratio)
        inner_norm = stage.norm if stage.norms == "all" else "none"
        c.cna(in_chs, in_chs, stage.kernel_size, stride, groups=in_chs, norm=stage.norm, bias=stage.bias)
        c.cna(in_chs, mid, 1, norm=inner_norm, bias=stage.bias)
        if stage.grn:
            c.params += 2 * mid  # gamma and beta; the norm's reductions are not multiply-accumulates
        c.cna(mid, out_chs, 1, norm=inner_norm, bias=stage.bias)
        if layer_scale_init > 0:
            c.params += out_chs
        shortcut_cost(c, in_chs, out_chs, stride, stage, size)
