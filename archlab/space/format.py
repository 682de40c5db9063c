"""The search-space file format: parse and validate a YAML mapping into a compiled, immutable space plan.

A space file names, for every field of an `ArchSpec`, either a fixed value, a list of choices, an int or
float range, or a `$name` reference to a tied dimension, optionally guarded by `when:`. Per-stage entries,
an `all_stages` template and family (or stem type) subsections give conditional parameters; `base:` starts
from a zoo network; `scaling:` adds compound scaling (Tan and Le, "EfficientNet", ICML 2019); `constraints:`
bound parameters and MACs. docs/search_spaces.md is the reference with examples.

Everything here is torch-free and runs once per file: decoding points is `archlab.space.search_space`'s job.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from archlab.arch.families import STAGE_SHARED, check_owned_field, family, family_fields, owner_of
from archlab.arch.generators import GENERATORS
from archlab.arch.spec import BLOCKS, MAX_IMG_SIZE, MAX_WIDTH, STEMS, ArchSpec, HeadSpec, StageSpec, StemSpec
from archlab.core.errors import SpecError, did_you_mean
from archlab.core.schema import coerce, line_of
from archlab.core.yamlio import parse_number as _number
from archlab.space.limits import check_dimension_count, check_range_size, check_scaling

__all__ = ["CompiledSpace", "Dimension", "Domain", "Generated", "Section", "Slot", "compile_space"]

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
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
        return _range_values(self.kind, self.low, self.high, self.step)  # type: ignore[arg-type]

    def describe(self) -> str:
        """The values in a short readable form."""
        if self.kind == "categorical":
            return "{" + ", ".join(_show(c) for c in self.choices) + "}"
        step = f" step {_show(self.step)}" if self.step is not None else (" log" if self.log else "")
        return f"[{_show(self.low)}, {_show(self.high)}]{step}"


@functools.lru_cache(maxsize=512)
def _range_values(kind: str, low: float, high: float, step: float | None) -> tuple[Any, ...]:
    """An int range's or float grid's values, listed once per range (the corner walk asks for them often)."""
    if kind == "int":
        return tuple(range(int(low), int(high) + 1, int(step or 1)))
    n = int(round((high - low) / step))  # type: ignore[operator]
    return tuple(_grid(low, step, k) for k in range(n + 1))  # type: ignore[arg-type]


def _grid(low: float, step: float, k: int) -> float:
    """The k-th value of a float grid, rounded so that 0.1 + 0.2 style noise never changes an arch_id."""
    return round(low + k * step, 12)


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
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


@dataclass(frozen=True)
class _Part:
    """The grammar of one part of a network (stem, stage or head): its record type and how families select fields."""
    kind: str                                   # "stem", "stage" or "head"
    cls: type                                   # StemSpec, StageSpec or HeadSpec
    selector: str | None                        # the field that picks the family ("type", "block"), if any
    selector_values: tuple[str, ...]            # the families, which may also be subsection keys
    shared: frozenset[str]                      # fields every family reads
    variant_fields: dict[str, frozenset[str]]   # family -> the fields only it reads
    default: dict[str, Any]                     # the record's defaults, for fields nobody gives


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


# --- entry point ---------------------------------------------------------------------------------------------

def compile_space(data: Any, *, file: str | None = None, lines: dict[str, int] | None = None) -> CompiledSpace:
    """Validate a parsed space file and compile it; errors name the file, line, key path, rule and value."""
    try:
        return _Compiler(data, file).run(lines or {})
    except SpecError as err:
        raise err.with_context(file=file, line=line_of(lines or {}, err.path)) from None


# --- helpers ---------------------------------------------------------------------------------------------------

def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(path or "the file", "must be a mapping", value)
    return value


def _check_keys(data: dict[Any, Any], allowed: typing.Iterable[str], path: str) -> None:
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(where, "is not a known key" + did_you_mean(str(key), allowed), show_value=False)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """typing.get_type_hints, once per class: it evaluates every annotation again on each call, which made
    compiling a space of many stages quadratic-looking in time (minutes for 2,000 stages)."""
    return typing.get_type_hints(cls)


def _hint_kind(cls: type, name: str) -> str:
    """'int', 'float', 'str', 'bool', 'tuple' or 'other' for a dataclass field's type hint."""
    hint = _type_hints(cls)[name]
    options = [h for h in typing.get_args(hint) if h is not type(None)] or [hint]
    base = options[0]
    if typing.get_origin(base) is tuple:
        return "tuple"
    return {int: "int", float: "float", str: "str", bool: "bool"}.get(base, "other")


# --- the compiler ----------------------------------------------------------------------------------------------

