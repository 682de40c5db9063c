"""Ablation ladders: replay a network's modernization one step at a time, the paper's figures beside the replay's.

Liu et al., "A ConvNet for the 2020s", CVPR 2022 (arXiv 2201.03545), Tables 10 and 11, walk a ResNet-50 to
ConvNeXt-T one change at a time; the per-step code was never released. Here a ladder is a YAML file: a base
zoo network, ordered rows (registered steps from `archlab.arch.steps` with options and inline spec
overrides, or whole zoo networks as rungs), the paper's numbers per row, a proxy setting (dataset, input size,
a width/depth reduction applied to every row, a recipe per row, a budget) and seeds. This module reads the
file (records on `archlab.core.schema`, so errors carry file, line and key path) and resolves its rows into
specs; `archlab.ablation.replay` measures them, `archlab.ablation.summary` compares them with the paper and
`archlab.ablation.text` prints the table. Side-branch rows are measured but not adopted: the next row starts
from the last adopted one.

Data flows one way: ladder file -> `Ladder` -> `ResolvedRow`s (ArchSpecs) -> records (results.jsonl) ->
`StepSummary` rows + `Agreement` (ablation.json, ablation.csv) -> the printed table.
"""
from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

from archlab.arch.families import rescale_stage
from archlab.arch.spec import MAX_IMG_SIZE, MAX_WIDTH, ArchSpec, make_divisible
from archlab.arch.steps import ABLATION_STEPS, AblationStep, ablation_step
from archlab.arch.zoo import ZOO, get_spec
from archlab.core.errors import ArchlabError, SpecError, did_you_mean
from archlab.core.schema import Range, Schema, internal, line_of, load_document
from archlab.measure.recipes import Budget, parse_multiplier

__all__ = ["ABLATION_STEPS", "AblationStep", "Ladder", "LadderRow", "PaperFigures", "ProxySetting", "ResolvedRow",
           "ablation_step", "apply_overrides", "describe_ladder", "ladder_from_dict", "load_ladder", "proxy_spec",
           "reduce_spec", "resolve_ladder", "validate_ladder_file"]

_NAME_RULE = re.compile(r"^[A-Za-z0-9_.+-]+$")   # row names become CSV cells and Ray/Optuna keys: no '/'
_DEVICE = re.compile(r"^(cpu|cuda(:\d{1,3})?)$")
MAX_SEEDS = 1000                                  # seeds of one ladder; each is a full replay of every row
Seed = Annotated[int, Range(ge=0, le=2 ** 32 - 1)]
Images = Annotated[int, Range(gt=0, le=10 ** 9)]


# --- the ladder file ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PaperFigures(Schema):
    """A row's published figures: ImageNet top-1 (mean, std over seeds) and GFLOPs (multiply-accumulates)."""

    top1: float | None = None
    top1_std: Annotated[float, Range(ge=0, le=100)] | None = None
    gflops: Annotated[float, Range(gt=0, le=1e6)] | None = None
    gflops_note: str = ""            # why a published GFLOPs figure is not comparable (a known misprint, ...)

    def __post_init__(self) -> None:
        self._normalise()
        if self.top1 is not None and not 0.0 <= self.top1 <= 100.0:
            raise SpecError("top1", "must be a percentage in [0, 100]", self.top1)


