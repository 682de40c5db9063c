"""Top-1 values within noise of chance (archlab.measure.chance) and the report's use of it."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pandas as pd
import pytest

from archlab.measure.chance import TOO_SMALL, chance_check
from archlab.report.chance import ablation_chance, search_chance


def test_a_proxy_that_learned_nothing_is_called_out():
    """The issue's case: every trial at 11-16% on 10 classes (digits, ~360 validation images)."""
    rng = random.Random(0)
    top1 = [rng.uniform(11, 16) for _ in range(20)]
    check = chance_check(top1, 10, n_eval=360)
    assert check.near_chance and check.chance == pytest.approx(10.0)
    assert check.noise == pytest.approx(100 * (0.1 * 0.9 / 360) ** 0.5)
    assert check.message().startswith(TOO_SMALL + ":") and "median" in check.message()
    assert chance_check(top1, 10).near_chance   # without n_eval: the values' own spread


@pytest.mark.parametrize("top1, classes, n_eval", [
    ([70.0, 80.0, 85.0, 88.0], 10, 300),           # networks that learned
    ([11.0, 12.0, 60.0, 70.0, 80.0], 10, 360),     # most of them learned
    ([55.0, 56.0, 58.0, 60.0], 2, 2000),           # 2 classes: 55-60% on 2000 images is beyond noise
    ([random.Random(1).uniform(10, 90) for _ in range(30)], 10, None),   # a wide spread is not noise
])
def test_networks_that_learned_are_ranked(top1, classes, n_eval):
    check = chance_check(top1, classes, n_eval=n_eval)
    assert check is not None and not check.near_chance and check.message() == ""


def test_the_band_grows_with_the_number_of_values_and_shrinks_with_images():
    few, many = chance_check([10.0] * 3, 10, n_eval=400), chance_check([10.0] * 300, 10, n_eval=400)
    assert few.threshold < many.threshold   # the best of more chance-level networks reaches higher
    assert chance_check([10.0] * 3, 10, n_eval=4000).threshold < few.threshold


def test_nothing_to_judge():
    assert chance_check([], 10) is None
    assert chance_check([float("nan"), None], 10) is None
    assert chance_check([50.0], 1) is None
    assert chance_check([12.0, 13.0], 10) is None   # two values and no n_eval: no noise estimate
    assert chance_check([12.0, 13.0], 10, n_eval=100) is not None


def _search_run(top1, *, summary=None, num_classes=10):
    table = pd.DataFrame({"number": range(len(top1)), "state": ["complete"] * len(top1), "top1": top1})
    archs = {0: SimpleNamespace(yaml=f"num_classes: {num_classes}\n")}
    return SimpleNamespace(table=table, summary=summary or {}, archs=archs)


def test_the_report_judges_search_and_ablation_runs():
    noise = [11.0, 12.5, 13.0, 14.0, 15.5, 12.0]
    assert search_chance(_search_run(noise)).near_chance                         # classes from a trial spec
    assert search_chance(_search_run(noise, summary={"num_classes": 10, "n_eval": 360})).noise_from.startswith(
        "binomial at 360")
    assert not search_chance(_search_run([80.0, 85.0, 90.0, 91.0])).near_chance
    assert search_chance(SimpleNamespace(table=pd.DataFrame({"state": []}), summary={}, archs={})) is None
    steps = tuple({"index": i, "step": f"s{i}", "top1_mean": v} for i, v in enumerate(noise))
    run = SimpleNamespace(doc={"setting": {"num_classes": 10}}, steps=steps)
    assert ablation_chance(run).near_chance
    assert ablation_chance(SimpleNamespace(doc={}, steps=steps)) is None
