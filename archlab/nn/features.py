"""timm's backbone interface for built networks: feature_info, forward_intermediates, pruning, checkpointing, groups.

`TimmInterface` is a mixin of `archlab.nn.build.ArchNet`. It follows timm's definitions (timm/models/convnext.py
and timm/models/_features.py), so `timm.create_model(..., features_only=True)` (through `archlab.timm`), timm's
layer-wise learning-rate decay (`group_matcher`) and detection/segmentation necks that read `feature_info` work
on any archlab network, searched or canonical.

Feature levels: one per resolution, as timm's ResNet, RegNet and EfficientNet give them. Each stage is a
candidate, and of consecutive stages at the same reduction only the last is kept; the stem's output (before its
max-pool, if it has one) comes first when it is finer than every stage (ResNet's and RegNet's 2x level).
"""
# No `from __future__ import annotations` here: TorchScript resolves the signatures of this mixin's methods
# (even @torch.jit.unused ones) from real annotation objects, not strings, when it scripts ArchNet.
from typing import Any

import torch
from timm.models import checkpoint_seq
from torch import nn

from archlab.arch.spec import ArchSpec

__all__ = ["TimmInterface", "default_pretrained_cfg", "feature_levels", "take_indices"]

_PROBE = 4096  # a side large enough that size ratios round to exact strides, whatever the padding


def feature_levels(spec: ArchSpec) -> list[dict[str, Any]]:
    """timm `feature_info` entries (num_chs, reduction, module) for the network of `spec`, computed from the spec."""
    levels: list[dict[str, Any]] = []
    size = spec.stem.out_size(_PROBE)
    for i, stage in enumerate(spec.stages):
        size = stage.out_size(size)
        entry = {"num_chs": stage.width, "reduction": round(_PROBE / size), "module": f"stages.{i}"}
        if levels and levels[-1]["reduction"] == entry["reduction"]:
            levels[-1] = entry
        else:
            levels.append(entry)
    stem = spec.stem
    if stem.type != "identity" and stem.stride < levels[0]["reduction"]:
        # the stem's own level (RegNet's), or its conv output before the pool (ResNet's: conv -> pool, or the
        # deep stem's three convs -> pool)
        module = "stem" if stem.pool == "none" else f"stem.{2 if stem.type == 'deep' else 0}"
        levels.insert(0, {"num_chs": stem.width, "reduction": stem.stride, "module": module})
    return levels


def take_indices(num_levels: int, indices: int | list[int] | tuple[int, ...] | None) -> tuple[list[int], int]:
    """Absolute level indices and the largest: None all, an int the last n, a sequence those (negative from the end).

    timm's rule (timm.models._features.feature_take_indices, not exported), with errors that name the range.
    """
    if indices is None:
        indices = num_levels
    if isinstance(indices, int):
        if not 0 < indices <= num_levels:
            raise ValueError(f"last-n indices must be in 1..{num_levels}, got {indices}")
        taken = list(range(num_levels - indices, num_levels))
    else:
        taken = [num_levels + i if i < 0 else i for i in indices]
        bad = [i for i in indices if not -num_levels <= i < num_levels]
        if bad or not taken:
            raise ValueError(f"feature indices must be in {-num_levels}..{num_levels - 1} "
                             f"(this network has {num_levels} levels), got {list(indices)}")
    return taken, max(taken)


def default_pretrained_cfg(spec: ArchSpec, *, source: str | None = None, file: str | None = None) -> dict[str, Any]:
    """timm's `pretrained_cfg` for the network of `spec`: input size, mean/std, classifier and the weights' origin."""
    rgb = spec.in_chans == 3
    return {
        "architecture": f"archlab_{spec.name}" if spec.name else spec.arch_id,
        "input_size": (spec.in_chans, spec.img_size, spec.img_size), "num_classes": spec.num_classes,
        "mean": (0.485, 0.456, 0.406) if rgb else (0.5,) * spec.in_chans,
        "std": (0.229, 0.224, 0.225) if rgb else (0.5,) * spec.in_chans,
        "interpolation": "bilinear", "crop_pct": 0.875, "first_conv": _first_conv(spec), "classifier": "fc",
        "pool_size": None, "source": source, "file": file,
        "description": f"archlab network {spec.name or 'from a spec'} (arch_id {spec.arch_id})",
    }