class _Compiler:
    """One pass over a space file; every check raises SpecError with the key path."""

    def __init__(self, data: Any, file: str | None) -> None:
        self.data = _mapping(data, "")
        self.file = file
        self.dims: list[Dimension] = []
        self.dim_names: dict[str, str] = {}          # name -> path, to refuse clashing names
        self.tied: dict[str, Domain] = {}
        self.tied_uses: dict[str, set[str]] = {}     # tied name -> fields that use it
        self.conditions: dict[str, str] = {}         # parameter name -> when it is suggested, for describe
        self.when_of: dict[str, str] = {}

    # -- top level --
    def run(self, lines: dict[str, int]) -> CompiledSpace:
        data = self.data
        _check_keys(data, TOP_KEYS, "")
        kind = data.get("kind", "space")
        if kind not in ("space", "search_space"):
            raise SpecError("kind", "must be space for a search-space file", kind)
        name = data.get("name", "")
        if not isinstance(name, str):
            raise SpecError("name", "must be a string", name)
        if not name and self.file:
            name = re.sub(r"\.(ya?ml)$", "", self.file.replace("\\", "/").rsplit("/", 1)[-1])
        description = data.get("description", "")
        if not isinstance(description, str):
            raise SpecError("description", "must be a string", description)
        self.base = self._base(data.get("base"))

        self._tied(data.get("tied", {}))
        globals_ = tuple(self._global(f) for f in GLOBAL_FIELDS if f != "layer_scale_init")
        stem = self._stem(data.get("stem", {}))
        generate = None
        if "generate" in data:
            if "stages" in data:
                raise SpecError("stages", "cannot be given with generate: (the generator makes the stages)",
                                show_value=False)
            generate = self._generate(data["generate"], _mapping(data.get("all_stages", {}), "all_stages"))
            stages: tuple[Section, ...] = ()
        else:
            stages = self._stages(data.get("all_stages", {}), data.get("stages"))
        head = self._head(data.get("head", {}))
        layer_scale = self._global("layer_scale_init")   # decoded after the stages: it applies to convnext only
        scaling, target, tolerance, derive_gamma = self._scaling(data.get("scaling"))
        bounds = self._constraints(data.get("constraints", {}))
        landmarks = self._landmarks(data.get("landmarks", {}))
        self._check_tied_used()
        check_dimension_count(len(self.dims))
        check_scaling(scaling=scaling, stem=stem, stages=stages, head=head, globals_=globals_, tied=self.tied,
                      target=target, derive_gamma=derive_gamma)
        return CompiledSpace(
            name=name, description=description.strip(), base=data.get("base"), file=self.file,
            tied=tuple(self.tied.items()), globals_=globals_, layer_scale=layer_scale, stem=stem,
            stages=stages, head=head, scaling=scaling, target=target, tolerance=tolerance,
            derive_gamma=derive_gamma, bounds=bounds, landmarks=landmarks, dimensions=tuple(self._final_dims()),
            lines=lines, generate=generate)

    def _final_dims(self) -> list[Dimension]:
        """Dimensions with their conditions, and tied ones with the cost role of the fields that use them."""
        out = []
        for dim in self.dims:
            changes: dict[str, Any] = {"condition": self.conditions.get(dim.name, dim.condition)}
            if dim.name in self.tied_uses:
                roles = {_role(f) for f in self.tied_uses[dim.name]}
                changes["role"] = roles.pop() if len(roles) == 1 else "enum"
                changes["field"] = ",".join(sorted(self.tied_uses[dim.name]))
            out.append(replace(dim, **changes))
        return out

    def _base(self, name: Any) -> ArchSpec | None:
        if name is None:
            return None
        from archlab.arch.zoo import ZOO, get_spec
        if not isinstance(name, str) or name not in ZOO:
            raise SpecError("base", "must name a zoo network" + did_you_mean(str(name), ZOO.names()), name)
        return get_spec(name)

    # -- tied dimensions --
    def _tied(self, raw: Any) -> None:
        raw = _mapping(raw, "tied")
        for key, value in raw.items():
            path = f"tied.{key}"
            if not isinstance(key, str) or not _NAME.match(key):
                raise SpecError(path, "must be a name of letters, digits and underscores", key)
            if key in GLOBAL_FIELDS or key in ("stem", "head", "scaling") or re.match(r"^stage\d+$", key):
                raise SpecError(path, "clashes with a parameter name archlab uses; pick another name", key)
            # values are checked against each field that uses them (see _use_tied)
            domain = self._domain(value, path, None, name=key, hint="number", allow_ref=False,
                                  scope=set(self.tied))
            if domain.kind == "dim":
                self.conditions[key] = _when_text(domain.when, "", set())
            self.tied[key] = domain
            self.tied_uses[key] = set()

    def _check_tied_used(self) -> None:
        for key, uses in self.tied_uses.items():
            if not uses:
                raise SpecError(f"tied.{key}", "is never used: refer to it as $" + key + " in a field",
                                show_value=False)

    def _use_tied(self, ref: str, path: str, probe: typing.Callable[[Any, str], Any], field_name: str) -> None:
        """Check every value of tied dimension `ref` against a field that uses it."""
        if ref not in self.tied:
            hint = did_you_mean(ref, self.tied) if self.tied else " (the file has no tied: section)"
            raise SpecError(path, "refers to an unknown tied dimension" + hint, f"${ref}")
        domain = self.tied[ref]
        self.tied_uses[ref].add(field_name)
        values = (domain.value,) if domain.kind == "fixed" else (domain.dim.values() or (domain.dim.low,
                                                                                          domain.dim.high))
        for value in values:
            probe(value, path)

    # -- domains --
    def _domain(self, raw: Any, path: str, probe: typing.Callable[[Any, str], Any] | None, *, name: str,
                hint: str = "other", field_name: str = "", allow_ref: bool = True, scope: set[str] | None = None,
                role: str | None = None) -> Domain:
        """Parse one field's value: scalar, list of choices, {choices|low/high|value, when}, or `$name`."""
        when: Condition = ()
        if isinstance(raw, dict):
            _check_keys(raw, DOMAIN_KEYS, path)
            if "when" in raw:
                when = self._when(raw["when"], f"{path}.when", scope or set())
            given = [k for k in ("choices", "value", "low") if k in raw]
            if "high" in raw and "low" not in raw:
                raise SpecError(f"{path}.low", "is required with high", show_value=False)
            if len(given) != 1:
                raise SpecError(path, "needs exactly one of choices, value or low/high", show_value=False)
            if given[0] == "low":
                return self._range(raw, path, probe, name=name, hint=hint, field_name=field_name, when=when,
                                   role=role)
            leftover = [k for k in ("step", "log") if k in raw]
            if leftover:
                raise SpecError(f"{path}.{leftover[0]}", "applies only to a low/high range", show_value=False)
            if given[0] == "value":
                raw = raw["value"]
                if isinstance(raw, str) and raw.startswith("$") and allow_ref:
                    return self._ref(raw, path, probe, field_name, when)
                return Domain("fixed", value=self._probe(probe, raw, f"{path}.value"), when=when, path=path)
            return self._choices(raw["choices"], f"{path}.choices", probe, name=name, field_name=field_name,
                                 when=when, role=role)
        if isinstance(raw, str) and raw.startswith("$"):
            if not allow_ref:
                raise SpecError(path, "may not refer to another tied dimension", raw)
            return self._ref(raw, path, probe, field_name, when)
        if isinstance(raw, list) and not (hint == "tuple" and not any(isinstance(v, list) for v in raw)):
            return self._choices(raw, path, probe, name=name, field_name=field_name, when=when, role=role)
        return Domain("fixed", value=self._probe(probe, raw, path), path=path)

    def _ref(self, raw: str, path: str, probe: typing.Callable[[Any, str], Any] | None, field_name: str,
             when: Condition) -> Domain:
        ref = raw[1:]
        if probe is not None:
            self._use_tied(ref, path, probe, field_name)
        return Domain("ref", ref=ref, when=when, path=path)

    @staticmethod
    def _probe(probe: typing.Callable[[Any, str], Any] | None, value: Any, path: str) -> Any:
        return value if probe is None else probe(value, path)

    def _choices(self, raw: Any, path: str, probe: typing.Callable[[Any, str], Any] | None, *, name: str,
                 field_name: str, when: Condition, role: str | None) -> Domain:
        if not isinstance(raw, list):
            raise SpecError(path, "must be a list of choices", raw)
        if not raw:
            raise SpecError(path, "must hold at least one choice", raw)
        check_range_size("int", 1, len(raw), 1, path)   # the per-dimension cap holds for choices too
        values: list[Any] = []
        seen: set[Any] = set()   # hashable choices are compared in O(1): a long list is not quadratic
        for i, item in enumerate(raw):
            value = self._probe(probe, item, f"{path}[{i}]")
            try:
                repeated = value in seen
                seen.add(value)
            except TypeError:
                repeated = value in values
            if repeated:
                raise SpecError(f"{path}[{i}]", "repeats an earlier choice", item)
            values.append(value)
        if len(values) == 1:
            return Domain("fixed", value=values[0], when=when, path=path)
        dim = self._add_dim(Dimension(name=name, kind="categorical", choices=tuple(values), path=path,
                                      field=field_name, role=role or _role(field_name)))
        return Domain("dim", dim=dim, when=when, path=path)

    def _range(self, raw: dict[str, Any], path: str, probe: typing.Callable[[Any, str], Any] | None, *, name: str,
               hint: str, field_name: str, when: Condition, role: str | None) -> Domain:
        if hint not in ("int", "float", "number"):
            raise SpecError(path, "is not numeric: give choices instead of low/high", show_value=False)
        if "high" not in raw:
            raise SpecError(f"{path}.high", "is required with low", show_value=False)
        low = _number(raw["low"], f"{path}.low")
        high = _number(raw["high"], f"{path}.high")
        step = _number(raw["step"], f"{path}.step") if "step" in raw else None
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise SpecError(f"{path}.log", "must be true or false", log)
        if hint == "number":   # a tied range: int when every bound is an integer
            hint = "int" if all(isinstance(v, int) for v in (low, high, step) if v is not None) else "float"
        if hint == "int":
            for key, value in (("low", low), ("high", high), ("step", step)):
                if value is not None and not (isinstance(value, int) or float(value).is_integer()):
                    raise SpecError(f"{path}.{key}", "must be an integer", value)
            low, high = int(low), int(high)
            step = int(step) if step is not None else None
        else:
            low, high = float(low), float(high)
            step = float(step) if step is not None else None
        if low > high:
            raise SpecError(path, f"low must be <= high, got (low={low}, high={high})", show_value=False)
        if step is not None:
            if step <= 0:
                raise SpecError(f"{path}.step", "must be > 0", step)
            if log:
                raise SpecError(f"{path}.log", "cannot be combined with step", log)
            spans = (high - low) / step
            if abs(spans - round(spans)) > 1e-9:
                raise SpecError(f"{path}.step", f"must divide high - low ({high - low:g})", step)
        if log and low <= 0:
            raise SpecError(f"{path}.low", "must be > 0 for a log range", low)
        check_range_size(hint, low, high, step, path)   # before any value is listed (10^9 of them must not be)
        kind = hint
        dim = Dimension(name=name, kind=kind, low=low, high=high, step=step if kind == "float" else (step or 1),
                        log=log, path=path, field=field_name, role=role or _role(field_name))
        values = dim.values()
        if probe is not None:
            # check every value of a short grid (an even kernel size inside 3..7 is an error), else the ends
            for value in (values if values is not None and len(values) <= 64 else (low, high)):
                probe(value, path)
        if values is not None and len(values) == 1:
            return Domain("fixed", value=values[0], when=when, path=path)
        return Domain("dim", dim=self._add_dim(dim), when=when, path=path)

    def _add_dim(self, dim: Dimension) -> Dimension:
        if "/" in dim.name:  # Ray Tune splits on '/', archlab never produces one
            raise AssertionError(dim.name)
        if dim.name in self.dim_names:
            raise SpecError(dim.path, f"defines parameter {dim.name!r} twice (also at {self.dim_names[dim.name]})",
                            show_value=False)
        self.dim_names[dim.name] = dim.path
        self.dims.append(dim)
        return dim

    def _when(self, raw: Any, path: str, scope: set[str]) -> Condition:
        raw = _mapping(raw, path)
        if not raw:
            raise SpecError(path, "must name at least one condition", raw)
        out = []
        for key, cond in raw.items():
            if key not in scope:
                raise SpecError(f"{path}.{key}", "names no field or tied dimension it could depend on"
                                + did_you_mean(str(key), scope), show_value=False)
            negate = False
            if isinstance(cond, dict):
                _check_keys(cond, ("not",), f"{path}.{key}")
                if "not" not in cond:
                    raise SpecError(f"{path}.{key}", "must be a value, a list of values or {not: ...}", cond)
                negate, cond = True, cond["not"]
            values = tuple(cond) if isinstance(cond, list) else (cond,)
            if not values:
                raise SpecError(f"{path}.{key}", "must hold at least one value", cond)
            out.append((key, negate, values))
        return tuple(out)

    # -- globals --
    def _global(self, name: str) -> Slot:
        default = getattr(self.base, name) if self.base is not None else _DEFAULTS[name]
        if name not in self.data:
            return Slot(name, Domain("fixed", value=default, path=name))
        scope = set(self.tied) | {f for f in GLOBAL_FIELDS[:GLOBAL_FIELDS.index(name)]}
        domain = self._domain(self.data[name], name, _probe_global(name), name=name, hint=_hint_kind(ArchSpec, name),
                              field_name=name, scope=scope)
        if domain.kind == "dim":
            readers = [f for f in BLOCKS if family(f).layer_scale]
            auto = f"some stage is {' or '.join(readers)}" if name == "layer_scale_init" else ""
            self.conditions[name] = _join(auto, _when_text(domain.when, "", set()))
        return Slot(name, domain)

    # -- stem --
    def _stem(self, raw: Any) -> Section:
        raw = _mapping(raw, "stem")
        base = _values(self.base.stem) if self.base is not None else _values(StemSpec())
        part = _Part("stem", StemSpec, "type", STEMS, STEM_SHARED, STEM_FIELDS, _values(StemSpec()))
        return self._section(part, "stem", "stem", raw, {}, base)

    def _head(self, raw: Any) -> Section:
        raw = _mapping(raw, "head")
        base = _values(self.base.head) if self.base is not None else _values(HeadSpec())
        part = _Part("head", HeadSpec, None, (), frozenset(), {}, _values(HeadSpec()))
        return self._section(part, "head", "head", raw, {}, base)

    # -- generated structure --
    def _generate(self, raw: Any, template_raw: dict[str, Any]) -> Generated:
        """`generate:` names a generator and gives each of its parameters a value, choices or a range."""
        raw = _mapping(raw, "generate")
        rule = raw.get("rule")
        if not isinstance(rule, str) or rule not in GENERATORS:
            raise SpecError("generate.rule", "must name a structure generator"
                            + did_you_mean(str(rule), GENERATORS.names()), rule)
        gen = GENERATORS.get(rule)
        _check_keys(raw, ("rule", *gen.params), "generate")

        def probe(value: Any, path: str, key: str) -> Any:
            value = _number(value, path) if isinstance(value, str) else value
            try:
                gen.check(key, value)
            except SpecError as err:
                _reraise(err, path)
            return value

        slots = []
        for key, default in gen.params.items():
            path = f"generate.{key}"
            if key not in raw:
                if default is None:
                    raise SpecError(path, f"is required by the {rule} generator", show_value=False)
                slots.append(Slot(key, Domain("fixed", value=default, path=path)))
                continue
            dom = self._domain(raw[key], path, lambda v, p, k=key: probe(v, p, k), name=path, hint="number",
                               field_name=key, scope=set(self.tied), role="enum")
            if dom.kind == "dim":
                self.conditions[dom.dim.name] = _when_text(dom.when, "", set())
            slots.append(Slot(key, dom))
        names = [f.name for f in fields(StageSpec)]
        stage_probe = _probe_section(StageSpec, False)
        template = {}
        for key, value in template_raw.items():
            path = f"all_stages.{key}"
            if key not in names:
                raise SpecError(path, "is not a known key" + did_you_mean(str(key), names), show_value=False)
            if key in gen.sets:
                raise SpecError(path, f"is set by the {rule} generator: give it under generate:", show_value=False)
            if isinstance(value, (list, dict)) or (isinstance(value, str) and value.startswith("$")):
                raise SpecError(path, "must be one fixed value with generate: (every generated stage shares it)",
                                value)
            template[key] = stage_probe(key, value, path)
        return Generated(rule=rule, slots=tuple(slots), template=template)

    # -- stages --
    def _stages(self, all_raw: Any, raw: Any) -> tuple[Section, ...]:
        all_raw = _mapping(all_raw, "all_stages")
        if raw is None:
            if self.base is None:
                raise SpecError("stages", "is required without a base network", show_value=False)
            raw = [{} for _ in self.base.stages]
        if not isinstance(raw, list):
            raise SpecError("stages", "must be a list with one mapping per stage", raw)
        if not raw:
            raise SpecError("stages", "must hold at least one stage", raw)
        if self.base is not None and len(raw) != len(self.base.stages):
            raise SpecError("stages", f"must have {len(self.base.stages)} entries, one per stage of base "
                            f"{self.data['base']}", f"{len(raw)} entries")
        part = _Part("stage", StageSpec, "block", BLOCKS, STAGE_SHARED, FAMILY_FIELDS, _stage_defaults())
        sections = []
        for i, stage_raw in enumerate(raw):
            stage_raw = _mapping(stage_raw, f"stages[{i}]")
            base = _values(self.base.stages[i]) if self.base is not None else None
            sections.append(self._section(part, f"stage{i}", f"stages[{i}]", stage_raw, all_raw, base))
        if all(s.depth is not None and s.depth.kind == "fixed" and s.depth.value == 0 for s in sections):
            raise SpecError("stages", "must keep at least one stage (every depth is 0)", show_value=False)
        return tuple(sections)

    def _section(self, part: _Part, prefix: str, path: str, raw: dict[str, Any], template: dict[str, Any],
                 base: dict[str, Any] | None) -> Section:
        """Compile a stem/stage/head: its own keys beat `all_stages`, family subsections beat plain keys."""
        kind, cls, selector, selector_values = part.kind, part.cls, part.selector, part.selector_values
        names = [f.name for f in fields(cls)]
        allowed = names + list(selector_values)
        _check_keys(raw, allowed, path)
        _check_keys(template, allowed, "all_stages")
        layers = [("all_stages", template), (path, raw)]   # later layers win
        for where, layer in layers:
            for value_key in selector_values:
                if value_key in layer:
                    sub = _mapping(layer[value_key], f"{where}.{value_key}")
                    _check_keys(sub, [n for n in names if n not in (selector, "depth")], f"{where}.{value_key}")

        def raw_for(field_name: str, variant: str | None) -> tuple[Any, str, str | None] | None:
            """The most specific entry for a field: stage family > stage > all_stages family > all_stages."""
            for where, layer in reversed(layers):
                if variant is not None and isinstance(layer.get(variant), dict) and field_name in layer[variant]:
                    return layer[variant][field_name], f"{where}.{variant}.{field_name}", variant
                if field_name in layer:
                    return layer[field_name], f"{where}.{field_name}", None
            return None

        padding = raw_for("padding", None)
        valid_padding = padding is not None and (padding[0] == "valid" or
                                                 (isinstance(padding[0], list) and "valid" in padding[0]))
        probe = _probe_section(cls, valid_padding)
        hints = {n: _hint_kind(cls, n) for n in names}
        compiled: dict[tuple[str, str | None], Domain] = {}
        scope = set(self.tied) | set(names)

        def domain_for(field_name: str, variant: str | None) -> Domain | None:
            entry = raw_for(field_name, variant)
            if entry is None:
                return None
            value, where, found_in = entry
            if (where, found_in) not in compiled:
                name = f"{prefix}.{found_in}.{field_name}" if found_in else f"{prefix}.{field_name}"
                role = None
                if field_name == "depth":
                    role = "depth"
                elif field_name == "kernel_size":
                    role = "up" if kind == "stage" and not valid_padding else "enum"
                compiled[(where, found_in)] = self._domain(
                    value, where, lambda v, p, f=field_name: probe(f, v, p), name=name, hint=hints[field_name],
                    field_name=field_name, scope=scope, role=role)
            return compiled[(where, found_in)]

        # depth and selector come first: a stage of depth 0 is left out, and the selector decides applicability
        depth = self._depth(kind, path, base, domain_for)
        sel, sel_values = self._selector(part, path, base, domain_for)
        plans = {value: self._plan(part, path, value, names, base, domain_for, only=len(sel_values) == 1)
                 for value in sel_values}
        if kind == "stage":
            for plan in plans.values():
                if plan.fallback["width"] is None and not any(s.field == "width" for s in plan.slots):
                    raise SpecError(path, "is missing required key(s) width", show_value=False)
        self._record_conditions(prefix, selector, depth, sel, sel_values, plans, scope)
        return Section(kind=kind, prefix=prefix, path=path, depth=depth, selector=sel, plans=plans)

    def _depth(self, kind: str, path: str, base: dict[str, Any] | None,
               domain_for: typing.Callable[[str, str | None], Domain | None]) -> Domain | None:
        """A stage's depth domain (the base's when not given); None for a stem or head."""
        if kind != "stage":
            return None
        depth = domain_for("depth", None)
        if depth is None:
            if base is None:
                raise SpecError(path, "is missing required key(s) depth", show_value=False)
            depth = Domain("fixed", value=base["depth"], path=f"{path}.depth")
        if depth.kind == "ref" or depth.when:
            raise SpecError(depth.path, "cannot be tied or guarded by when (depth 0 already removes a stage)",
                            show_value=False)
        return depth

    def _selector(self, part: _Part, path: str, base: dict[str, Any] | None,
                  domain_for: typing.Callable[[str, str | None], Domain | None]
                  ) -> tuple[Domain | None, tuple[Any, ...]]:
        """The family selector's domain and the families it can take (one when it is fixed or absent)."""
        selector = part.selector
        if selector is None:
            return None, (None,)
        sel = domain_for(selector, None)
        if sel is not None and (sel.when or (sel.kind == "ref" and self.tied[sel.ref].when)):
            raise SpecError(sel.path, f"cannot be guarded by when: {selector} decides which fields apply",
                            show_value=False)
        if sel is not None:
            return sel, _domain_values(sel, self.tied)
        if (base or part.default).get(selector) is None:
            raise SpecError(path, f"is missing required key(s) {selector}", show_value=False)
        return None, ((base or part.default)[selector],)

    def _record_conditions(self, prefix: str, selector: str | None, depth: Domain | None, sel: Domain | None,
                           sel_values: tuple[Any, ...], plans: dict[Any, Plan], scope: set[str]) -> None:
        """Conditions shown by `describe`: depth > 0, the families a field applies to, and its own `when`."""
        live = f"{prefix}.depth > 0" if depth is not None and _can_be_zero(depth) else ""
        for dom in (depth, sel):
            if dom is not None and dom.kind == "dim":
                self.conditions[dom.dim.name] = live if dom is sel else ""
        seen: dict[str, list[Any]] = {}
        for value, plan in plans.items():
            for slot in plan.slots:
                if slot.domain.kind == "dim":
                    seen.setdefault(slot.domain.dim.name, []).append(value)
                    self.when_of[slot.domain.dim.name] = _when_text(slot.domain.when, prefix, scope - set(self.tied))
        for name, values in seen.items():
            family = ""
            if len(values) < len(sel_values):
                family = f"{prefix}.{selector} = {values[0]}" if len(values) == 1 else \
                    f"{prefix}.{selector} in ({', '.join(map(str, values))})"
            self.conditions[name] = _join(live, family, self.when_of.get(name, ""))

    def _plan(self, part: _Part, path: str, value: Any, names: list[str], base: dict[str, Any] | None,
              domain_for: typing.Callable[[str, str | None], Domain | None], *, only: bool = False) -> Plan:
        """Slots and fallbacks of one section for one selector value (`only`: the selector has no other)."""
        kind, selector, shared, default = part.kind, part.selector, part.shared, part.default
        same_family = base is not None and (selector is None or base.get(selector) == value)
        if selector is None:
            reads: frozenset[str] | None = None
        elif kind == "stem" and value == "identity":
            reads = frozenset()
        else:
            reads = shared | part.variant_fields[value]
        # every field gets an entry, in the dataclass's order, so a decoded section's values key a cache
        slots, fallback = [], {}
        for name in names:
            if name == selector:
                fallback[name] = value
                continue
            if name == "depth":
                fallback[name] = None  # set by the decoder first
                continue
            # a field nobody gives keeps the base's value when the base has this family (or every family reads it)
            if base is not None and name in base and (same_family or name in shared):
                fallback[name] = base[name]
            else:
                fallback[name] = default.get(name)
            dom = domain_for(name, value)
            if dom is None:
                continue
            owner = owner_of(name) if kind == "stage" else None
            if owner is not None and owner != value:
                # a field one family owns (grn, branch widths, split_ratio) applies only to that family
                if only:
                    raise SpecError(dom.path, f"applies only to the {owner} family, not {value}", dom.value)
                continue
            if dom.kind == "fixed" and not dom.when:
                fallback[name] = dom.value   # fixed values apply even where the family ignores the field
            elif reads is None or name in reads:
                slots.append(Slot(name, dom))
        ordered = _order_slots(slots)
        controllers = frozenset(k for s in ordered for k, _, _ in s.domain.when if k in names)
        if kind == "stage" and not ordered and fallback.get("width") is not None:
            _check_fixed_stage(path, fallback, base)
        return Plan(slots=tuple(ordered), fallback=fallback, controllers=controllers)

    # -- scaling --
    def _scaling(self, raw: Any) -> tuple[tuple[Slot, ...], float, float, bool]:
        """Multipliers and compound scaling; `gamma: derived` solves alpha*beta^2*gamma^2 = target for gamma."""
        if raw is None:
            return (), 2.0, 0.0, False
        raw = _mapping(raw, "scaling")
        _check_keys(raw, (*SCALING_DIMS, "target", "tolerance"), "scaling")
        if "phi" not in raw and any(k in raw for k in ("alpha", "beta", "gamma")):
            raise SpecError("scaling.phi", "is required with alpha, beta or gamma", show_value=False)
        target = float(_number(raw.get("target", 2.0), "scaling.target"))
        tolerance = float(_number(raw.get("tolerance", 0.05), "scaling.tolerance"))
        if target < 1:
            raise SpecError("scaling.target", "must be >= 1", target)
        if tolerance < 0:
            raise SpecError("scaling.tolerance", "must be >= 0", tolerance)
        derive = raw.get("gamma") == "derived"
        defaults = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}  # Tan and Le's grid-search result for B0
        slots = []
        for key in SCALING_DIMS:
            if (key not in raw and not (key in defaults and "phi" in raw)) or (key == "gamma" and derive):
                continue
            value = raw.get(key, defaults.get(key))
            # alpha/beta/gamma are enumerated by the feasibility proof: not every combination is allowed
            dom = self._domain(value, f"scaling.{key}", _probe_scaling(key), name=f"scaling.{key}", hint="float",
                               field_name=key, scope=set(self.tied), role="enum" if key in defaults else None)
            if dom.kind == "dim":
                self.conditions[dom.dim.name] = _when_text(dom.when, "", set())
            slots.append(Slot(key, dom))
        abg = {s.field: s.domain for s in slots if s.field in defaults}
        if abg:
            grids = [_domain_values(abg[k], self.tied) for k in abg]
            if any(g is None for g in grids):
                raise SpecError("scaling", "alpha, beta and gamma need choices or a stepped range",
                                show_value=False)
            if derive:
                if min(a * b * b for a in grids[0] for b in grids[1]) > target:
                    raise SpecError("scaling.gamma", f"cannot be derived: alpha*beta^2 exceeds the target "
                                    f"{target:g} everywhere, so gamma would be < 1", "derived")
            else:
                best = min(abs(a * b * b * c * c / target - 1) for a in grids[0] for b in grids[1] for c in grids[2])
                if best > tolerance + 1e-12:
                    raise SpecError("scaling.tolerance", f"cannot be met: the closest alpha*beta^2*gamma^2 is "
                                    f"{best:.1%} from the target {target:g}", tolerance)
        return tuple(slots), target, tolerance, derive

    # -- constraints --
    def _constraints(self, raw: Any) -> tuple[Bound, ...]:
        raw = _mapping(raw, "constraints")
        _check_keys(raw, ("at", *METRICS), "constraints")
        at_all = self._at(raw.get("at", {}), "constraints.at")
        bounds = []
        for metric in METRICS:
            if metric not in raw:
                continue
            path = f"constraints.{metric}"
            spec = _mapping(raw[metric], path)
            _check_keys(spec, ("min", "max", "at"), path)
            if "min" not in spec and "max" not in spec:
                raise SpecError(path, "needs min or max", spec)
            low = _number(spec["min"], f"{path}.min") if "min" in spec else None
            high = _number(spec["max"], f"{path}.max") if "max" in spec else None
            for key, value in (("min", low), ("max", high)):
                if value is not None and value < 0:
                    raise SpecError(f"{path}.{key}", "must be >= 0", value)
            if low is not None and high is not None and low > high:
                raise SpecError(path, f"min must be <= max, got (min={low:g}, max={high:g})", show_value=False)
            at = dict(at_all)
            at.update(self._at(spec.get("at", {}), f"{path}.at"))
            bounds.append(Bound(metric, low, high, tuple(sorted(at.items())), path))
        return tuple(bounds)

    @staticmethod
    def _at(raw: Any, path: str) -> dict[str, int]:
        raw = _mapping(raw, path)
        _check_keys(raw, AT_KEYS, path)
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SpecError(f"{path}.{key}", "must be a positive integer", value)
            top = {"img_size": MAX_IMG_SIZE, "in_chans": MAX_WIDTH}.get(key, 10 ** 6)  # the ArchSpec field bounds
            if value > top:
                raise SpecError(f"{path}.{key}", f"must be at most {top:,}", value)
        return dict(raw)

    def _landmarks(self, raw: Any) -> dict[str, dict[str, Any]]:
        raw = _mapping(raw, "landmarks")
        out = {}
        for key, params in raw.items():
            out[str(key)] = dict(_mapping(params, f"landmarks.{key}"))
        return out