@dataclass(frozen=True, slots=True)
class LadderRow(Schema):
    """One row: a registered step with options, inline spec overrides, or a zoo rung; evaluated, maybe adopted."""

    name: str
    step: str | None = None          # a name in ABLATION_STEPS
    args: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)   # partial ArchSpec dict merged after the step
    zoo: str | None = None           # start this row afresh from a zoo network (a rung of a history ladder)
    branch: bool = False             # measured but not adopted: the next row starts from the last adopted row
    recipe: str | None = None        # switch to this recipe (else the step's, else the previous row's)
    # this row's training length relative to the proxy budget (a number or an exact ratio string "300/90");
    # None: its recipe's `budget_multiplier` (1 for the registered recipes)
    budget_multiplier: float | str | None = None
    paper: PaperFigures = field(default_factory=PaperFigures)
    note: str = ""
    ceiling: str = ""                # the ceiling this rung removed (history ladders)

    def __post_init__(self) -> None:
        self._normalise()
        if not _NAME_RULE.match(self.name):
            raise SpecError("name", "must use only letters, digits and _ . + - (no spaces or '/')", self.name)
        if self.step is not None and self.step not in ABLATION_STEPS:
            raise SpecError("step", "must be a registered ablation step"
                            + did_you_mean(self.step, ABLATION_STEPS.names()), self.step)
        if self.budget_multiplier is not None:
            parse_multiplier(self.budget_multiplier)
        if self.zoo is not None and self.zoo not in ZOO:
            raise SpecError("zoo", "must be a zoo network" + did_you_mean(self.zoo, ZOO.names(), list_valid=False),
                            self.zoo)
        if self.step is not None and self.zoo is not None:
            raise SpecError("zoo", "cannot be combined with step (a rung restarts from the zoo network)", self.zoo)
        if self.args and self.step is None:
            raise SpecError("args", "needs a step to pass them to", self.args)
        if self.step is not None:
            params = list(inspect.signature(ABLATION_STEPS.get(self.step).fn).parameters.values())[1:]
            accepted = [p.name for p in params]
            for key in self.args:
                if key not in accepted:
                    raise SpecError(f"args.{key}", f"is not an option of step {self.step!r} (options: "
                                    f"{', '.join(accepted) or 'none'})" + did_you_mean(str(key), accepted,
                                                                                      list_valid=False),
                                    show_value=False)


@dataclass(frozen=True, slots=True)
class ProxySetting(Schema):
    """How rows are trained and timed here: dataset, input, reduction of every row, recipes, budget, latency."""

    dataset: str
    img_size: Annotated[int, Range(gt=0, le=MAX_IMG_SIZE)]
    budget: Budget                   # epochs / images / seconds per (row, seed)
    in_chans: Annotated[int, Range(gt=0, le=MAX_WIDTH)] | None = None   # None: the dataset's native channels
    root: str | None = None
    width: float = 1.0               # width multiplier applied to every row (never widens a layer)
    depth: float = 1.0               # depth multiplier (ceil, at least one block per stage)
    val_fraction: float = 0.1
    limit: Images | None = None      # keep only this many training images
    val_limit: Images | None = None
    recipes: dict[str, str | dict[str, Any]] = field(default_factory=dict)   # name -> registered name or mapping
    device: str = "cpu"
    threads: Annotated[int, Range(gt=0, le=1024)] | None = None   # torch threads for training and latency
    latency_batch: Annotated[int, Range(gt=0, le=4096)] = 1
    latency_seconds: Annotated[float, Range(gt=0, le=3600)] = 2.0   # time cap of one latency measurement

    def __post_init__(self) -> None:
        self._normalise()
        _check_dataset(self.dataset)
        if not 0.0 < self.width <= 1.0:
            raise SpecError("width", "must be in (0, 1] (a reduction)", self.width)
        if not 0.0 < self.depth <= 1.0:
            raise SpecError("depth", "must be in (0, 1] (a reduction)", self.depth)
        if not 0.0 < self.val_fraction < 1.0:
            raise SpecError("val_fraction", "must be in (0, 1) (rows are compared on the validation split)",
                            self.val_fraction)
        if not _DEVICE.match(self.device):
            raise SpecError("device", "must be cpu or cuda[:N]", self.device)


def _check_dataset(name: str) -> None:
    from archlab.measure.data import DATASETS
    if name not in DATASETS:
        raise SpecError("dataset", "must be a registered dataset" + did_you_mean(name, DATASETS.names()), name)


