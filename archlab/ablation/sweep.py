"""Fidelity against budget: replay one ladder at several multiples of its proxy budget and say, per budget, how
far the proxy agrees with the paper, and per step, whether it moves toward the paper as the budget grows.

`run_budget_sweep` runs `archlab.ablation.replay.run_ablation` once per budget, each in its own resumable run
folder (`budget-0.5/`, `budget-1/`, ...; the ladder with its proxy budget scaled), then writes sweep.json and
sweep.csv beside them. A step the proxy cannot resolve stays within 2 SE of seed noise at every budget; a step
it contradicts goes the other way beyond 2 SE at every budget. The figures are findings: nothing here is tuned.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from archlab.ablation.ladder import Ladder, load_ladder
from archlab.ablation.replay import Log, _stderr, default_out, run_ablation
from archlab.ablation.summary import AblationReport, StepSummary
from archlab.core.errors import ArchlabError, SpecError
from archlab.core.files import atomic_write, atomic_write_text
from archlab.measure.recipes import parse_multiplier

__all__ = ["BudgetPoint", "StepTrend", "SweepReport", "budget_folder", "parse_budgets", "run_budget_sweep",
           "scale_ladder", "sweep_from_reports"]

MAX_BUDGETS = 20                     # each budget is a whole replay of the ladder


def parse_budgets(text: str) -> tuple[Fraction, ...]:
    """'0.5,1,2' (or ratios such as '300/90') as distinct positive multipliers, smallest first."""
    parts = [p for p in (t.strip() for t in text.split(","))]
    if not parts or any(not p for p in parts):
        raise SpecError("--budgets", "must be a comma-separated list of positive multipliers such as 0.5,1,2", text)
    values = [parse_multiplier(p, "--budgets") for p in parts]
    if len(set(values)) != len(values):
        raise SpecError("--budgets", "must not repeat a budget", text)
    if len(values) > MAX_BUDGETS:
        raise SpecError("--budgets", f"must list at most {MAX_BUDGETS} budgets", text)
    return tuple(sorted(values))


def _label(multiplier: Fraction) -> str:
    return f"{float(multiplier):g}"


def budget_folder(out: str | Path, multiplier: Fraction) -> Path:
    """The run folder of one budget inside a sweep folder: budget-<multiplier>."""
    return Path(out) / f"budget-{_label(multiplier)}"


def scale_ladder(ladder: Ladder, multiplier: Fraction) -> Ladder:
    """The ladder with its proxy budget times `multiplier` (rows keep their own multipliers on top of it)."""
    if multiplier == 1:
        return ladder
    # no file text: the run folder keeps this ladder's own YAML, which states the scaled budget
    return replace(ladder, proxy=replace(ladder.proxy, budget=ladder.proxy.budget.scaled(multiplier)), text="")


@dataclass(frozen=True, slots=True)
class BudgetPoint:
    """One budget of a sweep: its agreement with the paper and each row's proxy top-1."""

    multiplier: float
    label: str
    report: AblationReport

    @property
    def beyond_noise(self) -> int:
        """Changes whose proxy difference is larger than 2 SE of seed noise (either direction)."""
        return sum(1 for s in self.report.steps if s.within_noise is False)

    def to_dict(self) -> dict[str, Any]:
        """sweep.json's entry for this budget."""
        a = self.report.agreement
        return {"multiplier": self.multiplier, "label": self.label, "out": self.report.out,
                "budget": self.report.setting["budget"], "spearman": a.spearman, "spearman_p": a.spearman_p,
                "n_ranked": a.n_ranked, "direction_agree": a.direction_agree, "direction_total": a.direction_total,
                "beyond_noise": self.beyond_noise, "agree_beyond_noise": a.agree_beyond_noise,
                "within_noise": a.within_noise, "disagree": list(a.disagree), "trained": self.report.trained,
                "wall_s": self.report.wall_s, "train_wall_s": self.report.train_wall_s,
                "top1": {s.step: s.top1_mean for s in self.report.steps},
                "top1_std": {s.step: s.top1_std for s in self.report.steps},
                "budget_images": {s.step: s.budget_images for s in self.report.steps}}


@dataclass(frozen=True, slots=True)
class StepTrend:
    """One change (a row against its parent) across budgets: its proxy difference beside the paper's.

    `toward` compares the gap |proxy change - paper change| at the largest budget with the one at the smallest;
    `unresolved` holds when the change is within 2 SE of seed noise at every budget, `contradicts` when it goes
    against the paper beyond 2 SE at every budget.
    """

    step: str
    paper_delta: float
    deltas: tuple[float | None, ...]          # one per budget, smallest budget first
    within_noise: tuple[bool | None, ...]
    directions: tuple[str | None, ...]

    @property
    def gaps(self) -> tuple[float | None, ...]:
        """|proxy change - paper change| per budget."""
        return tuple(None if d is None else abs(d - self.paper_delta) for d in self.deltas)

    @property
    def toward(self) -> bool | None:
        """Whether the gap to the paper shrinks from the smallest budget to the largest (None: not measured)."""
        gaps = [g for g in self.gaps if g is not None]
        return None if len(gaps) < 2 or len(gaps) != len(self.gaps) else gaps[-1] < gaps[0]

    @property
    def unresolved(self) -> bool:
        """Within seed noise at every budget."""
        return bool(self.within_noise) and all(n is True for n in self.within_noise)

    @property
    def contradicts(self) -> bool:
        """Opposite to the paper and beyond seed noise at every budget."""
        return bool(self.directions) and all(d == "disagree" and n is False
                                             for d, n in zip(self.directions, self.within_noise))

    def to_dict(self) -> dict[str, Any]:
        """sweep.json's entry for this change."""
        return {"step": self.step, "paper_delta": self.paper_delta, "deltas": list(self.deltas),
                "gaps": list(self.gaps), "within_noise": list(self.within_noise),
                "directions": list(self.directions), "toward": self.toward, "unresolved": self.unresolved,
                "contradicts": self.contradicts}


