"""archlab.measure.train, archlab.measure.recipes, archlab.measure.augment and the `archlab train` command."""
from __future__ import annotations

import json
import math
import time

import pytest
import torch

from archlab.arch.spec import ArchSpec, StageSpec, StemSpec
from archlab.cli.main import main
from archlab.core.errors import ArchlabError, SpecError
from archlab.measure import train as train_mod
from archlab.measure.augment import BatchAugment, random_crop, random_hflip
from archlab.measure.data import DEBIAN_FASHION_MNIST, clear_cache, load_data
from archlab.measure.recipes import RECIPES, Recipe, get_recipe, lr_factor
from archlab.measure.train import Budget, DivergedError, EpochReport, choose_memory_format, train


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ARCHLAB_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("ARCHLAB_OFFLINE", "1")
    train_mod._LAYOUTS.clear()
    clear_cache()


def tiny_spec(img_size: int = 16, in_chans: int = 1, width: int = 16) -> ArchSpec:
    """conv stem -> basic stage -> inverted-residual stage: small enough to train in a second."""
    return ArchSpec(stem=StemSpec(width=width, stride=1),
                    stages=(StageSpec(block="basic", depth=1, width=width, stride=2),
                            StageSpec(block="inverted_residual", depth=1, width=2 * width, stride=2, expand_ratio=2)),
                    img_size=img_size, in_chans=in_chans, num_classes=10, name="tiny")


@pytest.fixture
def digits():
    return load_data("digits", img_size=16, in_chans=1)


FAST = Recipe(name="fast", optimizer="sgd", lr=0.2, lr_base_batch=256, batch_size=64, schedule="cosine", warmup=0.05,
              augmentation="none", weight_decay=5e-4)


# --- recipes ---------------------------------------------------------------------------------------------

def test_named_recipes_follow_the_papers():
    classic, modern = get_recipe("classic"), get_recipe("modern")
    assert set(RECIPES.names()) >= {"classic", "modern", "proxy"}
    assert classic.optimizer == "momentum" and classic.schedule == "step" and classic.peak_lr(256) == pytest.approx(0.1)
    assert modern.optimizer == "adamw" and modern.weight_decay == 0.05 and modern.warmup == pytest.approx(20 / 300)
    assert (modern.mixup, modern.cutmix, modern.label_smoothing, modern.drop_path) == (0.8, 1.0, 0.1, 0.1)
    assert modern.peak_lr(4096) == pytest.approx(4e-3) and modern.peak_lr(1024) == pytest.approx(2e-3)  # sqrt rule
    assert modern.ema == 0.0  # the paper switches EMA off for BatchNorm models


