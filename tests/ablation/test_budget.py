"""Ablation fidelity (issue 17): budget multipliers on rows and recipes, budget_images in every output, budget
sweeps (one resumable run folder per budget, agreement vs budget) and the recipe's schedule rule."""
from __future__ import annotations

import csv
import json
import math
import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from archlab.ablation import load_ladder, read_records, resolve_ladder
from archlab.ablation.replay import CSV_COLUMNS, budget_images
from archlab.ablation.sweep import StepTrend, parse_budgets, scale_ladder
from archlab.cli.main import main
from archlab.core.errors import SpecError
from archlab.measure.recipes import Budget, ema_decay, get_recipe, lr_factor, parse_multiplier

ROOT = Path(__file__).resolve().parents[2]
T_LADDER = ROOT / "studies" / "convnext_ablation.yaml"
B_LADDER = ROOT / "studies" / "convnext_ablation_r200.yaml"
PAPER_SENTENCE = "we extend the training to 300 epochs from the original 90 epochs for ResNets"


# --- multipliers and budgets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [("300/90", Fraction(10, 3)), (" 3 / 2 ", Fraction(3, 2)),
                                             (3.3333, Fraction(33333, 10000)), (2, Fraction(2)),
                                             ("0.5", Fraction(1, 2)), ("1.5/0.5", Fraction(3))])
def test_multiplier_is_parsed_exactly(value, expected):
    assert parse_multiplier(value) == expected


@pytest.mark.parametrize("value, rule", [("0", "must be > 0"), (-1, "must be > 0"), ("1/0", "divide by zero"),
                                         ("three", "ratio string"), (float("inf"), "finite"), (True, "ratio"),
                                         (10 ** 5, "<= 10000"), ("-3/2", "must be > 0")])
def test_bad_multiplier_names_rule_and_value(value, rule):
    with pytest.raises(SpecError) as err:
        parse_multiplier(value, "steps[2].budget_multiplier")
    assert str(err.value).startswith("steps[2].budget_multiplier ") and rule in str(err.value)


def test_budget_scaled_keeps_the_ratio_exact():
    assert Budget(images=9216).scaled("300/90") == Budget(images=30720)
    assert Budget(epochs=90).scaled("300/90").epochs == pytest.approx(300.0)
    assert Budget(images=3).scaled("1/2").images == 2          # half up, never 0
    assert Budget(seconds=10, images=100).scaled(2) == Budget(seconds=20, images=200)


# --- the shipped ladders ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [T_LADDER, B_LADDER])
def test_shipped_ladders_train_modern_rows_300_of_90(path):
    ladder = load_ladder(path)
    rows = resolve_ladder(ladder)
    assert rows[0].recipe == "classic" and rows[0].budget_multiplier == 1
    modern = [r for r in rows if r.recipe == "modern"]
    assert len(modern) == len(rows) - 1 and all(r.budget_multiplier == Fraction(300, 90) for r in modern)
    assert PAPER_SENTENCE in " ".join(rows[1].row.note.split())
    images = [budget_images(r, ladder.proxy, None) for r in rows]
    assert images[0] * Fraction(300, 90) == images[1] and set(images[1:]) == {images[1]}
    # whole batches of the recipes' 128 images, so the trainer sees exactly these counts
    assert images[0] % 128 == 0 and images[1] % 128 == 0


