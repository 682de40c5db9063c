"""The parts of a network in a space file: stem, stages (with the `all_stages` template) and head, or `generate:`.

Each part compiles to a `Section`: an optional depth, an optional selector (a stage's block family, the stem's
type) and one `Plan` per selector value. A field applies to a stage only where its family reads it (its row in
archlab.arch.families); an entry's most specific form wins: stage family > stage > all_stages family >
all_stages. docs/search_spaces.md is the reference.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, fields
from typing import Any

from archlab.arch.families import STAGE_SHARED, check_owned_field, owner_of
from archlab.arch.generators import GENERATORS, Generator
from archlab.arch.spec import BLOCKS, STEMS, ArchSpec, HeadSpec, StageSpec, StemSpec
from archlab.core.errors import SpecError, did_you_mean
from archlab.core.schema import coerce
from archlab.core.yamlio import parse_number as _number
from archlab.space.domains import (
    Domains,
    Probe,
    Target,
    check_keys,
    field_type,
    hint_of,
    join,
    mapping,
    reraise_at,
    when_text,
)
from archlab.space.language import FAMILY_FIELDS, STEM_FIELDS, STEM_SHARED, Domain, Generated, Plan, Section, Slot

__all__ = ["generated_stages", "head_section", "stage_sections", "stem_section"]


def _values(spec: Any) -> dict[str, Any]:
    """A spec's field values as they are (tuples stay tuples, so they can key a cache)."""
    return {f.name: getattr(spec, f.name) for f in fields(spec)}


_Record = type[StemSpec] | type[StageSpec] | type[HeadSpec]


@dataclass(frozen=True)
class _Part:
    """The grammar of one part of a network (stem, stage or head): its record type and how families select fields."""
    kind: str                                   # "stem", "stage" or "head"
    cls: _Record                                # StemSpec, StageSpec or HeadSpec
    selector: str | None                        # the field that picks the family ("type", "block"), if any
    selector_values: tuple[str, ...]            # the families, which may also be subsection keys
    shared: frozenset[str]                      # fields every family reads
    variant_fields: dict[str, frozenset[str]]   # family -> the fields only it reads
    default: dict[str, Any]                     # the record's defaults, for fields nobody gives


_STEM = _Part("stem", StemSpec, "type", STEMS, STEM_SHARED, STEM_FIELDS, _values(StemSpec()))
_HEAD = _Part("head", HeadSpec, None, (), frozenset(), {}, _values(HeadSpec()))
_STAGE = _Part("stage", StageSpec, "block", BLOCKS, STAGE_SHARED, FAMILY_FIELDS,
               {f.name: f.default for f in fields(StageSpec) if f.default is not dataclasses.MISSING})


# --- stem, stages, head --------------------------------------------------------------------------------------

def stem_section(domains: Domains, raw: Any, base: ArchSpec | None) -> Section:
    """The `stem:` section (the base's stem, else StemSpec's defaults, for what it does not give)."""
    raw = mapping(raw, "stem")
    values = _values(base.stem) if base is not None else _values(StemSpec())
    return _SectionCompiler(domains, _STEM, ("stem", "stem"), raw, {}, values).compile()


def head_section(domains: Domains, raw: Any, base: ArchSpec | None) -> Section:
    """The `head:` section (the base's head, else HeadSpec's defaults, for what it does not give)."""
    raw = mapping(raw, "head")
    values = _values(base.head) if base is not None else _values(HeadSpec())
    return _SectionCompiler(domains, _HEAD, ("head", "head"), raw, {}, values).compile()


