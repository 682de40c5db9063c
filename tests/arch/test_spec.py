"""archlab.arch.spec: torch-free, validated where made, round trips, stable arch_id."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec, load_spec, make_divisible
from archlab.arch.zoo import get_spec, zoo_names
from archlab.core.errors import ArchlabError, SpecError
from tests.nn.specgen import random_spec


def test_spec_module_does_not_import_torch():
    code = ("import sys, archlab, archlab.arch.spec, archlab.arch.zoo, archlab.arch.scaling; "
            "archlab.arch.zoo.get_spec('convnext_tiny').arch_id; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", zoo_names())
def test_round_trips_keep_equality_and_arch_id(name):
    spec = get_spec(name)
    for back in (ArchSpec.from_dict(spec.to_dict()), ArchSpec.from_json(spec.to_json()),
                 ArchSpec.from_yaml(spec.to_yaml())):
        assert back == spec
        assert back.arch_id == spec.arch_id


def test_random_specs_round_trip():
    for seed in range(50):
        spec = random_spec(seed)
        assert ArchSpec.from_json(spec.to_json()) == spec


def test_arch_id_is_stable_and_ignores_name():
    spec = get_spec("resnet50")
    # pinned: a change here means every stored result keyed by arch_id would be orphaned
    assert spec.arch_id == "0906cb16f5c85e71"
    assert dataclasses.replace(spec, name="other").arch_id == spec.arch_id
    assert spec.replace(num_classes=10).arch_id != spec.arch_id


def test_int_and_float_fields_hash_equal():
    a = StageSpec(block="inverted_residual", depth=1, width=16, expand_ratio=6)
    b = StageSpec(block="inverted_residual", depth=1, width=16, expand_ratio=6.0)
    assert a == b and a.to_dict() == b.to_dict()
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())


@pytest.mark.parametrize("kwargs, path, rule", [
    (dict(block="plain", depth=1, width=8, kernel_size=4), "kernel_size", "must be odd"),
    (dict(block="plian", depth=1, width=8), "block", "did you mean 'plain'"),
    (dict(block="plain", depth=0, width=8), "depth", "must be > 0"),
    (dict(block="plain", depth=1, width=8, stride=3), "stride", "must be 1 or 2"),
    (dict(block="inverted_residual", depth=1, width=8, se_ratio=1.5), "se_ratio", "must be in [0, 1)"),
    (dict(block="plain", depth=1, width=8, act="gelu2"), "act", "did you mean 'gelu'"),
    (dict(block="basic", depth=1, width=8, padding="valid"), "padding", "only for the plain family"),
])
def test_stage_validation_names_path_rule_and_value(kwargs, path, rule):
    with pytest.raises(SpecError) as err:
        StageSpec(**kwargs)
    assert err.value.path == path
    assert rule in str(err.value)
    assert "got" in str(err.value)


def test_from_dict_errors_carry_the_key_path():
    data = get_spec("resnet50").to_dict()
    data["stages"][2]["kernel_size"] = 4
    with pytest.raises(SpecError, match=r"stages\[2\]\.kernel_size must be odd with same padding, got 4"):
        ArchSpec.from_dict(data)
    data = get_spec("resnet50").to_dict()
    data["stages"][1]["widht"] = 3
    with pytest.raises(SpecError, match=r"stages\[1\]\.widht is not a known key \(did you mean 'width'\?\)"):
        ArchSpec.from_dict(data)
    data = get_spec("resnet50").to_dict()
    data["head"]["hidden"] = "wide"
    with pytest.raises(SpecError, match=r"head\.hidden must be a list"):
        ArchSpec.from_dict(data)
    data = get_spec("resnet50").to_dict()
    data["img_size"] = True
    with pytest.raises(SpecError, match="img_size must be an integer, got True"):
        ArchSpec.from_dict(data)
    with pytest.raises(SpecError, match="missing required key"):
        ArchSpec.from_dict({"stem": {}})


def test_group_width_must_divide_channels():
    with pytest.raises(SpecError, match=r"stages\[0\]\.group_width must divide"):
        ArchSpec(stem=StemSpec(width=16), stages=(StageSpec(block="bottleneck", depth=1, width=64,
                                                            expand_ratio=0.25, group_width=3),))


def test_too_small_input_is_rejected():
    with pytest.raises(SpecError, match="img_size is too small"):
        get_spec("vgg16").replace(img_size=16)


def test_spec_errors_are_archlab_and_value_errors():
    assert issubclass(SpecError, ArchlabError) and issubclass(SpecError, ValueError)


def test_load_spec_from_files(tmp_path):
    spec = get_spec("mobilenet_v2")
    (tmp_path / "a.json").write_text(spec.to_json())
    (tmp_path / "a.yaml").write_text(spec.to_yaml())
    assert load_spec(tmp_path / "a.json") == spec == load_spec(tmp_path / "a.yaml")
    (tmp_path / "bad.yaml").write_text("stem: {type: conv}\nstages: [\n")
    with pytest.raises(SpecError, match=r"bad\.yaml:\d+: is not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "tag.yaml").write_text("stem: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(SpecError, match="tag.yaml"):
        load_spec(tmp_path / "tag.yaml")
    with pytest.raises(SpecError, match="cannot be read"):
        load_spec(tmp_path / "missing.yaml")


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 12):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match="refusing"):
        load_spec(tmp_path / "bomb.yaml")


@pytest.mark.parametrize("value, expected", [(32 * 1.1, 32), (16 * 2.5, 40), (72 / 4, 24), (3, 8), (100, 104)])
def test_make_divisible_matches_torchvision_rule(value, expected):
    assert make_divisible(value, 8) == expected


def test_head_and_stem_validation():
    with pytest.raises(SpecError, match="stride must equal kernel_size"):
        StemSpec(type="patchify", kernel_size=4, stride=2)
    with pytest.raises(SpecError, match="dropout must be in"):
        HeadSpec(dropout=1.0)
    with pytest.raises(SpecError, match="pool must be one of"):
        HeadSpec(pool="mean")
