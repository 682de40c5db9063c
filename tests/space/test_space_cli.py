"""`archlab validate`, `archlab space describe`, `archlab space sample` and the file-kind dispatch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archlab.cli.main import main
from archlab.cli.validate import VALIDATORS, Validator, file_kind, validate_files
from archlab.core.errors import ArchlabError, SpecError
from archlab.nn.complexity import complexity
from archlab.space.search_space import load_space

ROOT = Path(__file__).resolve().parents[2]
MOBILE = str(ROOT / "search_spaces" / "mobile.yaml")
SHIPPED = sorted(str(p) for p in (ROOT / "search_spaces").glob("*.yaml"))


def test_validate_accepts_every_shipped_space(capsys):
    assert len(SHIPPED) >= 3
    assert main(["validate", *SHIPPED]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(SHIPPED)
    assert all(line.endswith(("points)", "a continuous range)")) and ": ok (search space " in line for line in out)


def test_validate_checks_every_file_and_reports_each_bad_one(tmp_path, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text("stages: [{block: basic, depth: 1, width: 8, kernal_size: 3}]\n")
    even = tmp_path / "even.yaml"
    even.write_text("stages:\n  - {block: basic, depth: 1, width: 8, kernel_size: [3, 4]}\n")
    assert main(["validate", str(typo), MOBILE, str(even)]) == 2
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert errors == [
        f"archlab: error: {typo}:1: stages[0].kernal_size is not a known key (did you mean 'kernel_size'?)",
        f"archlab: error: {even}:2: stages[0].kernel_size[1] must be odd with same padding, got 4"]
    assert captured.out.strip() == f"{MOBILE}: ok (search space mobile: 44 dimensions, 10^17.3 points)"


def test_validate_in_a_subprocess_exits_2_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: resnet5O\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "archlab.cli", "validate", str(bad)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"archlab: error: {bad}:1: base must name a zoo network (did you mean 'resnet50'?), " \
                          f"got 'resnet5O'\n"
    assert "Traceback" not in proc.stderr


def test_file_kind_dispatch(monkeypatch, tmp_path):
    assert file_kind({"stages": [], "all_stages": {}}) == "space"
    assert file_kind({"kind": "search_space"}) == "space"
    # a generated space may hold nothing else; it was "is not a kind of file archlab knows"
    assert file_kind({"generate": {"rule": "regnt"}}) == "space"
    with pytest.raises(SpecError, match=r"kind must be one of space\b.* \(did you mean 'space'\?\), got 'spaec'"):
        file_kind({"kind": "spaec"})
    with pytest.raises(SpecError, match=r"is not a kind of file archlab knows"):
        file_kind({"metrics": ["top1"]})
    # another kind registers a validator and wins on its own keys
    items = dict(VALIDATORS._items)
    loaded = []
    items["study"] = Validator(markers=("space", "objectives", "sampler", "stages"),
                               loader=lambda path: loaded.append(path) or "a study", describe=lambda obj: obj)
    monkeypatch.setattr(VALIDATORS, "_items", items)
    study = tmp_path / "study.yaml"
    study.write_text("space: search_spaces/mobile.yaml\nobjectives: [top1]\nsampler: nsga2\n")
    assert file_kind({"space": "x", "objectives": [], "stages": 1}) == "study"
    [result] = validate_files([study])
    assert (result.kind, result.ok, result.message) == ("study", True, "a study")
    assert loaded == [str(study)]


def test_validator_loaders_may_be_named_by_module_path():
    validator = Validator(markers=("x",), loader="archlab.space.search_space:load_space",
                          describe="archlab.space.describe:one_line")
    assert validator.summary(validator.load(MOBILE)).startswith("search space mobile: 44 dimensions")


def test_space_describe(capsys):
    assert main(["space", "describe", MOBILE]) == 0
    out = capsys.readouterr().out
    assert "search space mobile" in out and "size: 10^17.29 points" in out
    assert "stage4.width         {96, 112, 128}            stage4.depth > 0" in out
    assert "mobilenet_v2 (zoo network): 3.5M params, 301M MACs at 224 px" in out
    assert main(["space", "describe", MOBILE, "--json", "--img-size", "32", "--in-chans", "1",
                 "--num-classes", "10"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["overrides"] == {"img_size": 32, "in_chans": 1, "num_classes": 10}
    assert len(info["dimensions"]) == 44
    assert info["random_draws"]["feasible"] > 0.7 * info["random_draws"]["draws"]
    assert info["random_draws"]["macs"]["max"] < 20e6  # proxy-sized


def test_space_sample_json_is_seeded_and_within_the_constraints(capsys):
    argv = ["space", "sample", MOBILE, "-n", "4", "--seed", "3", "--json", "--img-size", "32"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == rows
    space = load_space(MOBILE)
    assert len(rows) == 4
    for row in rows:
        spec = space.decode(row["parameters"], img_size=32)
        assert spec.arch_id == row["arch_id"] and spec.to_dict() == row["spec"]
        cost = complexity(spec)
        assert (cost.params, cost.macs) == (row["params"], row["macs"])
        assert space.violations(spec) == []


def test_space_sample_text(capsys):
    assert main(["space", "sample", MOBILE, "-n", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "arch_id", "params", "MACs", "img"]
    assert len(lines) == 5 and "stem.width=" in lines[2]


def test_space_commands_report_user_errors(tmp_path, capsys):
    assert main(["space", "describe", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot be read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # refused by argparse (archlab.cli.options), before the file is read
        main(["space", "sample", MOBILE, "-n", "0"])
    assert exc.value.code == 2
    assert "argument -n: must be a number of samples in [1, 100,000], got 0" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["space", "describe"], ["space", "sample"], ["predictor", "fit"]])
def test_a_study_or_a_ladder_given_as_a_space_is_named_as_such(command, tmp_path, capsys):
    # was "space is not a known key (valid: all_stages, ...)" and "title is not a known key (did you mean 'tied'?)"
    study, ladder = ROOT / "studies" / "mobile_frontier.yaml", ROOT / "studies" / "cnn_history.yaml"
    extra = ["-n", "4", "--out", str(tmp_path / "p.json")] if command[0] == "predictor" else []
    assert main([*command, str(study), *extra]) == 2
    line = next(i for i, text in enumerate(study.read_text().splitlines(), 1) if text.startswith("space:"))
    assert capsys.readouterr().err == (f"archlab: error: {study}:{line}: is a study, not a search space: give the "
                                       f"space it names ({ROOT / 'search_spaces' / 'mobile.yaml'})\n")
    assert main([*command, str(ladder), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"archlab: error: {ladder}:") and "is an ablation ladder, not a search space" in err


def test_a_sample_that_finds_no_network_says_which_draw_failed_and_why(tmp_path, capsys):
    space = tmp_path / "patchify.yaml"
    space.write_text("img_size: 32\nstem: {type: patchify, width: [16, 24], kernel_size: 4, stride: 4}\n"
                     "stages: [{block: convnext, depth: 1, width: 16}]\n")
    assert main(["space", "sample", str(space), "-n", "2", "--img-size", "2"]) == 2
    err = capsys.readouterr().err   # was only "found only 0 of 2 feasible points in 2000 random tries"
    assert err.startswith(f"archlab: error: {space}: found only 0 of 2 feasible points in 2000 random tries; e.g. "
                          "stem.width=") and err.endswith("img_size is too small: the stem leaves 0 px, got 2\n"), err
    cheapest = min(complexity(spec).macs for _, spec in load_space(space).sample(20, seed=0))
    bounded = type(load_space(space)).from_dict({**yaml.safe_load(space.read_text()),
                                                 "constraints": {"macs": {"max": cheapest}}})
    errors = []
    for seed in range(10):   # one try each: the wider stem's draws break the bound
        try:
            bounded.sample(1, seed=seed, max_tries=1)
        except ArchlabError as err:
            errors.append(str(err))
    assert errors and all("in 1 random tries; e.g. a draw breaks the constraints: macs " in e and
                          f"> max {cheapest:,}" in e for e in errors), errors
