"""The proxy trainer: trains a network built from an ArchSpec on in-memory data under a budget and a recipe.

A search trades proxy accuracy against latency, so the trainer must be fast and its numbers honest: data stay
on the device as uint8 tensors with batched augmentation (no DataLoader workers), the memory layout
(channels_last or contiguous) is chosen per architecture and device by a short timed probe because it changes
step time 3-30x in either direction, a NaN/inf loss raises `DivergedError` instead of reporting chance
accuracy, and every epoch's validation top-1 goes to a callback that may stop the run (successive halving,
Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning"). Recipes live in `archlab.measure.recipes`,
augmentation in `archlab.measure.augment`. Deterministic for a seed on CPU; on CUDA, bf16 autocast and optional
torch.compile.
"""
from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from archlab.arch.spec import ArchSpec
from archlab.core.errors import ArchlabError
from archlab.measure.augment import BatchAugment, make_mixup, make_random_erasing
from archlab.measure.data import DataSplits, cache_home
from archlab.measure.latency import JsonStore, MeasurementGate, device_name, measurement_lock
from archlab.measure.recipes import RECIPES, Budget, Recipe, ema_decay, get_recipe, lr_factor
from archlab.nn.build import build_model

__all__ = ["RECIPES", "Budget", "DivergedError", "EpochReport", "Recipe", "TrainOptions", "TrainResult",
           "choose_memory_format", "get_recipe", "train"]

MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
_EVAL_BATCH = 500


class DivergedError(ArchlabError):
    """Training produced a NaN or infinite loss; names where and the value, so the run fails loudly."""

    def __init__(self, epoch: float, step: int, loss: float, lr: float) -> None:
        self.epoch, self.step, self.loss, self.lr = epoch, step, loss, lr
        super().__init__(f"training diverged at epoch {epoch:.2f}, step {step}: loss {loss} (learning rate "
                         f"{lr:.4g}); lower the recipe's lr or add warm-up")


@dataclass(frozen=True, slots=True)
class EpochReport:
    """End of one epoch (or of the budget): validation top-1 in percent, mean training loss, progress."""

    epoch: float                     # optimizer steps / steps per epoch (an epoch drops the last partial batch)
    val_top1: float                  # top-1 accuracy in percent on the evaluation split
    train_loss: float                # mean loss over this epoch's steps
    images_seen: int
    wall_s: float                    # since the training loop started
    lr: float = 0.0                  # learning rate at the last step
    last: bool = False               # the evaluation at the end of a step budget (the search sends it as final)


@dataclass(frozen=True)
class TrainResult:
    """A finished training run: final top-1 (percent, on `eval_split`), history, time and throughput."""

    top1: float
    epochs_run: float
    history: tuple[EpochReport, ...]
    wall_s: float                    # the whole call: layout probe, training and evaluation
    images_per_s: float              # training images per second of training steps
    memory_format: str
    stopped_early: bool              # the callback asked to stop
    eval_split: str = "val"
    train_loss: float = float("nan")
    images_seen: int = 0
    steps: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    probe_s: float = 0.0             # the layout probe (0 when cached or given)
    paused_s: float = 0.0            # waiting for latency measurements of other processes
    batch_size: int = 0
    peak_lr: float = 0.0
    threads: int = 0
    device: str = "cpu"
    seed: int = 0
    recipe: str = ""
    arch_id: str = ""
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


# --- memory layout --------------------------------------------------------------------------------------

_LAYOUTS: dict[str, str] = {}
_PROBE_BATCH = 32      # first probe pass: the slow layout can be 30x slower, and 32 images show it
# A layout at least this much faster is kept on disk for good; a closer call can flip with the machine's load
# at probe time (a ResNet-18 probed under load kept contiguous though channels_last stepped 13% faster when
# quiet), so it is probed again once it is older than CLOSE_CALL_TTL_S.
DECISIVE_MARGIN = 1.25
CLOSE_CALL_TTL_S = 24 * 3600.0


def _layout_store() -> JsonStore:
    return JsonStore(cache_home() / "layouts.json")


