"""Whether measured top-1 accuracies are within noise of chance, so a ranking of the networks would be noise.

Top-1 values are in percent, as archlab.measure.train reports them. Chance is c = 100 / num_classes. The noise
of one accuracy measured on `n_eval` images is the binomial standard error at chance, 100 sqrt(p (1 - p) /
n_eval) with p = 1 / num_classes; without `n_eval` the values' own standard deviation stands in for it, capped
at the binomial noise of 50 images (so networks that really differ cannot widen the band without bound). The
band of chance is c + z_k * noise, where z_k is the one-sided 1% quantile over k values (Bonferroni: z_k =
Phi^-1(1 - 0.01 / k)), i.e. how high the best of k measurements of networks that learned nothing would reach.
The budget is too small to rank the networks when most of them (the median) lie within that band: their
order is then mostly the order of noise. Torch-free; the search summary, the ablation summary and the reports
ask it.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ALPHA", "TOO_SMALL", "ChanceCheck", "chance_check"]

ALPHA = 0.01             # one-sided level, shared over the k values

_FALLBACK_IMAGES = 50    # without n_eval, the noise is never taken wider than 50 images' binomial noise
TOO_SMALL = "the budget is too small to rank these networks"


@dataclass(frozen=True, slots=True)
class ChanceCheck:
    """The verdict on a set of top-1 values (percent) against chance."""

    chance: float           # 100 / num_classes, percent
    median: float
    best: float
    threshold: float        # chance + z_k * noise: values up to it are within noise of chance
    noise: float            # the standard error used
    noise_from: str         # "binomial at n_eval images" or "the trials' spread"
    n_values: int
    n_near: int             # how many values are within noise of chance
    near_chance: bool       # the median is within noise of chance

    def message(self) -> str:
        """One line for summaries and reports ('' when the values are not near chance)."""
        if not self.near_chance:
            return ""
        return (f"{TOO_SMALL}: {self.n_near} of {self.n_values} top-1 values (median {self.median:.1f}%, best "
                f"{self.best:.1f}%) are within noise of chance ({self.chance:.1f}%; threshold {self.threshold:.1f}%, "
                f"noise from {self.noise_from}); train longer or on more data before reading a ranking")

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON files."""
        return {"chance": self.chance, "median": self.median, "best": self.best, "threshold": self.threshold,
                "noise": self.noise, "noise_from": self.noise_from, "n_values": self.n_values,
                "n_near": self.n_near, "near_chance": self.near_chance, "message": self.message()}


def chance_check(top1: Iterable[float | None], num_classes: int, *, n_eval: int | None = None,
                 alpha: float = ALPHA) -> ChanceCheck | None:
    """Test top-1 values (percent) against chance (see the module docstring); None when there is nothing to judge
    (no finite value, fewer than 2 classes, or under 3 values and no `n_eval` to give the noise)."""
    values = [float(v) for v in top1 if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]
    if not values or num_classes < 2:
        return None
    p = 1.0 / num_classes
    chance = 100.0 * p
    if n_eval is not None and n_eval > 0:
        noise, source = 100.0 * math.sqrt(p * (1 - p) / n_eval), f"binomial at {n_eval} images"
    elif len(values) >= 3:
        cap = 100.0 * math.sqrt(p * (1 - p) / _FALLBACK_IMAGES)
        noise, source = min(statistics.stdev(values), cap), "the values' spread"
    else:
        return None
    threshold = chance + statistics.NormalDist().inv_cdf(1 - alpha / len(values)) * noise
    median = statistics.median(values)
    return ChanceCheck(chance=chance, median=median, best=max(values), threshold=threshold, noise=noise,
                       noise_from=source, n_values=len(values), n_near=sum(v <= threshold for v in values),
                       near_chance=median <= threshold)
