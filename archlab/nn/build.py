"""ArchSpec -> nn.Module. The builder only iterates the spec; families come from the block registry.

`ArchNet` follows timm's model interface (forward_features, forward_head, num_classes, reset_classifier,
pretrained_cfg), so timm's utilities (optimizer factory, EMA, feature extraction helpers) work on it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archlab.arch.spec import STEM_POOL_WINDOWS, STEMS, ArchSpec, HeadSpec, StageSpec, StemSpec, stage_pool_window
from archlab.core.registry import Registry
from archlab.nn.blocks import Block, block_class
from archlab.nn.features import TimmInterface
from archlab.nn.layers import Cost, conv_norm_act, make_act, make_norm

__all__ = ["AuxHead", "ArchNet", "STEMS_REGISTRY", "Stage", "build_model", "drop_path_rates"]

STEMS_REGISTRY: Registry[type[nn.Module]] = Registry("stem")


def _max_pool(window: tuple[int, int, int, bool] | None) -> nn.Module:
    """A max-pool over (kernel, stride, padding, ceil_mode), or Identity."""
    if window is None:
        return nn.Identity()
    kernel, stride, padding, ceil_mode = window
    return nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)


def _stem_pool(stem: StemSpec) -> nn.Module:
    return _max_pool(STEM_POOL_WINDOWS.get(stem.pool))


def _stem_pool_cost(c: Cost, stem: StemSpec) -> None:
    if stem.pool in STEM_POOL_WINDOWS:
        c.pool(*STEM_POOL_WINDOWS[stem.pool])


@STEMS_REGISTRY.register("conv")
class ConvStem(nn.Sequential):
    """One kxk/s conv -> norm -> act [-> 3x3/2 max-pool]: ResNet (k7 s2 + pool), MobileNet (k3 s2), small (k3 s1)."""

    def __init__(self, in_chs: int, stem: StemSpec) -> None:
        super().__init__(conv_norm_act(in_chs, stem.width, stem.kernel_size, stem.stride, padding=stem.pad,
                                       norm=stem.norm, act=stem.act), _stem_pool(stem))

    @staticmethod
    def cost(c: Cost, in_chs: int, stem: StemSpec) -> None:
        c.cna(in_chs, stem.width, stem.kernel_size, stem.stride, padding=stem.pad, norm=stem.norm)
        _stem_pool_cost(c, stem)


@STEMS_REGISTRY.register("deep")
class DeepStem(nn.Sequential):
    """Three 3x3 conv-norm-act (widths w/2, w/2, w; the first strided) [-> max-pool], as ResNet-C/D."""

    def __init__(self, in_chs: int, stem: StemSpec) -> None:
        half = stem.width // 2
        kw = dict(norm=stem.norm, act=stem.act)
        super().__init__(conv_norm_act(in_chs, half, 3, stem.stride, **kw), conv_norm_act(half, half, 3, **kw),
                         conv_norm_act(half, stem.width, 3, **kw), _stem_pool(stem))

    @staticmethod
    def cost(c: Cost, in_chs: int, stem: StemSpec) -> None:
        half = stem.width // 2
        c.cna(in_chs, half, 3, stem.stride, norm=stem.norm).cna(half, half, 3, norm=stem.norm)
        c.cna(half, stem.width, 3, norm=stem.norm)
        _stem_pool_cost(c, stem)


@STEMS_REGISTRY.register("patchify")
class PatchifyStem(nn.Sequential):
    """Non-overlapping kxk stride-k conv [-> norm] [-> act] (ConvNeXt: k4 + LayerNorm)."""

    def __init__(self, in_chs: int, stem: StemSpec) -> None:
        super().__init__(conv_norm_act(in_chs, stem.width, stem.kernel_size, stem.stride, padding=stem.pad,
                                       norm=stem.norm, act=stem.act))

    @staticmethod
    def cost(c: Cost, in_chs: int, stem: StemSpec) -> None:
        c.cna(in_chs, stem.width, stem.kernel_size, stem.stride, padding=stem.pad, norm=stem.norm)


@STEMS_REGISTRY.register("identity")
class IdentityStem(nn.Identity):
    """No stem: the first stage sees the image (VGG, LeNet)."""

    def __init__(self, in_chs: int, stem: StemSpec) -> None:
        super().__init__()

    @staticmethod
    def cost(c: Cost, in_chs: int, stem: StemSpec) -> None:
        return None


assert tuple(STEMS_REGISTRY) == STEMS  # spec.py names what is registered here


def stem_width(spec: ArchSpec) -> int:
    """Channels leaving the stem."""
    return spec.in_chans if spec.stem.type == "identity" else spec.stem.width


def _has_layer(stage: StageSpec, in_chs: int) -> bool:
    return stage.downsample == "layer" and (stage.stride > 1 or in_chs != stage.width)


class Stage(nn.Module):
    """[norm -> kxk/k conv downsample] -> `depth` blocks (the first may stride) [-> max-pool downsample]."""

    def __init__(self, in_chs: int, stage: StageSpec, drop_paths: list[float], layer_scale_init: float) -> None:
        super().__init__()
        self.downsample: nn.Module = nn.Identity()
        if _has_layer(stage, in_chs):
            conv = nn.Conv2d(in_chs, stage.width, stage.stride, stage.stride)  # bias: no norm follows
            self.downsample = nn.Sequential(make_norm(stage.norm, in_chs), conv)
            in_chs = stage.width
        first_stride = stage.stride if stage.downsample == "stride" else 1
        block = block_class(stage.block)
        self.blocks = nn.Sequential(*(
            block(in_chs if i == 0 else stage.width, stage.width, first_stride if i == 0 else 1, stage,
                  drop_path=drop_paths[i], layer_scale_init=layer_scale_init)
            for i in range(stage.depth)))
        self.pool = _max_pool(stage_pool_window(stage.downsample, stage.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(self.downsample(x)))

    @staticmethod
    def cost(c: Cost, in_chs: int, stage: StageSpec, layer_scale_init: float) -> None:
        """Add the stage's parameters and MACs to `c`."""
        if _has_layer(stage, in_chs):
            c.norm(stage.norm, in_chs).conv(in_chs, stage.width, stage.stride, stage.stride, padding=0, bias=True)
            in_chs = stage.width
        first_stride = stage.stride if stage.downsample == "stride" else 1
        block = block_class(stage.block)
        for i in range(stage.depth):
            block.cost(c, in_chs if i == 0 else stage.width, stage.width, first_stride if i == 0 else 1, stage,
                       layer_scale_init=layer_scale_init)
        pool = stage_pool_window(stage.downsample, stage.stride)
        if pool:
            c.pool(*pool)


