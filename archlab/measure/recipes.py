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

The schedule rule (docs/ablation.md, "The recipe at a short budget"): a recipe is the paper's, fixed; only what
the paper ties to the schedule follows the budget: warm-up as a share of training, the cosine (or step)
schedule's length, and EMA's horizon (`ema_reference_steps`: the decay is restated so the averaging window
stays the same share of training). Learning rate, weight decay, augmentation and regularisation strengths do
not change with the budget. `budget_multiplier` states how much longer than the base row a recipe trains
(the ConvNeXt paper's 300 of 90 epochs), exactly as a fraction.

`Recipe` and `Budget` (how long to train: epochs, images or seconds) are `archlab.core.schema` records: a
recipe file or mapping is read by their type hints and bounds, with the file, line and key path in errors.
"""
from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from archlab.core.errors import SpecError, did_you_mean
from archlab.core.registry import Registry
from archlab.core.schema import Range, Schema, load_document

__all__ = ["AUGMENTATIONS", "MAX_MULTIPLIER", "RECIPES", "SCHEDULES", "Budget", "Recipe", "ema_decay", "get_recipe",
           "lr_factor", "parse_multiplier", "recipe_names"]

Schedule = Literal["cosine", "step", "constant"]
Augmentation = Literal["none", "flip", "crop_flip", "randaugment"]
SCHEDULES = typing.get_args(Schedule)
AUGMENTATIONS = typing.get_args(Augmentation)
LrScale = Literal["linear", "sqrt", "none"]
LR_SCALES = typing.get_args(LrScale)
Batch = Annotated[int, Range(gt=0, le=2 ** 20)]
NonNegative = Annotated[float, Range(ge=0)]


MAX_MULTIPLIER = 10 ** 4          # a budget 10,000x the base row's is a typo, not a replay
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")


def parse_multiplier(value: float | str, path: str = "budget_multiplier") -> Fraction:
    """A budget multiplier as an exact fraction: a positive finite number (3.5) or a ratio string ("300/90").

    The string form keeps the paper's ratio exact (300/90 is not 3.3333), so 9,216 images x 300/90 is 30,720.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpecError(path, "must be a positive number or a ratio string such as \"300/90\"", value)
    if isinstance(value, str):
        ratio = _RATIO.match(value)
        if ratio is None:
            try:
                number = Fraction(value.strip())
            except (ValueError, ZeroDivisionError):
                raise SpecError(path, "must be a positive number or a ratio string such as \"300/90\"",
                                value) from None
        elif Fraction(ratio.group(2)) == 0:
            raise SpecError(path, "must not divide by zero", value)
        else:
            number = Fraction(ratio.group(1)) / Fraction(ratio.group(2))
    elif not math.isfinite(value):
        raise SpecError(path, "must be a finite number", value)
    else:
        number = Fraction(str(value))   # the decimal as written (3.3333), not its binary float
    if not 0 < number <= MAX_MULTIPLIER:
        raise SpecError(path, f"must be > 0 and <= {MAX_MULTIPLIER}", value)
    return number


def _known_optimizers() -> list[str]:
    from timm.optim import list_optimizers  # imports torch; only needed to check a name
    return list(list_optimizers())


@dataclass(frozen=True, slots=True)
class Recipe(Schema):
    """How to train: optimizer, learning-rate schedule (fractions of the budget), regularisation, augmentation."""

    name: str = ""
    optimizer: str = "momentum"      # a timm optimizer name: momentum (SGD), sgd (SGD + Nesterov), adamw, ...
    # peak learning rate at batch `lr_base_batch`; the divergence tests train at 1e12 on purpose
    lr: Annotated[float, Range(gt=0, le=1e12)] = 0.1
    lr_base_batch: Batch = 256
    lr_scale: LrScale = "linear"     # how the peak lr follows batch_size
    batch_size: Batch = 128
    momentum: Annotated[float, Range(ge=0, le=1)] = 0.9
    betas: tuple[float, ...] | None = None   # Adam-family (beta1, beta2); None: the optimizer's default
    weight_decay: NonNegative = 1e-4  # not applied to biases and norm weights (timm's filter_bias_and_bn)
    schedule: Schedule = "step"
    warmup: float = 0.0              # fraction of the budget with a linear warm-up from 0
    min_lr_ratio: float = 0.0        # cosine floor as a fraction of the peak
    milestones: tuple[float, ...] = (1 / 3, 2 / 3)   # step schedule: budget fractions where lr *= step_gamma
    step_gamma: NonNegative = 0.1
    label_smoothing: float = 0.0
    mixup: NonNegative = 0.0         # Mixup alpha; 0 disables
    cutmix: NonNegative = 0.0        # CutMix alpha; 0 disables
    random_erasing: float = 0.0      # probability per image
    augmentation: Augmentation = "crop_flip"  # crop_flip: pad-and-crop + flip; randaugment: crop_flip + RA 2x9
    drop_path: float | None = None   # stochastic depth rate; None keeps the spec's drop_path_rate
    ema: float = 0.0                 # EMA decay of the weights (timm ModelEmaV3 with warm-up); 0 disables
    grad_clip: float | None = None   # max global gradient norm; None disables
    zero_init_last: bool = False     # residual branches start at zero (Goyal et al. 2017 "zero gamma", timm)
    # the schedule length (optimizer steps) at which `ema` is stated; the decay is restated for the steps a
    # budget allows so the EMA's horizon stays the same share of training. None: `ema` used as is
    ema_reference_steps: Annotated[int, Range(gt=0, le=10 ** 9)] | None = None
    budget_multiplier: float | str = 1   # training length relative to the ladder's base row ("300/90")

    def __post_init__(self) -> None:
        self._normalise()
        parse_multiplier(self.budget_multiplier)
        known = _known_optimizers()
        if self.optimizer not in known:
            raise SpecError("optimizer", "must be a timm optimizer name" + did_you_mean(self.optimizer, known,
                                                                                      list_valid=False),
                            self.optimizer)
        for key in ("warmup", "label_smoothing"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise SpecError(key, "must be in [0, 1)", getattr(self, key))
        for key in ("min_lr_ratio", "random_erasing"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise SpecError(key, "must be in [0, 1]", getattr(self, key))
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

    @property
    def multiplier(self) -> Fraction:
        """`budget_multiplier` as an exact fraction."""
        return parse_multiplier(self.budget_multiplier)

    def replace(self, **changes: Any) -> Recipe:
        """A copy with `changes` applied (validated again)."""
        return replace(self, **changes)

    def to_yaml(self) -> str:
        """The recipe as YAML."""
        import yaml
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass(frozen=True, slots=True)
class Budget(Schema):
    """How long to train: epochs, images or seconds; training stops at the first limit reached."""

    epochs: Annotated[float, Range(gt=0, le=10 ** 6)] | None = None
    images: Annotated[int, Range(gt=0, le=10 ** 12)] | None = None
    seconds: Annotated[float, Range(gt=0, le=10 ** 7)] | None = None  # wall time of the loop, evaluation included

    def __post_init__(self) -> None:
        self._normalise()   # finite and within the bounds above
        if self.epochs is None and self.images is None and self.seconds is None:
            raise SpecError("", "needs at least one of epochs, images or seconds", show_value=False)

    def limits(self) -> dict[str, float]:
        """The limits that are set, by name (the form written into run folders and reports)."""
        return {k: v for k, v in self.to_dict().items() if v is not None}

    def total_steps(self, n_train: int, batch: int) -> int | None:
        """Optimizer steps allowed on `n_train` images in batches of `batch` (an epoch drops the last partial
        batch), or None when only seconds bound the run."""
        limits = [round(self.epochs * (n_train // batch))] if self.epochs is not None else []
        limits += [round(self.images / batch)] if self.images is not None else []
        return max(1, min(limits)) if limits else None

    def scaled(self, multiplier: Fraction | float | str) -> Budget:
        """Every limit times `multiplier` (images rounded half up to a whole image)."""
        m = multiplier if isinstance(multiplier, Fraction) else parse_multiplier(multiplier)
        if m == 1:
            return self
        images = None if self.images is None else max(1, math.floor(self.images * m + Fraction(1, 2)))
        return Budget(epochs=None if self.epochs is None else float(self.epochs * m), images=images,
                      seconds=None if self.seconds is None else float(self.seconds * m))


def ema_decay(recipe: Recipe, total_steps: int | None) -> float:
    """The per-step EMA decay for a run of `total_steps`: the recipe's, restated so that the EMA's horizon
    (1 / (1 - decay) steps) is the same share of training as at `ema_reference_steps`."""
    if recipe.ema <= 0 or recipe.ema_reference_steps is None or not total_steps:
        return recipe.ema
    horizon = total_steps / (recipe.ema_reference_steps * (1.0 - recipe.ema))
    return max(0.0, 1.0 - 1.0 / horizon) if horizon > 1.0 else 0.0


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


# the paper's schedule in optimizer steps: 300 epochs of ImageNet-1K's 1,281,167 images at batch 4096
_CONVNEXT_STEPS = 300 * (1_281_167 // 4096)


@RECIPES.register("modern")
def modern() -> Recipe:
    """ConvNeXt Table 5: AdamW 4e-3 @ 4096, wd 0.05, cosine, 20/300 warm-up, RA, Mixup/CutMix, LS 0.1, SD 0.1."""
    return Recipe(name="modern", optimizer="adamw", lr=4e-3, lr_base_batch=4096, lr_scale="sqrt", batch_size=128,
                  betas=(0.9, 0.999), weight_decay=0.05, schedule="cosine", warmup=20 / 300, min_lr_ratio=0.0,
                  label_smoothing=0.1, mixup=0.8, cutmix=1.0, random_erasing=0.25, augmentation="randaugment",
                  drop_path=0.1, ema=0.0, ema_reference_steps=_CONVNEXT_STEPS)


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


def get_recipe(recipe: str | Mapping[str, Any] | Recipe, *, file: str | None = None,
               lines: Mapping[str, int] | None = None) -> Recipe:
    """A Recipe from a registered name, a .yaml/.yml/.json file, or a mapping (`base: NAME` plus overrides)."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        if recipe in RECIPES:
            return RECIPES.get(recipe)()
        if Path(recipe).suffix in (".yaml", ".yml", ".json") or Path(recipe).exists():
            doc = load_document(recipe)
            return get_recipe(doc.data, file=doc.file, lines=doc.lines)
        return RECIPES.lookup(recipe)()  # an ArchlabError with a did-you-mean
    if not isinstance(recipe, Mapping):
        raise SpecError("recipe", "must be a recipe name or a mapping", recipe, file=file)
    data = dict(recipe)
    base_name = data.pop("base", None)
    if base_name is not None:
        if not isinstance(base_name, str) or base_name not in RECIPES:
            raise SpecError("base", "must be a recipe name" + did_you_mean(str(base_name), RECIPES.names()),
                            base_name, file=file)
        base = RECIPES.get(base_name)().to_dict()
        base["name"] = data.get("name", f"{base_name}+")
        data = {**base, **data}
    recipe_: Recipe = Recipe.from_dict(data, file=file, lines=lines)
    return recipe_
