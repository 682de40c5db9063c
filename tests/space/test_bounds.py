"""The space stage's limits (archlab.space.limits): refused in closed form, in bounded time, before any listing."""
from __future__ import annotations

import math
import time

import pytest

from archlab.arch.spec import MAX_STAGE_DEPTH, StageSpec
from archlab.cli.main import main
from archlab.core.errors import ArchlabError, SpecError
from archlab.nn.build import Stage
from archlab.nn.complexity import clear_stage_costs, stage_cost
from archlab.nn.layers import Cost
from archlab.space import limits
from archlab.space.search_space import load_space

BASE = """\
name: t
img_size: 32
stem: {type: conv, width: 16, kernel_size: 3, stride: 1}
all_stages: {block: inverted_residual, kernel_size: 3, expand_ratio: 2, act: relu}
stages:
  - {width: 16, depth: 1, stride: 2}
head: {conv_width: 32}
"""


def _refused(tmp_path, text: str, *, seconds: float = 2.0) -> SpecError:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(SpecError) as err:
        load_space(path)
    assert time.perf_counter() - start < seconds
    assert str(err.value).startswith(f"{path}:")
    return err.value


def test_an_int_range_of_a_billion_values_is_refused_without_listing_it(tmp_path):
    err = _refused(tmp_path, BASE.replace("depth: 1,", "depth: {low: 1, high: 1000000000},"))
    assert err.path == "stages[0].depth" and err.line == 6
    assert "has 1,000,000,000 values, more than the limit of 100,000 per dimension" in str(err)


def test_a_float_grid_with_a_tiny_step_is_refused(tmp_path):
    err = _refused(tmp_path, BASE.replace("expand_ratio: 2", "expand_ratio: {low: 1.0, high: 6.0, step: 1.0e-12}"))
    assert err.path == "all_stages.expand_ratio" and "5,000,000,000,001 values" in str(err)