def choose_memory_format(spec: ArchSpec, *, device: str = "cpu", batch: int = 128, threads: int | None = None,
                         lock_dir: str | Path | None = None, lock: bool = True, use_cache: bool = True
                         ) -> tuple[str, dict[str, float]]:
    """The faster layout for training `spec` here, by timing steps in each; cached per arch/device/batch/size.

    Returns (name, seconds per probe step by layout); the timings are empty when the answer came from the cache.
    The layouts' steps alternate, so a load change on a shared machine hits both; contiguous wins ties within
    5%. The probe holds the measurement lock, so trainers beside it pause and do not skew it. The disk cache
    keeps a decisive answer for good and a close call for CLOSE_CALL_TTL_S.
    """
    threads = threads or torch.get_num_threads()
    # stochastic depth changes no kernel, so it is left out of the key
    key = "|".join((spec.replace(drop_path_rate=0.0).arch_id, device, device_name(device), f"threads={threads}",
                    f"batch={batch}", f"{spec.in_chans}x{spec.img_size}", f"torch {torch.__version__}"))

    def cached() -> str | None:
        if not use_cache:
            return None
        if key not in _LAYOUTS:
            stored = _layout_store().get(key)
            # entries before margins were stored are plain names: probe those again too
            if not isinstance(stored, dict) or stored.get("layout") not in MEMORY_FORMATS:
                return None
            stale = time.time() - stored.get("probed", 0.0) > CLOSE_CALL_TTL_S
            if stored.get("margin", 0.0) < DECISIVE_MARGIN and stale:
                return None
            _LAYOUTS[key] = stored["layout"]
        return _LAYOUTS[key]

    if (hit := cached()) is not None:
        return hit, {}
    guard = measurement_lock(lock_dir) if lock else contextlib.nullcontext()
    with guard:
        if (hit := cached()) is not None:  # a trial beside this one probed the same network while we waited
            return hit, {}
        with torch.random.fork_rng(devices=[torch.device(device)] if device.startswith("cuda") else []):
            torch.manual_seed(0)
            times = _probe(spec, device, batch)
        best = "channels_last" if times["channels_last"] < 0.95 * times["contiguous"] else "contiguous"
        if use_cache:
            _LAYOUTS[key] = best
            margin = max(times.values()) / max(min(times.values()), 1e-12)
            _layout_store().put(key, {"layout": best, "margin": round(margin, 3), "probed": time.time()})
    return best, times


def _probe(spec: ArchSpec, device: str, batch: int, rounds: int = 2) -> dict[str, float]:
    """Best seconds per training step in each layout (per `batch` images), steps of the layouts interleaved.

    First a cheap pass at batch min(batch, 32): a layout over 2x slower there is settled at once, since at 30x
    slower (depthwise convs in channels_last on some CPUs) a full-batch step would cost seconds. A closer call
    is timed again at the real batch, where the two layouts cost about the same, after one warm-up step each.
    """
    cuda = device.startswith("cuda")
    models = {name: build_model(spec).to(device=device, memory_format=fmt).train()
              for name, fmt in MEMORY_FORMATS.items()}

    def timings(n: int, rounds: int) -> dict[str, float]:
        steps = {}
        for name, fmt in MEMORY_FORMATS.items():
            opt = torch.optim.SGD(models[name].parameters(), lr=0.0, momentum=0.9)
            x = torch.randn(n, spec.in_chans, spec.img_size, spec.img_size, device=device)
            y = torch.randint(0, spec.num_classes, (n,), device=device)
            steps[name] = _probe_step(models[name], opt, x.contiguous(memory_format=fmt), y, device if cuda else None)
        for step in steps.values():
            step()  # warm-up: allocations and kernel selection for this shape
        times = {name: math.inf for name in steps}
        for _ in range(rounds):
            for name, step in steps.items():
                times[name] = min(times[name], step())
        return {name: t * batch / n for name, t in times.items()}

    small = min(batch, _PROBE_BATCH)
    times = timings(small, 1)
    if small == batch or max(times.values()) > 2 * min(times.values()):
        return times
    return timings(batch, rounds)


def _probe_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                cuda_device: str | None) -> Callable[[], float]:
    def step() -> float:
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda_device is not None):
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cuda_device is not None:
            torch.cuda.synchronize(cuda_device)
        return time.perf_counter() - t
    return step


