"""Ablation summaries: per-row figures beside the paper's, and how far the proxy agrees with the paper.

Pure functions from measured costs, latencies and training records (results.jsonl) to `StepSummary` rows and
an `Agreement` (Spearman rank of proxy vs paper top-1 over rows, and the direction of each change against seed
noise), gathered in an `AblationReport`: what ablation.json, ablation.csv and the printed table are made from.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from archlab.ablation.ladder import Ladder, ResolvedRow
from archlab.arch.spec import ArchSpec

__all__ = ["AblationReport", "Agreement", "StepSummary", "agreement", "summarize_steps"]


@dataclass(frozen=True, slots=True)
class StepSummary:
    """One row of the replay: full-size cost vs the paper, proxy latency and top-1 over seeds, and the change."""

    index: int
    step: str
    kind: str                        # base, step, branch, rung
    parent: str | None
    recipe: str
    arch_id: str                     # of the full-size spec
    params: int                      # full size, analytic
    macs: int                        # full size at `img_size` (224 for ImageNet networks), analytic
    img_size: int                    # the full-size network's input side
    paper_top1: float | None
    paper_top1_std: float | None
    paper_gflops: float | None
    macs_vs_paper: float | None      # macs / (paper_gflops * 1e9) - 1
    gflops_note: str
    proxy_arch_id: str
    proxy_params: int
    proxy_macs: int
    latency_ms: float | None         # median, proxy-size network at the proxy input size, this device
    latency_p90_ms: float | None
    latency_cv: float | None
    top1_mean: float | None          # proxy top-1 (%) on the validation split, over seeds
    top1_std: float | None           # sample std over seeds
    n_seeds: int
    top1_seeds: tuple[float, ...]
    delta: float | None              # top1_mean - the parent's
    delta_se: float | None           # standard error of that difference (independent seeds)
    paper_delta: float | None        # paper_top1 - the parent's
    direction: str | None            # agree, disagree, paper_flat (no published change)
    within_noise: bool | None        # |delta| < 2 * delta_se
    note: str = ""
    ceiling: str = ""
    budget_multiplier: float = 1.0   # of the proxy budget (the paper's 300/90 for rows on the modern recipe)
    budget_images: int | None = None  # images the row trains on per seed (None: only a time limit bounds it)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["top1_seeds"] = list(self.top1_seeds)
        return out


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far the proxy tracks the paper: Spearman rank of top-1 over rows, and per-change direction."""

    spearman: float | None
    spearman_p: float | None
    n_ranked: int
    direction_agree: int
    direction_total: int             # changes with a published and a measured difference
    agree_beyond_noise: int          # agreeing changes whose proxy difference is larger than 2 SE
    within_noise: int                # proxy differences smaller than 2 SE
    disagree: tuple[str, ...]        # rows whose proxy change goes the other way from the paper's

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["disagree"] = list(self.disagree)
        return out

    def sentence(self) -> str:
        """The verdict in plain words."""
        if self.spearman is None:
            rank = "Spearman rank correlation: not enough rows with both a paper and a proxy top-1."
        else:
            if self.spearman >= 0.7:
                verdict = "the proxy ranks the rows much as the paper does"
            elif self.spearman >= 0.3:
                verdict = "the proxy follows the paper's ranking only loosely"
            elif self.spearman > -0.3:
                verdict = "the proxy's ranking is unrelated to the paper's"
            else:
                verdict = "the proxy ranks the rows against the paper"
            significance = "" if self.spearman_p is not None and self.spearman_p < 0.05 else \
                ", though not significant at p < 0.05"
            rank = (f"Spearman rank correlation of proxy vs paper top-1 over {self.n_ranked} rows: "
                    f"{self.spearman:+.2f} (p = {self.spearman_p:.2g}): {verdict}{significance}.")
        if not self.direction_total:
            return rank
        direction = (f"Direction of each change agrees with the paper on {self.direction_agree} of "
                     f"{self.direction_total} ({self.agree_beyond_noise} of them beyond 2 SE of seed noise); "
                     f"{self.within_noise} proxy changes are within seed noise.")
        if self.disagree:
            direction += " Opposite direction: " + ", ".join(self.disagree) + "."
        return rank + "\n" + direction


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _same_budget(record: Mapping[str, Any], images: int | None) -> bool:
    """Whether a record was trained on the row's budget (records and rows that do not state one match)."""
    return images is None or record.get("budget_images") in (None, images)


