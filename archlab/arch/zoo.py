"""The zoo: canonical networks as ArchSpecs, each equal to torchvision's builder of the same name.

LeCun et al. 1998 (LeNet-5), Krizhevsky et al. 2012 (AlexNet), Simonyan and Zisserman 2015 (VGG),
He et al. 2016 (ResNet), Xie et al. 2017 (ResNeXt), Zagoruyko and Komodakis 2016 (wide ResNet),
Sandler et al. 2018 (MobileNetV2), Howard et al. 2019 (MobileNetV3), Tan and Le 2019 (EfficientNet),
Liu et al. 2022 (ConvNeXt), Szegedy et al. 2015 (GoogLeNet), Ma et al. 2018 (ShuffleNet V2), Radosavovic et al.
2020 (RegNet), Woo et al. 2023 (ConvNeXt V2: timm's `convnextv2_*`). Torch-free: these are data.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from typing import TypedDict

from archlab.arch.generators import GENERATORS
from archlab.arch.scaling import scale
from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec
from archlab.core.registry import Registry

__all__ = ["ZOO", "EFFICIENTNET_MULTIPLIERS", "get_spec", "zoo_names"]

ZOO: Registry[Callable[[], ArchSpec]] = Registry("zoo network")


def get_spec(name: str, **changes: object) -> ArchSpec:
    """The zoo's spec for `name`, with top-level fields (num_classes, img_size, ...) replaced."""
    spec = ZOO.lookup(name)()  # a miss is an ArchlabError listing the closest zoo names
    return replace(spec, **changes) if changes else spec


def zoo_names() -> list[str]:
    """Registered zoo names in registration order."""
    return ZOO.names()


# --- LeNet-5 and AlexNet ---------------------------------------------------------------------------

@ZOO.register("lenet5")
def lenet5() -> ArchSpec:
    """LeNet-5, modern reading: 5x5 valid convs, ReLU, 2x2 max-pool, FC 120-84-10 (61,706 parameters)."""
    row = dict(block="plain", depth=1, stride=2, kernel_size=5, padding="valid", downsample="pool", norm="none")
    return ArchSpec(
        stem=StemSpec(type="identity"),
        stages=(StageSpec(width=6, **row), StageSpec(width=16, **row)),
        head=HeadSpec(pool="none", hidden=(120, 84)),
        img_size=32, in_chans=1, num_classes=10, name="lenet5")


@ZOO.register("alexnet")
def alexnet() -> ArchSpec:
    """AlexNet (torchvision's single-GPU reading): 11x11/4 stem, overlapping max-pools, FC 4096-4096."""
    plain = dict(block="plain", norm="none", downsample="pool_overlap")
    return ArchSpec(
        stem=StemSpec(type="conv", width=64, kernel_size=11, stride=4, padding=2, pool="max_nopad", norm="none"),
        stages=(StageSpec(depth=1, width=192, stride=2, kernel_size=5, **plain),
                StageSpec(depth=1, width=384, stride=1, **plain),
                StageSpec(depth=2, width=256, stride=2, **plain)),
        head=HeadSpec(pool="avg", pool_size=6, hidden=(4096, 4096), dropout=0.5),
        name="alexnet")


# --- VGG ---------------------------------------------------------------------------------------------

_VGG_DEPTHS = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3),
               "vgg19": (2, 2, 4, 4, 4)}


def _vgg(name: str, depths: tuple[int, ...], bn: bool) -> ArchSpec:
    widths = (64, 128, 256, 512, 512)
    # torchvision keeps the conv bias in front of BatchNorm in VGG-BN, hence bias=True
    norm = dict(norm="batchnorm", bias=True) if bn else dict(norm="none")
    return ArchSpec(
        stem=StemSpec(type="identity"),
        stages=tuple(StageSpec(block="plain", depth=d, width=w, stride=2, downsample="pool", **norm)
                     for d, w in zip(depths, widths)),
        head=HeadSpec(pool="avg", pool_size=7, hidden=(4096, 4096), dropout=0.5),
        name=name)


for _name, _depths in _VGG_DEPTHS.items():
    ZOO.register(_name)(lambda n=_name, d=_depths: _vgg(n, d, bn=False))
    ZOO.register(f"{_name}_bn")(lambda n=_name, d=_depths: _vgg(f"{n}_bn", d, bn=True))


# --- GoogLeNet (Inception v1) ---------------------------------------------------------------------------

# (branch1, branch2_reduce, branch2, branch3_reduce, branch3, pool) of inception 3a ... 5b, as torchvision
_GOOGLENET = ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64),
              (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
              (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128),
              (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128))
_GOOGLENET_POOLS = {1: "pool_overlap_ceil", 6: "pool_ceil"}  # max-pools after 3b (3x3/2) and 4e (2x2/2)


