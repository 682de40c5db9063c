"""Search spaces: YAML files whose every point is an ArchSpec, sampled define-by-run through Optuna.

A space is declared in YAML (format: archlab.space.format, docs/search_spaces.md) and decoded here:
`suggest` asks an Optuna trial for each parameter that applies (define-by-run, as Optuna and Ray Tune's
OptunaSearch expect; names never contain '/'), `decode` replays a fixed parameter dict, `sample` draws seeded
uniform points. Constraints on parameters and MACs are checked analytically (`violations`, through
archlab.nn.complexity) before any module is built. Compound scaling follows Tan and Le, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019.
"""
from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archlab.arch.families import family
from archlab.arch.generators import GENERATORS
from archlab.arch.spec import ArchSpec, HeadSpec, StageSpec, StemSpec, make_divisible
from archlab.core.errors import ArchlabError, SpecError, did_you_mean, shorten
from archlab.core.schema import line_map, line_of
from archlab.space.format import (
    NEUTRAL_FIELDS,
    Bound,
    CompiledSpace,
    Dimension,
    Domain,
    Generated,
    Section,
    Slot,
    _grid,
    check_landmark_names,
    compile_space,
)
from archlab.space.limits import MAX_SAMPLE_TRIES, check_enumeration, cost_violations

if TYPE_CHECKING:
    import optuna

__all__ = ["Dimension", "InvalidPointError", "SearchSpace", "load_space"]

_MISSING = object()
_PRIMITIVE = (type(None), bool, int, float, str)
_PROOF_RUNS = 1024          # corner points tried when proving a bound can be met; beyond it no proof is claimed


