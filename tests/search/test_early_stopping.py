"""Pareto-aware successive halving: the cut-off at a rung comes from the trials at least as fast."""
from __future__ import annotations

from ray.tune.schedulers import TrialScheduler

from archlab.search.early_stopping import ParetoASHA, rungs

STOP, GO = TrialScheduler.STOP, TrialScheduler.CONTINUE


def test_rungs_never_include_the_last_epoch():
    assert rungs(1, 2, 3) == [1.0, 2.0]
    assert rungs(1, 2, 4) == [1.0, 2.0]
    assert rungs(3, 3, 30) == [3.0, 9.0, 27.0]
    assert rungs(2, 2, 2) == []


def test_a_trial_faster_than_every_peer_continues_however_inaccurate():
    s = ParetoASHA(grace=1, reduction_factor=2, max_t=3)
    for i, (lat, top1) in enumerate([(2.0, 90.0), (3.0, 91.0), (2.5, 89.0)]):
        s.decide(f"t{i}", 1.0, top1, lat)
    assert s.decide("fast", 1.0, 40.0, 1.0) == GO          # no peer is as fast: it may be the cheap end


def test_a_slow_and_inaccurate_trial_is_stopped():
    s = ParetoASHA(grace=1, reduction_factor=2, max_t=3)
    for i, (lat, top1) in enumerate([(2.0, 90.0), (3.0, 91.0), (2.5, 89.0)]):
        assert s.decide(f"t{i}", 1.0, top1, lat) == GO      # fewer than 2 faster peers, or above their median
    assert s.decide("slow", 1.0, 80.0, 4.0) == STOP
    assert s.stopped == 1
    assert s.decide("slow_but_best", 1.0, 95.0, 4.0) == GO


def test_each_rung_is_judged_once_per_trial():
    s = ParetoASHA(grace=1, reduction_factor=2, max_t=4)
    for i in range(3):
        s.decide(f"p{i}", 1.0, 90.0, 1.0)
    assert s.decide("x", 1.0, 95.0, 2.0) == GO
    assert s.decide("x", 1.0, 10.0, 2.0) == GO   # the same rung again: already judged
    assert len(s.records[1.0]) == 4
    assert s.decide("x", 2.0, 10.0, 2.0) == GO   # rung 2 has no faster peers yet
