"""bench/proxy_ranking.py: the table rebuilds exactly, the correlation and 'beats a baseline' rules, the score cache."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import proxy_ranking as pr
from bench.proxy_ranking import correlations, load_table


def test_every_table_row_rebuilds_to_its_arch_id():
    specs, top1 = load_table()  # exits with the offending row if any arch_id differs
    assert len(specs) == len(top1) == 144 and len({s.arch_id for s in specs}) == 144
    assert all(s.img_size == 32 and s.in_chans == 1 and s.num_classes == 10 for s in specs)


def test_the_families_table_is_the_whole_grid_and_every_row_rebuilds():
    """The second trained table holds every point of its space once, and each row rebuilds to its arch_id; its
    proxy cache scores exactly those networks."""
    from bench.make_efficiency_table import arch_ids, grid
    table = pr.TABLE.parent / "families_table.csv"
    specs, top1 = load_table(table=table)  # exits with the offending row if any arch_id differs
    space = pr.space_for(table)
    assert space.name == "families_space.yaml"
    ids = [s.arch_id for s in specs]
    assert len(ids) == 162 and sorted(ids) == sorted(arch_ids(grid(space), space))
    assert all(10.0 <= y <= 100.0 for y in top1)   # chance (a diverged network) at worst
    cached = pd.read_csv(pr.cache_for(table))
    assert sorted(cached["arch_id"]) == sorted(ids)


def test_correlations_and_the_baseline_rule():
    rng = np.random.default_rng(0)
    top1 = rng.normal(size=80)
    scores = {"params": top1 + rng.normal(scale=3.0, size=80), "macs": top1 + rng.normal(scale=0.6, size=80),
              "oracle": top1.copy(), "reversed": -top1, "noise": rng.normal(size=80),
              "middle": top1 + rng.normal(scale=1.1, size=80)}
    scores["oracle"][:3] = np.nan  # a failed score ranks lowest, it is not dropped
    out = correlations(scores, top1, boot=200, seed=0)
    assert out["reversed"]["spearman"] == pytest.approx(-1.0) and out["reversed"]["kendall"] == pytest.approx(-1.0)
    assert 0.8 < out["oracle"]["spearman"] < 1.0 and out["oracle"]["beats_baselines"]
    assert not out["noise"]["beats_baselines"] and not out["params"]["beats_baselines"]
    # better than the noisy count, not than the sharp one: beaten per baseline, not both
    assert out["middle"]["beats_params"] and not out["middle"]["beats_macs"] and not out["middle"]["beats_baselines"]
    assert not out["macs"]["beats_params"] and not out["macs"]["beats_macs"]  # a baseline is never a contender
    assert pr.verdict(out) == {"params": ["oracle", "middle"], "macs": ["oracle"], "baselines": ["oracle"]}
    lo, hi = out["noise"]["spearman_ci"]
    assert lo < out["noise"]["spearman"] < hi


def test_cache_names_follow_the_table():
    table = Path("bench/data/families_table.csv")
    assert pr.cache_for(table) == Path("bench/data/families_table_proxies.csv")
    assert pr.cache_for(table, seed=1).name == "families_table_proxies_seed1_batch32.csv"
    assert pr.space_for(pr.TABLE) == pr.SPACE


def test_scores_are_cached_per_network_and_read_back_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    specs, _ = load_table(2)
    cache = tmp_path / "t_proxies.csv"
    first, seconds = pr.score_table(specs, seed=0, batch_size=8, cache=cache)
    assert len(seconds["nwot"]) == 2 and all(len(v) == 2 for v in first.values())
    header = cache.read_text().splitlines()[0].split(",")
    assert header == ["arch_id", *first]  # complete: the aggregates are written too

    import archlab.estimators.score as score

    def refuse(*args, **kwargs):
        raise AssertionError("a cached network was scored again")

    monkeypatch.setattr(score, "score_specs", refuse)
    again, seconds = pr.score_table(specs, seed=0, batch_size=8, cache=cache)
    assert seconds == {}
    for name, values in first.items():
        assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(values, again[name])), name


def test_a_cache_row_with_a_failed_score_round_trips(tmp_path: Path):
    path = tmp_path / "c.csv"
    pr._append_cache(path, ["a", "b"], "x1", {"a": 0.1 + 0.2, "b": math.nan})
    assert pr.read_cache(path, ["a", "b"])["x1"]["a"] == 0.1 + 0.2
    assert math.isnan(pr.read_cache(path, ["a", "b"])["x1"]["b"])
    with pytest.raises(SystemExit, match="no column for c"):
        pr.read_cache(path, ["a", "c"])