# --- training -------------------------------------------------------------------------------------------

def _check_fit(spec: ArchSpec, data: DataSplits) -> None:
    for key, want, got in (("img_size", spec.img_size, data.img_size), ("in_chans", spec.in_chans, data.in_chans),
                           ("num_classes", spec.num_classes, data.num_classes)):
        if want != got:
            raise ArchlabError(f"the spec's {key} is {want} but the {data.name} data have {got}; use "
                               f"spec.replace({key}={got}) or load the data with matching settings")


def _seed_all(seed: int) -> None:
    """Seed every RNG the trainer draws from: torch (init, augmentation), numpy (timm Mixup), random (erasing)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _optimizer(model: nn.Module, recipe: Recipe, lr: float) -> torch.optim.Optimizer:
    from timm.optim import create_optimizer_v2
    kwargs: dict[str, Any] = {}
    if recipe.betas is not None:
        kwargs["betas"] = tuple(recipe.betas)
    # timm's factory leaves biases and norm weights out of weight decay (filter_bias_and_bn)
    return create_optimizer_v2(model, opt=recipe.optimizer, lr=lr, weight_decay=recipe.weight_decay,
                               momentum=recipe.momentum, **kwargs)


class _Normalize:
    """uint8 batch -> float batch standardised by the train split's pixel stats, in the chosen layout."""

    def __init__(self, data: DataSplits, device: str, fmt: torch.memory_format) -> None:
        mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1) * 255.0
        std = torch.tensor(data.std, device=device).view(1, -1, 1, 1) * 255.0
        self.scale, self.shift, self.fmt = 1.0 / std, -mean / std, fmt

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x.float(), self.scale).contiguous(memory_format=self.fmt)


