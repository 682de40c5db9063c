"""Pareto set and hypervolume equal Optuna's own on the same trials."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna._hypervolume import compute_hypervolume

from archlab.search.pareto import as_minimization, default_reference, hypervolume, hypervolume_history, pareto_mask

DIRECTIONS = ("maximize", "minimize")  # top-1, latency


def _study(values: np.ndarray) -> optuna.Study:
    study = optuna.create_study(directions=list(DIRECTIONS))
    for v in values:
        study.add_trial(optuna.trial.create_trial(values=list(v), params={}, distributions={}))
    return study


@pytest.mark.parametrize("seed", range(5))
def test_front_equals_optuna_best_trials(seed):
    rng = np.random.default_rng(seed)
    values = np.column_stack([rng.uniform(0.5, 0.95, 40), rng.uniform(0.2, 5.0, 40)])
    values[5] = values[3]  # a duplicate front point must be treated as Optuna does
    study = _study(values)
    assert set(np.flatnonzero(pareto_mask(values, DIRECTIONS))) == {t.number for t in study.best_trials}


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_equals_optuna(seed):
    rng = np.random.default_rng(seed)
    values = np.column_stack([rng.uniform(0.5, 0.95, 30), rng.uniform(0.2, 5.0, 30)])
    ref = default_reference(values, DIRECTIONS)
    loss = as_minimization(values, DIRECTIONS)
    assert hypervolume(values, DIRECTIONS, ref) == pytest.approx(compute_hypervolume(loss, ref))


def test_hypervolume_by_hand_and_history():
    values = np.array([[0.9, 2.0], [0.8, 1.0], [0.7, 3.0]])
    ref = np.array([0.0, 4.0])  # top-1 0 (negated), latency 4 ms
    # (0.9 x (4-2)) + (0.8 x (4-1) - overlap 0.8 x 2) = 1.8 + 0.8
    assert hypervolume(values, DIRECTIONS, ref) == pytest.approx(2.6)
    hist = hypervolume_history(values, DIRECTIONS, ref)
    assert hist == pytest.approx([1.8, 2.6, 2.6])
    assert all(a <= b for a, b in zip(hist, hist[1:]))


def test_three_objectives_use_wfg():
    values = np.array([[0.9, 2.0, 5.0], [0.8, 1.0, 9.0]])
    dirs = ("maximize", "minimize", "minimize")
    ref = np.array([0.0, 4.0, 10.0])
    assert hypervolume(values, dirs, ref) == pytest.approx(
        compute_hypervolume(as_minimization(values, dirs), ref))