def drop_path_rates(spec: ArchSpec) -> list[float]:
    """Stochastic depth per block, linear from 0 to `drop_path_rate` over all blocks (timm's schedule)."""
    n = spec.num_blocks
    return [spec.drop_path_rate * i / max(n - 1, 1) for i in range(n)]


def head_features(head: HeadSpec, chs: int, size: int) -> int:
    """Width of the flattened feature vector that enters the head's FC layers."""
    side = size if head.pool == "none" else head.pool_size
    return chs * side * side


class AuxHead(nn.Module):
    """GoogLeNet's auxiliary classifier: 4x4 average pool -> 1x1 conv 128 -> FC 1024 -> ReLU -> dropout 0.7 -> FC.

    Runs only in training mode (its logits land in `ArchNet.aux_logits`), as torchvision's InceptionAux.
    """

    def __init__(self, in_chs: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = conv_norm_act(in_chs, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(torch.flatten(self.conv(self.pool(x)), 1)))))

    @staticmethod
    def params(in_chs: int, num_classes: int) -> int:
        """Its parameters (its MACs are not the evaluated network's: it does not run in eval mode)."""
        c = Cost(4)
        c.cna(in_chs, 128, 1).linear(128 * 4 * 4, 1024).linear(1024, num_classes)
        return c.params