# --- probes: the core dataclasses' own validation, one field at a time -------------------------------------

_DEFAULTS = {f.name: f.default for f in fields(ArchSpec) if f.name in GLOBAL_FIELDS}


def _stage_defaults() -> dict[str, Any]:
    return {f.name: f.default for f in fields(StageSpec) if f.default is not dataclasses.MISSING}


def _reraise(err: SpecError, path: str) -> typing.NoReturn:
    raise SpecError(path, err.rule, err.value, show_value=err.show_value) from None


def _probe_section(cls: type, valid_padding: bool) -> typing.Callable[[str, Any, str], Any]:
    """A checker that validates one field value through `cls.from_dict` and returns it normalised."""

    def probe(name: str, value: Any, path: str) -> Any:
        if cls is StageSpec and owner_of(name) is not None:
            value = coerce(_type_hints(StageSpec)[name], value, path)
            try:
                check_owned_field(name, value)
            except SpecError as err:
                _reraise(err, path)
            return value
        if cls is StageSpec:
            if name == "block" and value not in BLOCKS:
                raise SpecError(path, "must be a block family: " + ", ".join(BLOCKS)
                                + did_you_mean(str(value), BLOCKS, list_valid=False), value)
            if name == "block":
                return value   # a family's own rules need its own fields: they are checked per stage
            data = {"block": "plain", "depth": 1, "width": 8}
            if name == "kernel_size" and valid_padding:
                data["padding"] = "valid"
        elif cls is StemSpec:
            if name == "type":
                if value not in STEMS:
                    raise SpecError(path, "must be a stem type: " + ", ".join(STEMS)
                                    + did_you_mean(str(value), STEMS, list_valid=False), value)
                return value
            data = {"type": "conv"}
        else:
            data = {}
        if name == "depth" and cls is StageSpec and value == 0 and not isinstance(value, bool):
            return 0   # depth 0 removes the stage
        data[name] = value
        try:
            spec = cls.from_dict(data)
        except SpecError as err:
            _reraise(err, path)
        return getattr(spec, name)
    return probe


