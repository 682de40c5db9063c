"""Limits on the work a search space may ask for, each checked in closed form before anything is enumerated.

A dimension's number of values, the number of dimensions, the combinations of the parameters that conditions
read (what counting and the corner walk enumerate), the largest network compound scaling can reach, and the
analytic cost of a point are bounded here; docs/search_spaces.md ("Limits") states the same numbers.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from archlab.arch.spec import MAX_IMG_SIZE, MAX_STAGE_DEPTH, MAX_WIDTH
from archlab.core.errors import SpecError

if TYPE_CHECKING:
    from archlab.space.format import Domain, Section, Slot

__all__ = ["MAX_DIMENSIONS", "MAX_DIM_VALUES", "MAX_ENUMERATED", "MAX_MACS", "MAX_PARAMS", "MAX_SAMPLE_TRIES",
           "check_dimension_count", "check_enumeration", "check_range_size", "check_scaling", "cost_violations",
           "range_size"]

MAX_DIM_VALUES = 100_000      # values of one dimension (an int range, a stepped float grid)
MAX_DIMENSIONS = 2_000        # searched parameters in one space (the shipped ones have under 60)
MAX_ENUMERATED = 1_000_000    # combinations of the parameters some `when` reads (counted one by one)
MAX_SAMPLE_TRIES = 200_000    # random draws `SearchSpace.sample` makes beyond the samples it keeps
MAX_PARAMS = 10 ** 10         # a point above either is refused before anything is built (~40 GB of weights)
MAX_MACS = 10 ** 13           # 10 TMACs: 250x EfficientNet-B7 at 600 px


def range_size(kind: str, low: float, high: float, step: float | None) -> float:
    """Number of values of an int range or stepped float grid without listing them (inf: continuous)."""
    if kind == "float" and step is None:
        return math.inf
    return math.floor((high - low) / (step or 1) + 1e-9) + 1


def check_range_size(kind: str, low: float, high: float, step: float | None, path: str) -> None:
    """Refuse a range with more than MAX_DIM_VALUES values (10^9 of them must not be listed)."""
    n = range_size(kind, low, high, step)
    if n != math.inf and n > MAX_DIM_VALUES:
        raise SpecError(path, f"has {n:,.0f} values, more than the limit of {MAX_DIM_VALUES:,} per dimension "
                        "(use a coarser step, or a continuous float range)", show_value=False)


def check_dimension_count(n: int) -> None:
    """Refuse a space with more than MAX_DIMENSIONS searched parameters."""
    if n > MAX_DIMENSIONS:
        raise SpecError("", f"has {n:,} searched parameters, more than the limit of {MAX_DIMENSIONS:,}",
                        show_value=False)


def check_enumeration(sizes: Iterable[float]) -> None:
    """Refuse conditions whose controlling parameters have more than MAX_ENUMERATED combinations.

    Counting a space's points and walking its corners enumerate exactly these combinations, so their
    product bounds that work from above.
    """
    total = 1.0
    for size in sizes:
        total *= size
        if total > MAX_ENUMERATED:
            raise SpecError("", f"has more than {MAX_ENUMERATED:,} combinations of the parameters that `when` "
                            "conditions (or tied dimensions) read; use fewer values or fewer conditions",
                            show_value=False)


def cost_violations(params: int, macs: int) -> list[str]:
    """The hard cost limits a point breaks (empty: within them)."""
    out = []
    if params > MAX_PARAMS:
        out.append(f"params {params:,} > the limit {MAX_PARAMS:,}")
    if macs > MAX_MACS:
        out.append(f"macs {macs:,} > the limit {MAX_MACS:,}")
    return out


# --- compound scaling -------------------------------------------------------------------------------------

def _values(dom: Domain | None, tied: dict[str, Domain]) -> tuple[Any, ...]:
    """Every value a domain can take (a continuous range by its ends); () for None."""
    if dom is None:
        return ()
    if dom.kind == "ref":
        dom = tied.get(dom.ref)
        if dom is None or dom.kind == "ref":
            return ()
    if dom.dim is None:   # kind "fixed": references were followed above
        return (dom.value,)
    values = dom.dim.values()
    return values if values is not None else (dom.dim.low, dom.dim.high)


def _numbers(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _field_max(sections: Iterable[Section], name: str, tied: dict[str, Domain]) -> float:
    """The largest value a stage/stem/head field can take before scaling (0 when none)."""
    best = 0.0
    for section in sections:
        if name == "depth" and section.depth is not None:
            best = max([best, *_numbers(_values(section.depth, tied))])
        for plan in section.plans.values():
            best = max([best, *_numbers([plan.fallback.get(name)])])
            for slot in plan.slots:
                if slot.field == name:
                    best = max([best, *_numbers(_values(slot.domain, tied))])
    return best


def check_scaling(*, scaling: tuple[Slot, ...], stem: Section, stages: tuple[Section, ...], head: Section,
                  globals_: tuple[Slot, ...], tied: dict[str, Domain], target: float, derive_gamma: bool) -> None:
    """Refuse scaling whose largest multipliers take a stage depth, a width or the input side past the spec's
    limits (phi = 100 scales depth by 1.2^100 = 8e7); computed in logarithms, so nothing overflows."""
    if not scaling:
        return
    given = {slot.field: _numbers(_values(slot.domain, tied)) for slot in scaling}
    log_depth = math.log(max(given.get("depth_mult") or [1.0]))
    log_width = math.log(max(given.get("width_mult") or [1.0]))
    log_res = 0.0
    if given.get("phi"):
        phi = max(given["phi"])
        alpha, beta = max(given.get("alpha") or [1.0]), max(given.get("beta") or [1.0])
        if derive_gamma:
            gamma = math.sqrt(target / (min(given.get("alpha") or [1.0]) * min(given.get("beta") or [1.0]) ** 2))
        else:
            gamma = max(given.get("gamma") or [1.0])
        log_depth += phi * math.log(alpha)
        log_width += phi * math.log(beta)
        log_res += phi * math.log(max(gamma, 1.0))
    key = "scaling.phi" if given.get("phi") else None
    checks = (
        ("depth", _field_max(stages, "depth", tied), log_depth, MAX_STAGE_DEPTH, key or "scaling.depth_mult"),
        ("width", max(_field_max((stem, *stages), "width", tied), _field_max((head,), "conv_width", tied)),
         log_width, MAX_WIDTH, key or "scaling.width_mult"),
        ("img_size", _img_sizes(globals_, tied), log_res, MAX_IMG_SIZE, "scaling.phi"),
    )
    for what, largest, log_factor, limit, path in checks:
        if largest <= 0 or log_factor <= 0:
            continue
        log_scaled = math.log(largest) + log_factor
        if log_scaled > math.log(limit) + 1e-9:
            factor = _exp_text(log_factor)
            raise SpecError(path, f"scales {what} by up to {factor}: a {what} of {largest:g} would become "
                            f"{_exp_text(log_scaled)}, over the limit of {limit:,}", show_value=False)


def _img_sizes(globals_: tuple[Slot, ...], tied: dict[str, Domain]) -> float:
    sizes = [v for s in globals_ if s.field == "img_size" for v in _numbers(_values(s.domain, tied))]
    return max(sizes or [0.0])


def _exp_text(log_value: float) -> str:
    """exp(log_value) as text, without overflowing for huge values."""
    if log_value < 700:
        return f"{math.exp(log_value):.3g}"
    return f"about 1e{log_value / math.log(10):.0f}"
