"""Batched tensor augmentation for in-memory uint8 image batches, so the data path never starves the model.

Pad-and-crop + horizontal flip is the CIFAR recipe of He et al. 2016 (Section 4.2); RandAugment is Cubuk et al.
2020 (torchvision's implementation, 2 ops at magnitude 9, one draw per group of images); Mixup (Zhang et al.
2018), CutMix (Yun et al. 2019) and random erasing (Zhong et al. 2020) come from timm and act on the normalised
float batch. Every random draw uses the global RNGs that `archlab.measure.train` seeds, so a seed fixes the stream.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from archlab.measure.recipes import Recipe

__all__ = ["RA_GROUP", "BatchAugment", "make_mixup", "make_random_erasing", "random_crop", "random_hflip"]

RA_GROUP = 16  # images sharing one RandAugment draw: per-image draws cost 3x more and change little


def random_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad each side by `pad` and take a random crop of the original size, per image (one gather)."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    ox = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    rows = (oy + torch.arange(h, device=x.device))[:, :, None]      # n x h x 1
    cols = (ox + torch.arange(w, device=x.device))[:, None, :]      # n x 1 x w
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indices around a slice put the indexed dims first: n x h x w x c
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


class BatchAugment:
    """uint8 batch -> uint8 batch: [RandAugment per group of images] -> [pad-and-crop] -> [flip] per the recipe."""

    def __init__(self, augmentation: str, *, img_size: int, hflip: bool = True) -> None:
        self.augmentation = augmentation
        self.crop = augmentation in ("crop_flip", "randaugment")
        self.flip = hflip and augmentation in ("flip", "crop_flip", "randaugment")
        self.pad = max(1, round(img_size / 8))  # 4 px at 32 px, as the CIFAR recipe
        self.randaugment: Callable[[torch.Tensor], torch.Tensor] | None = None
        if augmentation == "randaugment":
            from torchvision.transforms import v2
            self.randaugment = v2.RandAugment(num_ops=2, magnitude=9)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.randaugment is not None:
            x = torch.cat([self.randaugment(group) for group in x.split(RA_GROUP)])
        if self.crop:
            x = random_crop(x, self.pad)
        if self.flip:
            x = random_hflip(x)
        return x


def make_mixup(recipe: Recipe, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], tuple] | None:
    """timm's batch Mixup/CutMix (soft targets with the recipe's label smoothing), or None when both are off."""
    if recipe.mixup <= 0 and recipe.cutmix <= 0:
        return None
    from timm.data import Mixup
    return Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix, label_smoothing=recipe.label_smoothing,
                 num_classes=num_classes)


def make_random_erasing(recipe: Recipe, device: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """timm's per-image random erasing with per-pixel normal noise, or None when the probability is 0."""
    if recipe.random_erasing <= 0:
        return None
    from timm.data.random_erasing import RandomErasing
    return RandomErasing(recipe.random_erasing, mode="pixel", device=device)