def _check_fixed_stage(path: str, values: dict[str, Any], base: dict[str, Any] | None) -> None:
    """A stage whose every field is fixed is checked whole now (a shuffle width that does not split evenly)."""
    data = dict(values)
    data["depth"] = data.get("depth") or (base or {}).get("depth") or 1
    try:
        StageSpec(**data)
    except SpecError as err:
        raise err.with_context(prefix=path) from None
    except TypeError:  # a field without a value yet (required ones are checked by the caller)
        return


def _probe_global(name: str) -> typing.Callable[[Any, str], Any]:
    def probe(value: Any, path: str) -> Any:
        data = {"stem": {"type": "identity"}, "stages": [{"block": "plain", "depth": 1, "width": 8, "kernel_size": 1}],
                name: value}
        try:
            return getattr(ArchSpec.from_dict(data), name)
        except SpecError as err:
            _reraise(err, path)
    return probe


def _probe_scaling(name: str) -> typing.Callable[[Any, str], Any]:
    def probe(value: Any, path: str) -> Any:
        number = float(_number(value, path))
        if name in ("alpha", "beta", "gamma") and number < 1:
            raise SpecError(path, "must be >= 1 (each of depth, width and resolution grows with phi)", value)
        if name == "phi" and number < 0:
            raise SpecError(path, "must be >= 0", value)
        if name in ("width_mult", "depth_mult") and number <= 0:
            raise SpecError(path, "must be > 0", value)
        return number
    return probe


