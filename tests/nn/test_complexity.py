"""Analytic complexity pinned by a golden file for every zoo entry (pycls keeps the same guard)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from archlab.arch.zoo import get_spec, zoo_names
from archlab.nn.complexity import complexity

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "complexity.json").read_text())


def test_golden_covers_the_whole_zoo():
    assert sorted(GOLDEN) == sorted(zoo_names())


@pytest.mark.parametrize("name", zoo_names())
def test_complexity_matches_golden(name):
    spec, want = get_spec(name), GOLDEN[name]
    cost = complexity(spec)
    assert (spec.arch_id, spec.img_size, cost.params, cost.macs) == (want["arch_id"], want["img_size"],
                                                                     want["params"], want["macs"])
    small = 64 if name.startswith(("vgg", "alexnet")) else 32
    if name != "lenet5":
        assert complexity(spec.replace(img_size=small)).macs == want["macs_32px"]


def test_parts_add_up():
    cost = complexity(get_spec("efficientnet_b3"))
    assert sum(p.params for p in cost.parts) == cost.params
    assert sum(p.macs for p in cost.parts) == cost.macs
    assert [p.name for p in cost.parts][:2] == ["stem", "stages[0]"]
    assert cost.parts[-2].out_size == 10  # 300 px / 32, rounded up by the strided convs
