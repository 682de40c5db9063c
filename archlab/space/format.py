"""The search-space file format: parse and validate a YAML mapping into a compiled, immutable space plan.

A space file names, for every field of an `ArchSpec`, either a fixed value, a list of choices, an int or
float range, or a `$name` reference to a tied dimension, optionally guarded by `when:`. Per-stage entries,
an `all_stages` template and family (or stem type) subsections give conditional parameters; `base:` starts
from a zoo network; `scaling:` adds compound scaling (Tan and Le, "EfficientNet", ICML 2019); `constraints:`
bound parameters and MACs. docs/search_spaces.md is the reference with examples.

This module is the entry point and the language's outline (`_Compiler.run`); the parts live beside it:
  language.py  the vocabulary and the structures a file compiles to (Dimension, Domain, Section, CompiledSpace)
  domains.py   one field's value (fixed, choices, range, `$name`, `when:`) and the registry every part shares
  sections.py  stem, stages (with `all_stages`) and head, and the `generate:` section
  here         the header, `base:`, `tied:`, the global fields, `scaling:`, `constraints:` and `landmarks:`

Everything here is torch-free and runs once per file: decoding points is `archlab.space.search_space`'s job.
"""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, NamedTuple

from archlab.arch.families import family
from archlab.arch.spec import BLOCKS, MAX_IMG_SIZE, MAX_WIDTH, ArchSpec
from archlab.core.errors import SpecError, did_you_mean
from archlab.core.schema import line_of
from archlab.core.yamlio import parse_number as _number
from archlab.space.domains import Domains, Probe, Target, check_keys, hint_of, mapping, reraise_at
from archlab.space.language import (
    AT_KEYS,
    GLOBAL_FIELDS,
    METRICS,
    SCALING_DIMS,
    TOP_KEYS,
    Bound,
    CompiledSpace,
    Dimension,
    Domain,
    Generated,
    Section,
    Slot,
)
from archlab.space.language import NEUTRAL_FIELDS as NEUTRAL_FIELDS  # re-exported: search_space imports it
from archlab.space.language import _grid as _grid  # re-exported: search_space imports it
from archlab.space.limits import check_dimension_count, check_scaling
from archlab.space.sections import generated_stages, head_section, stage_sections, stem_section