def stage_sections(domains: Domains, template: Any, raw: Any, base: ArchSpec | None,
                   base_name: str | None) -> tuple[Section, ...]:
    """`stages:` (one entry per stage; the base's stages when absent) with the `all_stages` template."""
    template = mapping(template, "all_stages")
    if raw is None:
        if base is None:
            raise SpecError("stages", "is required without a base network", show_value=False)
        raw = [{} for _ in base.stages]
    if not isinstance(raw, list):
        raise SpecError("stages", "must be a list with one mapping per stage", raw)
    if not raw:
        raise SpecError("stages", "must hold at least one stage", raw)
    if base is not None and len(raw) != len(base.stages):
        raise SpecError("stages", f"must have {len(base.stages)} entries, one per stage of base {base_name}",
                        f"{len(raw)} entries")
    sections = []
    for i, stage_raw in enumerate(raw):
        stage_raw = mapping(stage_raw, f"stages[{i}]")
        values = _values(base.stages[i]) if base is not None else None
        sections.append(_SectionCompiler(domains, _STAGE, (f"stage{i}", f"stages[{i}]"), stage_raw, template,
                                         values).compile())
    if all(s.depth is not None and s.depth.kind == "fixed" and s.depth.value == 0 for s in sections):
        raise SpecError("stages", "must keep at least one stage (every depth is 0)", show_value=False)
    return tuple(sections)


