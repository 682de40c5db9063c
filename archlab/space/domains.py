"""One field's value in a space file, and the registry every part of the space compiler shares.

A value is fixed, a list of choices, an int or float range, or a `$name` reference to a tied dimension,
optionally guarded by `when:` (docs/search_spaces.md). `Domains` parses such values into `Domain`s, keeps
every searched `Dimension` (refusing a name given twice), the `tied:` values and what `describe` shows as
each parameter's condition. The stem, stage, head, generate and scaling compilers all go through it.
"""
from __future__ import annotations

import functools
import typing
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from archlab.core.errors import SpecError, did_you_mean
from archlab.core.yamlio import parse_number as _number
from archlab.space.language import DOMAIN_KEYS, Condition, Dimension, Domain, cost_role, show
from archlab.space.limits import check_range_size

__all__ = ["Domains", "Probe", "Target", "check_keys", "field_type", "hint_of", "join", "mapping", "reraise_at",
           "when_text"]

Probe = typing.Callable[[Any, str], Any]   # (value, key path) -> the value normalised; raises SpecError


@dataclass(frozen=True, slots=True)
class Target:
    """What a raw value is compiled for: its parameter name, the field it sets, that field's type and checks."""

    name: str                            # the Optuna parameter name, should the value be searched
    field: str = ""                      # the spec field (or multiplier, generator parameter) it sets
    hint: str = "other"                  # the field's type (hint_of), or "number" for a tied value
    probe: Probe | None = None           # the field's own validation; None in `tied:` (checked where used)
    scope: frozenset[str] = frozenset()  # names a `when:` may test
    role: str | None = None              # how cost moves with the value; None: the field's cost_role
    allow_ref: bool = True               # False in `tied:`: a tied value may not refer to another

    def check(self, value: Any, path: str) -> Any:
        """The value as the field normalises it (as given when there is no probe)."""
        return value if self.probe is None else self.probe(value, path)