__all__ = ["CompiledSpace", "Dimension", "Domain", "Generated", "Section", "Slot", "compile_space"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULTS = {f.name: f.default for f in fields(ArchSpec) if f.name in GLOBAL_FIELDS}
# layer_scale_init is searched only where some stage's family reads it (describe says so)
_LAYER_SCALE_READERS = "some stage is " + " or ".join(f for f in BLOCKS if family(f).layer_scale)


# --- entry point ---------------------------------------------------------------------------------------------

def compile_space(data: Any, *, file: str | None = None, lines: dict[str, int] | None = None) -> CompiledSpace:
    """Validate a parsed space file and compile it; errors name the file, line, key path, rule and value."""
    try:
        return _Compiler(data, file).run(lines or {})
    except SpecError as err:
        raise err.with_context(file=file, line=line_of(lines or {}, err.path)) from None


class _Scaling(NamedTuple):
    """The compiled `scaling:` section."""

    slots: tuple[Slot, ...]     # phi, alpha, beta, gamma, width_mult, depth_mult: those the file gives
    target: float               # alpha * beta^2 * gamma^2 target
    tolerance: float            # relative tolerance on the target
    derive_gamma: bool          # gamma solves alpha*beta^2*gamma^2 = target


class _Compiler:
    """One pass over a space file, section by section in the order the decoder asks; errors carry the key path."""

    def __init__(self, data: Any, file: str | None) -> None:
        self.data = mapping(data, "")
        self.file = file
        self.domains = Domains()
        self.base: ArchSpec | None = None

    def run(self, lines: dict[str, int]) -> CompiledSpace:
        """The language's outline: every section in the order its dimensions are suggested."""
        data, domains = self.data, self.domains
        name, description = self._header()
        self.base = _base(data.get("base"))
        _tied(domains, data.get("tied", {}))
        globals_ = tuple(self._global(f) for f in GLOBAL_FIELDS if f != "layer_scale_init")
        stem = stem_section(domains, data.get("stem", {}), self.base)
        stages, generate = self._stages()
        head = head_section(domains, data.get("head", {}), self.base)
        layer_scale = self._global("layer_scale_init")   # decoded after the stages: it applies to convnext only
        scaling = _scaling(domains, data.get("scaling"))
        bounds = _constraints(data.get("constraints", {}))
        landmarks = _landmarks(data.get("landmarks", {}))
        domains.check_tied_used()
        check_dimension_count(len(domains.dims))
        check_scaling(scaling=scaling.slots, stem=stem, stages=stages, head=head, globals_=globals_,
                      tied=domains.tied, target=scaling.target, derive_gamma=scaling.derive_gamma)
        return CompiledSpace(
            name=name, description=description.strip(), base=data.get("base"), file=self.file,
            tied=tuple(domains.tied.items()), globals_=globals_, layer_scale=layer_scale, stem=stem,
            stages=stages, head=head, scaling=scaling.slots, target=scaling.target, tolerance=scaling.tolerance,
            derive_gamma=scaling.derive_gamma, bounds=bounds, landmarks=landmarks, dimensions=domains.final(),
            lines=lines, generate=generate)

    def _header(self) -> tuple[str, str]:
        """The top-level keys, `kind`, and the name (the file's stem when not given) and description."""
        data = self.data
        check_keys(data, TOP_KEYS, "")
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
        return name, description

    def _stages(self) -> tuple[tuple[Section, ...], Generated | None]:
        """`stages:` (with `all_stages`), or `generate:`, whose generator makes the stages while decoding."""
        data = self.data
        if "generate" not in data:
            return stage_sections(self.domains, data.get("all_stages", {}), data.get("stages"), self.base,
                                  data.get("base")), None
        if "stages" in data:
            raise SpecError("stages", "cannot be given with generate: (the generator makes the stages)",
                            show_value=False)
        template = mapping(data.get("all_stages", {}), "all_stages")
        return (), generated_stages(self.domains, data["generate"], template)

    def _global(self, name: str) -> Slot:
        """A global field (img_size, ..., layer_scale_init): the file's value, else the base's, else the default."""
        default = getattr(self.base, name) if self.base is not None else _DEFAULTS[name]
        if name not in self.data:
            return Slot(name, Domain("fixed", value=default, path=name))
        scope = frozenset(self.domains.tied) | frozenset(GLOBAL_FIELDS[:GLOBAL_FIELDS.index(name)])
        target = Target(name, name, hint_of(ArchSpec, name), _probe_global(name), scope)
        domain = self.domains.parse(self.data[name], name, target)
        self.domains.note_condition(domain, _LAYER_SCALE_READERS if name == "layer_scale_init" else "")
        return Slot(name, domain)


def _base(name: Any) -> ArchSpec | None:
    """`base:`, a zoo network the file starts from."""
    if name is None:
        return None
    from archlab.arch.zoo import ZOO, get_spec
    if not isinstance(name, str) or name not in ZOO:
        raise SpecError("base", "must name a zoo network" + did_you_mean(str(name), ZOO.names()), name)
    return get_spec(name)


def _tied(domains: Domains, raw: Any) -> None:
    """`tied:`, values several fields share by `$name`; each is checked against every field that uses it."""
    raw = mapping(raw, "tied")
    for key, value in raw.items():
        path = f"tied.{key}"
        if not isinstance(key, str) or not _NAME.match(key):
            raise SpecError(path, "must be a name of letters, digits and underscores", key)
        if key in GLOBAL_FIELDS or key in ("stem", "head", "scaling") or re.match(r"^stage\d+$", key):
            raise SpecError(path, "clashes with a parameter name archlab uses; pick another name", key)
        target = Target(key, hint="number", scope=frozenset(domains.tied), allow_ref=False)
        domains.tie(key, domains.parse(value, path, target))


# --- scaling ------------------------------------------------------------------------------------------------------

_ABG_DEFAULTS = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}  # Tan and Le's grid-search result for B0


def _scaling(domains: Domains, raw: Any) -> _Scaling:
    """Multipliers and compound scaling; `gamma: derived` solves alpha*beta^2*gamma^2 = target for gamma."""
    if raw is None:
        return _Scaling((), 2.0, 0.0, False)
    raw = mapping(raw, "scaling")
    check_keys(raw, (*SCALING_DIMS, "target", "tolerance"), "scaling")
    if "phi" not in raw and any(k in raw for k in ("alpha", "beta", "gamma")):
        raise SpecError("scaling.phi", "is required with alpha, beta or gamma", show_value=False)
    target = float(_number(raw.get("target", 2.0), "scaling.target"))
    tolerance = float(_number(raw.get("tolerance", 0.05), "scaling.tolerance"))
    if target < 1:
        raise SpecError("scaling.target", "must be >= 1", target)
    if tolerance < 0:
        raise SpecError("scaling.tolerance", "must be >= 0", tolerance)
    derive = raw.get("gamma") == "derived"
    slots = []
    for key in SCALING_DIMS:
        if (key not in raw and not (key in _ABG_DEFAULTS and "phi" in raw)) or (key == "gamma" and derive):
            continue
        # alpha/beta/gamma are enumerated by the feasibility proof: not every combination is allowed
        field = Target(f"scaling.{key}", key, "float", _probe_scaling(key), frozenset(domains.tied),
                       "enum" if key in _ABG_DEFAULTS else None)
        dom = domains.parse(raw.get(key, _ABG_DEFAULTS.get(key)), f"scaling.{key}", field)
        domains.note_condition(dom)
        slots.append(Slot(key, dom))
    scaling = _Scaling(tuple(slots), target, tolerance, derive)
    _check_compound(domains, scaling)
    return scaling