def _first_conv(spec: ArchSpec) -> str:
    if spec.stem.type == "identity":
        return "stages.0.blocks.0"
    return "stem.0.0"


class TimmInterface:
    """timm's model interface beyond forward_features/forward_head, for ArchNet (stem -> stages -> conv_head).

    No class-level annotations (spec, stem, stages, conv_head come from ArchNet): TorchScript cannot resolve
    postponed annotations on a class, and `torch.jit.script` must keep working on the network.
    """

    def _init_timm_interface(self) -> None:
        """Set the attributes timm reads; called at the end of the network's __init__."""
        self.feature_info = feature_levels(self.spec)
        self.grad_checkpointing = False
        self.pretrained_cfg = self.default_cfg = default_pretrained_cfg(self.spec)

    @torch.jit.unused
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage's activations in the backward pass instead of storing them (timm's switch)."""
        self.grad_checkpointing = enable

    @torch.jit.unused
    def _checkpointed_stages(self, x: torch.Tensor) -> torch.Tensor:
        return checkpoint_seq(self.stages, x)

    @torch.jit.unused
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups by depth for layer-wise learning-rate decay (timm's regex convention)."""
        return {"stem": r"^stem", "blocks": r"^stages\.(\d+)" if coarse else [
            (r"^stages\.(\d+)\.downsample", (0,)),
            (r"^stages\.(\d+)\.blocks\.(\d+)", None),
            (r"^conv_head", (99999,)),
        ]}

    def _units(self) -> list[tuple[str, nn.Module]]:
        """The feature path in execution order, split where feature levels are taken."""
        units: list[tuple[str, nn.Module]] = []
        if isinstance(self.stem, nn.Sequential) and self.feature_info[0]["module"].startswith("stem."):
            units += [(f"stem.{i}", m) for i, m in enumerate(self.stem)]
        else:
            units.append(("stem", self.stem))
        return units + [(f"stages.{i}", m) for i, m in enumerate(self.stages)]

    @torch.jit.unused
    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Forward features returning the feature levels `indices` (None all, int the last n), as timm defines it.

        `norm` has nothing to do here: the head's norm (ConvNeXt's) comes after pooling, as in timm's ConvNeXt.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be NCHW or NHWC, got {output_fmt!r}")
        taken, max_index = take_indices(len(self.feature_info), indices)
        wanted = {self.feature_info[i]["module"] for i in taken}
        last = self.feature_info[max_index]["module"]
        intermediates = []
        units = self._units()
        for name, module in units:
            if self.grad_checkpointing and self.training and name.startswith("stages."):
                x = checkpoint_seq(module, x)
            else:
                x = module(x)
            if name in wanted:
                intermediates.append(x if output_fmt == "NCHW" else x.permute(0, 2, 3, 1))
            if stop_early and name == last:
                break
        if intermediates_only:
            return intermediates
        if name == units[-1][0]:  # the whole path ran: finish it as forward_features does
            x = self.conv_head(x)
        return x, intermediates

    @torch.jit.unused
    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last level in `indices` and (with `prune_head`) the head; the kept indices."""
        taken, max_index = take_indices(len(self.feature_info), indices)
        module = self.feature_info[max_index]["module"]
        prune_end = max_index < len(self.feature_info) - 1
        if module.startswith("stages."):
            self.stages = self.stages[:int(module.split(".")[1]) + 1]
        else:
            self.stages = nn.Sequential()
        if prune_head or prune_end:
            net: Any = self
            for name in ("conv_head", "global_pool", "head_norm", "pre_logits", "head_drop", "fc"):
                setattr(net, name, nn.Identity())
            net.num_classes = 0
            net.num_features = net.head_hidden_size = self.feature_info[max_index]["num_chs"]
        return taken