class InvalidPointError(SpecError):
    """A parameter assignment that is not a valid architecture (e.g. a group width that does not divide)."""


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file; errors name the file, line, key path, rule and value."""
    from archlab.core.yamlio import load_yaml_with_lines, read_text_file
    text = read_text_file(path)   # read and parsed once, within the file boundary's limits
    data, lines = load_yaml_with_lines(text, file=str(path))
    _refuse_other_kinds(data, str(path), lines)
    return SearchSpace.from_dict(data, file=str(path), lines=lines)


def _refuse_other_kinds(data: Any, file: str, lines: Mapping[str, int]) -> None:
    """A study or a ladder given where a space belongs is named as such (its first key was said to be unknown)."""
    if not isinstance(data, dict):
        return
    if "space" in data and "stem" not in data:   # `space:` is a study's key, never a space's
        named = data["space"]
        where = os.path.normpath(Path(file).parent / named) if isinstance(named, str) and named else \
            shorten(repr(named), 80)
        raise SpecError("", f"is a study, not a search space: give the space it names ({where})", show_value=False,
                        file=file, line=lines.get("space"))
    if "steps" in data and "stem" not in data:   # `steps:` is an ablation ladder's key
        raise SpecError("", "is an ablation ladder, not a search space (archlab ablate and archlab validate read it)",
                        show_value=False, file=file, line=lines.get("steps"))


def _lines_of(text: str | None) -> dict[str, int]:
    """Key path -> line, from the YAML text (only called on text that already loaded safely)."""
    return line_map(text) if text else {}


class SearchSpace:
    """A compiled search space: dimensions, define-by-run decoding, sampling and analytic constraints."""

    def __init__(self, compiled: CompiledSpace) -> None:
        self._c = compiled
        self._names = {d.name for d in compiled.dimensions}
        self._roles = {d.name: d.role for d in compiled.dimensions}
        self._controllers = _controller_dims(compiled)
        # counting and the corner walk enumerate these parameters' combinations: bound that work first
        check_enumeration(d.size if d.size != math.inf else 2 for d in compiled.dimensions
                          if d.name in self._controllers)
        self._cost_controllers = _controller_dims(compiled, cost_only=True)
        self._grids = {d.name: values for d in compiled.dimensions if (values := d.values()) is not None}
        groups: dict[tuple[tuple[str, int], ...], list[Bound]] = {}
        for bound in compiled.bounds:  # bounds evaluated at the same input share one complexity walk
            groups.setdefault(bound.at, []).append(bound)
        self._groups = tuple((at, tuple(bounds)) for at, bounds in groups.items())
        self._encoded = frozenset(d.name for d in compiled.dimensions if d.choices is not None
                                  and any(not isinstance(c, _PRIMITIVE) for c in d.choices))

    # -- construction --
    @classmethod
    def from_dict(cls, data: Any, file: str | None = None, *, text: str | None = None,
                  lines: dict[str, int] | None = None) -> SearchSpace:
        """Validate a parsed space file (a mapping) and prove that its constraints can be met; errors cite
        lines from `lines` (key path -> line) or, failing that, from the file's `text`."""
        lines = lines if lines is not None else _lines_of(text)
        compiled = compile_space(data, file=file, lines=lines)
        try:
            space = cls(compiled)
            check_landmark_names(compiled)
            space._check_landmarks()
            space._prove_bounds()
        except SpecError as err:
            raise err.with_context(file=file, line=line_of(lines, err.path)) from None
        return space

    # -- what the space is --
    @property
    def name(self) -> str:
        """The space's name (the file's `name`, else its stem)."""
        return self._c.name

    @property
    def description(self) -> str:
        """Free text from the file."""
        return self._c.description

    @property
    def file(self) -> str | None:
        """The file it was loaded from, if any."""
        return self._c.file

    @property
    def generate_rule(self) -> str | None:
        """The generator that makes the stages (a `generate:` section), if any."""
        return self._c.generate.rule if self._c.generate is not None else None

    @property
    def base(self) -> str | None:
        """The zoo network the space starts from, if any."""
        return self._c.base

    @property
    def dimensions(self) -> list[Dimension]:
        """Every searched parameter in define-by-run order, with the condition under which it applies."""
        return list(self._c.dimensions)

    @property
    def constraints(self) -> tuple[Bound, ...]:
        """Bounds on params and MACs."""
        return self._c.bounds

    @property
    def landmarks(self) -> dict[str, dict[str, Any]]:
        """Named parameter sets (zoo networks among them) that are points of the space."""
        return {k: dict(v) for k, v in self._c.landmarks.items()}

    def log10_size(self) -> float:
        """log10 of the number of distinct parameter assignments (inf with a continuous range).

        Conditional parameters count only where they apply, so this is the number of distinct points; it
        bounds the number of distinct architectures from above (rounding can merge scaled points).
        """
        total = _count_space(self._c, self._controllers)
        return math.inf if total == math.inf else math.log10(total)

    # -- decoding --
    def suggest(self, trial: optuna.Trial, *, img_size: int | None = None, in_chans: int | None = None,
                num_classes: int | None = None) -> ArchSpec:
        """Define-by-run: ask `trial` for each parameter that applies and return the ArchSpec.

        Raises InvalidPointError when the assignment is not a valid network; constraints are not checked
        here (see `violations`), so the caller decides how to tell Optuna.
        """
        return self._decode(_TrialChooser(trial), _overrides(img_size, in_chans, num_classes))

    def decode(self, params: Mapping[str, Any], *, img_size: int | None = None, in_chans: int | None = None,
               num_classes: int | None = None) -> ArchSpec:
        """Replay a fixed parameter dict (e.g. a finished Optuna trial's `params`) into its ArchSpec."""
        return self._decode_params(params, img_size=img_size, in_chans=in_chans, num_classes=num_classes)

    def _decode_params(self, params: Mapping[str, Any], *, where: str = "params", img_size: int | None = None,
                       in_chans: int | None = None, num_classes: int | None = None) -> ArchSpec:
        """`decode`, with errors reported under the key path `where`."""
        unknown = [k for k in params if k not in self._names]
        if unknown:
            raise SpecError(f"{where}.{unknown[0]}", "is not a parameter of this space"
                            + did_you_mean(str(unknown[0]), self._names), show_value=False)
        return self._decode(_ParamsChooser(params, where), _overrides(img_size, in_chans, num_classes))

    def sample(self, n: int, *, seed: int, feasible_only: bool = True, img_size: int | None = None,
               in_chans: int | None = None, num_classes: int | None = None, max_tries: int | None = None
               ) -> list[tuple[dict[str, Any], ArchSpec]]:
        """`n` seeded points, each parameter drawn uniformly; invalid (and, by default, infeasible) ones skipped.

        The same seed and arguments give the same points. Raises ArchlabError after `max_tries` draws
        (default max(2000, 500 n)) without enough of them.
        """
        if n < 0:
            raise ArchlabError(f"the number of samples must be >= 0, got {n}")
        limit = max_tries if max_tries is not None else max(2000, min(500 * n, n + MAX_SAMPLE_TRIES))
        out: list[tuple[dict[str, Any], ArchSpec]] = []
        if n == 0:
            return out
        invalid: dict[str, Any] | None = None   # the first draw that is no network, and the first out of bounds
        broken: list[str] = []
        for tries, (params, spec) in enumerate(self.candidates(seed=seed, img_size=img_size, in_chans=in_chans,
                                                               num_classes=num_classes), start=1):
            if spec is None:
                invalid = params if invalid is None else invalid
            elif feasible_only and (violations := self.violations(spec)):
                broken = broken or violations
            else:
                out.append((params, spec))
                if len(out) == n:
                    return out
            if tries >= limit:
                raise ArchlabError(f"{self._where()}found only {len(out)} of {n} "
                                   f"{'feasible' if feasible_only else 'valid'} points in {tries} random tries"
                                   + self._why_not(invalid, broken, img_size=img_size, in_chans=in_chans,
                                                   num_classes=num_classes))
        raise AssertionError("candidates() is endless")

    def _why_not(self, invalid: dict[str, Any] | None, broken: list[str], **overrides: int | None) -> str:
        """'; e.g. <why>' for a failed sample: the first draw's decoding error, else the first broken bound."""
        if invalid is not None:
            try:
                self.decode(invalid, **overrides)
            except ArchlabError as err:   # which network: the draw's parameters
                drawn = shorten(" ".join(f"{k}={v}" for k, v in invalid.items()), 160)
                return f"; e.g. {drawn}: {err}" if drawn else f"; e.g. {err}"
        return f"; e.g. a draw breaks the constraints: {broken[0]}" if broken else ""

    def candidates(self, *, seed: int, img_size: int | None = None, in_chans: int | None = None,
                   num_classes: int | None = None) -> Iterator[tuple[dict[str, Any], ArchSpec | None]]:
        """Endless seeded uniform draws as (params, spec); spec is None where the draw is not a valid network."""
        rng = random.Random(seed)
        overrides = _overrides(img_size, in_chans, num_classes)
        while True:
            chooser = _RandomChooser(rng, self._grids, self._encoded)
            try:
                spec = self._decode(chooser, overrides)
            except InvalidPointError:
                yield chooser.params, None
                continue
            yield chooser.params, spec

    def violations(self, spec: ArchSpec) -> list[str]:
        """Broken bounds as readable strings (empty: feasible); analytic, no module is built."""
        params_macs = _params_macs()
        out = cost_violations(*params_macs(spec))   # the hard limits hold with or without constraints
        if out or not self._groups:
            return out
        for at, bounds in self._groups:
            changes = {k: v for k, v in at if getattr(spec, k) != v}
            try:
                cost = params_macs(replace(spec, **changes) if changes else spec)
            except SpecError as err:  # e.g. too small for the bound's img_size
                out.append(f"cannot be evaluated{_at_text(at)}: {err}")
                continue
            for bound in bounds:
                value = cost[0] if bound.metric == "params" else cost[1]
                if bound.high is not None and value > bound.high:
                    out.append(f"{bound.metric} {value:,} > max {bound.high:,.0f}{_at_text(at)}")
                if bound.low is not None and value < bound.low:
                    out.append(f"{bound.metric} {value:,} < min {bound.low:,.0f}{_at_text(at)}")
        return out

    def _where(self) -> str:
        return f"{self._c.file}: " if self._c.file else ""

    # -- the decoder --
    def _decode(self, chooser: _Chooser, overrides: dict[str, int]) -> ArchSpec:
        """Resolve every section in define-by-run order and build the spec (InvalidPointError if invalid)."""
        c = self._c
        pick = chooser.pick
        env: dict[str, Any] = {}
        for name, dom in c.tied:
            value = _resolve(dom, env, env, pick)
            if value is not _MISSING:
                env[name] = value
        top: dict[str, Any] = {}
        for slot in c.globals_:
            value = overrides[slot.field] if slot.field in overrides else _resolve(slot.domain, top, env, pick)
            if value is not _MISSING:
                top[slot.field] = value
        stem = _section_values(c.stem, env, pick)
        stages = [] if c.generate is None else _generated_stages(c.generate, env, pick)
        for section in c.stages:
            values = _section_values(section, env, pick)
            if values is not None:
                stages.append(values)
        head = _section_values(c.head, env, pick)
        if any(family(s["block"]).layer_scale for s in stages) or c.layer_scale.domain.kind == "fixed":
            value = _resolve(c.layer_scale.domain, top, env, pick)
            if value is not _MISSING:
                top["layer_scale_init"] = value
        multipliers = {}
        for slot in c.scaling:
            value = _resolve(slot.domain, top, env, pick)
            if value is not _MISSING:
                multipliers[slot.field] = value
        if multipliers:
            width, depth, resolution = self._multipliers(multipliers, forced="img_size" in overrides)
            _scale_values(stem, stages, head, top, width, depth, resolution)
        try:
            return ArchSpec(stem=_cached(StemSpec, stem), stages=tuple(_cached(StageSpec, s) for s in stages),
                            head=_cached(HeadSpec, head), **top)
        except SpecError as err:
            raise InvalidPointError("", f"this point is not a valid network: {err}", show_value=False) from None

    def _multipliers(self, m: dict[str, Any], *, forced: bool) -> tuple[float, float, float]:
        """(width, depth, resolution) multipliers; a forced img_size keeps its side (gamma^phi is dropped)."""
        width, depth, resolution = m.get("width_mult", 1.0), m.get("depth_mult", 1.0), 1.0
        if m.get("phi", _MISSING) is not _MISSING:
            alpha, beta = m["alpha"], m["beta"]
            if self._c.derive_gamma:
                gamma = math.sqrt(self._c.target / (alpha * beta ** 2))
                if gamma < 1 - 1e-12:
                    raise InvalidPointError("scaling", f"gamma would be {gamma:.4g} < 1 (alpha*beta^2 > "
                                            f"{self._c.target:g})", (alpha, beta))
            else:
                gamma = m["gamma"]
                product = alpha * beta ** 2 * gamma ** 2
                if abs(product / self._c.target - 1) > self._c.tolerance + 1e-12:
                    raise InvalidPointError("scaling", f"alpha*beta^2*gamma^2 = {product:.4g} is not within "
                                            f"{self._c.tolerance:.0%} of {self._c.target:g}", (alpha, beta, gamma))
            phi = m["phi"]
            depth, width = depth * alpha ** phi, width * beta ** phi
            resolution = 1.0 if forced else gamma ** phi
        return width, depth, resolution

    # -- checks run when a file loads --
    def _check_landmarks(self) -> None:
        """Every landmark decodes; one named after a zoo network decodes to exactly that network."""
        from archlab.arch.zoo import ZOO, get_spec
        for key, params in self._c.landmarks.items():
            where = f"landmarks.{key}"
            if key in ZOO:
                zoo = get_spec(key)
                spec = self._decode_params(params, where=where, img_size=zoo.img_size, in_chans=zoo.in_chans,
                                           num_classes=zoo.num_classes)
                if spec.arch_id != zoo.arch_id:
                    raise SpecError(where, f"decodes to a network that is not the zoo's {key}: "
                                    f"{_first_difference(spec.to_dict(), zoo.to_dict())}", show_value=False)
            else:
                self._decode_params(params, where=where)

    def _prove_bounds(self) -> None:
        """A max bound that even the cheapest corner of the space breaks (or a min bound the largest
        corner misses) can never be met: say so now instead of rejecting every sample later."""
        if not self._c.bounds:
            return
        for mode in ("min", "max"):
            bounds = [b for b in self._c.bounds if (b.high if mode == "min" else b.low) is not None]
            if not bounds:
                continue
            best, complete = _corner_costs(self, mode, bounds)
            if not complete or best is None:
                continue
            for bound in bounds:
                value = best[bound.path]
                limit = bound.high if mode == "min" else bound.low
                if (mode == "min" and value > limit) or (mode == "max" and value < limit):
                    word = "cheapest" if mode == "min" else "largest"
                    key = "max" if mode == "min" else "min"
                    raise SpecError(f"{bound.path}.{key}", f"cannot be met: the {word} point of the space has "
                                    f"{value:,} {bound.metric}{_at_text(bound.at)}", limit)