def _evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, norm: _Normalize, gate: Any,
              cuda: bool) -> float:
    """Top-1 accuracy in percent over a split, in eval mode, in batches."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    with torch.inference_mode():
        for start in range(0, len(labels), _EVAL_BATCH):
            with gate.step():
                x = norm(images[start:start + _EVAL_BATCH])
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    pred = model(x).argmax(1)
                correct += (pred == labels[start:start + _EVAL_BATCH]).sum()
    model.train(was_training)
    return 100.0 * correct.item() / max(len(labels), 1)


class _NoGate:
    """Stand-in for MeasurementGate when a trainer need not yield to measurements."""

    paused_s = 0.0

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        yield

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """Where and how a training run executes (what it learns is the recipe's and the budget's business)."""
    device: str = "cpu"                        # cpu or cuda[:N]
    threads: int | None = None                 # torch CPU threads for this run (None: leave as set)
    eval_split: str = "val"                    # "val" for search, "test" for final reports
    memory_format: str = "auto"                # auto times both layouts once per architecture (cached)
    compile: bool = False                      # torch.compile the training step
    progress: bool = False                     # a tqdm bar on stderr
    yield_to_measurement: bool = True          # pause between steps while a latency measurement holds the lock
    lock_dir: str | Path | None = None

    def __post_init__(self) -> None:
        if self.memory_format != "auto" and self.memory_format not in MEMORY_FORMATS:
            raise ArchlabError(f"memory_format must be auto, contiguous or channels_last, got {self.memory_format!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ArchlabError(f"device must be cpu or cuda[:N], got {self.device!r}")


# Nine parameters: what is trained, on what, how long, and hooks; the rest is grouped in TrainOptions/**fields.
def train(spec: ArchSpec, data: DataSplits, *, recipe: Recipe | str | Mapping[str, Any] = "classic", budget: Budget,
          seed: int = 0, callback: Callable[[EpochReport], bool | None] | None = None,
          options: TrainOptions | None = None, init_weights: Mapping[str, torch.Tensor] | None = None,
          on_trained: Callable[[nn.Module], None] | None = None, **fields: Any) -> TrainResult:
    """Train `build_model(spec)` on `data` with `recipe` until `budget` runs out or `callback` returns True.

    `options` (or its fields as keywords) say where it runs. After every epoch (and at the end of the budget) the
    model is evaluated on `options.eval_split` and `callback(EpochReport)` is called. Between steps the trainer
    yields to latency measurements holding `measurement_lock(lock_dir)`. Raises DivergedError on a NaN/inf loss.
    `init_weights` starts from a state dict (keys the model lacks are an error; a missing classifier keeps its
    initialisation); `on_trained(model)` receives the evaluated model (the EMA copy where the recipe keeps one).
    """
    opts = replace(options or TrainOptions(), **fields)
    recipe = get_recipe(recipe)
    if not isinstance(budget, Budget):
        budget = Budget.from_dict(dict(budget), path="budget")
    _check_fit(spec, data)
    if len(data.split(opts.eval_split)) == 0:
        raise ArchlabError(f"the {opts.eval_split} split of {data.name} is empty (val_fraction=0?); evaluate on "
                           "another")
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise ArchlabError(f"device {opts.device!r}: CUDA is not available here")
    if recipe.drop_path is not None:
        spec = spec.replace(drop_path_rate=recipe.drop_path)
    old_threads = torch.get_num_threads()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    gate: Any = MeasurementGate(opts.lock_dir) if opts.yield_to_measurement else _NoGate()
    try:
        loop = _TrainLoop(spec, data, recipe, budget, seed, opts, gate)
        if init_weights is not None:
            loop.start_from(init_weights)
        result = loop.run(callback)
        if on_trained is not None:
            on_trained((loop.ema.module if loop.ema is not None else loop.model).eval())
        return result
    finally:
        gate.close()
        torch.set_num_threads(old_threads)


class _TrainLoop:
    """One training run: the model, optimiser, EMA and data on the device, and the counters the result reports."""

    def __init__(self, spec: ArchSpec, data: DataSplits, recipe: Recipe, budget: Budget, seed: int,
                 opts: TrainOptions, gate: Any) -> None:
        self.t_call = time.perf_counter()
        self.spec, self.data, self.recipe, self.budget, self.seed, self.opts, self.gate = (
            spec, data, recipe, budget, seed, opts, gate)
        self.device, self.cuda = opts.device, opts.device.startswith("cuda")
        self.n_train = len(data.train)
        self.mixup = make_mixup(recipe, data.num_classes)
        batch = min(recipe.batch_size, self.n_train)
        if self.mixup is not None:
            batch -= batch % 2  # timm's Mixup pairs images
            if batch < 2:
                raise ArchlabError(f"Mixup/CutMix need at least 2 training images, got {self.n_train}")
        self.batch, self.steps_per_epoch = batch, self.n_train // batch
        self.total_steps = budget.total_steps(self.n_train, batch)
        self.memory_format, self.probe_s = opts.memory_format, 0.0
        if self.memory_format == "auto":
            t = time.perf_counter()
            self.memory_format, _ = choose_memory_format(spec, device=self.device, batch=batch, lock_dir=opts.lock_dir,
                                                         lock=opts.yield_to_measurement)
            self.probe_s = time.perf_counter() - t
        self._build(MEMORY_FORMATS[self.memory_format])
        self.history: list[EpochReport] = []
        self.step = self.images_seen = self.epoch_steps = 0
        self.train_s = self.eval_s = self.lr = 0.0
        self.loss_sum = torch.zeros((), device=self.device)
        self.bar: Any = None

    def _build(self, fmt: torch.memory_format) -> None:
        """Model (seeded), optimiser, EMA, loss, augmentation, and the data moved to the device once."""
        recipe, data, device = self.recipe, self.data, self.device
        _seed_all(self.seed)
        model = build_model(self.spec)
        if recipe.zero_init_last:
            model.zero_init_last()
        self.model = model.to(device=device, memory_format=fmt).train()
        self.peak_lr = recipe.peak_lr(self.batch)
        self.optimizer = _optimizer(self.model, recipe, self.peak_lr)
        self.ema = None
        if recipe.ema > 0:
            from timm.utils import ModelEmaV3
            # the horizon is a share of training (docs/ablation.md): the decay follows the budget's length
            self.ema = ModelEmaV3(self.model, decay=ema_decay(recipe, self.total_steps), use_warmup=True)
        self.step_model: nn.Module = torch.compile(self.model) if self.opts.compile else self.model
        if self.mixup is not None:
            from timm.loss import SoftTargetCrossEntropy
            self.criterion: nn.Module = SoftTargetCrossEntropy()  # Mixup's soft targets carry the smoothing
        else:
            self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.augment = BatchAugment(recipe.augmentation, img_size=data.img_size, hflip=data.hflip)
        self.erasing = make_random_erasing(recipe, device)
        self.norm = _Normalize(data, device, fmt)
        self.images, self.labels = data.train.images.to(device), data.train.labels.to(device)
        split = data.split(self.opts.eval_split)
        self.eval_images, self.eval_labels = split.images.to(device), split.labels.to(device)
        self.order = torch.Generator().manual_seed(self.seed)  # data order independent of the model init's RNG use

    def start_from(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load starting weights; only the classifier may be absent (fine-tuning to another number of classes)."""
        missing, unexpected = self.model.load_state_dict(dict(state), strict=False)
        classifier = {"fc.weight", "fc.bias"}
        if unexpected or set(missing) - classifier:
            raise ArchlabError(f"the starting weights do not fit {self.spec.name or self.spec.arch_id}: "
                               f"missing {sorted(set(missing) - classifier)[:5]}, unexpected {unexpected[:5]}")
        if self.ema is not None:
            self.ema.set(self.model)

    def budget_left(self) -> bool:
        if self.total_steps is not None and self.step >= self.total_steps:
            return False
        return self.budget.seconds is None or time.perf_counter() - self.t_loop < self.budget.seconds

    def progress_now(self) -> float:
        """Share of the budget spent, which drives the learning-rate schedule."""
        if self.total_steps is not None:
            return self.step / self.total_steps
        seconds = self.budget.seconds
        assert seconds is not None, "a budget without epochs or images has seconds (Budget checks)"
        return (time.perf_counter() - self.t_loop) / seconds

    def end_epoch(self, callback: Callable[[EpochReport], bool | None] | None) -> bool:
        """Evaluate, record the epoch, and ask the callback whether to stop."""
        if not torch.isfinite(self.loss_sum):
            raise DivergedError(self.step / self.steps_per_epoch, self.step, self.loss_sum.item(), self.lr)
        t = time.perf_counter()
        top1 = _evaluate(self.ema.module if self.ema is not None else self.step_model, self.eval_images,
                         self.eval_labels, self.norm, self.gate, self.cuda)
        self.eval_s += time.perf_counter() - t
        report = EpochReport(epoch=round(self.step / self.steps_per_epoch, 6), val_top1=top1,
                             train_loss=self.loss_sum.item() / max(self.epoch_steps, 1),
                             images_seen=self.images_seen, wall_s=time.perf_counter() - self.t_loop, lr=self.lr,
                             last=self.total_steps is not None and self.step >= self.total_steps)
        self.history.append(report)
        self.loss_sum, self.epoch_steps = torch.zeros((), device=self.device), 0
        if self.bar is not None:
            self.bar.set_postfix(epoch=f"{report.epoch:.2f}", loss=f"{report.train_loss:.3f}", top1=f"{top1:.2f}")
        return bool(callback(report)) if callback is not None else False

    def train_step(self, idx: torch.Tensor) -> None:
        """One optimiser step on the images at `idx` (augmented, mixed, erased as the recipe says)."""
        x, y = self.norm(self.augment(self.images[idx])), self.labels[idx]
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        if self.erasing is not None:
            x = self.erasing(x)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            loss = self.criterion(self.step_model(x), y)
        self.loss_sum += loss.detach().float()
        self.epoch_steps += 1
        if not self.cuda or self.step % 25 == 0:  # a host sync per step is free on CPU, not on CUDA
            if not torch.isfinite(loss):
                raise DivergedError((self.step + 1) / self.steps_per_epoch, self.step + 1, loss.item(), self.lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)

    def run_epoch(self) -> None:
        """One pass over a fresh permutation of the training images, or until the budget ends."""
        perm = torch.randperm(self.n_train, generator=self.order).to(self.device)
        t, paused = time.perf_counter(), self.gate.paused_s
        for i in range(self.steps_per_epoch):
            if not self.budget_left():
                break
            self.lr = self.peak_lr * lr_factor(self.recipe, self.progress_now())
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
            with self.gate.step():
                self.train_step(perm[i * self.batch:(i + 1) * self.batch])
            self.step += 1
            self.images_seen += self.batch
            if self.bar is not None:
                self.bar.update(1 if self.total_steps else 0)
                if not self.total_steps:
                    self.bar.n = round(time.perf_counter() - self.t_loop, 1)
                    self.bar.refresh()
        if self.cuda:
            torch.cuda.synchronize(self.device)
        # time given to latency measurements is not this run's
        self.train_s += time.perf_counter() - t - (self.gate.paused_s - paused)

    def run(self, callback: Callable[[EpochReport], bool | None] | None) -> TrainResult:
        """Epochs until the budget ends or the callback stops the run; the result."""
        if self.opts.progress:
            from tqdm import tqdm
            self.bar = tqdm(total=self.total_steps if self.total_steps else self.budget.seconds,
                            unit="step" if self.total_steps else "s", file=sys.stderr, dynamic_ncols=True,
                            leave=False)
        stopped_early = False
        self.t_loop = time.perf_counter()
        try:
            while self.budget_left() and not stopped_early:
                self.run_epoch()
                if self.epoch_steps:
                    stopped_early = self.end_epoch(callback)
        finally:
            if self.bar is not None:
                self.bar.close()
        if not self.history:
            raise ArchlabError("the budget ended before the first training step")
        return self._result(stopped_early)

    def _result(self, stopped_early: bool) -> TrainResult:
        last, spec = self.history[-1], self.spec
        return TrainResult(
            top1=last.val_top1, epochs_run=round(self.step / self.steps_per_epoch, 6), history=tuple(self.history),
            wall_s=time.perf_counter() - self.t_call,
            images_per_s=self.images_seen / self.train_s if self.train_s else 0.0, memory_format=self.memory_format,
            stopped_early=stopped_early, eval_split=self.opts.eval_split, train_loss=last.train_loss,
            images_seen=self.images_seen, steps=self.step, train_s=self.train_s, eval_s=self.eval_s,
            probe_s=self.probe_s, paused_s=self.gate.paused_s, batch_size=self.batch, peak_lr=self.peak_lr,
            threads=torch.get_num_threads(), device=self.device, seed=self.seed, recipe=self.recipe.name,
            arch_id=spec.arch_id, name=spec.name)