@dataclass(frozen=True, slots=True)
class Ladder(Schema):
    """A whole ladder file: base network, rows (`steps`), proxy setting, seeds, and where it came from."""

    name: str
    base: str
    steps: tuple[LadderRow, ...]
    proxy: ProxySetting
    seeds: tuple[Seed, ...]          # a count N in the file stands for seeds 0..N-1
    recipe: str = "classic"          # the first row's recipe
    title: str = ""
    source: str = ""                 # where the paper's numbers come from
    file: str | None = internal()
    text: str = internal("")         # the file as read, kept verbatim in the run folder

    def __post_init__(self) -> None:
        self._normalise()
        if not _NAME_RULE.match(self.name):
            raise SpecError("name", "must use only letters, digits and _ . + - (no spaces or '/')", self.name)
        if self.base not in ZOO:
            raise SpecError("base", "must be a zoo network" + did_you_mean(self.base, ZOO.names(), list_valid=False),
                            self.base)
        if not self.steps:
            raise SpecError("steps", "must hold at least one row", [])
        if self.steps[0].branch:
            raise SpecError("steps[0].branch", "cannot be set on the first row (there is nothing to branch from)",
                            True)
        seen: dict[str, int] = {}
        for i, row in enumerate(self.steps):
            if row.name in seen:
                raise SpecError(f"steps[{i}].name", f"must be unique (steps[{seen[row.name]}] has it too)", row.name)
            seen[row.name] = i
        if not self.seeds or len(self.seeds) > MAX_SEEDS:
            raise SpecError("seeds", f"must be a count in 1..{MAX_SEEDS} or a list of 1 to {MAX_SEEDS} seeds >= 0",
                            list(self.seeds[:5]) + (["..."] if len(self.seeds) > 5 else []))
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError("seeds", "must not repeat a seed", list(self.seeds))

    @classmethod
    def _prepare(cls, data: Any, path: str) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kind = data.pop("kind", "ladder")   # `archlab validate` reads it to tell file kinds apart
        if kind not in ("ladder", "ablation"):
            raise SpecError("kind", "must be ladder (or ablation) in a ladder file", kind)
        seeds = data.get("seeds")
        if isinstance(seeds, int) and not isinstance(seeds, bool):   # a count
            if not 1 <= seeds <= MAX_SEEDS:
                raise SpecError("seeds", f"must be >= 1 and <= {MAX_SEEDS} (a count) or a list of seeds", seeds)
            data["seeds"] = list(range(seeds))
        return data

    @property
    def rows(self) -> tuple[LadderRow, ...]:
        """The rows, in order (the file's `steps`)."""
        return self.steps

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes a result (not seeds, title or comments): equal fingerprints may share a run
        folder."""
        rows = [dict(name=r.name, step=r.step, args=r.args, spec=r.spec, zoo=r.zoo, branch=r.branch, recipe=r.recipe)
                for r in self.rows]
        for row, r in zip(rows, self.rows):
            if r.budget_multiplier is not None:   # only when declared, so older run folders keep their fingerprint
                row["budget_multiplier"] = str(parse_multiplier(r.budget_multiplier))
        # latency settings change no training record (latencies are re-measured on every invocation)
        proxy = {k: v for k, v in asdict(self.proxy).items() if not k.startswith("latency_")}
        return json.loads(json.dumps(dict(base=self.base, recipe=self.recipe, rows=rows, proxy=proxy),
                                     sort_keys=True, default=str))


def ladder_from_dict(data: Any, *, file: str | None = None, text: str = "",
                     lines: Mapping[str, int] | None = None) -> Ladder:
    """Build and validate a Ladder from parsed YAML; errors name the file, line, key path, rule and value.

    Beyond the records' own rules, every recipe a row can use must resolve and every row's spec, full size and
    reduced to the proxy, must be valid.
    """
    if isinstance(data, dict) and "name" not in data:
        data = {**data, "name": Path(file).stem if file else "ladder"}
    ladder: Ladder = Ladder.from_dict(data, file=file, lines=lines, text=text)
    try:
        _check_recipes(ladder)
        resolve_ladder(ladder)
    except SpecError as err:
        raise err.with_context(file=file, line=err.line or line_of(lines or {}, err.path)) from None
    return ladder


def _check_recipes(ladder: Ladder) -> None:
    """Every recipe a row can use must resolve."""
    from archlab.measure.recipes import get_recipe
    used = {ladder.recipe} | {r.recipe for r in ladder.rows if r.recipe} | \
        {ABLATION_STEPS.get(r.step).recipe for r in ladder.rows if r.step and ABLATION_STEPS.get(r.step).recipe}
    for name in sorted(used):
        path = f"proxy.recipes.{name}" if name in ladder.proxy.recipes else "recipe"
        try:
            get_recipe(ladder.proxy.recipes.get(name, name))
        except SpecError as err:
            raise err.with_context(prefix=path) from None
        except ArchlabError as err:
            raise SpecError(path, f"names no usable recipe ({err})", name) from None


def load_ladder(path: str | Path) -> Ladder:
    """Read and validate a ladder file (YAML)."""
    doc = load_document(path)
    return ladder_from_dict(doc.data, file=str(path), text=doc.text, lines=doc.lines)


def validate_ladder_file(path: str | Path) -> Ladder:
    """Validate a ladder file for `archlab validate`: the same checks as `archlab ablate` before it measures."""
    return load_ladder(path)


def describe_ladder(ladder: Ladder) -> str:
    """One line about a valid ladder (for `archlab validate`)."""
    branches = sum(1 for r in ladder.rows if r.branch)
    p = ladder.proxy
    return (f"ladder {ladder.name}: {len(ladder.rows)} rows ({branches} side branches) from {ladder.base}; proxy "
            f"{p.dataset} at {p.img_size} px, width x{p.width:g}, depth x{p.depth:g}; {len(ladder.seeds)} seeds")


# --- resolving rows to specs ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ResolvedRow:
    """A row made concrete: its full-size spec, the recipe it trains with, and the row it changes."""

    index: int
    row: LadderRow
    spec: ArchSpec
    recipe: str
    parent: int | None               # the adopted row this one is compared with; None for the first
    budget_multiplier: Fraction = Fraction(1)   # of the proxy budget: the row's own, else its recipe's

    @property
    def name(self) -> str:
        """The row's name."""
        return self.row.name

    @property
    def kind(self) -> str:
        """base, step, branch or rung."""
        if self.index == 0:
            return "base"
        return "branch" if self.row.branch else ("rung" if self.row.zoo else "step")

    def budget(self, proxy: ProxySetting) -> Budget:
        """The budget this row trains with: the proxy's, times the row's multiplier."""
        return proxy.budget.scaled(self.budget_multiplier)