# --- choosers: where a dimension's value comes from --------------------------------------------------------

class _Chooser:
    """Source of values for dimensions while decoding."""

    pick: Callable[[Dimension], Any]   # a method, or (_RandomChooser) a closure bound in __init__ for speed


def _encode(dim: Dimension, value: Any) -> Any:
    """The value as Optuna stores it: categorical choices that are not primitives become JSON text."""
    if dim.kind == "categorical" and not isinstance(value, _PRIMITIVE):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return value


def _choices(dim: Dimension) -> tuple[Any, ...]:
    """A categorical dimension's choices (the space compiler gives every categorical dimension some)."""
    assert dim.choices is not None, f"{dim.name} is {dim.kind}, not categorical"
    return dim.choices


def _span(dim: Dimension) -> tuple[float, float]:
    """An int or float dimension's (low, high) (the space compiler gives every range both ends)."""
    assert dim.low is not None and dim.high is not None, f"{dim.name} is {dim.kind}, not a range"
    return dim.low, dim.high


def _encoded_choices(dim: Dimension) -> tuple[Any, ...]:
    return tuple(_encode(dim, c) for c in _choices(dim))


def _snap(dim: Dimension, value: float) -> float:
    """A float on the dimension's step grid, rounded the same way everywhere."""
    if dim.step is None:
        return float(value)
    low = _span(dim)[0]
    return _grid(low, dim.step, int(round((value - low) / dim.step)))