class _SectionCompiler:
    """One stem, stage or head: its entries by precedence, the domains compiled from them, and its Section.

    `where` is (parameter-name prefix, key path): ("stage2", "stages[2]"). `base` holds the base network's
    values for this part (None: a stage without a base)."""

    def __init__(self, domains: Domains, part: _Part, where: tuple[str, str], raw: dict[str, Any],
                 template: dict[str, Any], base: dict[str, Any] | None) -> None:
        self.domains, self.part, self.base = domains, part, base
        self.prefix, self.path = where
        self.names = [f.name for f in fields(part.cls)]
        self.layers = [("all_stages", template), (self.path, raw)]   # later layers win
        self._check_keys()
        padding = self._entry("padding", None)
        self.valid_padding = padding is not None and (padding[0] == "valid" or
                                                      (isinstance(padding[0], list) and "valid" in padding[0]))
        self.probe = _probe_section(part.cls, self.valid_padding)
        self.hints = {n: hint_of(part.cls, n) for n in self.names}
        self.scope = frozenset(domains.tied) | frozenset(self.names)
        self.compiled: dict[tuple[str, str | None], Domain] = {}

    def compile(self) -> Section:
        """Compile a stem/stage/head: its own keys beat `all_stages`, family subsections beat plain keys."""
        # depth and selector come first: a stage of depth 0 is left out, and the selector decides applicability
        depth = self._depth()
        sel, sel_values = self._selector()
        plans = {value: self._plan(value, only=len(sel_values) == 1) for value in sel_values}
        if self.part.kind == "stage":
            for plan in plans.values():
                if plan.fallback["width"] is None and not any(s.field == "width" for s in plan.slots):
                    raise SpecError(self.path, "is missing required key(s) width", show_value=False)
        self._record_conditions(depth, sel, sel_values, plans)
        return Section(kind=self.part.kind, prefix=self.prefix, path=self.path, depth=depth, selector=sel,
                       plans=plans)

    def _check_keys(self) -> None:
        """Every key names a field or a family subsection; a subsection names fields (not depth or selector)."""
        names, selector_values = self.names, self.part.selector_values
        allowed = names + list(selector_values)
        (_, template), (_, raw) = self.layers
        check_keys(raw, allowed, self.path)
        check_keys(template, allowed, "all_stages")
        for where, layer in self.layers:
            for value_key in selector_values:
                if value_key in layer:
                    sub = mapping(layer[value_key], f"{where}.{value_key}")
                    check_keys(sub, [n for n in names if n not in (self.part.selector, "depth")],
                               f"{where}.{value_key}")

    def _entry(self, field_name: str, variant: str | None) -> tuple[Any, str, str | None] | None:
        """The most specific entry for a field: stage family > stage > all_stages family > all_stages."""
        for where, layer in reversed(self.layers):
            if variant is not None and isinstance(layer.get(variant), dict) and field_name in layer[variant]:
                return layer[variant][field_name], f"{where}.{variant}.{field_name}", variant
            if field_name in layer:
                return layer[field_name], f"{where}.{field_name}", None
        return None

    def _domain(self, field_name: str, variant: str | None) -> Domain | None:
        """The field's domain for one family (compiled once per entry, shared by the families that use it)."""
        entry = self._entry(field_name, variant)
        if entry is None:
            return None
        value, where, found_in = entry
        if (where, found_in) not in self.compiled:
            name = f"{self.prefix}.{found_in}.{field_name}" if found_in else f"{self.prefix}.{field_name}"
            role = None
            if field_name == "depth":
                role = "depth"
            elif field_name == "kernel_size":
                role = "up" if self.part.kind == "stage" and not self.valid_padding else "enum"
            target = Target(name, field_name, self.hints[field_name], functools.partial(self.probe, field_name),
                            self.scope, role)
            self.compiled[(where, found_in)] = self.domains.parse(value, where, target)
        return self.compiled[(where, found_in)]

    def _depth(self) -> Domain | None:
        """A stage's depth domain (the base's when not given); None for a stem or head."""
        if self.part.kind != "stage":
            return None
        depth = self._domain("depth", None)
        if depth is None:
            if self.base is None:
                raise SpecError(self.path, "is missing required key(s) depth", show_value=False)
            depth = Domain("fixed", value=self.base["depth"], path=f"{self.path}.depth")
        if depth.kind == "ref" or depth.when:
            raise SpecError(depth.path, "cannot be tied or guarded by when (depth 0 already removes a stage)",
                            show_value=False)
        return depth

    def _selector(self) -> tuple[Domain | None, tuple[Any, ...]]:
        """The family selector's domain and the families it can take (one when it is fixed or absent)."""
        selector, tied = self.part.selector, self.domains.tied
        if selector is None:
            return None, (None,)
        sel = self._domain(selector, None)
        if sel is not None and (sel.when or (sel.kind == "ref" and tied[sel.ref].when)):
            raise SpecError(sel.path, f"cannot be guarded by when: {selector} decides which fields apply",
                            show_value=False)
        if sel is not None:
            values = self.domains.values(sel)
            assert values is not None, "a selector's values are names, never a continuous range"
            return sel, values
        known = self.base or self.part.default
        if known.get(selector) is None:
            raise SpecError(self.path, f"is missing required key(s) {selector}", show_value=False)
        return None, (known[selector],)

    def _reads(self, value: Any) -> frozenset[str] | None:
        """The fields a selector value reads (None: the part has no selector, so every field applies)."""
        part = self.part
        if part.selector is None:
            return None
        if part.kind == "stem" and value == "identity":
            return frozenset()
        return part.shared | part.variant_fields[value]

    def _plan(self, value: Any, *, only: bool) -> Plan:
        """Slots and fallbacks of the section for one selector value (`only`: the selector has no other)."""
        part, base = self.part, self.base
        same_family = base is not None and (part.selector is None or base.get(part.selector) == value)
        reads = self._reads(value)
        # every field gets an entry, in the dataclass's order, so a decoded section's values key a cache
        slots, fallback = [], {}
        for name in self.names:
            if name == part.selector:
                fallback[name] = value
                continue
            if name == "depth":
                fallback[name] = None  # set by the decoder first
                continue
            # a field nobody gives keeps the base's value when the base has this family (or every family reads it)
            if base is not None and name in base and (same_family or name in part.shared):
                fallback[name] = base[name]
            else:
                fallback[name] = part.default.get(name)
            dom = self._domain(name, value)
            if dom is None:
                continue
            owner = owner_of(name) if part.kind == "stage" else None
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
        controllers = frozenset(k for s in ordered for k, _, _ in s.domain.when if k in self.names)
        if part.kind == "stage" and not ordered and fallback.get("width") is not None:
            _check_fixed_stage(self.path, fallback, base)
        return Plan(slots=tuple(ordered), fallback=fallback, controllers=controllers)

    def _record_conditions(self, depth: Domain | None, sel: Domain | None, sel_values: tuple[Any, ...],
                           plans: dict[Any, Plan]) -> None:
        """Conditions shown by `describe`: depth > 0, the families a field applies to, and its own `when`."""
        prefix, conditions = self.prefix, self.domains.conditions
        live = f"{prefix}.depth > 0" if depth is not None and _can_be_zero(depth) else ""
        for dom in (depth, sel):
            if dom is not None and dom.dim is not None:   # a searched depth or family
                conditions[dom.dim.name] = live if dom is sel else ""
        local = self.scope - frozenset(self.domains.tied)   # a `when` on a section field gets the prefix
        seen: dict[str, list[Any]] = {}
        when_of: dict[str, str] = {}
        for value, plan in plans.items():
            for slot in plan.slots:
                if slot.domain.dim is not None:
                    seen.setdefault(slot.domain.dim.name, []).append(value)
                    when_of[slot.domain.dim.name] = when_text(slot.domain.when, prefix, local)
        for name, values in seen.items():
            family = ""
            if len(values) < len(sel_values):
                family = f"{prefix}.{self.part.selector} = {values[0]}" if len(values) == 1 else \
                    f"{prefix}.{self.part.selector} in ({', '.join(map(str, values))})"
            conditions[name] = join(live, family, when_of[name])