class Domains:
    """The dimensions, tied values and describe conditions of one space file, filled while it compiles."""

    def __init__(self) -> None:
        self.dims: list[Dimension] = []
        self.dim_paths: dict[str, str] = {}          # name -> path, to refuse clashing names
        self.tied: dict[str, Domain] = {}
        self.tied_uses: dict[str, set[str]] = {}     # tied name -> fields that use it
        self.conditions: dict[str, str] = {}         # parameter name -> when it is suggested, for describe

    # -- the value forms --
    def parse(self, raw: Any, path: str, target: Target) -> Domain:
        """Parse one field's value: scalar, list of choices, {choices|low/high|value, when}, or `$name`."""
        if isinstance(raw, dict):
            return self._mapping_form(raw, path, target)
        if isinstance(raw, str) and raw.startswith("$"):
            if not target.allow_ref:
                raise SpecError(path, "may not refer to another tied dimension", raw)
            return self._ref(raw, path, target, ())
        if isinstance(raw, list) and not (target.hint == "tuple" and not any(isinstance(v, list) for v in raw)):
            return self._choices(raw, path, target, ())
        return Domain("fixed", value=target.check(raw, path), path=path)

    def _mapping_form(self, raw: dict[str, Any], path: str, target: Target) -> Domain:
        """`{choices: ...}`, `{value: ...}` or `{low: ..., high: ...}`, each with an optional `when:`."""
        when: Condition = ()
        check_keys(raw, DOMAIN_KEYS, path)
        if "when" in raw:
            when = self._when(raw["when"], f"{path}.when", target.scope)
        given = [k for k in ("choices", "value", "low") if k in raw]
        if "high" in raw and "low" not in raw:
            raise SpecError(f"{path}.low", "is required with high", show_value=False)
        if len(given) != 1:
            raise SpecError(path, "needs exactly one of choices, value or low/high", show_value=False)
        if given[0] == "low":
            return self._range(raw, path, target, when)
        leftover = [k for k in ("step", "log") if k in raw]
        if leftover:
            raise SpecError(f"{path}.{leftover[0]}", "applies only to a low/high range", show_value=False)
        if given[0] == "choices":
            return self._choices(raw["choices"], f"{path}.choices", target, when)
        value = raw["value"]
        if isinstance(value, str) and value.startswith("$") and target.allow_ref:
            return self._ref(value, path, target, when)
        return Domain("fixed", value=target.check(value, f"{path}.value"), when=when, path=path)

    def _ref(self, raw: str, path: str, target: Target, when: Condition) -> Domain:
        ref = raw[1:]
        if target.probe is not None:
            self._use_tied(ref, path, target)
        return Domain("ref", ref=ref, when=when, path=path)

    def _choices(self, raw: Any, path: str, target: Target, when: Condition) -> Domain:
        if not isinstance(raw, list):
            raise SpecError(path, "must be a list of choices", raw)
        if not raw:
            raise SpecError(path, "must hold at least one choice", raw)
        check_range_size("int", 1, len(raw), 1, path)   # the per-dimension cap holds for choices too
        values: list[Any] = []
        seen: set[Any] = set()   # hashable choices are compared in O(1): a long list is not quadratic
        for i, item in enumerate(raw):
            value = target.check(item, f"{path}[{i}]")
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
        dim = self._add(Dimension(name=target.name, kind="categorical", choices=tuple(values), path=path,
                                  field=target.field, role=target.role or cost_role(target.field)))
        return Domain("dim", dim=dim, when=when, path=path)

    def _range(self, raw: dict[str, Any], path: str, target: Target, when: Condition) -> Domain:
        kind, low, high, step, log = _range_bounds(raw, path, target.hint)
        dim = Dimension(name=target.name, kind=kind, low=low, high=high,
                        step=step if kind == "float" else (step or 1), log=log, path=path, field=target.field,
                        role=target.role or cost_role(target.field))
        values = dim.values()
        if target.probe is not None:
            # check every value of a short grid (an even kernel size inside 3..7 is an error), else the ends
            for value in (values if values is not None and len(values) <= 64 else (low, high)):
                target.probe(value, path)
        if values is not None and len(values) == 1:
            return Domain("fixed", value=values[0], when=when, path=path)
        return Domain("dim", dim=self._add(dim), when=when, path=path)

    def _add(self, dim: Dimension) -> Dimension:
        if "/" in dim.name:  # Ray Tune splits on '/', archlab never produces one
            raise AssertionError(dim.name)
        if dim.name in self.dim_paths:
            raise SpecError(dim.path, f"defines parameter {dim.name!r} twice (also at {self.dim_paths[dim.name]})",
                            show_value=False)
        self.dim_paths[dim.name] = dim.path
        self.dims.append(dim)
        return dim

    def _when(self, raw: Any, path: str, scope: frozenset[str]) -> Condition:
        raw = mapping(raw, path)
        if not raw:
            raise SpecError(path, "must name at least one condition", raw)
        out = []
        for key, cond in raw.items():
            if key not in scope:
                raise SpecError(f"{path}.{key}", "names no field or tied dimension it could depend on"
                                + did_you_mean(str(key), scope), show_value=False)
            negate = False
            if isinstance(cond, dict):
                check_keys(cond, ("not",), f"{path}.{key}")
                if "not" not in cond:
                    raise SpecError(f"{path}.{key}", "must be a value, a list of values or {not: ...}", cond)
                negate, cond = True, cond["not"]
            values = tuple(cond) if isinstance(cond, list) else (cond,)
            if not values:
                raise SpecError(f"{path}.{key}", "must hold at least one value", cond)
            out.append((key, negate, values))
        return tuple(out)

    # -- tied values --
    def tie(self, key: str, domain: Domain) -> None:
        """Declare tied value `key` (its values are checked against each field that uses it, see _use_tied)."""
        self.note_condition(domain)
        self.tied[key] = domain
        self.tied_uses[key] = set()

    def _use_tied(self, ref: str, path: str, target: Target) -> None:
        """Check every value of tied dimension `ref` against a field that uses it."""
        if ref not in self.tied:
            hint = did_you_mean(ref, self.tied) if self.tied else " (the file has no tied: section)"
            raise SpecError(path, "refers to an unknown tied dimension" + hint, f"${ref}")
        domain = self.tied[ref]
        self.tied_uses[ref].add(target.field)
        if domain.kind == "fixed":
            values: tuple[Any, ...] = (domain.value,)
        else:
            assert domain.dim is not None, "a tied value is fixed or searched"
            values = domain.dim.values() or (domain.dim.low, domain.dim.high)
        for value in values:
            target.check(value, path)

    def check_tied_used(self) -> None:
        """A tied value no field refers to is a mistake (a typo in some `$name`, most likely)."""
        for key, uses in self.tied_uses.items():
            if not uses:
                raise SpecError(f"tied.{key}", "is never used: refer to it as $" + key + " in a field",
                                show_value=False)

    def values(self, domain: Domain) -> tuple[Any, ...] | None:
        """Every value a domain can take (a tied dimension's values for a reference); None if continuous."""
        if domain.kind == "ref":
            domain = self.tied[domain.ref]
        if domain.kind == "fixed":
            return (domain.value,)
        assert domain.dim is not None, "a domain is fixed, searched or a reference"
        return domain.dim.values()

    # -- what describe shows --
    def note_condition(self, domain: Domain, *implied: str) -> None:
        """Record when a searched domain is suggested: the `implied` conditions and its own `when:`."""
        if domain.dim is not None:   # kind "dim"
            self.conditions[domain.dim.name] = join(*implied, when_text(domain.when, "", ()))

    def final(self) -> tuple[Dimension, ...]:
        """Dimensions with their conditions, and tied ones with the cost role of the fields that use them."""
        out = []
        for dim in self.dims:
            changes: dict[str, Any] = {"condition": self.conditions.get(dim.name, dim.condition)}
            if dim.name in self.tied_uses:
                roles = {cost_role(f) for f in self.tied_uses[dim.name]}
                changes["role"] = roles.pop() if len(roles) == 1 else "enum"
                changes["field"] = ",".join(sorted(self.tied_uses[dim.name]))
            out.append(replace(dim, **changes))
        return tuple(out)


