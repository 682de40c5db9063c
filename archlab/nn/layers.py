"""Small layer factories (norms and activations by name) and the cost arithmetic that mirrors them.

Each builder here has a cost function beside it, so a block's analytic complexity is written with the
same vocabulary as its module (pycls keeps `complexity()` next to each block for the same reason).
"""
from __future__ import annotations

from dataclasses import dataclass

from timm.layers import LayerNorm2d
from torch import nn
from torchvision.ops import Conv2dNormActivation

from archlab.arch.spec import ACTS, NORMS, conv_out, pool_out
from archlab.core.registry import Registry

__all__ = ["ACT_LAYERS", "NORM_LAYERS", "Cost", "conv_bias", "conv_norm_act", "count_params", "make_act", "make_norm"]

NORM_LAYERS: Registry[type[nn.Module] | None] = Registry("norm")
NORM_LAYERS.register("batchnorm")(nn.BatchNorm2d)
NORM_LAYERS.register("layernorm")(LayerNorm2d)  # channel LayerNorm on NCHW, eps 1e-6 as ConvNeXt
NORM_LAYERS.register("none")(None)

ACT_LAYERS: Registry[type[nn.Module] | None] = Registry("activation")
for _name, _layer in (("relu", nn.ReLU), ("relu6", nn.ReLU6), ("silu", nn.SiLU), ("hardswish", nn.Hardswish),
                      ("gelu", nn.GELU), ("tanh", nn.Tanh), ("none", None)):
    ACT_LAYERS.register(_name)(_layer)
assert tuple(NORM_LAYERS) == NORMS and tuple(ACT_LAYERS) == ACTS  # spec.py names what is registered here
_INPLACE = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish)


def make_norm(name: str, channels: int) -> nn.Module:
    """A norm layer by name over `channels` (Identity for "none")."""
    layer = NORM_LAYERS.get(name)
    return nn.Identity() if layer is None else layer(channels)


def make_act(name: str) -> nn.Module:
    """An activation by name (Identity for "none")."""
    layer = ACT_LAYERS.get(name)
    if layer is None:
        return nn.Identity()
    return layer(inplace=True) if layer in _INPLACE else layer()


def conv_bias(norm: str, override: bool | None = None) -> bool:
    """A conv has a bias exactly when no BatchNorm follows it (torchvision's rule), unless overridden."""
    return override if override is not None else norm != "batchnorm"


# torchvision's Conv2dNormActivation's own parameters (norms and activations by name): kept one to one
def conv_norm_act(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, *, padding: int | None = None,
                  groups: int = 1, norm: str = "batchnorm", act: str = "relu", bias: bool | None = None) -> nn.Module:
    """Conv -> norm -> act as torchvision's Conv2dNormActivation, with norms and activations by name."""
    act_layer = ACT_LAYERS.get(act)
    return Conv2dNormActivation(
        in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2 if padding is None else padding,
        groups=groups, norm_layer=NORM_LAYERS.get(norm), activation_layer=act_layer,
        inplace=True if act_layer in _INPLACE else None, bias=conv_bias(norm, bias))


@dataclass
class Cost:
    """Running parameter and multiply-accumulate count, with the current spatial side."""

    size: int
    params: int = 0
    macs: int = 0

    def conv(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, *, padding: int | None = None,
             groups: int = 1, norm: str = "none", bias: bool = False) -> Cost:
        """Add a kxk conv (+ norm) and move to its output side; MACs exclude the bias, as FlopCounterMode."""
        pad = kernel_size // 2 if padding is None else padding
        self.size = conv_out(self.size, kernel_size, stride, pad)
        weights = out_chs * (in_chs // groups) * kernel_size * kernel_size
        self.params += weights + (out_chs if bias else 0)
        self.macs += weights * self.size * self.size
        return self.norm(norm, out_chs)

    def cna(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, *, padding: int | None = None,
            groups: int = 1, norm: str = "batchnorm", bias: bool | None = None) -> Cost:
        """The cost of `conv_norm_act` with the same arguments."""
        return self.conv(in_chs, out_chs, kernel_size, stride, padding=padding, groups=groups, norm=norm,
                         bias=conv_bias(norm, bias))

    def norm(self, name: str, channels: int) -> Cost:
        """Add a norm layer's affine parameters (BatchNorm and LayerNorm both have 2 per channel)."""
        if name != "none":
            self.params += 2 * channels
        return self

    def linear(self, in_features: int, out_features: int, bias: bool = True) -> Cost:
        """Add a fully connected layer applied once per image."""
        self.params += in_features * out_features + (out_features if bias else 0)
        self.macs += in_features * out_features
        return self

    def pool(self, kernel_size: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> Cost:
        """Move through a pooling window (no parameters, no MACs)."""
        self.size = pool_out(self.size, kernel_size, stride, padding, ceil_mode)
        return self


def count_params(module: nn.Module) -> int:
    """Number of parameters of a built module."""
    return sum(p.numel() for p in module.parameters())