class _TrialChooser(_Chooser):
    """Asks an Optuna trial (define-by-run)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def pick(self, dim: Dimension) -> Any:
        if dim.kind == "categorical":
            encoded = _encoded_choices(dim)
            return _choices(dim)[encoded.index(self.trial.suggest_categorical(dim.name, encoded))]
        low, high = _span(dim)
        if dim.kind == "int":
            return self.trial.suggest_int(dim.name, int(low), int(high), step=int(dim.step or 1), log=dim.log)
        return _snap(dim, self.trial.suggest_float(dim.name, low, high, step=dim.step, log=dim.log))


class _ParamsChooser(_Chooser):
    """Replays a parameter dict, checking each value against its dimension."""

    def __init__(self, params: Mapping[str, Any], where: str) -> None:
        self.params = params
        self.where = where

    def pick(self, dim: Dimension) -> Any:
        path = f"{self.where}.{dim.name}"
        if dim.name not in self.params:
            raise SpecError(path, f"is missing: this point needs it ({dim.describe()})", show_value=False)
        value = self.params[dim.name]
        if dim.kind == "categorical":
            candidates = [value]
            if isinstance(value, list):
                candidates.append(tuple(value))
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    loaded = json.loads(value)
                    candidates.append(tuple(loaded) if isinstance(loaded, list) else loaded)
                except ValueError:
                    pass
            for candidate in candidates:
                for choice in _choices(dim):
                    if _same(candidate, choice):
                        return choice
            raise SpecError(path, f"must be one of {dim.describe()}", value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(path, "must be a number", value)
        low, high = _span(dim)
        if not low - 1e-9 <= value <= high + 1e-9:
            raise SpecError(path, f"must be in {dim.describe()}", value)
        if dim.kind == "int":
            if float(value) != int(value) or (int(value) - int(low)) % int(dim.step or 1):
                raise SpecError(path, f"must be an integer in {dim.describe()}", value)
            return int(value)
        snapped = _snap(dim, value)
        if abs(snapped - value) > 1e-9 * max(1.0, abs(value)):
            raise SpecError(path, f"must lie on the grid {dim.describe()}", value)
        return snapped


class _RandomChooser(_Chooser):
    """Uniform draws from a seeded `random.Random`; records what it drew as Optuna would store it."""

    def __init__(self, rng: random.Random, grids: dict[str, tuple[Any, ...]], encoded: frozenset[str]) -> None:
        params: dict[str, Any] = {}
        self.params = params
        rand = rng.random

        # a closure with its lookups bound: this is called for every dimension of every candidate
        def pick(dim: Dimension) -> Any:
            name = dim.name
            values = grids.get(name)
            if values is not None:  # int(random() * n) is uniform on 0..n-1 and cheaper than randrange
                value = values[int(rand() * len(values))]
                params[name] = _encode(dim, value) if name in encoded else value
                return value
            low, high = _span(dim)  # a continuous float range
            if dim.log:
                value = math.exp(math.log(low) + rand() * (math.log(high) - math.log(low)))
            else:
                value = low + rand() * (high - low)
            params[name] = value
            return value

        self.pick = pick


class _CornerChooser(_Chooser):
    """Walks the corners of the space one decision path at a time (for proving a bound can be met).

    Dimensions whose growth never lowers params or MACs take their least (or greatest) value, neutral ones
    their first, and everything else (families, strides, norms, controllers of `when`) every value.
    """

    def __init__(self, space: SearchSpace, mode: str, path: list[int]) -> None:
        self.space, self.mode, self.path = space, mode, path
        self.radices: list[int] = []
        self.taken: list[int] = []
        self.complete = True

    def options(self, dim: Dimension) -> tuple[Any, ...]:
        values = dim.values()
        if values is None:  # continuous: its ends only, so the enumeration is no longer a proof
            self.complete = False
            values = (dim.low, dim.high)
        role = "enum" if dim.name in self.space._cost_controllers else self.space._roles.get(dim.name, "enum")
        if role == "neutral":
            return values[:1]
        if role == "up":
            return (values[0],) if self.mode == "min" else (values[-1],)
        if role == "depth":
            nonzero = [v for v in values if v != 0]
            extreme = (nonzero[0] if self.mode == "min" else nonzero[-1],) if nonzero else ()
            return ((0,) if 0 in values else ()) + extreme
        return values

    def pick(self, dim: Dimension) -> Any:
        options = self.options(dim)
        i = self.path[len(self.taken)] if len(self.taken) < len(self.path) else 0
        self.radices.append(len(options))
        self.taken.append(i)
        return options[i]

    def next_path(self) -> list[int] | None:
        """The next decision path in depth-first order, or None when every corner was visited."""
        for j in range(len(self.taken) - 1, -1, -1):
            if self.taken[j] + 1 < self.radices[j]:
                return self.taken[:j] + [self.taken[j] + 1]
        return None


def _corner_costs(space: SearchSpace, mode: str, bounds: list[Bound]) -> tuple[dict[str, int] | None, bool]:
    """The least (mode min) or greatest (mode max) value of each bound's metric over the corners."""
    params_macs = _params_macs()
    best: dict[str, int] | None = None
    path: list[int] | None = []
    runs = 0
    complete = True
    while path is not None:
        if runs >= _PROOF_RUNS:
            return best, False
        runs += 1
        chooser = _CornerChooser(space, mode, path)
        try:
            spec = space._decode(chooser, {})
        except InvalidPointError:
            spec = None
        complete = complete and chooser.complete
        path = chooser.next_path()
        if spec is None:
            continue
        costs: dict[tuple[tuple[str, int], ...], tuple[int, int]] = {}
        values = {}
        try:
            for bound in bounds:
                if bound.at not in costs:
                    costs[bound.at] = params_macs(replace(spec, **dict(bound.at)) if bound.at else spec)
                values[bound.path] = costs[bound.at][0 if bound.metric == "params" else 1]
        except SpecError:  # not a valid network at the bound's input size: no evidence either way
            continue
        if best is None:
            best = values
        else:
            pick = min if mode == "min" else max
            best = {k: pick(best[k], v) for k, v in values.items()}
    return best, complete


