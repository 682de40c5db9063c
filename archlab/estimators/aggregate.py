"""Aggregates: one score per network of a population, from several proxies' ranks over that population.

`az_nas` is AZ-NAS's non-linear rank aggregation (Lee & Ham, CVPR 2024): sum over its four components of
log(rank / N), ranks ascending (the best network has rank N), ties averaged. `rank_sum` applies the same rule to
every data-driven zero-cost proxy of Abdelfattah et al., Mellor et al., ZiCo and MeCo. Neither has a weight or
threshold fitted to any table: an aggregate depends only on the population it ranks.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from archlab.core.errors import ArchlabError
from archlab.core.registry import Registry

__all__ = ["AGGREGATES", "Aggregate", "log_rank_sum"]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A population score: the proxies it reads and the rule that combines their scores."""

    name: str
    inputs: tuple[str, ...]
    combine: Callable[[Mapping[str, Sequence[float]]], list[float]]
    description: str

    def __call__(self, scores: Mapping[str, Sequence[float]]) -> list[float]:
        missing = [name for name in self.inputs if name not in scores]
        if missing:
            raise ArchlabError(f"aggregate {self.name} needs the scores of {', '.join(missing)}")
        lengths = {len(scores[name]) for name in self.inputs}
        if len(lengths) != 1:
            raise ArchlabError(f"aggregate {self.name}: its inputs score different numbers of networks ({lengths})")
        return self.combine({name: scores[name] for name in self.inputs})


def _ranks(values: Sequence[float]) -> list[float]:
    """Ascending ranks 1..N with ties averaged; NaN ranks lowest (a failed score predicts nothing good)."""
    from scipy.stats import rankdata
    clean = [-math.inf if math.isnan(v) else v for v in values]
    return [float(r) for r in rankdata(clean, method="average")]


def log_rank_sum(scores: Mapping[str, Sequence[float]]) -> list[float]:
    """Sum over proxies of log(rank / N) per network: AZ-NAS's aggregation (higher = predicted better)."""
    columns = list(scores.values())
    n = len(columns[0]) if columns else 0
    total = [0.0] * n
    for values in columns:
        for i, r in enumerate(_ranks(values)):
            total[i] += math.log(r / n)
    return total


AGGREGATES: Registry[Aggregate] = Registry("proxy aggregate")
for _agg in (
    Aggregate("az_nas", ("az_expressivity", "az_progressivity", "az_trainability", "macs"), log_rank_sum,
              "AZ-NAS (Lee & Ham, CVPR 2024): log-rank sum of expressivity, progressivity, trainability and "
              "complexity (MACs)"),
    Aggregate("rank_sum", ("synflow", "snip", "grad_norm", "jacov", "nwot", "zico", "meco"), log_rank_sum,
              "AZ-NAS's log-rank sum over the seven data-driven zero-cost proxies"),
):
    AGGREGATES.register(_agg.name)(_agg)