def _range_bounds(raw: dict[str, Any], path: str, hint: str) -> tuple[str, Any, Any, Any, bool]:
    """A low/high range's kind ("int" or "float"), low, high, step and log, each checked."""
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
    return hint, low, high, step, log


# --- small helpers every part uses ------------------------------------------------------------------------------

def mapping(value: Any, path: str) -> dict[str, Any]:
    """`value` itself, which must be a mapping (`path` names it in the error)."""
    if not isinstance(value, dict):
        raise SpecError(path or "the file", "must be a mapping", value)
    return value


def check_keys(data: dict[Any, Any], allowed: typing.Iterable[str], path: str) -> None:
    """Refuse a key outside `allowed`, suggesting the closest allowed one."""
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(where, "is not a known key" + did_you_mean(str(key), allowed), show_value=False)


def reraise_at(err: SpecError, path: str) -> typing.NoReturn:
    """A spec record's own error, moved to the key path where the space file gave the value."""
    raise SpecError(path, err.rule, err.value, show_value=err.show_value) from None


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """typing.get_type_hints, once per class: it evaluates every annotation again on each call, which made
    compiling a space of many stages quadratic-looking in time (minutes for 2,000 stages)."""
    return typing.get_type_hints(cls)


def field_type(cls: type, name: str) -> Any:
    """A dataclass field's type hint, evaluated."""
    return _type_hints(cls)[name]


def hint_of(cls: type, name: str) -> str:
    """'int', 'float', 'str', 'bool', 'tuple' or 'other' for a dataclass field's type hint."""
    hint = field_type(cls, name)
    options = [h for h in typing.get_args(hint) if h is not type(None)] or [hint]
    base = options[0]
    if typing.get_origin(base) is tuple:
        return "tuple"
    return {int: "int", float: "float", str: "str", bool: "bool"}.get(base, "other")


def join(*parts: str) -> str:
    """Conditions joined by 'and', empty ones left out."""
    return " and ".join(p for p in parts if p)


def when_text(when: Condition, prefix: str, local: Collection[str]) -> str:
    """A condition as text: section fields get the section's prefix (stage2.se_ratio), tied names stay bare."""
    out = []
    for key, negate, values in when:
        name = f"{prefix}.{key}" if prefix and key in local else key
        shown = ", ".join(show(v) for v in values)
        if len(values) == 1:
            out.append(f"{name} {'!=' if negate else '='} {shown}")
        else:
            out.append(f"{name} {'not in' if negate else 'in'} ({shown})")
    return " and ".join(out)
