"""Pareto fronts and hypervolume computed from a results table (pure functions, numpy only).

Objectives are given with directions ("maximize"/"minimize"); internally everything is turned into
minimisation, as Optuna does, so a front here is the same set as `optuna.Study.best_trials`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_minimization", "default_reference", "hypervolume", "hypervolume_history", "pareto_mask"]


def as_minimization(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Objective matrix (n, k) with maximised columns negated."""
    values = np.asarray(values, dtype=float).reshape(len(values), len(directions))
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return values * signs


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows (duplicates of a front point are all kept, as Optuna)."""
    loss = as_minimization(values, directions)
    n = len(loss)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(loss <= loss[i], axis=1) & np.any(loss < loss[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def default_reference(values: np.ndarray, directions: Sequence[str], margin: float = 0.1) -> np.ndarray:
    """A reference point just worse than every observed value (in minimisation space)."""
    loss = as_minimization(values, directions)
    worst = loss.max(axis=0)
    span = np.maximum(loss.max(axis=0) - loss.min(axis=0), 1e-12)
    return worst + margin * span


def hypervolume(values: np.ndarray, directions: Sequence[str], reference: np.ndarray) -> float:
    """Volume dominated by `values` and bounded by `reference` (given in minimisation space)."""
    loss = as_minimization(values, directions)
    reference = np.asarray(reference, dtype=float)
    loss = loss[np.all(loss < reference, axis=1)]
    return _volume(loss, reference) if len(loss) else 0.0


def _volume(loss: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume of minimisation points all strictly inside the reference box (Optuna has no public one).

    Two objectives: a sweep over the first, each front point adding a rectangle up to the previous one's
    height. More: slices along the last objective (HSO, While et al. 2006), each slice the (k-1)-dimensional
    volume of the points below it times its depth; O(n^(k-1)) for n front points, plenty for a search's front.
    """
    loss = loss[pareto_mask(loss, ["minimize"] * loss.shape[1])]
    if loss.shape[1] == 2:
        loss = loss[np.lexsort((loss[:, 1], loss[:, 0]))]
        volume, best_y = 0.0, reference[1]
        for x, y in loss:
            if y < best_y:
                volume += (reference[0] - x) * (best_y - y)
                best_y = y
        return float(volume)
    loss = loss[np.argsort(loss[:, -1], kind="stable")]
    tops = np.append(loss[1:, -1], reference[-1])
    volume = 0.0
    for i, depth in enumerate(tops - loss[:, -1]):
        if depth > 0:
            volume += depth * _volume(loss[: i + 1, :-1], reference[:-1])
    return float(volume)


def hypervolume_history(values: np.ndarray, directions: Sequence[str], reference: np.ndarray) -> list[float]:
    """Hypervolume after each of the first 1..n rows (trials in completion order)."""
    values = np.asarray(values, dtype=float)
    return [hypervolume(values[: i + 1], directions, reference) for i in range(len(values))]
