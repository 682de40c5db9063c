"""The space language's vocabulary and what a space file compiles to: immutable structures the decoder walks.

`archlab.space.format` compiles a file into these; `archlab.space.search_space` decodes points with them.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from archlab.arch.families import family_fields
from archlab.arch.spec import BLOCKS, STEMS

__all__ = ["AT_KEYS", "DOMAIN_KEYS", "FAMILY_FIELDS", "GLOBAL_FIELDS", "METRICS", "MONOTONE_FIELDS", "NEUTRAL_FIELDS",
           "SCALING_DIMS", "STEM_FIELDS", "STEM_SHARED", "TOP_KEYS", "Bound", "CompiledSpace", "Condition",
           "Dimension", "Domain", "Generated", "Plan", "Section", "Slot", "cost_role", "show"]

# --- vocabulary -----------------------------------------------------------------------------------------

GLOBAL_FIELDS = ("img_size", "in_chans", "num_classes", "drop_path_rate", "layer_scale_init")
SCALING_DIMS = ("phi", "alpha", "beta", "gamma", "width_mult", "depth_mult")
TOP_KEYS = ("kind", "name", "description", "base", *GLOBAL_FIELDS, "tied", "stem", "all_stages", "stages", "head",
            "scaling", "constraints", "landmarks", "generate")
DOMAIN_KEYS = ("choices", "low", "high", "step", "log", "value", "when")
METRICS = ("params", "macs")
AT_KEYS = ("img_size", "in_chans", "num_classes")

# Fields every stage reads whatever its family (STAGE_SHARED); the rest are each family's own, as its row in
# archlab.arch.families says: a field applies to a stage only where its family reads it.
FAMILY_FIELDS: dict[str, frozenset[str]] = family_fields()
STEM_SHARED = frozenset({"type", "width", "norm", "act"})
STEM_FIELDS: dict[str, frozenset[str]] = {
    "conv": frozenset({"kernel_size", "stride", "padding", "pool"}),
    "deep": frozenset({"stride", "pool"}),            # three fixed 3x3 convs
    "patchify": frozenset({"kernel_size", "stride", "padding"}),
    "identity": frozenset(),
}
assert set(FAMILY_FIELDS) == set(BLOCKS) and set(STEM_FIELDS) == set(STEMS)

# How a field moves params and MACs, for the feasibility proof: "up" never lowers either when the value
# grows, "neutral" changes neither, anything else is enumerated.
MONOTONE_FIELDS = frozenset({"width", "expand_ratio", "se_ratio", "conv_width", "pool_size", "img_size", "in_chans",
                             "num_classes", "layer_scale_init", *SCALING_DIMS})
NEUTRAL_FIELDS = frozenset({"act", "acts", "se_gate", "se_act", "drop_path_rate", "dropout"})


def cost_role(field_name: str) -> str:
    """How a field moves params and MACs: "neutral", "up" or "enum" (see MONOTONE_FIELDS above)."""
    if field_name in NEUTRAL_FIELDS:
        return "neutral"
    if field_name in MONOTONE_FIELDS:
        return "up"
    return "enum"


# --- compiled structures ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Dimension:
    """One searched parameter: its Optuna name, its values, and the condition under which it is suggested."""

    name: str                                  # Optuna parameter name, never contains '/'
    kind: str                                  # "categorical", "int" or "float"
    choices: tuple[Any, ...] | None = None     # categorical values (normalised, as in the spec)
    low: float | None = None
    high: float | None = None
    step: float | None = None                  # None: continuous (float) or 1 (int)
    log: bool = False
    condition: str = ""                        # "" when always suggested
    path: str = ""                             # key path in the space file
    field: str = ""                            # the spec field (or scaling multiplier) it sets
    role: str = "enum"                         # "up", "neutral" or "enum": how cost moves with the value

    @property
    def size(self) -> float:
        """Number of distinct values (math.inf for a continuous float range)."""
        values = self.values()
        return math.inf if values is None else len(values)

    def values(self) -> tuple[Any, ...] | None:
        """Every value in order, or None for a continuous float range."""
        if self.kind == "categorical":
            return self.choices
        if self.kind == "float" and self.step is None:
            return None
        assert self.low is not None and self.high is not None, "a range dimension has both ends"
        return _range_values(self.kind, self.low, self.high, self.step)

    def describe(self) -> str:
        """The values in a short readable form."""
        if self.kind == "categorical":
            assert self.choices is not None, "a categorical dimension has choices"
            return "{" + ", ".join(show(c) for c in self.choices) + "}"
        step = f" step {show(self.step)}" if self.step is not None else (" log" if self.log else "")
        return f"[{show(self.low)}, {show(self.high)}]{step}"


@functools.lru_cache(maxsize=512)
def _range_values(kind: str, low: float, high: float, step: float | None) -> tuple[Any, ...]:
    """An int range's or float grid's values, listed once per range (the corner walk asks for them often)."""
    if kind == "int":
        return tuple(range(int(low), int(high) + 1, int(step or 1)))
    assert step is not None, "a float range is listed only when it has a step"
    n = int(round((high - low) / step))
    return tuple(_grid(low, step, k) for k in range(n + 1))


def _grid(low: float, step: float, k: int) -> float:
    """The k-th value of a float grid, rounded so that 0.1 + 0.2 style noise never changes an arch_id."""
    return round(low + k * step, 12)


def show(value: Any) -> str:
    """A value as a space file writes it (1.0 not 1, [a, b] for a tuple, null for None)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    if isinstance(value, tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return "null" if value is None else str(value)


Condition = tuple[tuple[str, bool, tuple[Any, ...]], ...]   # ((name, negate, values), ...): all must hold


@dataclass(frozen=True, slots=True)
class Domain:
    """How one field gets its value: a fixed value, a searched dimension, or a tied dimension by name."""

    kind: str                       # "fixed", "dim" or "ref"
    value: Any = None               # fixed
    dim: Dimension | None = None    # dim
    ref: str = ""                   # ref: a name in `tied`
    when: Condition = ()
    path: str = ""


@dataclass(frozen=True, slots=True)
class Slot:
    """A field to resolve while decoding, in define-by-run order."""

    field: str
    domain: Domain


@dataclass(frozen=True, slots=True)
class Plan:
    """How to resolve a section once its selector (block family, stem type) is known."""

    slots: tuple[Slot, ...]         # applicable fields, dependencies first
    fallback: dict[str, Any]        # every other field's value: fixed in the file, else base, else default
    controllers: frozenset[str]     # fields named by some `when` in this plan


@dataclass(frozen=True, slots=True)
class Section:
    """A stem, stage or head: an optional depth, an optional selector, and one plan per selector value."""

    kind: str                                   # "stem", "stage" or "head"
    prefix: str                                 # parameter-name prefix: "stem", "stage2", "head"
    path: str                                   # key path for messages
    depth: Domain | None                        # stages only
    selector: Domain | None                     # block (stages) or type (stem)
    plans: dict[str | None, Plan]               # keyed by selector value (None for the head)


@dataclass(frozen=True, slots=True)
class Generated:
    """A generated structure: a generator (archlab.arch.generators) whose searched numbers produce the stages."""

    rule: str                                   # a name in GENERATORS
    slots: tuple[Slot, ...]                     # the generator's parameters, in its order
    template: dict[str, Any]                    # fixed StageSpec fields every generated stage shares (all_stages)


@dataclass(frozen=True, slots=True)
class Bound:
    """A bound on params or MACs, evaluated with `at` (img_size, in_chans, num_classes) replaced."""

    metric: str
    low: float | None
    high: float | None
    at: tuple[tuple[str, int], ...]
    path: str


@dataclass(frozen=True, slots=True)
class CompiledSpace:
    """A validated space file: the decoding program and everything `archlab space describe` shows."""

    name: str
    description: str
    base: str | None
    file: str | None
    tied: tuple[tuple[str, Domain], ...]
    globals_: tuple[Slot, ...]                  # img_size, in_chans, num_classes, drop_path_rate
    layer_scale: Slot                           # resolved after the stages (applies to convnext stages only)
    stem: Section
    stages: tuple[Section, ...]
    head: Section
    scaling: tuple[Slot, ...]                   # phi, alpha, beta, gamma, width_mult, depth_mult
    target: float                               # alpha * beta^2 * gamma^2 target
    tolerance: float                            # relative tolerance on the target
    derive_gamma: bool                          # gamma solves alpha*beta^2*gamma^2 = target
    bounds: tuple[Bound, ...]
    landmarks: dict[str, dict[str, Any]]
    dimensions: tuple[Dimension, ...]
    lines: dict[str, int] = field(default_factory=dict)
    generate: Generated | None = None           # set: `stages` is empty and the generator makes them