def _merge(base: Any, override: Any, path: str) -> Any:
    """Deep-merge a partial spec dict: mappings merge key by key; `stages` also takes one mapping for all stages."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            key_path = f"{path}.{key}" if path else str(key)
            if key not in base:
                raise SpecError(key_path, "is not a known key" + did_you_mean(str(key), base), show_value=False)
            out[key] = _merge(base[key], value, key_path)
        return out
    if isinstance(base, list) and base and isinstance(base[0], dict):  # the stages list
        if isinstance(override, dict):
            return [_merge(item, override, f"{path}[{i}]") for i, item in enumerate(base)]
        if isinstance(override, list):
            if len(override) != len(base):
                raise SpecError(path, f"must list {len(base)} stages (null leaves one unchanged) or be one mapping "
                                      "for every stage", override)
            return [item if o is None else _merge(item, o, f"{path}[{i}]") for i, (item, o) in
                    enumerate(zip(base, override))]
    return override


def apply_overrides(spec: ArchSpec, overrides: Mapping[str, Any]) -> ArchSpec:
    """`spec` with a partial spec dict merged in (errors name the key path under the overrides)."""
    if not overrides:
        return spec
    return ArchSpec.from_dict(_merge(spec.to_dict(), dict(overrides), ""))


def _row_spec(row: LadderRow, adopted: ArchSpec, path: str, file: str | None) -> ArchSpec:
    """The row's full-size spec: the zoo network, or its step applied to the adopted spec, then its overrides."""
    spec = adopted
    if row.zoo is not None:
        spec = get_spec(row.zoo)
    elif row.step is not None:
        try:
            spec = ABLATION_STEPS.get(row.step)(adopted, **row.args)
        except SpecError as err:
            raise err.with_context(file=file, prefix=f"{path}.args") from None
        except (TypeError, ValueError) as err:  # a step option of the wrong type or shape
            raise SpecError(f"{path}.args", f"cannot be applied by step {row.step!r} ({err})", row.args,
                            file=file) from None
    try:
        spec = apply_overrides(spec, row.spec)
    except SpecError as err:
        raise err.with_context(file=file, prefix=f"{path}.spec") from None
    return replace(spec, name=row.name)