def test_default_replay_fits_the_wall_time_goal():
    """The default replay's image count at the median throughput measured in the previous replay here
    (busy machine) plus its per-(row, seed) evaluation overhead stays within 60 minutes."""
    ladder = load_ladder(T_LADDER)
    rows = resolve_ladder(ladder)
    total = len(ladder.seeds) * sum(budget_images(r, ladder.proxy, None) for r in rows)
    kept = read_records(ROOT / "docs" / "ablation_replay" / "convnext_ablation_20k" / "results.jsonl")
    assert len(kept) == 51
    # median trainer throughput and evaluation overhead of the 20,000-image replay the budget was sized from
    # (measured on this machine at load average 3.5-10.5)
    rate = sorted(r["images_per_s"] for r in kept)[len(kept) // 2]
    extra = sorted(r["wall_s"] - r["train_s"] for r in kept)[len(kept) // 2]
    minutes = (total / rate + extra * len(rows) * len(ladder.seeds)) / 60
    assert minutes < 55, minutes


def test_row_multiplier_overrides_the_recipes_and_changes_the_fingerprint(tmp_path):
    data = _tiny()
    data["steps"][1]["budget_multiplier"] = 3
    a, b = load_ladder(_write(tmp_path, _tiny(), "a.yaml")), load_ladder(_write(tmp_path, data, "b.yaml"))
    assert [r.budget_multiplier for r in resolve_ladder(a)] == [1, 2, Fraction(1, 2)]
    assert [r.budget_multiplier for r in resolve_ladder(b)] == [1, 3, Fraction(1, 2)]
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize("where, value, rule", [
    ("row", "0", "must be > 0"), ("row", "x/y", "ratio string"), ("recipe", "-2", "must be > 0")])
def test_malformed_multiplier_in_a_ladder_names_file_line_key(tmp_path, capsys, where, value, rule):
    data = _tiny()
    if where == "row":
        data["steps"][2]["budget_multiplier"] = value
        key = "steps[2].budget_multiplier"
    else:
        data["proxy"]["recipes"]["modern"]["budget_multiplier"] = value
        key = "proxy.recipes.modern.budget_multiplier"
    path = _write(tmp_path, data, "bad.yaml")
    with pytest.raises(SpecError) as err:
        load_ladder(path)
    assert re.match(rf"{re.escape(str(path))}:\d+: {re.escape(key)} ", str(err.value)), str(err.value)
    assert rule in str(err.value)
    assert main(["ablate", str(path), "--no-train"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("archlab: error: ") and key in stderr and "Traceback" not in stderr


# --- the recipe rule -----------------------------------------------------------------------------------------------

def test_only_the_schedule_follows_the_budget():
    """The recipe is the same at every budget; warm-up and schedule are shares of training, the EMA's horizon too."""
    ladder = load_ladder(T_LADDER)
    doubled = scale_ladder(ladder, Fraction(2))
    assert doubled.proxy.recipes == ladder.proxy.recipes
    assert doubled.proxy.budget.images == 2 * ladder.proxy.budget.images
    modern = get_recipe(ladder.proxy.recipes["modern"])
    assert modern.warmup == pytest.approx(20 / 300) and modern.lr == 4e-3 and modern.mixup == 0.8
    for progress in (0.0, 0.03, 20 / 300, 0.5, 0.99):
        assert lr_factor(modern, progress) == lr_factor(modern.replace(budget_multiplier=1), progress)
    ema = modern.replace(ema=0.9999)
    for steps in (240, 2400, 93_600):
        decay = ema_decay(ema, steps)
        # the horizon 1 / (1 - decay) is the same share of training as 10,000 of the paper's 93,600 steps
        assert (1 / (1 - decay)) / steps == pytest.approx(10_000 / 93_600, rel=1e-6)
    assert ema_decay(ema, 93_600) == pytest.approx(0.9999)
    assert ema_decay(modern, 240) == 0.0                               # EMA off stays off
    assert ema_decay(ema.replace(ema_reference_steps=None), 240) == 0.9999   # no reference: as stated


# --- a tiny replay and sweep -----------------------------------------------------------------------------------------

def _tiny() -> dict:
    return {
        "name": "tiny_budget",
        "base": "resnet50",
        "steps": [{"name": "resnet50", "paper": {"top1": 76.13, "gflops": 4.09}},
                  {"name": "modern_recipe", "step": "modern_recipe", "paper": {"top1": 78.82, "gflops": 4.09}},
                  {"name": "stage_ratio", "step": "stage_ratio", "budget_multiplier": "1/2",
                   "paper": {"top1": 79.36, "gflops": 4.53}}],
        "proxy": {"dataset": "digits", "img_size": 16, "width": 0.125, "depth": 0.34, "budget": {"images": 64},
                  "threads": 1, "latency_seconds": 0.05, "limit": 128, "val_limit": 32,
                  "recipes": {"classic": {"base": "classic", "batch_size": 16},
                              "modern": {"base": "modern", "batch_size": 16, "budget_multiplier": "2"}}},
        "seeds": 2,
    }


def _write(tmp_path: Path, data: dict, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture()
def count_train(monkeypatch):
    import archlab.measure.train
    calls: list[tuple[int, int | None]] = []
    real_train = archlab.measure.train.train

    def counting_train(*args, **kwargs):
        calls.append((kwargs["seed"], kwargs["budget"].images))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(archlab.measure.train, "train", counting_train)
    return calls


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    study = _write(tmp, _tiny())
    out = tmp / "sweep"
    assert main(["ablate", str(study), "--budgets", "0.5,1", "--out", str(out)]) == 0
    return study, out


def test_each_budget_is_its_own_run_folder_with_budget_images(sweep_run):
    _, out = sweep_run
    assert sorted(p.name for p in out.iterdir()) == ["budget-0.5", "budget-1", "sweep.csv", "sweep.json"]
    expected = {"budget-1": [64, 128, 32], "budget-0.5": [32, 64, 16]}
    for folder, images in expected.items():
        steps = json.loads((out / folder / "ablation.json").read_text())["steps"]
        assert [s["budget_images"] for s in steps] == images
        assert [s["budget_multiplier"] for s in steps] == [1.0, 2.0, 0.5]
        records = read_records(out / folder / "results.jsonl")
        assert len(records) == 6
        for rec in records:   # the images each row actually trained on are the ones reported
            assert rec["images_seen"] == rec["budget_images"] == images[rec["index"]]
        with open(out / folder / "ablation.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert tuple(rows[0]) == CSV_COLUMNS and [int(r["budget_images"]) for r in rows] == images
    # the half budget's folder keeps the ladder it ran (its budget halved), so it resumes on its own
    kept = load_ladder(out / "budget-0.5" / "ladder.yaml")
    assert kept.proxy.budget.images == 32


def test_sweep_json_has_one_point_per_budget(sweep_run):
    _, out = sweep_run
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["budgets"] == [0.5, 1.0] and [p["label"] for p in doc["points"]] == ["0.5", "1"]
    for p in doc["points"]:
        steps = json.loads((Path(p["out"]) / "ablation.json").read_text())
        assert p["spearman"] == steps["agreement"]["spearman"] and p["spearman_p"] == steps["agreement"]["spearman_p"]
        assert p["direction_agree"] == steps["agreement"]["direction_agree"]
        assert p["beyond_noise"] == sum(1 for s in steps["steps"] if s["within_noise"] is False)
        assert p["top1"] == {s["step"]: s["top1_mean"] for s in steps["steps"]}
    assert [t["step"] for t in doc["trends"]] == ["modern_recipe", "stage_ratio"]
    for t in doc["trends"]:
        assert len(t["deltas"]) == 2 and (t["step"] in doc["toward"]) == (t["toward"] is True)
    with open(out / "sweep.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2 * 3


def test_resumed_sweep_trains_nothing_twice(sweep_run, count_train, capsys):
    study, out = sweep_run
    assert main(["ablate", str(study), "--budgets", "0.5,1", "--out", str(out)]) == 0
    assert count_train == []
    text = capsys.readouterr().out
    assert "agreement vs budget" in text and "Spearman" in text and "x0.5" in text
    assert "moves toward the paper's on" in text and "Cannot be resolved here" in text
    # a third budget trains only its own (row, seed) pairs, each on the budget's images
    assert main(["ablate", str(study), "--budgets", "0.5,1,2", "--out", str(out), "--json"]) == 0
    assert sorted(count_train) == sorted((s, n) for s in (0, 1) for n in (128, 256, 64))
    doc = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in doc["sweep"]["points"]] == ["0.5", "1", "2"]
    assert [s["budget_images"] for s in doc["steps"]["2"]] == [128, 256, 64]


def test_single_replay_json_has_budget_images(tmp_path, capsys):
    study = _write(tmp_path, _tiny())
    assert main(["ablate", str(study), "--no-train", "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)
    assert [s["budget_images"] for s in steps] == [64, 128, 32]


@pytest.mark.parametrize("budgets, rule", [("0,1", "must be > 0"), ("1,1", "must not repeat"),
                                           ("1,,2", "comma-separated"), ("a", "ratio string")])
def test_bad_budgets_exit_2_with_one_message(tmp_path, capsys, budgets, rule):
    study = _write(tmp_path, _tiny())
    assert main(["ablate", str(study), "--budgets", budgets, "--no-train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archlab: error: --budgets ") and rule in err and "Traceback" not in err


def test_parse_budgets_sorts():
    assert parse_budgets("2, 0.5,1") == (Fraction(1, 2), Fraction(1), Fraction(2))


# --- trends ------------------------------------------------------------------------------------------------------

def test_trend_verdicts():
    toward = StepTrend("a", paper_delta=1.0, deltas=(-3.0, -1.0, 0.5), within_noise=(False, True, True),
                       directions=("disagree", "disagree", "agree"))
    assert toward.toward is True and not toward.unresolved and not toward.contradicts
    assert toward.gaps == (4.0, 2.0, 0.5)
    stuck = StepTrend("b", paper_delta=0.1, deltas=(0.2, -0.3, 0.05), within_noise=(True, True, True),
                      directions=("agree", "disagree", "agree"))
    assert stuck.unresolved and stuck.toward is True and not stuck.contradicts
    against = StepTrend("c", paper_delta=2.0, deltas=(-5.0, -6.0, -8.0), within_noise=(False, False, False),
                        directions=("disagree",) * 3)
    assert against.contradicts and against.toward is False
    missing = StepTrend("d", paper_delta=2.0, deltas=(None, 1.0), within_noise=(None, False),
                        directions=(None, "agree"))
    assert missing.toward is None and not missing.unresolved and not missing.contradicts
    assert math.isclose(against.gaps[-1], 10.0)


def test_report_of_a_budget_folder_has_agreement_vs_budget(sweep_run, tmp_path):
    from archlab.report.data import load_ablation_run, sweep_points
    from archlab.report.writer import write_report
    _, out = sweep_run
    doc = json.loads((out / "sweep.json").read_text())
    run = load_ablation_run(out / "budget-1")
    pts = sweep_points(run.sweep)
    assert list(pts["label"]) == [p["label"] for p in doc["points"]]
    assert list(pts["beyond_noise"]) == [p["beyond_noise"] for p in doc["points"]]
    text = write_report([out / "budget-1"], tmp_path / "r.html").read_text()
    assert "Agreement vs budget" in text and "changes beyond 2 SE" in text and "images / seed" in text
    for p in doc["points"]:
        assert f"x{p['label']}" in text
    # a plain replay (not inside a sweep folder) has no such section
    single = tmp_path / "single"
    single.mkdir()
    for name in ("ablation.json", "ladder.yaml", "results.jsonl"):
        (single / name).write_text((out / "budget-1" / name).read_text())
    assert load_ablation_run(single).sweep is None
    assert "Agreement vs budget" not in Path(write_report([single], tmp_path / "s.html")).read_text()


def test_budget_reports_are_named_with_their_sweep(sweep_run, tmp_path):
    """Every sweep has a budget-1: its default report name carries the sweep's folder, so two sweeps' reports
    do not overwrite each other; a folder merely called budget-1 outside a sweep keeps its own name."""
    from archlab.report.writer import report_name
    _, out = sweep_run
    assert report_name([out / "budget-1"]) == f"{out.name}_budget-1"
    assert report_name([out / "budget-0.5", out / "budget-1"]) == f"{out.name}_budget-0.5_vs_{out.name}_budget-1"
    lone = tmp_path / "elsewhere" / "budget-1"
    lone.mkdir(parents=True)
    assert report_name([lone]) == "budget-1"


def test_a_sweep_does_not_write_into_a_single_replay_folder(tmp_path, capsys):
    study = _write(tmp_path, _tiny())
    single = tmp_path / "single"
    single.mkdir()
    (single / "results.jsonl").write_text("")
    assert main(["ablate", str(study), "--budgets", "1,2", "--out", str(single)]) == 2
    err = capsys.readouterr().err
    assert "holds a single replay" in err and "Traceback" not in err


@pytest.mark.parametrize("budget, n_train, expected", [
    ({"seconds": 5}, 1000, None),               # only a time limit: not known before training
    ({"epochs": 2}, None, None),                # epochs without the training-set size (--no-train)
    ({"epochs": 2}, 1000, 2 * (1000 // 16) * 16),
    ({"images": 100, "epochs": 1}, 1000, 96),   # the first limit reached, in whole batches (round(100 / 16) = 6)
    ({"images": 100}, 10, 100),                 # a batch of the whole (tiny) training set
])
def test_budget_images_counts_as_the_trainer_does(tmp_path, budget, n_train, expected):
    data = _tiny()
    data["proxy"]["budget"] = budget
    ladder = load_ladder(_write(tmp_path, data))
    assert budget_images(resolve_ladder(ladder)[0], ladder.proxy, n_train) == expected