class ArchNet(TimmInterface, nn.Module):
    """A network built from an ArchSpec: stem -> stages -> [1x1 conv head] -> pool -> [FC ...] -> classifier."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = spec.num_classes
        self.in_chans = spec.in_chans
        self.stem = STEMS_REGISTRY.get(spec.stem.type)(spec.in_chans, spec.stem)
        chs, rates, stages = stem_width(spec), drop_path_rates(spec), []
        for stage in spec.stages:
            stages.append(Stage(chs, stage, rates[:stage.depth], spec.layer_scale_init))
            rates, chs = rates[stage.depth:], stage.width
        self.stages = nn.Sequential(*stages)
        head = spec.head
        if head.aux:  # registered here, after the stages and before the classifier, as torchvision's GoogLeNet
            self._add_aux_heads(spec)
        self.conv_head: nn.Module = nn.Identity()
        if head.conv_width is not None:
            self.conv_head = conv_norm_act(chs, head.conv_width, 1, act=head.act)
            chs = head.conv_width
        self.num_features = chs
        pool = {"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}.get(head.pool)
        self.global_pool = pool(head.pool_size) if pool else nn.Identity()
        self.head_norm = make_norm(head.norm, chs)
        feats = head_features(head, chs, _final_size(spec))
        hidden: list[nn.Module] = []
        for width in head.hidden:
            hidden += [nn.Linear(feats, width), make_act(head.act), nn.Dropout(head.dropout)]
            feats = width
        self.pre_logits = nn.Sequential(*hidden)
        self.head_hidden_size = feats
        self.head_drop = nn.Dropout(head.dropout) if not head.hidden else nn.Identity()
        self.fc = nn.Linear(feats, spec.num_classes)
        self._init_timm_interface()  # feature_info, pretrained_cfg, grad_checkpointing (archlab.nn.features)
        self.apply(_init_weights)
        _set_batchnorm(self, spec.bn_eps, spec.bn_momentum)

    def _add_aux_heads(self, spec: ArchSpec) -> None:
        """Auxiliary classifiers on the stages `head.aux` names, fed by forward hooks (forward stays scriptable)."""
        self.aux_heads = nn.ModuleList(AuxHead(spec.stages[i].width, spec.num_classes) for i in spec.head.aux)
        self.aux_logits: list[torch.Tensor] = []

        def clear(module: nn.Module, args: object) -> None:
            self.aux_logits = []

        self.register_forward_pre_hook(clear)
        for i, aux in zip(spec.head.aux, self.aux_heads):
            def run(module: nn.Module, args: object, out: torch.Tensor, aux: nn.Module = aux) -> None:
                if self.training:
                    self.aux_logits.append(aux(out))
            self.stages[i].register_forward_hook(run)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, stages and the 1x1 conv head: the unpooled feature map."""
        x = self.stem(x)
        x = self._checkpointed_stages(x) if self.grad_checkpointing and self.training else self.stages(x)
        return self.conv_head(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, norm, hidden FC layers and (unless `pre_logits`) the classifier."""
        x = torch.flatten(self.head_norm(self.global_pool(x)), 1)
        x = self.head_drop(self.pre_logits(x))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def zero_init_last(self) -> None:
        """Start every residual block as its shortcut: zero its branch's last norm scale (timm's zero_init_last)."""
        for module in self.modules():
            if isinstance(module, Block):
                module.zero_init_last()

    def get_classifier(self) -> nn.Module:
        """The final linear classifier."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for `num_classes` (0 gives an identity, as timm)."""
        if global_pool is not None and global_pool != self.spec.head.pool:
            raise ValueError(f"global_pool {global_pool!r} differs from the spec's head.pool")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()


def _final_size(spec: ArchSpec) -> int:
    size = spec.stem.out_size(spec.img_size)
    for stage in spec.stages:
        size = stage.out_size(size)
    return size


def _set_batchnorm(model: nn.Module, eps: float, momentum: float) -> None:
    """Give every BatchNorm the spec's eps and momentum, whichever family or factory made it."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps, module.momentum = eps, momentum


def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan-out) convs with zero biases, as torchvision's ResNet/MobileNet.

    Linear layers keep PyTorch's default (fan-in uniform), as torchvision's ResNet: N(0, 0.01) starts deep FC
    heads (LeNet's 120-84, VGG's 4096-4096) so small that they train at chance on a short proxy budget.
    """
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(spec: ArchSpec, **changes: Any) -> ArchNet:
    """Build the network for `spec` (top-level fields such as num_classes may be replaced)."""
    if changes:
        spec = spec.replace(**changes)
    return ArchNet(spec)