# --- decoding helpers (hot path of sampling: kept small and allocation-light) ----------------------------

def _holds(when: tuple[tuple[str, bool, tuple[Any, ...]], ...], local: dict[str, Any], env: dict[str, Any]) -> bool:
    for key, negate, values in when:
        value = local[key] if key in local else env.get(key, _MISSING)
        if value is _MISSING or (value in values) == negate:
            return False
    return True


def _resolve(dom: Domain, local: dict[str, Any], env: dict[str, Any], pick: Callable[[Dimension], Any]) -> Any:
    if dom.when and not _holds(dom.when, local, env):
        return _MISSING
    if dom.kind == "fixed":
        return dom.value
    if dom.dim is not None:   # kind "dim"
        return pick(dom.dim)
    return env.get(dom.ref, _MISSING)


def _section_values(section: Section, env: dict[str, Any], pick: Callable[[Dimension], Any]
                    ) -> dict[str, Any] | None:
    """Field values of one stem/stage/head, or None for a stage of depth 0."""
    depth = _MISSING
    if section.depth is not None:
        depth = _resolve(section.depth, {}, env, pick)
        if depth == 0:
            return None
    if section.selector is not None:
        plan = section.plans[_resolve(section.selector, {}, env, pick)]
    else:
        plan = next(iter(section.plans.values()))
    local = dict(plan.fallback)
    if depth is not _MISSING:
        local["depth"] = depth
    for slot in plan.slots:  # _resolve inlined: this loop is the hot path of sampling
        dom = slot.domain
        if dom.when and not _holds(dom.when, local, env):
            continue
        dim = dom.dim
        if dim is not None:   # kind "dim"
            local[slot.field] = pick(dim)
        elif dom.kind == "fixed":
            local[slot.field] = dom.value
        else:
            value = env.get(dom.ref, _MISSING)
            if value is not _MISSING:
                local[slot.field] = value
    return local