def _trends(points: Sequence[BudgetPoint]) -> tuple[StepTrend, ...]:
    by_budget: list[dict[str, StepSummary]] = [{s.step: s for s in p.report.steps} for p in points]
    out = []
    for s in points[0].report.steps:
        if s.paper_delta is None or s.parent is None:
            continue
        rows = [b[s.step] for b in by_budget]
        out.append(StepTrend(step=s.step, paper_delta=s.paper_delta, deltas=tuple(r.delta for r in rows),
                             within_noise=tuple(r.within_noise for r in rows),
                             directions=tuple(r.direction for r in rows)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SweepReport:
    """The outcome of a budget sweep: one point per budget, one trend per change, where it was written."""

    ladder: Ladder
    points: tuple[BudgetPoint, ...]
    trends: tuple[StepTrend, ...]
    out: str | None

    def to_dict(self) -> dict[str, Any]:
        """The sweep.json document."""
        return {"study": self.ladder.name, "title": self.ladder.title, "ladder_file": self.ladder.file,
                "budget": self.ladder.proxy.budget.limits(), "budgets": [p.multiplier for p in self.points],
                "points": [p.to_dict() for p in self.points], "trends": [t.to_dict() for t in self.trends],
                "toward": [t.step for t in self.trends if t.toward is True],
                "not_toward": [t.step for t in self.trends if t.toward is False],
                "unresolved": [t.step for t in self.trends if t.unresolved],
                "contradicts": [t.step for t in self.trends if t.contradicts]}


def sweep_from_reports(ladder: Ladder, reports: Sequence[tuple[Fraction, AblationReport]],
                       out: str | Path | None = None) -> SweepReport:
    """Gather per-budget replays (smallest budget first) into a SweepReport."""
    points = tuple(BudgetPoint(float(m), _label(m), r) for m, r in sorted(reports, key=lambda mr: mr[0]))
    if not points:
        raise ArchlabError("a budget sweep needs at least one budget")
    return SweepReport(ladder=ladder, points=points, trends=_trends(points), out=None if out is None else str(out))


def run_budget_sweep(ladder: Ladder | str | Path, budgets: Sequence[Fraction | float | str], *,
                     out: str | Path | None = None, train: bool = True, seeds: Sequence[int] | None = None,
                     log: Log | None = _stderr) -> SweepReport:
    """Replay `ladder` at each multiple of its proxy budget (smallest first, each in out/budget-<m>/, resumable)
    and write sweep.json and sweep.csv into `out`; without `train` and without `out` nothing is written."""
    if not isinstance(ladder, Ladder):
        ladder = load_ladder(ladder)
    multipliers = sorted({b if isinstance(b, Fraction) else parse_multiplier(b, "budgets") for b in budgets})
    out_dir = Path(out) if out is not None else (default_out(ladder) if train else None)
    if out_dir is not None and out_dir.exists() and (out_dir / "results.jsonl").exists():
        raise ArchlabError(f"{out_dir}: holds a single replay (results.jsonl); a budget sweep needs its own --out")
    reports = []
    for m in multipliers:
        if log:
            log(f"{ladder.name}: budget x{_label(m)}")
        sub = None if out_dir is None else budget_folder(out_dir, m)
        reports.append((m, run_ablation(scale_ladder(ladder, m), out=sub, train=train, seeds=seeds, log=log)))
    sweep = sweep_from_reports(ladder, reports, out_dir)
    if out_dir is not None:
        write_sweep(out_dir, sweep)
    return sweep


SWEEP_CSV_COLUMNS = ("step", "paper_top1", "paper_delta", "budget", "budget_images", "top1_mean", "top1_std",
                     "delta", "delta_se", "direction", "within_noise")


def write_sweep(out: str | Path, sweep: SweepReport) -> None:
    """Write sweep.json and sweep.csv (one line per (row, budget)) into the sweep folder, atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sweep.json", json.dumps(sweep.to_dict(), indent=2) + "\n")

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=SWEEP_CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for p in sweep.points:
                for s in p.report.steps:
                    row = {**s.to_dict(), "budget": p.label}
                    writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SWEEP_CSV_COLUMNS})
    atomic_write(out / "sweep.csv", write_csv)
