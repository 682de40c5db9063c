"""The report's architecture table asks each family what to show: branch widths, split/shuffle, GRN."""
from __future__ import annotations

import pytest

from archlab.arch.zoo import get_spec
from archlab.report.data import arch_info


@pytest.mark.parametrize(("name", "stage", "expected"), [
    ("googlenet", 2, "1x1 64 | 96>3x3 128 | 16>3x3 32 | pool 32"),   # torchvision's "5x5" branch is a 3x3
    ("shufflenet_v2_x1_0", 0, "split 0.5 shuffle 2"),
    ("convnextv2_atto", 0, "e4 GRN"),
    ("regnet_y_400mf", 0, "e1 g8 SE 0.25"),
    ("convnext_tiny", 0, "e4"),
])
def test_stage_rows_show_what_the_family_reads(name, stage, expected):
    info = arch_info(get_spec(name).to_yaml())
    row = [r for r in info.rows if r["part"].startswith("stage")][stage]
    assert row["detail"] == expected
    assert expected in info.summary