@ZOO.register("googlenet")
def googlenet() -> ArchSpec:
    """GoogLeNet as torchvision's googlenet(aux_logits=False): 7x7/2 stem, 1x1 and 3x3 convs, 9 inception blocks.

    BatchNorm eps 1e-3 and ceil-mode max-pools as torchvision; its "5x5" branch is a 3x3 (branch3_kernel 3).
    """
    stages = [StageSpec(block="plain", depth=1, width=64, kernel_size=1),
              StageSpec(block="plain", depth=1, width=192, stride=2, downsample="pool_overlap_ceil")]
    for i, (b1, b2r, b2, b3r, b3, pool) in enumerate(_GOOGLENET):
        down = _GOOGLENET_POOLS.get(i)
        stages.append(StageSpec(block="inception", depth=1, width=b1 + b2 + b3 + pool, stride=2 if down else 1,
                                downsample=down or "stride", branch1=b1, branch2_reduce=b2r, branch2=b2,
                                branch3_reduce=b3r, branch3=b3, branch3_kernel=3))
    return ArchSpec(stem=StemSpec(type="conv", width=64, kernel_size=7, stride=2, pool="max_ceil"),
                    stages=tuple(stages), head=HeadSpec(dropout=0.2), bn_eps=1e-3, name="googlenet")


# --- ResNet, ResNeXt, wide ResNet --------------------------------------------------------------------

def _resnet(name: str, block: str, depths: tuple[int, ...], *, expand_ratio: float = 0.25,
            groups: int | None = None) -> ArchSpec:
    """torchvision ResNet v1.5 (stride in the 3x3); bottleneck width = out * expand_ratio."""
    out_mult = 4 if block == "bottleneck" else 1
    stages = []
    for i, depth in enumerate(depths):
        width = 64 * 2 ** i * out_mult
        extra: dict[str, object] = {}
        if block == "bottleneck":
            extra["expand_ratio"] = expand_ratio
            if groups:
                extra["group_width"] = int(width * expand_ratio) // groups
        stages.append(StageSpec(block=block, depth=depth, width=width, stride=1 if i == 0 else 2, **extra))
    return ArchSpec(stem=StemSpec(type="conv", width=64, kernel_size=7, stride=2, pool="max"),
                    stages=tuple(stages), name=name)


class _ResNetOptions(TypedDict, total=False):
    """`_resnet`'s keyword arguments that a ResNeXt or wide ResNet changes."""
    expand_ratio: float
    groups: int


_RESNETS: dict[str, tuple[str, tuple[int, ...], _ResNetOptions]] = {
    "resnet18": ("basic", (2, 2, 2, 2), {}),
    "resnet34": ("basic", (3, 4, 6, 3), {}),
    "resnet50": ("bottleneck", (3, 4, 6, 3), {}),
    "resnet101": ("bottleneck", (3, 4, 23, 3), {}),
    "resnet152": ("bottleneck", (3, 8, 36, 3), {}),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), {"expand_ratio": 0.5, "groups": 32}),
    "resnext101_32x8d": ("bottleneck", (3, 4, 23, 3), {"expand_ratio": 1.0, "groups": 32}),
    "resnext101_64x4d": ("bottleneck", (3, 4, 23, 3), {"expand_ratio": 1.0, "groups": 64}),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), {"expand_ratio": 0.5}),
    "wide_resnet101_2": ("bottleneck", (3, 4, 23, 3), {"expand_ratio": 0.5}),
}
for _name, (_block, _depths, _kw) in _RESNETS.items():
    ZOO.register(_name)(lambda n=_name, b=_block, d=_depths, kw=_kw: _resnet(n, b, d, **kw))


# --- MobileNetV2 / V3 ---------------------------------------------------------------------------------

@ZOO.register("mobilenet_v2")
def mobilenet_v2() -> ArchSpec:
    """MobileNetV2: 3x3/2 stem, inverted residuals (t, c, n, s), 1x1 conv to 1280, ReLU6."""
    table = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))
    return ArchSpec(
        stem=StemSpec(type="conv", width=32, kernel_size=3, stride=2, act="relu6"),
        stages=tuple(StageSpec(block="inverted_residual", depth=n, width=c, stride=s, expand_ratio=t,
                               act="relu6") for t, c, n, s in table),
        head=HeadSpec(conv_width=1280, act="relu6", dropout=0.2),
        name="mobilenet_v2")


def _v3_rows(rows: tuple[tuple[int, float | Fraction, int, int, bool, str, int], ...]) -> tuple[StageSpec, ...]:
    """MobileNetV3 rows (kernel, expansion of the input width, width, depth, SE, act, stride)."""
    return tuple(
        StageSpec(block="inverted_residual", kernel_size=k, expand_ratio=float(e), width=c, depth=n,
                  se_ratio=0.25 if se else 0.0, se_gate="hard_sigmoid", se_act="relu", se_base="mid",
                  act="relu" if act == "RE" else "hardswish", stride=s)
        for k, e, c, n, se, act, s in rows)


