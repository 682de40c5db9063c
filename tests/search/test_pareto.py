"""Pareto set and hypervolume equal Optuna's own on the same trials (its WFG is the oracle here only)."""
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


@pytest.mark.parametrize("k, seed", [(3, 0), (3, 1), (4, 2)])
def test_more_objectives_equal_optunas_wfg(k, seed):
    rng = np.random.default_rng(seed)
    dirs = ("maximize",) + ("minimize",) * (k - 1)
    values = rng.uniform(0.0, 1.0, (25, k))
    values[7] = values[3]  # a duplicate point
    ref = default_reference(values, dirs)
    assert hypervolume(values, dirs, ref) == pytest.approx(compute_hypervolume(as_minimization(values, dirs), ref))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_hypervolume_history_equals_optunas_public_plot():
    # Optuna's public face of its hypervolume: plot_hypervolume_history, reference point in objective space
    from optuna.visualization import plot_hypervolume_history

    rng = np.random.default_rng(3)
    dirs = ("maximize", "minimize", "minimize")
    values = rng.uniform(0.0, 1.0, (15, 3))
    study = optuna.create_study(directions=list(dirs))
    for v in values:
        study.add_trial(optuna.trial.create_trial(values=list(v), params={}, distributions={}))
    ref = default_reference(values, dirs)
    figure = plot_hypervolume_history(study, reference_point=list(as_minimization(ref[None, :], dirs)[0]))
    assert hypervolume_history(values, dirs, ref) == pytest.approx(list(figure.data[0].y))


def test_three_objectives_by_hand():
    # two boxes [0.1, 1] x [0.5, 1] x [0.2, 1] and [0.5, 1] x [0.1, 1] x [0.6, 1] in a unit reference
    values = np.array([[0.1, 0.5, 0.2], [0.5, 0.1, 0.6]])
    ref = np.ones(3)
    both = 0.9 * 0.5 * 0.8 + 0.5 * 0.9 * 0.4 - 0.5 * 0.5 * 0.4
    assert hypervolume(values, ("minimize",) * 3, ref) == pytest.approx(both)
