"""Malformed search-space files: one clear message naming the file, line, key path, rule and value."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from archlab.core.errors import SpecError
from archlab.space.search_space import load_space

GOOD = """\
name: err
img_size: 32
stem: {type: conv, width: [16, 24], stride: 2}
all_stages:
  block: [inverted_residual, bottleneck]
  kernel_size: [3, 5]
  inverted_residual: {expand_ratio: [3, 6]}
stages:
  - {width: [16, 24], depth: {low: 1, high: 2}, stride: 1}
  - {width: [32, 40], depth: {low: 1, high: 3}, stride: 2}
constraints:
  macs: {max: 50M}
"""


def _load(tmp_path: Path, text: str) -> SpecError:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return info.value


def _edit(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


def test_the_base_file_is_valid(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(GOOD)
    assert len(load_space(path).dimensions) == 11


@pytest.mark.parametrize("text, line, expected", [
    # YAML syntax, with the line of the problem
    ("name: x\nstages:\n  - {width: 16, depth: 1\n  - {width: 32}\n", 4, "is not valid YAML: expected ',' or '}'"),
    # unknown key, with a did-you-mean
    (_edit("kernel_size: [3, 5]", "kernel_sizes: [3, 5]"), 6,
     "all_stages.kernel_sizes is not a known key (did you mean 'kernel_size'?)"),
    (_edit("constraints:\n  macs:", "constraints:\n  mac:"), 12,
     "constraints.mac is not a known key (did you mean 'macs'?)"),
    (_edit("name: err", "name: err\nstage: []"), 2, "stage is not a known key (did you mean 'stages'?)"),
    # wrong type
    (_edit("depth: {low: 1, high: 2}", "depth: three"), 9, "stages[0].depth must be an integer, got 'three'"),
    (_edit("depth: {low: 1, high: 3}", "depth: {low: 1.5, high: 3}"), 10,
     "stages[1].depth.low must be an integer, got 1.5"),
    (_edit("stem: {type: conv, width: [16, 24], stride: 2}", "stem: [conv]"), 3,
     "stem must be a mapping, got ['conv']"),
    # value out of range
    (_edit("img_size: 32", "img_size: -4"), 2, "img_size must be > 0, got -4"),
    (_edit("stride: 1}", "stride: 3}"), 9, "stages[0].stride must be 1 or 2, got 3"),
    (_edit("expand_ratio: [3, 6]", "expand_ratio: [3, -6]"), 7,
     "all_stages.inverted_residual.expand_ratio[1] must be > 0, got -6"),
    # even kernel size (every value of a short range is checked)
    (_edit("kernel_size: [3, 5]", "kernel_size: [3, 4]"), 6,
     "all_stages.kernel_size[1] must be odd with same padding, got 4"),
    (_edit("kernel_size: [3, 5]", "kernel_size: {low: 3, high: 7}"), 6,
     "all_stages.kernel_size must be odd with same padding, got 4"),
    # empty choice list
    (_edit("width: [16, 24], stride: 2}", "width: [], stride: 2}"), 3,
     "stem.width must hold at least one choice, got []"),
    # unknown block family
    (_edit("bottleneck]", "convnet]"), 5, "all_stages.block[1] must be a block family: plain, basic, bottleneck, "
                                          "inverted_residual, convnext, inception, shuffle (did you mean 'convnext'?), "
                                          "got 'convnet'"),
    (_edit("inverted_residual: {", "inverted_residul: {"), 7,
     "all_stages.inverted_residul is not a known key (did you mean 'inverted_residual'?)"),
    # min > max
    (_edit("depth: {low: 1, high: 3}", "depth: {low: 4, high: 1}"), 10,
     "stages[1].depth low must be <= high, got (low=4, high=1)"),
    (_edit("macs: {max: 50M}", "macs: {min: 60M, max: 50M}"), 12,
     "constraints.macs min must be <= max, got (min=6e+07, max=5e+07)"),
    # an unknown base
    ("base: resnet5O\n", 1, "base must name a zoo network (did you mean 'resnet50'?), got 'resnet5O'"),
    # a constraint no point can meet
    (_edit("macs: {max: 50M}", "macs: {max: 1000}"), 12,
     "constraints.macs.max cannot be met: the cheapest point of the space has"),
    # more: references, conditions, ranges
    (_edit("stride: 2}", "stride: 2, act: $actt}"), 3,
     "stem.act refers to an unknown tied dimension (the file has no tied: section), got '$actt'"),
    ("tied: {act: [relu, silu]}\n" + _edit("stride: 2}", "stride: 2, act: $actt}"), 4,
     "stem.act refers to an unknown tied dimension (did you mean 'act'?), got '$actt'"),
    (_edit("expand_ratio: [3, 6]}", "expand_ratio: {choices: [3, 6], when: {se_rato: 0.25}}}"), 7,
     "all_stages.inverted_residual.expand_ratio.when.se_rato names no field or tied dimension it could depend on "
     "(did you mean 'se_ratio'?)"),
    (_edit("depth: {low: 1, high: 3}", "depth: {low: 1, high: 4, step: 2}"), 10,
     "stages[1].depth.step must divide high - low (3), got 2"),
    (_edit("width: [16, 24], depth", "width: [16, 16], depth"), 9,
     "stages[0].width[1] repeats an earlier choice, got 16"),
    ("stages: [{block: basic, width: 8}]\n", 1, "stages[0] is missing required key(s) depth"),
])
def test_each_error_names_file_line_path_rule_and_value(tmp_path, text, line, expected):
    err = _load(tmp_path, text)
    assert expected in str(err)
    assert err.line == line, str(err)
    assert f"space.yaml:{line}: " in str(err)


def test_python_tags_are_refused_and_run_nothing(tmp_path):
    marker = tmp_path / "pwned"
    err = _load(tmp_path, f'name: !!python/object/apply:os.system ["touch {marker}"]\nstages: []\n')
    assert "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'" in str(err)
    assert err.line == 1
    assert not marker.exists()


def test_a_nested_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):  # 9^10 strings once expanded
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    lines.append("stages: [*j]")
    start = time.perf_counter()
    err = _load(tmp_path, "\n".join(lines) + "\n")
    assert time.perf_counter() - start < 2.0
    assert "expands to more than 20,000 nodes" in str(err) and "refusing" in str(err)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match=r"nope.yaml: cannot be read \(No such file or directory\)"):
        load_space(tmp_path / "nope.yaml")


def test_scaling_errors(tmp_path):
    err = _load(tmp_path, "base: efficientnet_b0\nscaling: {alpha: 1.2}\n")
    assert "scaling.phi is required with alpha, beta or gamma" in str(err)
    err = _load(tmp_path, "base: efficientnet_b0\nscaling: {phi: [0, 1], alpha: 0.9}\n")
    assert "scaling.alpha must be >= 1" in str(err)
    err = _load(tmp_path, "base: efficientnet_b0\nscaling: {phi: [0, 1], alpha: [1.5, 1.6], beta: 1.3, gamma: 1.3}\n")
    assert "scaling.tolerance cannot be met: the closest alpha*beta^2*gamma^2 is" in str(err)
    err = _load(tmp_path, "base: efficientnet_b0\nscaling: {phi: [0, 1], alpha: 2.0, beta: 1.2, gamma: derived}\n")
    assert "scaling.gamma cannot be derived" in str(err)


def test_landmark_errors(tmp_path):
    err = _load(tmp_path, GOOD + "landmarks:\n  tiny: {stem.widht: 16}\n")
    assert "landmarks.tiny.stem.widht is not a parameter of this space (did you mean 'stem.width'?)" in str(err)
    assert err.line == 14
    err = _load(tmp_path, GOOD + "landmarks:\n  tiny: {stem.width: 16}\n")
    assert "landmarks.tiny.stem.stride" not in str(err) and "is missing: this point needs it" in str(err)
