"""Bad numbers and types in studies, ladders and specs (YAML and JSON), through the CLI as a user meets them:
exit code 2, one short message naming the file, the line, the key path and the rule, no traceback, nothing of
another file's contents."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from archlab.arch.zoo import get_spec
from archlab.cli.main import main

DATA = Path(__file__).resolve().parents[1] / "data"
NAN, INF = math.nan, math.inf

STUDY: dict[str, Any] = yaml.safe_load((DATA / "tiny_study.yaml").read_text())
STUDY["space"] = str(DATA / "tiny_space.yaml")
LADDER: dict[str, Any] = {
    "name": "tiny", "base": "resnet50",
    "steps": [{"name": "resnet50", "paper": {"top1": 76.13, "gflops": 4.09}},
              {"name": "modern_recipe", "step": "modern_recipe", "paper": {"top1": 78.82, "gflops": 4.09}}],
    "proxy": {"dataset": "digits", "img_size": 16, "width": 0.125, "depth": 0.34, "budget": {"epochs": 1},
              "threads": 1, "latency_seconds": 0.1},
    "seeds": 2,
}


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False))
    return path


def _set(data: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    """A deep copy of `data` with the value at key path `where` (`a.b[1].c`) replaced."""
    out = json.loads(json.dumps(data))
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", where)]
    node = out
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], path: Path, where: str, rule: str) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("archlab: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and len(err) < 500, err
    assert re.search(rf"{re.escape(str(path))}:\d+: {re.escape(where)} ", err), err   # file, line, key path
    assert rule in err, err
    return err


# --- studies -----------------------------------------------------------------------------------------------------

STUDY_CASES = [
    ("timeout", 0, "timeout", "must be >= 1"),
    ("timeout", -5, "timeout", "must be >= 1"),
    ("timeout", NAN, "timeout", "must be a finite number"),
    ("timeout", INF, "timeout", "must be a finite number"),
    ("trials", 0, "trials", "must be >= 1"),
    ("trials", 10 ** 400, "trials", "must be <= 1000000"),
    ("seed", 2 ** 32, "seed", "must be <= 4294967295"),
    ("seed", -1, "seed", "must be >= 0"),
    ("seed", True, "seed", "must be an integer, got True"),
    ("dataset.val_fraction", NAN, "dataset.val_fraction", "must be a finite number"),
    ("dataset.img_size", 10 ** 30, "dataset.img_size", "must be <= 8192"),
    ("budget.epochs", NAN, "budget.epochs", "must be a finite number"),
    ("budget.epochs", -1, "budget.epochs", "must be > 0"),
    ("budget.images", 10 ** 400, "budget.images", "must be <= 1000000000000"),
    ("recipe.lr", NAN, "recipe.lr", "must be a finite number"),
    ("recipe.batch_size", 10 ** 30, "recipe.batch_size", "must be at most"),
    ("recipe.batch_size", 2 ** 30, "recipe.batch_size", "must be <= 1048576"),
    ("execution.cpus_per_trial", INF, "execution.cpus_per_trial", "must be a finite number"),
    ("execution.cpus_per_trial", 0, "execution.cpus_per_trial", "must be >= 0.01"),
    ("execution.address", ["10.0.0.1:6379", "x"], "execution.address", "must be a string, got a list"),
    ("execution.concurrent", 2.5, "execution.concurrent", "must be an integer"),
    ("sampler", "CmaEsSampler", "sampler", "optimises one only"),
    ("sampler", "nsgaa", "sampler.name", "must be an Optuna sampler (did you mean 'nsga"),
    ("sampler.args", {"population_size": NAN}, "sampler.args.population_size", "must be a finite number"),
    ("sampler.args", {"populaton_size": 4}, "sampler.args.populaton_size",
     "is not an argument of NSGAIISampler (did you mean 'population_size'?)"),
    ("sampler.args", {"population_size": -4}, "sampler.args.population_size",
     "is refused by NSGAIISampler (`population_size` must be greater than or equal to 2.), got -4"),
    ("sampler.args", {"population_size": "four"}, "sampler.args.population_size",
     "is refused by NSGAIISampler ('<' not supported between instances of 'str' and 'int'), got 'four'"),
    ("sampler.args", {"population_size": 4, "mutation_prob": 2.0}, "sampler.args.mutation_prob",
     "is refused by NSGAIISampler (`mutation_prob` must be None or a float value within the range [0.0, 1.0].)"),
    ("latency.backend", "eagre", "latency.backend", "did you mean 'eager'"),
    ("latency.max_seconds", NAN, "latency.max_seconds", "must be a finite number"),
    ("constraints", {"max_macs": NAN}, "constraints.max_macs", "must be a finite number"),
    ("early_stopping.reduction_factor", INF, "early_stopping.reduction_factor", "must be a finite number"),
    ("name", ["a", "b"], "name", "must be a string, got a list"),
    ("objectives", "top1", "objectives", "must be a list"),
]


@pytest.mark.parametrize("key, value, where, rule", STUDY_CASES, ids=[f"{c[0]}={c[1]!r:.20}" for c in STUDY_CASES])
def test_bad_study_values_are_refused_by_validate(tmp_path, capsys, key, value, where, rule):
    path = _write(tmp_path / "study.yaml", _set(STUDY, key, value))
    _refused(capsys, ["validate", str(path)], path, where, rule)


@pytest.mark.parametrize("key, value, rule", [("timeout", 0, "must be >= 1"), ("trials", 0, "must be >= 1"),
                                              ("timeout", NAN, "must be a finite number")])
def test_a_search_that_would_do_nothing_stops_before_ray(tmp_path, capsys, key, value, rule):
    path = _write(tmp_path / "study.yaml", _set(STUDY, key, value))
    _refused(capsys, ["search", str(path), "--out", str(tmp_path / "run")], path, key, rule)
    assert not (tmp_path / "run").exists()


def test_a_sampler_argument_optuna_refuses_stops_the_search_before_the_run_folder(tmp_path, capsys):
    path = _write(tmp_path / "study.yaml", _set(STUDY, "sampler.args", {"population_size": -4}))
    _refused(capsys, ["search", str(path), "--out", str(tmp_path / "run")], path, "sampler.args.population_size",
             "must be greater than or equal to 2")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", ["- SECRET-1\n- SECRET-2\n", "SECRET " * 2000, "just SECRET text\n"])
def test_a_space_that_is_not_a_mapping_is_named_not_quoted(tmp_path, capsys, content):
    secret = tmp_path / "private.txt"
    secret.write_text(content)
    path = _write(tmp_path / "study.yaml", _set(STUDY, "space", str(secret)))
    for command in (["validate", str(path)], ["search", str(path), "--out", str(tmp_path / "run")]):
        err = _refused(capsys, command, path, "space", "is not a YAML mapping")
        assert "SECRET" not in err


def test_a_study_round_trips_through_its_own_yaml(tmp_path):
    from archlab.search.study import load_study
    study = load_study(_write(tmp_path / "study.yaml", STUDY))
    again = load_study(_write(tmp_path / "again.yaml", yaml.safe_load(study.to_yaml())))
    assert again.to_dict() == study.to_dict()
    assert again.sampler == "nsga2" and again.sampler_args == {"population_size": 4}


# --- ladders -----------------------------------------------------------------------------------------------------

LADDER_CASES = [
    ("proxy.img_size", 10 ** 30, "proxy.img_size", "must be <= 8192"),
    ("proxy.budget.epochs", NAN, "proxy.budget.epochs", "must be a finite number"),
    ("proxy.width", NAN, "proxy.width", "must be a finite number"),
    ("proxy.latency_seconds", -1, "proxy.latency_seconds", "must be > 0"),
    ("proxy.threads", True, "proxy.threads", "must be an integer, got True"),
    ("proxy.limit", 10 ** 400, "proxy.limit", "must be <= 1000000000"),
    ("seeds", 10 ** 9, "seeds", "must be >= 1 and <= 1000"),
    ("seeds", [2 ** 40], "seeds[0]", "must be <= 4294967295"),
    ("seeds", list(range(1001)), "seeds", "must be a count in 1..1000 or a list of 1 to 1000 seeds"),
    ("steps[0].paper.top1", INF, "steps[0].paper.top1", "must be a finite number"),
    ("steps[0].name", ["x"], "steps[0].name", "must be a string, got a list"),
    ("steps[1].args", {"drop_path_rate": NAN}, "steps[1].args.drop_path_rate", "must be a finite number"),
    ("proxy.recipes", {"classic": {"base": "classic", "lr": INF}}, "proxy.recipes.classic.lr",
     "must be a finite number"),
]


@pytest.mark.parametrize("key, value, where, rule", LADDER_CASES, ids=[f"{c[0]}={c[1]!r:.20}" for c in LADDER_CASES])
def test_bad_ladder_values_are_refused_by_validate_and_ablate(tmp_path, capsys, key, value, where, rule):
    path = _write(tmp_path / "ladder.yaml", _set(LADDER, key, value))
    _refused(capsys, ["validate", str(path)], path, where, rule)
    _refused(capsys, ["ablate", str(path), "--no-train"], path, where, rule)


def test_run_ablation_takes_a_path_or_a_ladder(tmp_path):
    import archlab
    from archlab.ablation import load_ladder
    path = _write(tmp_path / "ladder.yaml", _set(LADDER, "proxy.latency_seconds", 0.05))
    by_path = archlab.run_ablation(path, train=False, log=None)
    by_ladder = archlab.run_ablation(load_ladder(path), train=False, log=None)
    assert [s.params for s in by_path.steps] == [s.params for s in by_ladder.steps] == [25_557_032] * 2
    assert by_path.out is None and not any(tmp_path.glob("runs"))


# --- specs (YAML and JSON) -----------------------------------------------------------------------------------------

SPEC = get_spec("resnet18").replace(name="mine").to_dict()
SPEC_CASES = [
    ("stages[0].width", 10 ** 400, "stages[0].width", "must be <= 65536"),
    ("stages[0].width", 10 ** 30, "stages[0].width", "must be <= 65536"),
    ("stages[1].depth", 10 ** 8, "stages[1].depth", "must be <= 10000"),
    ("img_size", 10 ** 6, "img_size", "must be <= 8192"),
    ("img_size", True, "img_size", "must be an integer, got True"),
    ("stem.width", "64", "stem.width", "must be an integer, got '64'"),
    ("head.hidden", "4096", "head.hidden", "must be a list"),
    ("name", [1], "name", "must be a string, got a list"),
    ("num_classes", 1e300, "num_classes", "must be <= 1000000"),
]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("key, value, where, rule", SPEC_CASES, ids=[f"{c[0]}={c[1]!r:.20}" for c in SPEC_CASES])
def test_bad_spec_values_are_refused_by_show(tmp_path, capsys, suffix, key, value, where, rule):
    path = _write(tmp_path / f"spec{suffix}", _set(SPEC, key, value))
    _refused(capsys, ["show", str(path)], path, where, rule)


@pytest.mark.parametrize("key, value", [("stages[0].expand_ratio", NAN), ("drop_path_rate", INF),
                                        ("head.dropout", -INF)])
def test_non_finite_spec_numbers_are_refused(tmp_path, capsys, key, value):
    path = _write(tmp_path / "spec.yaml", _set(SPEC, key, value))
    _refused(capsys, ["show", str(path)], path, key, "must be a finite number")


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command, path, rule", [
    (["ablate", "--no-train"], "studies/mobile_frontier.yaml", "is a study, not an ablation ladder (archlab search "
                                                               "reads it)"),
    (["ablate", "--no-train"], "search_spaces/mobile.yaml", "is a search space, not an ablation ladder"),
    (["search"], "studies/cnn_history.yaml", "is an ablation ladder, not a study (archlab ablate reads it)"),
    (["search"], "search_spaces/mobile.yaml", "is a search space, not a study"),
])
def test_a_file_of_another_kind_is_named_as_such(tmp_path, capsys, command, path, rule):
    # was "description is not a known key (valid: base, name, ...)" / "title is not a known key (valid: budget, ...)"
    assert main([*command, str(REPO / path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"archlab: error: {REPO / path}: {rule}") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_a_misspelt_ladder_key_keeps_its_did_you_mean(tmp_path, capsys):
    # `base` is a space's key too: one key of another kind is not enough to call the file one
    path = _write(tmp_path / "ladder.yaml", {"name": "t", "base": "resnet50", "stepz": []})
    _refused(capsys, ["ablate", str(path), "--no-train"], path, "stepz", "is not a known key (did you mean 'steps'?)")