def test_a_range_at_the_limit_is_accepted(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(BASE.replace("img_size: 32", "img_size: 32\ndrop_path_rate: {low: 0.0, high: 0.99999, "
                                                 "step: 0.00001}"))
    space = load_space(path)
    assert space.dimensions[0].size == limits.MAX_DIM_VALUES


def test_compound_scaling_past_the_spec_limits_is_refused(tmp_path):
    err = _refused(tmp_path, BASE + "scaling: {phi: 100}\n")
    assert err.path == "scaling.phi"
    assert "scales depth by up to 8.28e+07" in str(err) and f"over the limit of {MAX_STAGE_DEPTH:,}" in str(err)
    err = _refused(tmp_path, BASE + "scaling: {width_mult: [1.0, 5000.0]}\n")
    assert err.path == "scaling.width_mult" and "scales width by up to 5e+03" in str(err)
    err = _refused(tmp_path, BASE + "scaling: {phi: 1.0e15}\n")   # logarithms: nothing overflows
    assert "about 1e" in str(err)


@pytest.mark.parametrize("text, path", [
    (BASE + "constraints: {macs: {max: .nan}}\n", "constraints.macs.max"),
    (BASE + "constraints: {params: {min: .inf}}\n", "constraints.params.min"),
    (BASE + "scaling: {phi: [0, 1], alpha: .nan}\n", "scaling.alpha"),
    (BASE + "scaling: {phi: .nan}\n", "scaling.phi"),
    (BASE.replace("expand_ratio: 2", "expand_ratio: .nan"), "all_stages.expand_ratio"),
    (BASE.replace("expand_ratio: 2", "expand_ratio: [2, .inf]"), "all_stages.expand_ratio[1]"),
    (BASE.replace("expand_ratio: 2", "expand_ratio: {low: 1, high: .inf}"), "all_stages.expand_ratio.high"),
])
def test_nan_and_infinity_are_errors_wherever_a_space_takes_a_number(tmp_path, text, path):
    err = _refused(tmp_path, text)
    assert err.path == path and "finite" in err.rule


def test_a_constraint_evaluated_at_an_impossible_input_is_refused(tmp_path):
    err = _refused(tmp_path, BASE + "constraints: {at: {img_size: 1000000000000000000000000000000}, macs: {max: 1G}}\n")
    assert err.path == "constraints.at.img_size" and "must be at most 8,192" in str(err)


def test_conditions_over_too_many_combinations_are_refused(tmp_path):
    stage = "  - {width: [8, 16, 24, 32, 40, 48, 56, 64, 72, 80], depth: 1, stride: 1, " \
            "kernel_size: {choices: [3, 5], when: {width: 8}}}\n"
    text = BASE.replace("  - {width: 16, depth: 1, stride: 2}\n", stage * 7)
    err = _refused(tmp_path, text)
    assert f"more than {limits.MAX_ENUMERATED:,} combinations" in str(err)
    path = tmp_path / "ok.yaml"
    path.write_text(BASE.replace("  - {width: 16, depth: 1, stride: 2}\n", stage * 5))  # 10^5: counted
    assert load_space(path).log10_size() == pytest.approx(5 * math.log10(9 + 2))  # kernel 3/5 only at width 8


@pytest.mark.parametrize("block, extra", [
    ("plain", {}), ("basic", {}), ("bottleneck", {"expand_ratio": 0.25}),
    ("inverted_residual", {"expand_ratio": 4.0, "se_ratio": 0.25}), ("convnext", {"expand_ratio": 4.0}),
])
def test_a_stage_costs_the_same_in_closed_form_as_block_by_block(block, extra):
    clear_stage_costs()
    stage = StageSpec(block=block, depth=7, width=32, stride=2, **extra)
    walked = Cost(16)
    Stage.cost(walked, 24, stage, 1e-6)
    assert stage_cost(stage, 24, 16, 1e-6) == (walked.params, walked.macs, walked.size)


def test_valid_padding_stages_are_walked_block_by_block():
    clear_stage_costs()
    stage = StageSpec(block="plain", depth=5, width=8, stride=1, padding="valid", kernel_size=3)
    walked = Cost(32)
    Stage.cost(walked, 8, stage, 1e-6)
    assert stage_cost(stage, 8, 32, 1e-6) == (walked.params, walked.macs, walked.size)
    assert walked.size == 32 - 2 * 5


def test_the_deepest_stage_costs_three_blocks_of_work():
    clear_stage_costs()
    stage = StageSpec(block="inverted_residual", depth=MAX_STAGE_DEPTH, width=64, stride=1, expand_ratio=6.0)
    start = time.perf_counter()
    params, macs, _ = stage_cost(stage, 64, 32, 1e-6)
    assert time.perf_counter() - start < 0.05
    one = stage_cost(StageSpec(block="inverted_residual", depth=1, width=64, stride=1, expand_ratio=6.0), 64, 32, 1e-6)
    assert params == MAX_STAGE_DEPTH * one[0] and macs == MAX_STAGE_DEPTH * one[1]


def test_a_point_over_the_cost_limit_is_infeasible_and_sampling_stops(tmp_path):
    huge = BASE.replace("img_size: 32", "img_size: 8192").replace("width: 16, depth: 1", "width: 4096, depth: 10000")
    path = tmp_path / "huge.yaml"
    path.write_text(huge)
    space = load_space(path)
    start = time.perf_counter()
    with pytest.raises(ArchlabError, match="found only 0 of 1 feasible points"):
        space.sample(1, seed=0)
    assert time.perf_counter() - start < 10
    (params, spec), = space.sample(1, seed=0, feasible_only=False)
    assert any("> the limit" in v for v in space.violations(spec))


def test_space_sample_count_is_capped_before_the_file_is_read(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["space", "sample", "no-such-file.yaml", "-n", "1000000000"])
    assert exc.value.code == 2
    assert "must be a number of samples in [1, 100,000], got 1000000000" in capsys.readouterr().err
