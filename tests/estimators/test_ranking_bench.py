"""bench/proxy_ranking.py: the table rebuilds exactly, and the correlation and 'beats the baselines' rules."""
from __future__ import annotations

import numpy as np

from bench.proxy_ranking import correlations, load_table


def test_every_table_row_rebuilds_to_its_arch_id():
    specs, top1 = load_table()  # exits with the offending row if any arch_id differs
    assert len(specs) == len(top1) == 144 and len({s.arch_id for s in specs}) == 144
    assert all(s.img_size == 32 and s.in_chans == 1 and s.num_classes == 10 for s in specs)


def test_correlations_and_the_baseline_rule():
    rng = np.random.default_rng(0)
    top1 = rng.normal(size=60)
    scores = {"params": top1 + rng.normal(scale=2.0, size=60), "macs": top1 + rng.normal(scale=2.0, size=60),
              "oracle": top1.copy(), "reversed": -top1, "noise": rng.normal(size=60)}
    scores["oracle"][:3] = np.nan  # a failed score ranks lowest, it is not dropped
    out = correlations(scores, top1, boot=200, seed=0)
    assert out["reversed"]["spearman"] == -1.0 and out["reversed"]["kendall"] == -1.0
    assert 0.8 < out["oracle"]["spearman"] < 1.0 and out["oracle"]["beats_baselines"]
    assert not out["noise"]["beats_baselines"] and not out["params"]["beats_baselines"]
    lo, hi = out["noise"]["spearman_ci"]
    assert lo < out["noise"]["spearman"] < hi