_STAGE_DEFAULTS = {f.name: f.default for f in fields(StageSpec)}


def _generated_stages(gen: Generated, env: dict[str, Any], pick: Callable[[Dimension], Any]) -> list[dict[str, Any]]:
    """The generator's stages for its resolved parameters, each a full StageSpec field dict (the template shared)."""
    values: dict[str, Any] = {}
    for slot in gen.slots:
        value = _resolve(slot.domain, values, env, pick)
        if value is not _MISSING:
            values[slot.field] = value
    try:
        rows = GENERATORS.get(gen.rule)(**values)
    except SpecError as err:
        raise InvalidPointError(f"generate.{err.path}", err.rule, err.value) from None
    return [{**_STAGE_DEFAULTS, **gen.template, **row} for row in rows]


_CACHE: dict[tuple[Any, ...], Any] = {}
_CACHE_LIMIT = 200_000


def clear_caches() -> None:
    """Forget memoised section specs and stage costs (benchmarks time cold sampling with it)."""
    from archlab.nn.complexity import clear_stage_costs
    _CACHE.clear()
    clear_stage_costs()


def _cached(cls: type, values: dict[str, Any]) -> Any:
    """Build (and memoise) a frozen stem/stage/head spec: the same field values give the same object.

    Compiled sections always list a class's fields in the same order, so the values alone are the key.
    """
    key = (cls, *values.values())
    hit = _CACHE.get(key)
    if hit is None:
        try:
            hit = cls(**values)
        except SpecError as err:
            hit = err
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[key] = hit
    if isinstance(hit, SpecError):
        raise SpecError(hit.path, hit.rule, hit.value, show_value=hit.show_value)
    return hit