def save_trained(out_dir: str | Path, spec: ArchSpec, model: nn.Module, result: TrainResult, *,
                 data: DataSplits, budget: Budget, recipe: Recipe | str, init: str | None = None) -> list[Path]:
    """Write what a training run produced: DIR/spec.yaml, DIR/weights.safetensors and DIR/train.json.

    train.json holds the recipe, budget, data, top-1, the starting weights and the library versions; each file is
    written atomically, the weights before the JSON that describes them.
    """
    import json

    import torchvision

    from archlab.core.files import atomic_write_text
    from archlab.nn.weights import save_weights
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArchlabError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    recipe = get_recipe(recipe)
    info = {
        "arch_id": spec.arch_id, "name": spec.name, "top1": result.top1, "eval_split": result.eval_split,
        "recipe": recipe.to_dict() if hasattr(recipe, "to_dict") else recipe.name,
        "budget": budget.to_dict() if hasattr(budget, "to_dict") else asdict(budget),
        "data": {"name": data.name, "img_size": data.img_size, "in_chans": data.in_chans,
                 "num_classes": data.num_classes, "train_images": len(data.train),
                 "eval_images": len(data.split(result.eval_split))},
        "init_weights": init,
        "versions": {"archlab": _version("archlab"), "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "timm": _version("timm")},
        "result": result.to_dict(),
    }
    paths = [atomic_write_text(out / "spec.yaml", spec.to_yaml()),
             save_weights(model, out / "weights.safetensors", metadata={"arch_id": spec.arch_id, "source": "archlab"})]
    paths.append(atomic_write_text(out / "train.json", json.dumps(info, indent=2, default=str)))
    return paths


def _version(module: str) -> str:
    import importlib.metadata
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