def resolve_ladder(ladder: Ladder) -> tuple[ResolvedRow, ...]:
    """Apply the rows cumulatively from the base (branches are not adopted); check each reduced proxy spec too."""
    adopted, adopted_index, recipe = get_spec(ladder.base), None, ladder.recipe
    out: list[ResolvedRow] = []
    for i, row in enumerate(ladder.rows):
        path = f"steps[{i}]"
        spec = _row_spec(row, adopted, path, ladder.file)
        step_recipe = ABLATION_STEPS.get(row.step).recipe if row.step else None
        row_recipe = row.recipe or step_recipe or recipe
        multiplier = _row_multiplier(ladder, row, row_recipe, path)
        try:
            proxy_spec(spec, ladder.proxy, num_classes=10, in_chans=ladder.proxy.in_chans or 3)
        except SpecError as err:
            raise SpecError(f"{path}", f"cannot be reduced to the proxy ({err})", show_value=False,
                            file=ladder.file) from None
        out.append(ResolvedRow(i, row, spec, row_recipe, adopted_index, multiplier))
        if not row.branch:
            adopted, adopted_index, recipe = spec, i, row_recipe
    return tuple(out)


def _row_multiplier(ladder: Ladder, row: LadderRow, recipe: str, path: str) -> Fraction:
    """The row's budget multiplier: its own, else the one its recipe declares."""
    if row.budget_multiplier is not None:
        return parse_multiplier(row.budget_multiplier, f"{path}.budget_multiplier")
    from archlab.measure.recipes import get_recipe
    return get_recipe(ladder.proxy.recipes.get(recipe, recipe)).multiplier


def reduce_spec(spec: ArchSpec, *, width: float = 1.0, depth: float = 1.0) -> ArchSpec:
    """Shrink every width (stem, stages, head conv, hidden FC) by `width` and depth by `depth`.

    Unlike `archlab.arch.scaling.scale`, a width is never rounded up past its original (LeNet's 6 channels would
    become 8), so a reduction stays a reduction for every rung of a history ladder.
    """
    def chs(c: int) -> int:
        return c if width == 1.0 else min(c, make_divisible(c * width, 8))

    # a stage's width fields are its family's (an Inception stage rescales each branch)
    stages = tuple(replace(rescale_stage(s, chs), depth=max(1, math.ceil(s.depth * depth))) for s in spec.stages)
    stem = spec.stem if spec.stem.type == "identity" else replace(spec.stem, width=chs(spec.stem.width))
    head = replace(spec.head, conv_width=None if spec.head.conv_width is None else chs(spec.head.conv_width),
                   hidden=tuple(chs(w) for w in spec.head.hidden))
    return replace(spec, stem=stem, stages=stages, head=head)


def proxy_spec(spec: ArchSpec, proxy: ProxySetting, *, num_classes: int, in_chans: int) -> ArchSpec:
    """The network a row trains here: reduced, at the proxy's input size, channels and classes."""
    small = reduce_spec(spec, width=proxy.width, depth=proxy.depth)
    return replace(small, img_size=proxy.img_size, in_chans=in_chans, num_classes=num_classes)