def summarize_steps(rows: Sequence[ResolvedRow], costs: Mapping[int, Any], proxies: Mapping[int, ArchSpec],
                    proxy_costs: Mapping[int, Any], latencies: Mapping[int, Any],
                    records: Sequence[Mapping[str, Any]], seeds: Sequence[int], *,
                    budget_images: Mapping[int, int | None] | None = None) -> list[StepSummary]:
    """Per-row summaries from measured costs, latencies and training records (only the chosen seeds count).

    `budget_images` (by row index) is the images each row trains on; a record that states another count was
    trained under another budget and is not counted.
    """
    wanted = set(seeds)
    images = dict(budget_images or {})
    top1: dict[int, list[float]] = {r.index: [] for r in rows}
    for rec in records:
        for r in rows:
            if rec["step"] == r.name and rec.get("arch_id") == proxies[r.index].arch_id \
                    and rec.get("recipe") == r.recipe and rec["seed"] in wanted \
                    and _same_budget(rec, images.get(r.index)):
                top1[r.index].append(float(rec["top1"]))
    stats = {i: _mean_std(v) for i, v in top1.items()}
    out = []
    for r in rows:
        mean, std = stats[r.index]
        n = len(top1[r.index])
        delta = delta_se = paper_delta = direction = noise = None
        if r.parent is not None:
            p_mean, p_std = stats[r.parent]
            p_n = len(top1[r.parent])
            if mean is not None and p_mean is not None:
                delta = mean - p_mean
                if std is not None and p_std is not None:
                    delta_se = math.sqrt(std ** 2 / n + p_std ** 2 / p_n)
                    noise = abs(delta) < 2 * delta_se
            parent_paper = rows[r.parent].row.paper.top1
            if r.row.paper.top1 is not None and parent_paper is not None:
                paper_delta = round(r.row.paper.top1 - parent_paper, 4)
                if delta is not None:
                    if paper_delta == 0:
                        direction = "paper_flat"
                    else:
                        direction = "agree" if (delta > 0) == (paper_delta > 0) and delta != 0 else "disagree"
        paper = r.row.paper
        cost, latency = costs[r.index], latencies.get(r.index)
        out.append(StepSummary(
            index=r.index, step=r.name, kind=r.kind, parent=None if r.parent is None else rows[r.parent].name,
            recipe=r.recipe, arch_id=r.spec.arch_id, params=cost.params, macs=cost.macs, img_size=r.spec.img_size,
            paper_top1=paper.top1,
            paper_top1_std=paper.top1_std, paper_gflops=paper.gflops,
            macs_vs_paper=None if paper.gflops is None else cost.macs / (paper.gflops * 1e9) - 1.0,
            gflops_note=paper.gflops_note, proxy_arch_id=proxies[r.index].arch_id,
            proxy_params=proxy_costs[r.index].params, proxy_macs=proxy_costs[r.index].macs,
            latency_ms=None if latency is None else latency.latency_ms,
            latency_p90_ms=None if latency is None else latency.p90_ms,
            latency_cv=None if latency is None else latency.cv,
            top1_mean=mean, top1_std=std, n_seeds=n, top1_seeds=tuple(top1[r.index]), delta=delta, delta_se=delta_se,
            paper_delta=paper_delta, direction=direction, within_noise=noise, note=r.row.note, ceiling=r.row.ceiling,
            budget_multiplier=float(r.budget_multiplier), budget_images=images.get(r.index)))
    return out


def agreement(steps: Sequence[StepSummary]) -> Agreement:
    """Spearman rank of proxy vs paper top-1 over rows with both, and direction agreement per change."""
    pairs = [(s.paper_top1, s.top1_mean) for s in steps if s.paper_top1 is not None and s.top1_mean is not None]
    rho = p = None
    if len(pairs) >= 3 and len({a for a, _ in pairs}) > 1 and len({b for _, b in pairs}) > 1:
        from scipy.stats import spearmanr
        res = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
        rho, p = float(res.statistic), float(res.pvalue)
    changes = [s for s in steps if s.direction in ("agree", "disagree")]
    agree = [s for s in changes if s.direction == "agree"]
    return Agreement(spearman=rho, spearman_p=p, n_ranked=len(pairs), direction_agree=len(agree),
                     direction_total=len(changes), agree_beyond_noise=sum(1 for s in agree if s.within_noise is False),
                     within_noise=sum(1 for s in steps if s.within_noise),
                     disagree=tuple(s.step for s in changes if s.direction == "disagree"))


@dataclass(frozen=True, slots=True)
class AblationReport:
    """The outcome of one `run_ablation`: per-row summaries, the agreement verdict and where it was written."""

    ladder: Ladder
    steps: tuple[StepSummary, ...]
    agreement: Agreement
    seeds: tuple[int, ...]
    trained: bool
    out: str | None
    setting: dict[str, Any]          # dataset, sizes, reduction, budget, device, latency protocol
    wall_s: float                    # this invocation
    train_wall_s: float              # summed over every counted record (resumed ones included)
    trained_now: int = 0             # (row, seed) pairs this invocation trained
    started: str = ""                # ISO time this invocation started

    def to_dict(self) -> dict[str, Any]:
        """The ablation.json document."""
        return {"study": self.ladder.name, "title": self.ladder.title, "source": self.ladder.source,
                "ladder_file": self.ladder.file, "base": self.ladder.base, "seeds": list(self.seeds),
                "trained": self.trained, "setting": self.setting, "agreement": self.agreement.to_dict(),
                "verdict": self.agreement.sentence(), "wall_s": self.wall_s, "train_wall_s": self.train_wall_s,
                "invocations": [self.invocation()], "steps": [s.to_dict() for s in self.steps]}

    def invocation(self) -> dict[str, Any]:
        """This invocation's line in ablation.json's `invocations` (a resumed folder keeps the earlier ones)."""
        return {"started": self.started, "wall_s": self.wall_s, "trained": self.trained_now,
                "seeds": list(self.seeds)}

    def steps_json(self) -> list[dict[str, Any]]:
        """The `--json` list: one object per row."""
        return [s.to_dict() for s in self.steps]
