"""Pareto-aware successive halving: ASHA rungs (Li et al. 2020) judged among trials at least as fast.

Ray Tune's ASHA ranks trials by one metric, so in an accuracy/latency search it stops exactly the small, fast
networks that form the cheap end of the front. Here a trial reaching a rung is compared only with the trials
that reached the same rung with a latency no higher than its own: it is stopped when its validation top-1 is
below the (1 - 1/reduction_factor) quantile of those peers, i.e. when enough faster networks are also more
accurate that it can hardly reach the front. A trial faster than every peer always continues.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

__all__ = ["ParetoASHA", "rungs"]


def rungs(grace: int, reduction_factor: float, max_t: float) -> list[float]:
    """Rung epochs grace * rf^k below max_t (the last epoch is never a rung: finished trials are final)."""
    out, t = [], float(grace)
    while t < max_t:
        out.append(t)
        t *= reduction_factor
    return out


class ParetoASHA(FIFOScheduler):
    """Asynchronous successive halving whose cut-off at each rung comes from the trials at least as fast."""

    def __init__(self, *, grace: int, reduction_factor: float, max_t: float, metric: str = "val_top1",
                 cost: str = "latency_ms", min_peers: int = 2) -> None:
        super().__init__()
        self.rungs = rungs(grace, reduction_factor, max_t)
        self.rf, self._score, self._cost, self.min_peers = reduction_factor, metric, cost, min_peers
        self.records: dict[float, list[tuple[float, float]]] = {r: [] for r in self.rungs}
        self._passed: dict[str, set[float]] = {}
        self.stopped = 0

    def decide(self, trial_id: str, epoch: float, value: float, cost: float) -> str:
        """CONTINUE or STOP for a trial that reports `value` at `epoch` with `cost` (pure bookkeeping)."""
        passed = self._passed.setdefault(trial_id, set())
        for rung in reversed(self.rungs):
            if epoch < rung or rung in passed:
                continue
            passed.add(rung)
            peers = [v for c, v in self.records[rung] if c <= cost]
            self.records[rung].append((cost, value))
            if len(peers) >= self.min_peers and value < float(np.quantile(peers, 1.0 - 1.0 / self.rf)):
                self.stopped += 1
                return TrialScheduler.STOP
            break
        return TrialScheduler.CONTINUE

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("final") or self._score not in result or self._cost not in result or "epoch" not in result:
            return TrialScheduler.CONTINUE
        return self.decide(trial.trial_id, float(result["epoch"]), float(result[self._score]),
                           float(result[self._cost]))

    def debug_string(self) -> str:
        return f"ParetoASHA: rungs {self.rungs}, {self.stopped} stopped"