def _scale_values(stem: dict[str, Any], stages: list[dict[str, Any]], head: dict[str, Any], top: dict[str, Any],
                  width: float, depth: float, resolution: float) -> None:
    """archlab.arch.scaling.scale applied to field values before the specs are built (same rounding: widths by
    make_divisible(c * width, 8), depths by ceil, the side by round); equality with `scale` is tested."""
    if width != 1.0:
        if stem["type"] != "identity":
            stem["width"] = make_divisible(stem["width"] * width, 8)
        for stage in stages:
            stage.update(family(stage["block"]).rescale(stage, lambda c: make_divisible(c * width, 8)))
        if head["conv_width"] is not None:
            head["conv_width"] = make_divisible(head["conv_width"] * width, 8)
    if depth != 1.0:
        for stage in stages:
            stage["depth"] = int(math.ceil(stage["depth"] * depth))
    if resolution != 1.0:
        top["img_size"] = int(round(top.get("img_size", 224) * resolution))


def _params_macs() -> Callable[[ArchSpec], tuple[int, int]]:
    """archlab.nn.complexity.params_macs, imported on first use (it imports torch; parsing and --help do not)."""
    global _PARAMS_MACS
    if _PARAMS_MACS is None:
        from archlab.nn.complexity import params_macs
        _PARAMS_MACS = params_macs
    return _PARAMS_MACS


