"""Training recipes: frozen, YAML-declarable settings for the trainer, scaled to whatever budget it gets.

`classic` is the ResNet recipe of He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(momentum SGD, lr 0.1 at batch 256, weight decay 1e-4, lr / 10 at epochs 30 and 60 of 90). `modern` is the
ConvNeXt recipe, Liu et al., "A ConvNet for the 2020s", CVPR 2022, Section 2.1 and Table 5 (AdamW, lr 4e-3 at
batch 4096, weight decay 0.05, cosine with 20 of 300 epochs of warm-up, RandAugment, Mixup 0.8, CutMix 1.0,
random erasing 0.25, label smoothing 0.1, stochastic depth 0.1, EMA off for BatchNorm models). Schedules
are written as fractions of the budget, so "30 of 90 epochs" stays a third of a 2-epoch proxy. `proxy` is
archlab's short-budget recipe for search trials (bench/proxy_quality.py measures how well it ranks). The
learning rate follows the batch size linearly (Goyal et al. 2017) for SGD and by its square root for the
Adam family, as timm's train.py does. Torch-free until an optimizer name is checked.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from archlab.arch.spec import _Spec
from archlab.core.errors import ArchlabError, SpecError, did_you_mean
from archlab.core.registry import Registry

__all__ = ["AUGMENTATIONS", "RECIPES", "SCHEDULES", "Recipe", "get_recipe", "lr_factor", "recipe_names"]

SCHEDULES = ("cosine", "step", "constant")
AUGMENTATIONS = ("none", "flip", "crop_flip", "randaugment")
LR_SCALES = ("linear", "sqrt", "none")


def _known_optimizers() -> list[str]:
    from timm.optim import list_optimizers  # imports torch; only needed to check a name
    return list(list_optimizers())


@dataclass(frozen=True, slots=True)
class Recipe(_Spec):
    """How to train: optimizer, learning-rate schedule (fractions of the budget), regularisation, augmentation."""

    name: str = ""
    optimizer: str = "momentum"      # a timm optimizer name: momentum (SGD), sgd (SGD + Nesterov), adamw, ...
    lr: float = 0.1                  # peak learning rate at batch `lr_base_batch`
    lr_base_batch: int = 256
    lr_scale: str = "linear"         # how the peak lr follows batch_size: linear, sqrt or none
    batch_size: int = 128
    momentum: float = 0.9
    betas: tuple[float, ...] | None = None   # Adam-family (beta1, beta2); None: the optimizer's default
    weight_decay: float = 1e-4       # not applied to biases and norm weights (timm's filter_bias_and_bn)
    schedule: str = "step"
    warmup: float = 0.0              # fraction of the budget with a linear warm-up from 0
    min_lr_ratio: float = 0.0        # cosine floor as a fraction of the peak
    milestones: tuple[float, ...] = (1 / 3, 2 / 3)   # step schedule: budget fractions where lr *= step_gamma
    step_gamma: float = 0.1
    label_smoothing: float = 0.0
    mixup: float = 0.0               # Mixup alpha; 0 disables
    cutmix: float = 0.0              # CutMix alpha; 0 disables
    random_erasing: float = 0.0      # probability per image
    augmentation: str = "crop_flip"  # none, flip, crop_flip (pad-and-crop + flip), randaugment (crop_flip + RA 2x9)
    drop_path: float | None = None   # stochastic depth rate; None keeps the spec's drop_path_rate
    ema: float = 0.0                 # EMA decay of the weights (timm ModelEmaV3 with warm-up); 0 disables
    grad_clip: float | None = None   # max global gradient norm; None disables
    zero_init_last: bool = False     # residual branches start at zero (Goyal et al. 2017 "zero gamma", timm)

    def __post_init__(self) -> None:
        self._normalise()
        known = _known_optimizers()
        if self.optimizer not in known:
            raise SpecError("optimizer", "must be a timm optimizer name" + did_you_mean(self.optimizer, known,
                                                                                      list_valid=False),
                            self.optimizer)
        for key in ("lr", "lr_base_batch", "batch_size"):
            if getattr(self, key) <= 0:
                raise SpecError(key, "must be > 0", getattr(self, key))
        for key in ("momentum", "weight_decay", "mixup", "cutmix", "step_gamma"):
            if getattr(self, key) < 0:
                raise SpecError(key, "must be >= 0", getattr(self, key))
        for key in ("warmup", "label_smoothing"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise SpecError(key, "must be in [0, 1)", getattr(self, key))
        for key in ("min_lr_ratio", "random_erasing"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise SpecError(key, "must be in [0, 1]", getattr(self, key))
        _choice("lr_scale", self.lr_scale, LR_SCALES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("augmentation", self.augmentation, AUGMENTATIONS)
        if any(not 0.0 < m < 1.0 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise SpecError("milestones", "must be increasing fractions in (0, 1)", list(self.milestones))
        if self.betas is not None and (len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas)):
            raise SpecError("betas", "must be two numbers in [0, 1)", list(self.betas))
        if self.drop_path is not None and not 0.0 <= self.drop_path < 1.0:
            raise SpecError("drop_path", "must be in [0, 1)", self.drop_path)
        if not 0.0 <= self.ema < 1.0:
            raise SpecError("ema", "must be in [0, 1) (0 disables EMA)", self.ema)
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise SpecError("grad_clip", "must be > 0", self.grad_clip)

    def peak_lr(self, batch_size: int | None = None) -> float:
        """The peak learning rate for `batch_size` (default: the recipe's), scaled from `lr_base_batch`."""
        ratio = (batch_size or self.batch_size) / self.lr_base_batch
        return self.lr * {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[self.lr_scale]

    def replace(self, **changes: Any) -> Recipe:
        """A copy with `changes` applied (validated again)."""
        return replace(self, **changes)

    def to_yaml(self) -> str:
        """The recipe as YAML."""
        import yaml
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(key, "must be one of " + ", ".join(choices) + did_you_mean(value, choices, list_valid=False),
                        value)


def lr_factor(recipe: Recipe, progress: float) -> float:
    """Learning-rate multiplier of the peak at `progress` in [0, 1] of the budget (warm-up, then the schedule)."""
    progress = min(max(progress, 0.0), 1.0)
    if recipe.warmup > 0 and progress < recipe.warmup:
        return progress / recipe.warmup
    if recipe.schedule == "constant":
        return 1.0
    if recipe.schedule == "step":
        return recipe.step_gamma ** sum(progress >= m for m in recipe.milestones)
    t = (progress - recipe.warmup) / max(1.0 - recipe.warmup, 1e-12)
    floor = recipe.min_lr_ratio
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


RECIPES: Registry[Callable[[], Recipe]] = Registry("recipe")


@RECIPES.register("classic")
def classic() -> Recipe:
    """ResNet (He et al. 2016): momentum SGD lr 0.1 @ 256, wd 1e-4, lr / 10 at 1/3 and 2/3, crop + flip."""
    return Recipe(name="classic", optimizer="momentum", lr=0.1, lr_base_batch=256, lr_scale="linear",
                  batch_size=128, momentum=0.9, weight_decay=1e-4, schedule="step", milestones=(1 / 3, 2 / 3),
                  augmentation="crop_flip")


@RECIPES.register("modern")
def modern() -> Recipe:
    """ConvNeXt Table 5: AdamW 4e-3 @ 4096, wd 0.05, cosine, 20/300 warm-up, RA, Mixup/CutMix, LS 0.1, SD 0.1."""
    return Recipe(name="modern", optimizer="adamw", lr=4e-3, lr_base_batch=4096, lr_scale="sqrt", batch_size=128,
                  betas=(0.9, 0.999), weight_decay=0.05, schedule="cosine", warmup=20 / 300, min_lr_ratio=0.0,
                  label_smoothing=0.1, mixup=0.8, cutmix=1.0, random_erasing=0.25, augmentation="randaugment",
                  drop_path=0.1, ema=0.0)


@RECIPES.register("proxy")
def proxy() -> Recipe:
    """Short-budget search proxy: Nesterov SGD lr 0.2 @ 256 at batch 64, wd 5e-4, cosine, 5% warm-up, no augmentation,
    residual branches started at zero.

    A proxy of ~150 steps under-fits rather than over-fits: pad-and-crop cost 5-7 points of top-1 and flips 1-2
    on Fashion-MNIST, and batch 64 beat 128 at equal images (more steps). Zero-initialised residual branches
    (Goyal et al. 2017) cut the seed-to-seed noise 2.3-3.5x and stop deep networks from trailing only because
    they start unstable; bench/proxy_quality.py has the figures.
    """
    return Recipe(name="proxy", optimizer="sgd", lr=0.2, lr_base_batch=256, lr_scale="linear", batch_size=64,
                  momentum=0.9, weight_decay=5e-4, schedule="cosine", warmup=0.05, augmentation="none",
                  zero_init_last=True)


def recipe_names() -> list[str]:
    """Registered recipe names."""
    return RECIPES.names()


def get_recipe(recipe: str | Mapping[str, Any] | Recipe, *, file: str | None = None) -> Recipe:
    """A Recipe from a registered name, a .yaml/.yml/.json file, or a mapping (`base: NAME` plus overrides)."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        if recipe in RECIPES:
            return RECIPES.get(recipe)()
        if Path(recipe).suffix in (".yaml", ".yml", ".json") or Path(recipe).exists():
            from archlab.core.yamlio import load_yaml_file
            return get_recipe(load_yaml_file(recipe), file=recipe)
        raise ArchlabError(f"unknown recipe {recipe!r}{did_you_mean(recipe, RECIPES.names())}")
    if not isinstance(recipe, Mapping):
        raise SpecError("recipe", "must be a recipe name or a mapping", recipe, file=file)
    data = dict(recipe)
    base_name = data.pop("base", None)
    try:
        if base_name is None:
            return Recipe.from_dict(data)
        if not isinstance(base_name, str) or base_name not in RECIPES:
            raise SpecError("base", "must be a recipe name" + did_you_mean(str(base_name), RECIPES.names()),
                            base_name)
        base = RECIPES.get(base_name)().to_dict()
        base["name"] = data.get("name", f"{base_name}+")
        base.update(data)
        return Recipe.from_dict(base)
    except SpecError as err:
        raise err.with_context(file=file) from None