@ZOO.register("mobilenet_v3_large")
def mobilenet_v3_large() -> ArchSpec:
    """MobileNetV3-Large: hard-swish stem, SE with hard-sigmoid gate, 960 -> 1280 head."""
    rows = ((3, 1, 16, 1, False, "RE", 1), (3, 4, 24, 1, False, "RE", 2), (3, 3, 24, 1, False, "RE", 1),
            (5, 3, 40, 3, True, "RE", 2), (3, 6, 80, 1, False, "HS", 2), (3, 2.5, 80, 1, False, "HS", 1),
            (3, 2.3, 80, 2, False, "HS", 1), (3, 6, 112, 2, True, "HS", 1), (5, 6, 160, 3, True, "HS", 2))
    return ArchSpec(
        stem=StemSpec(type="conv", width=16, kernel_size=3, stride=2, act="hardswish"),
        stages=_v3_rows(rows),
        head=HeadSpec(conv_width=960, hidden=(1280,), act="hardswish", dropout=0.2),
        bn_eps=1e-3, bn_momentum=0.01, name="mobilenet_v3_large")


@ZOO.register("mobilenet_v3_small")
def mobilenet_v3_small() -> ArchSpec:
    """MobileNetV3-Small: hard-swish stem, SE with hard-sigmoid gate, 576 -> 1024 head."""
    rows = ((3, 1, 16, 1, True, "RE", 2), (3, 4.5, 24, 1, False, "RE", 2),
            (3, Fraction(88, 24), 24, 1, False, "RE", 1), (5, 4, 40, 1, True, "HS", 2),
            (5, 6, 40, 2, True, "HS", 1), (5, 3, 48, 2, True, "HS", 1), (5, 6, 96, 3, True, "HS", 2))
    return ArchSpec(
        stem=StemSpec(type="conv", width=16, kernel_size=3, stride=2, act="hardswish"),
        stages=_v3_rows(rows),
        head=HeadSpec(conv_width=576, hidden=(1024,), act="hardswish", dropout=0.2),
        bn_eps=1e-3, bn_momentum=0.01, name="mobilenet_v3_small")


# --- ShuffleNet V2 ------------------------------------------------------------------------------------

_SHUFFLENETS = {"shufflenet_v2_x0_5": (48, 96, 192, 1024), "shufflenet_v2_x1_0": (116, 232, 464, 1024),
                "shufflenet_v2_x1_5": (176, 352, 704, 1024), "shufflenet_v2_x2_0": (244, 488, 976, 2048)}


def _shufflenet(name: str, widths: tuple[int, ...]) -> ArchSpec:
    """ShuffleNet V2: 3x3/2 stem + max-pool, (4, 8, 4) shuffle units (the first strided), 1x1 conv head."""
    return ArchSpec(
        stem=StemSpec(type="conv", width=24, kernel_size=3, stride=2, pool="max"),
        stages=tuple(StageSpec(block="shuffle", depth=d, width=w, stride=2) for d, w in zip((4, 8, 4), widths)),
        head=HeadSpec(conv_width=widths[-1]), name=name)


for _name, _widths in _SHUFFLENETS.items():
    ZOO.register(_name)(lambda n=_name, w=_widths: _shufflenet(n, w))


# --- EfficientNet -------------------------------------------------------------------------------------

# (width, depth, resolution, dropout) of the released models (../shared/reference/torchvision_complexity.md)
EFFICIENTNET_MULTIPLIERS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2), "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3), "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4), "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5), "efficientnet_b7": (2.0, 3.1, 600, 0.5),
}