# --- generate: ----------------------------------------------------------------------------------------------------

def generated_stages(domains: Domains, raw: Any, template_raw: dict[str, Any]) -> Generated:
    """`generate:` names a generator and gives each of its parameters a value, choices or a range."""
    raw = mapping(raw, "generate")
    rule = raw.get("rule")
    if not isinstance(rule, str) or rule not in GENERATORS:
        raise SpecError("generate.rule", "must name a structure generator"
                        + did_you_mean(str(rule), GENERATORS.names()), rule)
    gen = GENERATORS.get(rule)
    check_keys(raw, ("rule", *gen.params), "generate")
    slots = []
    for key, default in gen.params.items():
        path = f"generate.{key}"
        if key not in raw:
            if default is None:
                raise SpecError(path, f"is required by the {rule} generator", show_value=False)
            slots.append(Slot(key, Domain("fixed", value=default, path=path)))
            continue
        target = Target(path, key, "number", _probe_generator(gen, key), frozenset(domains.tied), role="enum")
        dom = domains.parse(raw[key], path, target)
        domains.note_condition(dom)
        slots.append(Slot(key, dom))
    return Generated(rule=rule, slots=tuple(slots), template=_generated_template(gen, rule, template_raw))


def _generated_template(gen: Generator, rule: str, raw: dict[str, Any]) -> dict[str, Any]:
    """`all_stages` with generate: one fixed value per field the generator does not set."""
    names = [f.name for f in fields(StageSpec)]
    stage_probe = _probe_section(StageSpec, False)
    template = {}
    for key, value in raw.items():
        path = f"all_stages.{key}"
        if key not in names:
            raise SpecError(path, "is not a known key" + did_you_mean(str(key), names), show_value=False)
        if key in gen.sets:
            raise SpecError(path, f"is set by the {rule} generator: give it under generate:", show_value=False)
        if isinstance(value, (list, dict)) or (isinstance(value, str) and value.startswith("$")):
            raise SpecError(path, "must be one fixed value with generate: (every generated stage shares it)",
                            value)
        template[key] = stage_probe(key, value, path)
    return template


def _probe_generator(gen: Generator, key: str) -> Probe:
    """A checker for one generator parameter: the generator's own rule for it."""
    def probe(value: Any, path: str) -> Any:
        value = _number(value, path) if isinstance(value, str) else value
        try:
            gen.check(key, value)
        except SpecError as err:
            reraise_at(err, path)
        return value
    return probe


# --- probes and checks: the spec records' own validation ---------------------------------------------------------

def _probe_section(cls: _Record, valid_padding: bool) -> typing.Callable[[str, Any, str], Any]:
    """A checker that validates one field value through `cls.from_dict` and returns it normalised."""

    def probe(name: str, value: Any, path: str) -> Any:
        if cls is StageSpec and owner_of(name) is not None:
            value = coerce(field_type(StageSpec, name), value, path)
            try:
                check_owned_field(name, value)
            except SpecError as err:
                reraise_at(err, path)
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
            reraise_at(err, path)
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


def _can_be_zero(domain: Domain) -> bool:
    if domain.kind == "fixed":
        return domain.value == 0
    values = domain.dim.values() if domain.dim is not None else None
    return values is not None and 0 in values


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