# --- small utilities ----------------------------------------------------------------------------------------

def _role(field_name: str) -> str:
    if field_name in NEUTRAL_FIELDS:
        return "neutral"
    if field_name in MONOTONE_FIELDS:
        return "up"
    return "enum"


def _can_be_zero(domain: Domain) -> bool:
    if domain.kind == "fixed":
        return domain.value == 0
    values = domain.dim.values() if domain.dim is not None else None
    return values is not None and 0 in values


def _domain_values(domain: Domain, tied: dict[str, Domain]) -> tuple[Any, ...]:
    """Every value a domain can take (a tied dimension's values for a reference)."""
    if domain.kind == "ref":
        domain = tied[domain.ref]
    if domain.kind == "fixed":
        return (domain.value,)
    return domain.dim.values()  # type: ignore[union-attr, return-value]


def _order_slots(slots: list[Slot]) -> list[Slot]:
    """Fields named by a `when` come before the fields they guard (stable otherwise); cycles are errors."""
    by_name = {s.field: s for s in slots}
    done: list[Slot] = []
    state: dict[str, int] = {}

    def visit(slot: Slot, trail: tuple[str, ...]) -> None:
        if state.get(slot.field) == 2:
            return
        if state.get(slot.field) == 1:
            raise SpecError(f"{slot.domain.path}.when", "forms a cycle: " + " -> ".join((*trail, slot.field)),
                            show_value=False)
        state[slot.field] = 1
        for key, _, _ in slot.domain.when:
            if key in by_name:
                visit(by_name[key], (*trail, slot.field))
        state[slot.field] = 2
        done.append(slot)

    for slot in slots:
        visit(slot, ())
    return done


def _join(*parts: str) -> str:
    return " and ".join(p for p in parts if p)


def _when_text(when: Condition, prefix: str, local: set[str]) -> str:
    """A condition as text: section fields get the section's prefix (stage2.se_ratio), tied names stay bare."""
    out = []
    for key, negate, values in when:
        name = f"{prefix}.{key}" if prefix and key in local else key
        shown = ", ".join(_show(v) for v in values)
        if len(values) == 1:
            out.append(f"{name} {'!=' if negate else '='} {shown}")
        else:
            out.append(f"{name} {'not in' if negate else 'in'} ({shown})")
    return " and ".join(out)


def check_landmark_names(compiled: CompiledSpace) -> None:
    """Landmark parameter names must be names of the space (typos are caught when the file loads)."""
    names = {d.name for d in compiled.dimensions}
    for key, params in compiled.landmarks.items():
        for name in params:
            if name not in names:
                raise SpecError(f"landmarks.{key}.{name}", "is not a parameter of this space"
                                + did_you_mean(str(name), names), show_value=False)



def _values(spec: Any) -> dict[str, Any]:
    """A spec's field values as they are (tuples stay tuples, so they can key a cache)."""
    return {f.name: getattr(spec, f.name) for f in fields(spec)}