_PARAMS_MACS: Callable[[ArchSpec], tuple[int, int]] | None = None


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 (and False from 0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _overrides(img_size: int | None, in_chans: int | None, num_classes: int | None) -> dict[str, int]:
    out = {}
    for key, value in (("img_size", img_size), ("in_chans", in_chans), ("num_classes", num_classes)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SpecError(key, "must be a positive integer", value)
            out[key] = value
    return out


def _at_text(at: tuple[tuple[str, int], ...]) -> str:
    if not at:
        return ""
    names = {"img_size": "{} px", "in_chans": "{} channels", "num_classes": "{} classes"}
    return " at " + ", ".join(names[k].format(v) for k, v in at)


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """The first key path where two plain dicts differ, as 'path: a != b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if key == "name":
                continue
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r} != {b!r}"


# --- counting ------------------------------------------------------------------------------------------------

def _controller_dims(c: CompiledSpace, *, cost_only: bool = False) -> frozenset[str]:
    """Dimensions (and tied names) that some `when` reads: they are enumerated, never just multiplied.

    With `cost_only`, a `when` that guards only a cost-neutral field (an activation, a gate) is ignored.
    """
    def reads(slot: Slot) -> bool:
        return not (cost_only and slot.field in NEUTRAL_FIELDS)

    names: set[str] = set()
    for section in (c.stem, *c.stages, c.head):
        for plan in section.plans.values():
            local = {k for s in plan.slots if reads(s) for k, _, _ in s.domain.when}
            names.update(k for k in local if k not in plan.fallback and k != "depth")  # tied names
            for slot in plan.slots:
                if slot.field in local:
                    if slot.domain.dim is not None:
                        names.add(slot.domain.dim.name)
                    elif slot.domain.kind == "ref":
                        names.add(slot.domain.ref)
        for dom in (section.depth, section.selector):
            if dom is not None and dom.kind == "ref":
                names.add(dom.ref)
    for slot in (*c.globals_, c.layer_scale, *c.scaling):
        if reads(slot):
            names.update(k for k, _, _ in slot.domain.when)
        if slot.field in ("alpha", "beta", "gamma") and slot.domain.kind == "ref":
            names.add(slot.domain.ref)
    for _, dom in c.tied:
        names.update(k for k, _, _ in dom.when)
    # a global read by a `when` is named by its field: add its dimension's name
    for slot in (*c.globals_, c.layer_scale):
        if slot.field in names and slot.domain.dim is not None:
            names.add(slot.domain.dim.name)
    return frozenset(names)


def _values_of(dom: Domain, env: dict[str, Any]) -> tuple[Any, ...] | None:
    if dom.dim is not None:   # kind "dim"
        return dom.dim.values()
    if dom.kind == "fixed":
        return (dom.value,)
    value = env.get(dom.ref, _MISSING)
    return () if value is _MISSING else (value,)


def _count_slots(slots: tuple[Slot, ...], i: int, local: dict[str, Any], env: dict[str, Any],
                 controllers: frozenset[str]) -> float:
    """Number of distinct assignments of slots[i:], branching only on fields some `when` reads."""
    total: float = 1
    while i < len(slots):
        slot = slots[i]
        dom = slot.domain
        i += 1
        if dom.when and not _holds(dom.when, local, env):
            continue
        dim = dom.dim
        if dim is None:   # fixed or ref
            values = _values_of(dom, env)
            if values:
                local = {**local, slot.field: values[0]}
            continue
        if slot.field in controllers or dim.name in controllers:
            values = dim.values()
            if values is None:
                return math.inf
            return total * sum(_count_slots(slots, i, {**local, slot.field: v}, env, controllers) for v in values)
        total *= dim.size
    return total


def _count_section(section: Section, env: dict[str, Any], controllers: frozenset[str]) -> tuple[float, float]:
    """(all configurations, configurations without a convnext block) of one section."""
    depths: tuple[Any, ...] = (None,)
    zero = 0
    groups = 1
    if section.depth is not None:
        values = _values_of(section.depth, env) or ()
        zero = 1 if 0 in values else 0
        nonzero = tuple(v for v in values if v != 0)
        reads_depth = any("depth" in p.controllers for p in section.plans.values())
        if reads_depth:
            depths = nonzero
        else:
            depths, groups = nonzero[:1], len(nonzero)
    total = without = 0
    selectors = (None,) if section.selector is None else (_values_of(section.selector, env) or ())
    for depth in depths:
        for sel in selectors:
            plan = section.plans[sel] if sel is not None else next(iter(section.plans.values()))
            local = dict(plan.fallback)
            if depth is not None:
                local["depth"] = depth
            n = _count_slots(plan.slots, 0, local, env, plan.controllers | controllers)
            total += n
            if "block" not in plan.fallback or not family(plan.fallback["block"]).layer_scale:
                without += n
    return total * groups + zero, without * groups + zero


def _count_space(c: CompiledSpace, controllers: frozenset[str]) -> float:
    """Distinct points: tied controllers enumerated, sections independent given them (layer scale counted
    only where some stage is convnext, by inclusion-exclusion over the stages)."""

    def leaf(env: dict[str, Any]) -> float:
        n = _count_slots(c.globals_, 0, {}, env, controllers)
        n *= _count_section(c.stem, env, controllers)[0] * _count_section(c.head, env, controllers)[0]
        if c.generate is not None:  # generated stages (RegNet's bottlenecks) have no layer scale to count
            n *= _count_slots(c.generate.slots, 0, {}, env, controllers)
        all_stages = no_convnext = 1.0
        for section in c.stages:
            t, w = _count_section(section, env, controllers)
            all_stages *= t
            no_convnext *= w
        dom = c.layer_scale.domain
        with_convnext = all_stages - no_convnext
        if dom.dim is not None and with_convnext and (not dom.when or _holds(dom.when, {}, env)):
            with_convnext *= dom.dim.size
        return n * (with_convnext + no_convnext) * _count_scaling(c, env)

    def walk(i: int, env: dict[str, Any]) -> float:
        if i == len(c.tied):
            return leaf(env)
        name, dom = c.tied[i]
        if dom.when and not _holds(dom.when, env, env):
            return walk(i + 1, env)
        dim = dom.dim
        if dim is None:   # a tied dimension is fixed or searched, never a reference
            return walk(i + 1, {**env, name: dom.value})
        values = dim.values()
        if name in controllers:
            if values is None:
                return math.inf
            return sum(walk(i + 1, {**env, name: v}) for v in values)
        first = values[0] if values else dim.low
        return dim.size * walk(i + 1, {**env, name: first})

    total = walk(0, {})
    return total if total == math.inf else int(round(total))


def _count_scaling(c: CompiledSpace, env: dict[str, Any]) -> float:
    grids: dict[str, tuple[Any, ...]] = {}
    n: float = 1
    for slot in c.scaling:
        dom = slot.domain
        if dom.when and not _holds(dom.when, {}, env):
            continue
        values = _values_of(dom, env)
        if values is None:   # a continuous range (alpha, beta, gamma included): uncountable
            return math.inf
        if slot.field in ("alpha", "beta", "gamma"):
            grids[slot.field] = values
        else:
            n *= len(values)
    if grids:
        if c.derive_gamma:
            n *= sum(1 for a in grids["alpha"] for b in grids["beta"] if a * b * b <= c.target + 1e-12)
        else:
            n *= sum(1 for a in grids["alpha"] for b in grids["beta"] for g in grids["gamma"]
                     if abs(a * b * b * g * g / c.target - 1) <= c.tolerance + 1e-12)
    return n
