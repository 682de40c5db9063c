"""The new families in the YAML language: regnet.yaml's generated structure, efficient_families.yaml, automatic
applicability of a family's own fields, and the bad input issue 13 lists (one message, exit 2, nothing built)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archlab.arch.zoo import get_spec
from archlab.cli.main import main
from archlab.core.errors import SpecError
from archlab.space.search_space import load_space

ROOT = Path(__file__).resolve().parents[2]
SPACES = ROOT / "search_spaces"
REGNET_OK = """generate:
  rule: regnet
  depth: {low: 12, high: 20}
  w0: [24, 48]
  wa: {low: 20.0, high: 30.0}
  wm: {low: 2.0, high: 2.6}
  group_width: [8, 16]
"""


@pytest.mark.parametrize(("file", "names"), [
    ("regnet.yaml", ["regnet_x_400mf", "regnet_y_400mf"]),
    ("efficient_families.yaml", ["mobilenet_v2", "shufflenet_v2_x1_0", "convnextv2_atto"]),
])
def test_shipped_landmarks_decode_to_the_zoo_exactly(file, names):
    space = load_space(SPACES / file)
    assert sorted(space.landmarks) == sorted(names)
    for name in names:
        assert space.decode(space.landmarks[name]).arch_id == get_spec(name).arch_id


def test_regnet_space_is_generated_and_samples_are_regnets():
    space = load_space(SPACES / "regnet.yaml")
    assert space.generate_rule == "regnet"
    assert {d.name for d in space.dimensions} == {f"generate.{k}" for k in (
        "depth", "w0", "wa", "wm", "group_width", "bottleneck_ratio", "se_ratio")}
    samples = space.sample(6, seed=3)
    assert samples == space.sample(6, seed=3)  # seeded
    for params, spec in samples:
        assert all(s.block == "bottleneck" and s.stride == 2 for s in spec.stages)
        assert sum(s.depth for s in spec.stages) == params["generate.depth"]
        assert space.violations(spec) == []


def test_efficient_families_mixes_families_and_applies_fields_per_family():
    space = load_space(SPACES / "efficient_families.yaml")
    by_name = {d.name: d for d in space.dimensions}
    assert by_name["stage1.shuffle.width"].condition == "stage1.depth > 0 and stage1.block = shuffle"
    blocks = {s.block for _, spec in space.sample(40, seed=0) for s in spec.stages}
    assert blocks == {"inverted_residual", "shuffle", "convnext"}
    for _, spec in space.sample(20, seed=1):
        for stage in spec.stages:
            assert stage.grn == (stage.block == "convnext")   # grn only where the family reads it


def test_a_generated_space_without_a_stages_list(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(REGNET_OK + "all_stages: {act: silu}\n")
    space = load_space(path)
    (_, spec), = space.sample(1, seed=0)
    assert {s.act for s in spec.stages} == {"silu"}
    assert space.log10_size() == float("inf")


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_space(path)
    return str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    # a branch width of 0
    ("stages:\n  - {block: inception, depth: 1, width: 64, branch1: 0, branch2_reduce: 8, branch2: 16,\n"
     "     branch3_reduce: 4, branch3: 8}\n",
     ":2: stages[0].branch1 must be > 0 (a branch width of 0 leaves the branch without channels), got 0"),
    ("stages:\n  - {block: inception, depth: 1, width: 64, branch1: [16, 0]}\n",
     ":2: stages[0].branch1[1] must be > 0 (a branch width of 0 leaves the branch without channels), got 0"),
    # shuffle channels that do not split evenly
    ("stages:\n  - {block: shuffle, depth: 2, width: 25}\n",
     ":2: stages[0].split_ratio must split width 25 into two whole, non-empty parts (width x split_ratio = 12.5), "
     "got 0.5"),
    # GRN on a non-ConvNeXt block
    ("stages:\n  - {block: bottleneck, depth: 1, width: 64, grn: true}\n",
     ":2: stages[0].grn applies only to the convnext family, not bottleneck, got True"),
    # RegNet generator numbers that give no valid stage
    (REGNET_OK.replace("wa: {low: 20.0, high: 30.0}", "wa: -1.0"),
     ":5: generate.wa must be a number in [0, 65536] (the width slope), got -1.0"),
    (REGNET_OK.replace("wm: {low: 2.0, high: 2.6}", "wm: {low: 1.0, high: 2.6}"),
     ":6: generate.wm must be a number > 1 and <= 64 (the width step between stages), got 1.0"),
    (REGNET_OK.replace("depth: {low: 12, high: 20}", "depth: 0"),
     ":3: generate.depth must be an integer in [1, 10000] (blocks in all stages), got 0"),
    (REGNET_OK.replace("w0: [24, 48]", "w0: [24, 20]"),
     ":4: generate.w0[1] must be a positive multiple of 8 (the first block's width), at most 65536, got 20"),
    (REGNET_OK.replace("  rule: regnet\n", "  rule: regnot\n"),
     ":2: generate.rule must name a structure generator (did you mean 'regnet'?), got 'regnot'"),
    (REGNET_OK + "stages: [{block: basic, depth: 1, width: 8}]\n",
     "stages cannot be given with generate: (the generator makes the stages)"),
    (REGNET_OK + "all_stages: {group_width: 4}\n",
     "all_stages.group_width is set by the regnet generator: give it under generate:"),
])
def test_bad_family_input_names_file_line_path_rule_and_value(tmp_path, text, expected):
    message = _error(tmp_path, text)
    assert str(tmp_path / "space.yaml") in message
    assert expected in message


def test_grn_is_left_out_for_other_families_when_the_family_is_searched(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("stages:\n  - {block: [bottleneck, convnext], depth: 1, width: 64, grn: [false, true]}\n")
    space = load_space(path)
    dim = {d.name: d for d in space.dimensions}["stage0.grn"]
    assert dim.condition == "stage0.block = convnext"


def test_cli_exits_2_with_one_line_and_builds_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(REGNET_OK.replace("wm: {low: 2.0, high: 2.6}", "wm: 0.5"))
    spec = tmp_path / "spec.yaml"
    data = get_spec("resnet18").to_dict()
    data["stages"][0]["grn"] = True
    import yaml
    spec.write_text(yaml.safe_dump(data))
    for argv in (["validate", str(bad)], ["space", "describe", str(bad)], ["show", str(spec)]):
        run = subprocess.run([sys.executable, "-m", "archlab.cli", *argv], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, (argv, run.stderr)
        assert "Traceback" not in run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1
    assert "stages[0].grn applies only to the convnext family, not basic, got True" in lines[0]
    assert main(["validate", str(bad)]) == 2