def test_lr_factor_schedules():
    cos = Recipe(schedule="cosine", warmup=0.1, min_lr_ratio=0.0)
    assert lr_factor(cos, 0.0) == 0.0 and lr_factor(cos, 0.05) == pytest.approx(0.5)
    assert lr_factor(cos, 0.1) == pytest.approx(1.0) and lr_factor(cos, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(cos, 0.55) == pytest.approx(0.5)
    step = get_recipe("classic")
    assert [lr_factor(step, p) for p in (0.0, 0.34, 0.7)] == pytest.approx([1.0, 0.1, 0.01])


def test_recipe_from_yaml_and_errors(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("base: modern\nlr: 0.001\nbatch_size: 64\n")
    r = get_recipe(str(path))
    assert r.lr == 0.001 and r.batch_size == 64 and r.optimizer == "adamw"
    assert Recipe.from_dict(r.to_dict()) == r
    path.write_text("base: modern\nlearning_rate: 0.1\n")
    with pytest.raises(SpecError, match=r"r\.yaml:2: learning_rate is not a known key"):
        get_recipe(str(path))
    path.write_text("base: modern\nbatch_size: 64\nlr: .nan\n")   # the file, the line, the key, the rule
    with pytest.raises(SpecError, match=r"r\.yaml:3: lr must be a finite number, got nan"):
        get_recipe(str(path))
    path.write_text("base: modern\nlr: 4e-3\n")                   # YAML 1.1 reads 4e-3 as a string
    assert get_recipe(str(path)).lr == pytest.approx(4e-3)
    with pytest.raises(SpecError, match=r"batch_size must be <= 1048576"):
        get_recipe({"base": "classic", "batch_size": 10 ** 30})
    with pytest.raises(SpecError, match="schedule must be one of cosine, step, constant .did you mean 'cosine'"):
        get_recipe({"base": "classic", "schedule": "cosin"})
    with pytest.raises(SpecError, match="optimizer must be a timm optimizer name"):
        get_recipe({"optimizer": "adamww"})
    with pytest.raises(SpecError, match="warmup must be in"):
        get_recipe({"base": "classic", "warmup": 1.5})
    with pytest.raises(ArchlabError, match="did you mean 'modern'"):
        get_recipe("moden")


def test_budget_validation():
    with pytest.raises(SpecError, match="at least one"):
        Budget()
    with pytest.raises(SpecError, match="epochs must be > 0"):
        Budget(epochs=0)
    with pytest.raises(SpecError, match=r"^budget\.images must be > 0, got -5"):
        Budget.from_dict({"images": -5}, path="budget")
    with pytest.raises(SpecError, match=r"^budget needs at least one"):
        Budget.from_dict({}, path="budget")
    assert Budget(epochs=0.5, images=1000).total_steps(10_000, 100) == 10
    assert Budget(epochs=2).total_steps(1050, 100) == 20  # the partial batch is dropped
    assert Budget(seconds=3).total_steps(10, 1) is None
    for bad in ({"epochs": float("nan")}, {"seconds": float("inf")}, {"images": 10 ** 400}, {"images": True}):
        with pytest.raises(SpecError, match=r"^budget\.(epochs|seconds|images) must be"):
            Budget.from_dict(bad, path="budget")
    assert Budget(epochs=2, seconds=None).limits() == {"epochs": 2.0}


# --- augmentation ----------------------------------------------------------------------------------------

def test_random_crop_is_a_shifted_window():
    torch.manual_seed(0)
    x = torch.arange(4 * 2 * 6 * 6, dtype=torch.uint8).view(4, 2, 6, 6)
    out = random_crop(x, 2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(4):
        windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    flipped = random_hflip(x)
    assert all(torch.equal(f, a) or torch.equal(f, a.flip(-1)) for f, a in zip(flipped, x))


def test_batch_augment_respects_no_flip_and_randaugment_runs():
    x = torch.randint(0, 255, (40, 1, 16, 16), dtype=torch.uint8)
    assert torch.equal(BatchAugment("flip", img_size=16, hflip=False)(x), x)
    out = BatchAugment("randaugment", img_size=16)(x)
    assert out.shape == x.shape and out.dtype == torch.uint8


# --- the trainer -----------------------------------------------------------------------------------------

def test_learns_digits_well_above_chance(digits):
    res = train(tiny_spec(), digits, recipe=FAST, budget=Budget(epochs=4), seed=0)
    assert res.top1 > 80.0, res.history  # chance is 10%
    assert res.epochs_run == 4.0 and [h.epoch for h in res.history] == [1.0, 2.0, 3.0, 4.0]
    assert [h.last for h in res.history] == [False, False, False, True]
    assert res.images_per_s > 0 and res.memory_format in ("contiguous", "channels_last")
    json.dumps(res.to_dict())


@pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason=f"{DEBIAN_FASHION_MNIST} absent (Debian package dataset-fashion-mnist)")
def test_learns_fashion_mnist_subset(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLAB_DATA", str(tmp_path / "data"))
    data = load_data("fashion_mnist", img_size=16, in_chans=1, limit=3000, val_limit=1000)
    res = train(tiny_spec(), data, recipe=FAST, budget=Budget(epochs=2), seed=0)
    assert res.top1 > 65.0, res.history  # chance is 10%


def test_deterministic_for_a_seed(digits):
    runs = [train(tiny_spec(), digits, recipe="modern", budget=Budget(epochs=1), seed=s, memory_format="contiguous")
            for s in (3, 3, 4)]
    assert runs[0].history[0].train_loss == runs[1].history[0].train_loss
    assert runs[0].top1 == runs[1].top1
    assert runs[0].history[0].train_loss != runs[2].history[0].train_loss


def test_callback_stops_early(digits):
    seen: list[EpochReport] = []

    def stop_after_two(report: EpochReport) -> bool:
        seen.append(report)
        return len(seen) == 2

    res = train(tiny_spec(), digits, recipe=FAST, budget=Budget(epochs=5), callback=stop_after_two)
    assert res.stopped_early and len(res.history) == 2 and res.epochs_run < 2.1
    assert [r.epoch for r in seen] == [r.epoch for r in res.history]
    assert seen[1].images_seen > seen[0].images_seen and seen[0].wall_s > 0


def test_image_and_fractional_budgets(digits):
    res = train(tiny_spec(), digits, recipe=FAST, budget=Budget(images=640))
    assert res.images_seen == 640 and len(res.history) == 1
    res = train(tiny_spec(), digits, recipe=FAST, budget=Budget(epochs=1.5))
    assert [round(h.epoch, 1) for h in res.history] == [1.0, 1.5]


def test_seconds_budget_stops(digits):
    res = train(tiny_spec(), digits, recipe=FAST, budget=Budget(seconds=1.0))
    assert res.steps > 0 and res.wall_s < 20  # stops near one second, with slack for a busy machine


def test_absurd_learning_rate_raises_diverged(digits):
    recipe = FAST.replace(lr=1e12, warmup=0.0)
    with pytest.raises(DivergedError, match=r"diverged at epoch .*step \d+: loss (nan|inf)") as err:
        train(tiny_spec(), digits, recipe=recipe, budget=Budget(epochs=3))
    assert err.value.step >= 1 and not math.isfinite(err.value.loss)


def test_nan_loss_is_caught_at_its_step(digits, monkeypatch):
    real = torch.nn.CrossEntropyLoss.forward
    calls = {"n": 0}

    def poisoned(self, logits, target):
        calls["n"] += 1
        loss = real(self, logits, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", poisoned)
    with pytest.raises(DivergedError) as err:
        train(tiny_spec(), digits, recipe=FAST, budget=Budget(epochs=1))
    assert err.value.step == 3


def test_modern_recipe_with_ema_runs(digits):
    recipe = get_recipe({"base": "modern", "ema": 0.99, "batch_size": 32})
    res = train(tiny_spec(), digits, recipe=recipe, budget=Budget(images=256))
    assert math.isfinite(res.train_loss) and 0.0 <= res.top1 <= 100.0 and res.batch_size == 32


def test_spec_data_mismatch_and_bad_split(digits):
    with pytest.raises(ArchlabError, match="img_size is 32 but the digits data have 16"):
        train(tiny_spec(img_size=32), digits, budget=Budget(epochs=1))
    with pytest.raises(ArchlabError, match="unknown split"):
        train(tiny_spec(), digits, budget=Budget(epochs=1), eval_split="dev")


def test_memory_format_probe_is_cached():
    spec = tiny_spec()
    fmt, times = choose_memory_format(spec, batch=32)
    assert fmt in ("contiguous", "channels_last") and set(times) == {"contiguous", "channels_last"}
    assert all(t > 0 for t in times.values())
    train_mod._LAYOUTS.clear()  # the on-disk cache answers a new process
    assert choose_memory_format(spec, batch=32) == (fmt, {})
    # stochastic depth changes no kernel: same cached answer
    assert choose_memory_format(spec.replace(drop_path_rate=0.1), batch=32) == (fmt, {})


def test_a_stale_close_layout_call_is_probed_again(monkeypatch):
    spec = tiny_spec()
    choose_memory_format(spec, batch=32)
    store = train_mod._layout_store()
    (key,) = [k for k in store.read() if k.startswith(spec.arch_id) and "batch=32|" in k]
    for stored, probed_again in (({"layout": "contiguous", "margin": 1.05, "probed": 0.0}, True),
                                 ({"layout": "contiguous", "margin": 1.05, "probed": time.time()}, False),
                                 ({"layout": "channels_last", "margin": 3.0, "probed": 0.0}, False),
                                 ("contiguous", True)):  # written before margins were kept
        store.put(key, stored)
        train_mod._LAYOUTS.clear()
        fmt, times = choose_memory_format(spec, batch=32)
        assert bool(times) == probed_again, stored
        if not probed_again:
            assert fmt == stored["layout"]


def test_cli_train_json(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec().to_yaml())
    code = main(["train", str(path), "--dataset", "digits", "--epochs", "1", "--recipe", "proxy", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["name"] == "tiny" and 0 <= out["top1"] <= 100 and len(out["history"]) == 1
    assert main(["train", str(path), "--dataset", "digit", "--epochs", "1"]) == 2
    assert "did you mean 'digits'" in capsys.readouterr().err
    assert main(["train", str(path), "--dataset", "digits"]) == 2
    assert "give a budget" in capsys.readouterr().err
