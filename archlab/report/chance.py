"""Is there anything to rank? A search's or an ablation's top-1 values against chance, for the report.

Pure functions from a run folder as read (archlab.report.data) to archlab.measure.chance's verdict; the writer
puts its message ("the budget is too small to rank these networks") above the overview.
"""
from __future__ import annotations

from typing import Any

from archlab.measure.chance import ChanceCheck, chance_check
from archlab.report.data import AblationRun, SearchRun

__all__ = ["ablation_chance", "search_chance"]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def search_chance(run: SearchRun) -> ChanceCheck | None:
    """Whether a search's complete trials sit within noise of chance; the classes and evaluation images come
    from summary.json (written since archlab records them), else from a trial's spec."""
    if "top1" not in run.table.columns or "state" not in run.table.columns:
        return None
    num_classes = _int(run.summary.get("num_classes")) or _trial_classes(run)
    if num_classes is None:
        return None
    top1 = run.table.loc[run.table["state"] == "complete", "top1"].tolist()
    return chance_check(top1, num_classes, n_eval=_int(run.summary.get("n_eval")))


def _trial_classes(run: SearchRun) -> int | None:
    """num_classes of the first trial spec that states it."""
    import yaml
    for info in run.archs.values():
        try:
            doc = yaml.safe_load(info.yaml)
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and _int(doc.get("num_classes")):
            return int(doc["num_classes"])
    return None


def ablation_chance(run: AblationRun) -> ChanceCheck | None:
    """Whether an ablation's trained rows (their mean proxy top-1 over seeds) sit within noise of chance."""
    setting = run.doc.get("setting") or {}
    num_classes = _int(setting.get("num_classes"))
    if num_classes is None:
        return None
    top1 = [s.get("top1_mean") for s in run.steps]
    return chance_check([v for v in top1 if isinstance(v, (int, float))], num_classes,
                        n_eval=_int(setting.get("eval_images")))
