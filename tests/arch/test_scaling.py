"""Compound scaling: pure spec -> spec functions with EfficientNet's rounding."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from archlab.arch.scaling import compound_multipliers, scale, scale_compound
from archlab.arch.zoo import EFFICIENTNET_MULTIPLIERS, efficientnet_base, get_spec
from archlab.core.errors import SpecError

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "torchvision_complexity.md"


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference is not beside the checkout")
def test_presets_use_the_published_multipliers():
    rows = re.findall(r"^\| B(\d) \| ([\d.]+) \| ([\d.]+) \| (\d+) \| ([\d.]+) \|$", REFERENCE.read_text(), re.M)
    assert len(rows) == 8
    for b, width, depth, side, dropout in rows:
        spec = get_spec(f"efficientnet_b{b}")
        assert EFFICIENTNET_MULTIPLIERS[f"efficientnet_b{b}"] == (float(width), float(depth), int(side),
                                                                 float(dropout))
        assert spec.img_size == int(side) and spec.head.dropout == float(dropout)


def test_scale_rounds_like_torchvision():
    b4 = scale(efficientnet_base(), width=1.4, depth=1.8, resolution=380)
    assert [s.width for s in b4.stages] == [24, 32, 56, 112, 160, 272, 448]
    assert [s.depth for s in b4.stages] == [2, 4, 4, 6, 6, 8, 2]
    assert b4.stem.width == 48 and b4.head.conv_width == 1792 and b4.img_size == 380


def test_compound_scaling_formula():
    d, w, r = compound_multipliers(2.0)
    assert (d, w, r) == pytest.approx((1.44, 1.21, 1.3225))
    assert 1.2 * 1.1 ** 2 * 1.15 ** 2 == pytest.approx(2.0, abs=0.1)  # the paper's constraint at phi = 1
    spec = scale_compound(efficientnet_base(), 1.0)
    assert spec.img_size == round(224 * 1.15)
    assert spec.stages[5].depth == math.ceil(4 * 1.2)
    assert scale_compound(efficientnet_base(), 0.0) == efficientnet_base()


def test_scaling_is_pure():
    base = efficientnet_base()
    before = base.to_dict()
    scale(base, width=2.0, depth=2.0)
    assert base.to_dict() == before


def test_bad_multiplier():
    with pytest.raises(SpecError, match="width multiplier must be > 0"):
        scale(efficientnet_base(), width=0)