def _check_compound(domains: Domains, scaling: _Scaling) -> None:
    """Some alpha, beta, gamma of the grids meets alpha*beta^2*gamma^2 = target within the tolerance."""
    abg = {s.field: s.domain for s in scaling.slots if s.field in _ABG_DEFAULTS}
    if not abg:
        return
    grids = [domains.values(abg[k]) for k in abg]
    if any(g is None for g in grids):
        raise SpecError("scaling", "alpha, beta and gamma need choices or a stepped range", show_value=False)
    alphas, betas, *gammas = (g for g in grids if g is not None)
    target = scaling.target
    if scaling.derive_gamma:
        if min(a * b * b for a in alphas for b in betas) > target:
            raise SpecError("scaling.gamma", f"cannot be derived: alpha*beta^2 exceeds the target "
                            f"{target:g} everywhere, so gamma would be < 1", "derived")
        return
    best = min(abs(a * b * b * c * c / target - 1) for a in alphas for b in betas for c in gammas[0])
    if best > scaling.tolerance + 1e-12:
        raise SpecError("scaling.tolerance", f"cannot be met: the closest alpha*beta^2*gamma^2 is "
                        f"{best:.1%} from the target {target:g}", scaling.tolerance)


# --- constraints and landmarks ----------------------------------------------------------------------------------

def _constraints(raw: Any) -> tuple[Bound, ...]:
    """`constraints:`, bounds on params and MACs, each at the input size `at` (shared or its own)."""
    raw = mapping(raw, "constraints")
    check_keys(raw, ("at", *METRICS), "constraints")
    at_all = _at(raw.get("at", {}), "constraints.at")
    bounds = []
    for metric in METRICS:
        if metric not in raw:
            continue
        path = f"constraints.{metric}"
        spec = mapping(raw[metric], path)
        check_keys(spec, ("min", "max", "at"), path)
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
        at.update(_at(spec.get("at", {}), f"{path}.at"))
        bounds.append(Bound(metric, low, high, tuple(sorted(at.items())), path))
    return tuple(bounds)


def _at(raw: Any, path: str) -> dict[str, int]:
    """`at:`, the img_size, in_chans and num_classes a bound is evaluated with."""
    raw = mapping(raw, path)
    check_keys(raw, AT_KEYS, path)
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SpecError(f"{path}.{key}", "must be a positive integer", value)
        top = {"img_size": MAX_IMG_SIZE, "in_chans": MAX_WIDTH}.get(key, 10 ** 6)  # the ArchSpec field bounds
        if value > top:
            raise SpecError(f"{path}.{key}", f"must be at most {top:,}", value)
    return dict(raw)


def _landmarks(raw: Any) -> dict[str, dict[str, Any]]:
    """`landmarks:`, named points of the space (their names are checked by check_landmark_names)."""
    raw = mapping(raw, "landmarks")
    out = {}
    for key, params in raw.items():
        out[str(key)] = dict(mapping(params, f"landmarks.{key}"))
    return out


def check_landmark_names(compiled: CompiledSpace) -> None:
    """Landmark parameter names must be names of the space (typos are caught when the file loads)."""
    names = {d.name for d in compiled.dimensions}
    for key, params in compiled.landmarks.items():
        for name in params:
            if name not in names:
                raise SpecError(f"landmarks.{key}.{name}", "is not a parameter of this space"
                                + did_you_mean(str(name), names), show_value=False)


# --- probes: the core dataclasses' own validation, one field at a time -------------------------------------

def _probe_global(name: str) -> Probe:
    """A checker for a global field: the value inside a minimal ArchSpec."""
    def probe(value: Any, path: str) -> Any:
        data = {"stem": {"type": "identity"}, "stages": [{"block": "plain", "depth": 1, "width": 8, "kernel_size": 1}],
                name: value}
        try:
            return getattr(ArchSpec.from_dict(data), name)
        except SpecError as err:
            reraise_at(err, path)
    return probe


def _probe_scaling(name: str) -> Probe:
    """A checker for a scaling multiplier: a number, at least 1 for alpha, beta and gamma."""
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