def efficientnet_base() -> ArchSpec:
    """EfficientNet-B0's table: MBConv rows (expand, kernel, stride, width, depth), SiLU, SE 0.25."""
    table = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
             (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
    return ArchSpec(
        stem=StemSpec(type="conv", width=32, kernel_size=3, stride=2, act="silu"),
        stages=tuple(StageSpec(block="inverted_residual", expand_ratio=e, kernel_size=k, stride=s, width=c,
                               depth=n, se_ratio=0.25, act="silu") for e, k, s, c, n in table),
        head=HeadSpec(conv_width=1280, act="silu", dropout=0.2),
        drop_path_rate=0.2, name="efficientnet_b0")


def _efficientnet(name: str) -> ArchSpec:
    width, depth, resolution, dropout = EFFICIENTNET_MULTIPLIERS[name]
    spec = scale(efficientnet_base(), width=width, depth=depth, resolution=resolution)
    # torchvision's B5..B7 carry the TF-trained weights' BatchNorm settings; B0..B4 PyTorch's defaults
    bn = dict(bn_eps=1e-3, bn_momentum=0.01) if name in _EFFICIENTNET_TF_BN else {}
    return replace(spec, head=replace(spec.head, dropout=dropout), name=name, **bn)


_EFFICIENTNET_TF_BN = ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7")


for _name in EFFICIENTNET_MULTIPLIERS:
    ZOO.register(_name)(lambda n=_name: _efficientnet(n))


# --- RegNet X / Y ------------------------------------------------------------------------------------

# (depth, w0, wa, wm, group width) of torchvision's RegNets; Y adds SE 0.25 of the block's input width
REGNETS: dict[str, tuple[int, int, float, float, int]] = {
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8), "regnet_y_800mf": (14, 56, 38.84, 2.4, 16),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24), "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56), "regnet_y_16gf": (18, 200, 106.23, 2.48, 112),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232), "regnet_y_128gf": (27, 456, 160.83, 2.52, 264),
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16), "regnet_x_800mf": (16, 56, 35.73, 2.28, 16),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24), "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120), "regnet_x_16gf": (22, 216, 55.59, 2.1, 128),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168),
}


def regnet(name: str, depth: int, w0: int, wa: float, wm: float, group_width: int, se_ratio: float) -> ArchSpec:
    """A RegNet: 3x3/2 stem of 32, the `regnet` generator's bottleneck stages, average pool and FC."""
    rows = GENERATORS.get("regnet")(depth=depth, w0=w0, wa=wa, wm=wm, group_width=group_width, se_ratio=se_ratio)
    return ArchSpec(stem=StemSpec(type="conv", width=32, kernel_size=3, stride=2),
                    stages=tuple(StageSpec(**row) for row in rows), name=name)


for _name, _cfg in REGNETS.items():
    ZOO.register(_name)(lambda n=_name, c=_cfg: regnet(n, *c, se_ratio=0.25 if n.startswith("regnet_y") else 0.0))


# --- ConvNeXt -----------------------------------------------------------------------------------------

_CONVNEXTS = {"convnext_tiny": ((3, 3, 9, 3), 96, 0.1), "convnext_small": ((3, 3, 27, 3), 96, 0.4),
              "convnext_base": ((3, 3, 27, 3), 128, 0.5), "convnext_large": ((3, 3, 27, 3), 192, 0.5)}


def _convnext(name: str, depths: tuple[int, ...], width: int, drop_path_rate: float, *, v2: bool = False,
              widths: tuple[int, ...] | None = None) -> ArchSpec:
    """ConvNeXt: 4x4 patchify + LN, (LN + 2x2/2 conv) downsampling, dw7x7 -> LN -> 4x MLP with GELU.

    V2 (timm's convnextv2_*) adds GRN after the MLP's GELU and drops layer scale.
    """
    widths = widths or tuple(width * 2 ** i for i in range(len(depths)))
    return ArchSpec(
        stem=StemSpec(type="patchify", width=widths[0], kernel_size=4, stride=4, norm="layernorm", act="none"),
        stages=tuple(StageSpec(block="convnext", depth=d, width=w, stride=1 if i == 0 else 2,
                               kernel_size=7, expand_ratio=4.0, group_width=1, act="gelu", norm="layernorm",
                               acts="one", norms="one", downsample="layer", grn=v2)
                     for i, (d, w) in enumerate(zip(depths, widths))),
        head=HeadSpec(pool="avg", norm="layernorm"),
        drop_path_rate=drop_path_rate, layer_scale_init=0.0 if v2 else 1e-6, name=name)


for _name, (_depths, _width, _dpr) in _CONVNEXTS.items():
    ZOO.register(_name)(lambda n=_name, d=_depths, w=_width, r=_dpr: _convnext(n, d, w, r))


# ConvNeXt V2 (depths, first width) as timm's convnextv2_*; drop path 0, timm's default when built
_CONVNEXTV2S = {"convnextv2_atto": ((2, 2, 6, 2), 40), "convnextv2_femto": ((2, 2, 6, 2), 48),
                "convnextv2_pico": ((2, 2, 6, 2), 64), "convnextv2_nano": ((2, 2, 8, 2), 80),
                "convnextv2_tiny": ((3, 3, 9, 3), 96), "convnextv2_small": ((3, 3, 27, 3), 96),
                "convnextv2_base": ((3, 3, 27, 3), 128), "convnextv2_large": ((3, 3, 27, 3), 192),
                "convnextv2_huge": ((3, 3, 27, 3), 352)}

for _name, (_depths, _width) in _CONVNEXTV2S.items():
    ZOO.register(_name)(lambda n=_name, d=_depths, w=_width: _convnext(n, d, w, 0.0, v2=True))
