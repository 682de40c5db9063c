"""Ablation ladders: replay a network's modernization one step at a time, the paper's figures beside the replay's.

Liu et al., "A ConvNet for the 2020s", CVPR 2022 (arXiv 2201.03545), Tables 10 and 11, walk a ResNet-50 to
ConvNeXt-T one change at a time; the per-step code was never released. Here a ladder is a YAML file: a base
zoo network, ordered rows (registered steps from `archlab.arch.steps` with options and inline spec
overrides, or whole zoo networks as rungs), the paper's numbers per row, a proxy setting (dataset, input size,
a width/depth reduction applied to every row, a recipe per row, a budget) and seeds. `run_ablation` measures
every row (analytic parameters and MACs at full size, measured latency and proxy-trained top-1 of the reduced
network) and writes a resumable run folder whose format docs/ablation.md describes. Side-branch rows are
measured but not adopted: the next row starts from the last adopted one.

Data flows one way: ladder file -> `Ladder` -> `ResolvedRow`s (ArchSpecs) -> records (results.jsonl) ->
`StepSummary` rows + `Agreement` (ablation.json, ablation.csv) -> the printed table.
"""
from __future__ import annotations

import csv
import inspect
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from archlab.arch.spec import ArchSpec, make_divisible
from archlab.arch.steps import ABLATION_STEPS, AblationStep, ablation_step
from archlab.arch.zoo import ZOO, get_spec
from archlab.core.errors import ArchlabError, SpecError, did_you_mean
from archlab.core.yamlio import load_yaml_file, load_yaml_text

__all__ = ["ABLATION_STEPS", "Agreement", "AblationStep", "AblationReport", "Ladder", "LadderRow", "PaperFigures", "ProxySetting", "ResolvedRow",
           "StepSummary", "ablation_step", "agreement", "apply_overrides", "describe_ladder", "format_report", "ladder_from_dict", "load_ladder",
           "proxy_spec", "read_records", "reduce_spec", "resolve_ladder", "run_ablation", "summarize_steps",
           "validate_ladder_file"]

_NAME_RULE = re.compile(r"^[A-Za-z0-9_.+-]+$")   # row names become CSV cells and Ray/Optuna keys: no '/'
_REQUIRED = object()


# --- the ladder file ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PaperFigures:
    """A row's published figures: ImageNet top-1 (mean, std over seeds) and GFLOPs (multiply-accumulates)."""

    top1: float | None = None
    top1_std: float | None = None
    gflops: float | None = None
    gflops_note: str = ""            # why a published GFLOPs figure is not comparable (a known misprint, ...)


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One row: a registered step with options, inline spec overrides, or a zoo rung; evaluated, maybe adopted."""

    name: str
    step: str | None = None          # a name in ABLATION_STEPS
    args: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)   # partial ArchSpec dict merged after the step
    zoo: str | None = None           # start this row afresh from a zoo network (a rung of a history ladder)
    branch: bool = False             # measured but not adopted: the next row starts from the last adopted row
    recipe: str | None = None        # switch to this recipe (else the step's, else the previous row's)
    paper: PaperFigures = field(default_factory=PaperFigures)
    note: str = ""
    ceiling: str = ""                # the ceiling this rung removed (history ladders)


@dataclass(frozen=True, slots=True)
class ProxySetting:
    """How rows are trained and timed here: dataset, input, reduction of every row, recipes, budget, latency."""

    dataset: str
    img_size: int
    in_chans: int | None = None      # None: the dataset's native channels
    root: str | None = None
    width: float = 1.0               # width multiplier applied to every row (never widens a layer)
    depth: float = 1.0               # depth multiplier (ceil, at least one block per stage)
    val_fraction: float = 0.1
    limit: int | None = None         # keep only this many training images
    val_limit: int | None = None
    recipes: dict[str, Any] = field(default_factory=dict)   # recipe name -> registered name or mapping
    budget: dict[str, float] = field(default_factory=dict)  # epochs / images / seconds per (row, seed)
    device: str = "cpu"
    threads: int | None = None       # torch threads for training and latency
    latency_batch: int = 1
    latency_seconds: float = 2.0     # time cap of one latency measurement


@dataclass(frozen=True, slots=True)
class Ladder:
    """A whole ladder file: base network, rows, proxy setting, seeds, and where it came from."""

    name: str
    base: str
    rows: tuple[LadderRow, ...]
    proxy: ProxySetting
    seeds: tuple[int, ...]
    recipe: str = "classic"          # the first row's recipe
    title: str = ""
    source: str = ""                 # where the paper's numbers come from
    file: str | None = None
    text: str = ""                   # the file as read, kept verbatim in the run folder

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes a result (not seeds, title or comments): equal fingerprints may share a run folder."""
        rows = [dict(name=r.name, step=r.step, args=r.args, spec=r.spec, zoo=r.zoo, branch=r.branch, recipe=r.recipe)
                for r in self.rows]
        # latency settings change no training record (latencies are re-measured on every invocation)
        proxy = {k: v for k, v in asdict(self.proxy).items() if not k.startswith("latency_")}
        return json.loads(json.dumps(dict(base=self.base, recipe=self.recipe, rows=rows, proxy=proxy),
                                     sort_keys=True, default=str))


class _Reader:
    """Reads one mapping of a ladder file, checking each key's type; keys left unread are errors."""

    def __init__(self, data: Any, path: str, file: str | None) -> None:
        self.path, self.file = path, file
        if not isinstance(data, dict):
            raise SpecError(path or "(top level)", "must be a mapping", data, file=file)
        self.data, self.read = data, set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, rule: str, value: object = None, *, show: bool = True) -> SpecError:
        return SpecError(self.where(key), rule, value, file=self.file, show_value=show)

    def get(self, key: str, kind: str, default: Any = _REQUIRED) -> Any:
        """The value under `key` checked as kind (str, int, number, bool, mapping, list, any)."""
        self.read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _REQUIRED:
                raise self.fail(key, "is required", show=False)
            return default
        value = self.data[key]
        ok = {"str": lambda v: isinstance(v, str),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "bool": lambda v: isinstance(v, bool),
              "mapping": lambda v: isinstance(v, dict),
              "list": lambda v: isinstance(v, list),
              "any": lambda v: True}[kind]
        if not ok(value):
            article = {"int": "an integer", "number": "a number", "bool": "true or false", "mapping": "a mapping",
                       "list": "a list", "str": "a string"}[kind]
            raise self.fail(key, f"must be {article}", value)
        return float(value) if kind == "number" else value

    def done(self) -> None:
        """Fail on the first key that is not part of the schema."""
        for key in self.data:
            if key not in self.read:
                raise self.fail(str(key), "is not a known key" + did_you_mean(str(key), self.read), show=False)


def _positive(reader: _Reader, key: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise reader.fail(key, "must be >= 0" if allow_zero else "must be > 0", value)


def _read_paper(data: Any, path: str, file: str | None) -> PaperFigures:
    r = _Reader(data, path, file)
    paper = PaperFigures(top1=r.get("top1", "number", None), top1_std=r.get("top1_std", "number", None),
                         gflops=r.get("gflops", "number", None), gflops_note=r.get("gflops_note", "str", ""))
    r.done()
    if paper.top1 is not None and not 0.0 <= paper.top1 <= 100.0:
        raise r.fail("top1", "must be a percentage in [0, 100]", paper.top1)
    _positive(r, "top1_std", paper.top1_std, allow_zero=True)
    _positive(r, "gflops", paper.gflops)
    return paper


def _read_row(data: Any, path: str, file: str | None, index: int) -> LadderRow:
    r = _Reader(data, path, file)
    name = r.get("name", "str")
    if not _NAME_RULE.match(name):
        raise r.fail("name", "must use only letters, digits and _ . + - (no spaces or '/')", name)
    step = r.get("step", "str", None)
    if step is not None and step not in ABLATION_STEPS:
        raise r.fail("step", "must be a registered ablation step" + did_you_mean(step, ABLATION_STEPS.names()), step)
    zoo = r.get("zoo", "str", None)
    if zoo is not None and zoo not in ZOO:
        raise r.fail("zoo", "must be a zoo network" + did_you_mean(zoo, ZOO.names(), list_valid=False), zoo)
    if step is not None and zoo is not None:
        raise r.fail("zoo", "cannot be combined with step (a rung restarts from the zoo network)", zoo)
    args = r.get("args", "mapping", {})
    if args and step is None:
        raise r.fail("args", "needs a step to pass them to", args)
    if step is not None:
        accepted = [p.name for p in list(inspect.signature(ABLATION_STEPS.get(step).fn).parameters.values())[1:]]
        for key in args:
            if key not in accepted:
                options = ", ".join(accepted) or "none"
                raise SpecError(f"{path}.args.{key}", f"is not an option of step {step!r} (options: {options})"
                                + did_you_mean(str(key), accepted, list_valid=False), show_value=False, file=file)
    branch = r.get("branch", "bool", False)
    if branch and index == 0:
        raise r.fail("branch", "cannot be set on the first row (there is nothing to branch from)", branch)
    row = LadderRow(name=name, step=step, args=dict(args), spec=dict(r.get("spec", "mapping", {})), zoo=zoo,
                    branch=branch, recipe=r.get("recipe", "str", None),
                    paper=_read_paper(r.get("paper", "mapping", {}), f"{path}.paper", file),
                    note=r.get("note", "str", ""), ceiling=r.get("ceiling", "str", ""))
    r.done()
    return row


def _read_proxy(data: Any, file: str | None) -> ProxySetting:
    r = _Reader(data, "proxy", file)
    dataset = r.get("dataset", "str")
    _check_dataset(r, dataset)
    img_size = r.get("img_size", "int")
    _positive(r, "img_size", img_size)
    width, depth = r.get("width", "number", 1.0), r.get("depth", "number", 1.0)
    if not 0.0 < width <= 1.0:
        raise r.fail("width", "must be in (0, 1] (a reduction)", width)
    if not 0.0 < depth <= 1.0:
        raise r.fail("depth", "must be in (0, 1] (a reduction)", depth)
    val_fraction = r.get("val_fraction", "number", 0.1)
    if not 0.0 < val_fraction < 1.0:
        raise r.fail("val_fraction", "must be in (0, 1) (rows are compared on the validation split)", val_fraction)
    ints = {key: r.get(key, "int", None) for key in ("in_chans", "limit", "val_limit", "threads", "latency_batch")}
    for key, value in ints.items():
        _positive(r, key, value)
    recipes = r.get("recipes", "mapping", {})
    for key, value in recipes.items():
        if not isinstance(value, (str, dict)):
            raise SpecError(f"proxy.recipes.{key}", "must be a recipe name or a mapping (base: NAME plus overrides)",
                            value, file=file)
    budget = _read_budget(r.get("budget", "mapping"), file)
    latency_seconds = r.get("latency_seconds", "number", 2.0)
    _positive(r, "latency_seconds", latency_seconds)
    device = r.get("device", "str", "cpu")
    if device != "cpu" and not re.match(r"^cuda(:\d+)?$", device):
        raise r.fail("device", "must be cpu or cuda[:N]", device)
    proxy = ProxySetting(dataset=dataset, img_size=img_size, in_chans=ints["in_chans"], root=r.get("root", "str", None),
                         width=width, depth=depth, val_fraction=val_fraction, limit=ints["limit"],
                         val_limit=ints["val_limit"], recipes=dict(recipes), budget=budget, device=device,
                         threads=ints["threads"], latency_batch=ints["latency_batch"] or 1,
                         latency_seconds=latency_seconds)
    r.done()
    return proxy


def _check_dataset(r: _Reader, name: str) -> None:
    try:
        from archlab.measure.data import DATASETS
    except ImportError:  # the measurement layer is optional for reading a ladder
        return
    if name not in DATASETS:
        raise r.fail("dataset", "must be a registered dataset" + did_you_mean(name, DATASETS.names()), name)


def _read_budget(data: Any, file: str | None) -> dict[str, float]:
    r = _Reader(data, "proxy.budget", file)
    budget = {"epochs": r.get("epochs", "number", None), "images": r.get("images", "int", None),
              "seconds": r.get("seconds", "number", None)}
    r.done()
    for key, value in budget.items():
        _positive(r, key, value)
    budget = {k: v for k, v in budget.items() if v is not None}
    if not budget:
        raise SpecError("proxy.budget", "must set at least one of epochs, images, seconds", data, file=file)
    return budget


def _read_seeds(value: Any, file: str | None) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SpecError("seeds", "must be >= 1 (a count) or a list of seeds", value, file=file)
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                 for s in value):
        if len(set(value)) != len(value):
            raise SpecError("seeds", "must not repeat a seed", value, file=file)
        return tuple(value)
    raise SpecError("seeds", "must be a count >= 1 or a non-empty list of seeds >= 0", value, file=file)


def ladder_from_dict(data: Any, *, file: str | None = None, text: str = "") -> Ladder:
    """Build and validate a Ladder from parsed YAML; errors name the file, key path, rule and value."""
    r = _Reader(data, "", file)
    kind = r.get("kind", "str", "ladder")  # `archlab validate` reads it to tell file kinds apart
    if kind not in ("ladder", "ablation"):
        raise r.fail("kind", "must be ladder (or ablation) in a ladder file", kind)
    name = r.get("name", "str", Path(file).stem if file else "ladder")
    if not _NAME_RULE.match(name):
        raise r.fail("name", "must use only letters, digits and _ . + - (no spaces or '/')", name)
    base = r.get("base", "str")
    if base not in ZOO:
        raise r.fail("base", "must be a zoo network" + did_you_mean(base, ZOO.names(), list_valid=False), base)
    raw_rows = r.get("steps", "list")
    if not raw_rows:
        raise r.fail("steps", "must hold at least one row", raw_rows)
    rows = tuple(_read_row(row, f"steps[{i}]", file, i) for i, row in enumerate(raw_rows))
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.name in seen:
            raise SpecError(f"steps[{i}].name", f"must be unique (steps[{seen[row.name]}] has it too)", row.name,
                            file=file)
        seen[row.name] = i
    proxy = _read_proxy(r.get("proxy", "mapping"), file)
    ladder = Ladder(name=name, base=base, rows=rows, proxy=proxy, seeds=_read_seeds(r.get("seeds", "any"), file),
                    recipe=r.get("recipe", "str", "classic"), title=r.get("title", "str", ""),
                    source=r.get("source", "str", ""), file=file, text=text)
    r.done()
    _check_recipes(ladder)
    resolve_ladder(ladder)  # every row's spec, full size and reduced, must be valid
    return ladder


def _check_recipes(ladder: Ladder) -> None:
    """Every recipe a row can use must resolve (when archlab.measure.recipes is present)."""
    try:
        from archlab.measure.recipes import get_recipe
    except ImportError:
        return
    used = {ladder.recipe} | {r.recipe for r in ladder.rows if r.recipe} | \
        {ABLATION_STEPS.get(r.step).recipe for r in ladder.rows if r.step and ABLATION_STEPS.get(r.step).recipe}
    for name in sorted(used):
        path = f"proxy.recipes.{name}" if name in ladder.proxy.recipes else "recipe"
        try:
            get_recipe(ladder.proxy.recipes.get(name, name))
        except SpecError as err:
            raise err.with_context(file=ladder.file, prefix=path) from None
        except ArchlabError as err:
            raise SpecError(path, f"names no usable recipe ({err})", name, file=ladder.file) from None


def load_ladder(path: str | Path) -> Ladder:
    """Read and validate a ladder file (YAML)."""
    path = Path(path)
    data = load_yaml_file(path)
    try:
        text = path.read_text()
    except OSError as err:  # pragma: no cover - load_yaml_file read it a moment ago
        raise SpecError("", f"cannot be read ({err.strerror})", show_value=False, file=str(path)) from None
    return ladder_from_dict(data, file=str(path), text=text)


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
        try:
            proxy_spec(spec, ladder.proxy, num_classes=10, in_chans=ladder.proxy.in_chans or 3)
        except SpecError as err:
            raise SpecError(f"{path}", f"cannot be reduced to the proxy ({err})", show_value=False,
                            file=ladder.file) from None
        out.append(ResolvedRow(i, row, spec, row_recipe, adopted_index))
        if not row.branch:
            adopted, adopted_index, recipe = spec, i, row_recipe
    return tuple(out)


def reduce_spec(spec: ArchSpec, *, width: float = 1.0, depth: float = 1.0) -> ArchSpec:
    """Shrink every width (stem, stages, head conv, hidden FC) by `width` and depth by `depth`.

    Unlike `archlab.arch.scaling.scale`, a width is never rounded up past its original (LeNet's 6 channels would
    become 8), so a reduction stays a reduction for every rung of a history ladder.
    """
    def chs(c: int) -> int:
        return c if width == 1.0 else min(c, make_divisible(c * width, 8))

    stages = tuple(replace(s, width=chs(s.width), depth=max(1, math.ceil(s.depth * depth))) for s in spec.stages)
    stem = spec.stem if spec.stem.type == "identity" else replace(spec.stem, width=chs(spec.stem.width))
    head = replace(spec.head, conv_width=None if spec.head.conv_width is None else chs(spec.head.conv_width),
                   hidden=tuple(chs(w) for w in spec.head.hidden))
    return replace(spec, stem=stem, stages=stages, head=head)


def proxy_spec(spec: ArchSpec, proxy: ProxySetting, *, num_classes: int, in_chans: int) -> ArchSpec:
    """The network a row trains here: reduced, at the proxy's input size, channels and classes."""
    small = reduce_spec(spec, width=proxy.width, depth=proxy.depth)
    return replace(small, img_size=proxy.img_size, in_chans=in_chans, num_classes=num_classes)


# --- records (results.jsonl) ------------------------------------------------------------------------------------

def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The finished (row, seed) records of a results.jsonl; a torn last line (a killed run) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # only the line being written when a run died can be torn
        if isinstance(record, dict) and "step" in record and "seed" in record:
            records.append(record)
    return records


def _append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line durably; a torn last line from a killed run is closed first so this one stays whole."""
    torn = False
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    with open(path, "a") as f:
        f.write(("\n" if torn else "") + json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- summaries ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StepSummary:
    """One row of the replay: full-size cost vs the paper, proxy latency and top-1 over seeds, and the change."""

    index: int
    step: str
    kind: str                        # base, step, branch, rung
    parent: str | None
    recipe: str
    arch_id: str                     # of the full-size spec
    params: int                      # full size, analytic
    macs: int                        # full size at `img_size` (224 for ImageNet networks), analytic
    img_size: int                    # the full-size network's input side
    paper_top1: float | None
    paper_top1_std: float | None
    paper_gflops: float | None
    macs_vs_paper: float | None      # macs / (paper_gflops * 1e9) - 1
    gflops_note: str
    proxy_arch_id: str
    proxy_params: int
    proxy_macs: int
    latency_ms: float | None         # median, proxy-size network at the proxy input size, this device
    latency_p90_ms: float | None
    latency_cv: float | None
    top1_mean: float | None          # proxy top-1 (%) on the validation split, over seeds
    top1_std: float | None           # sample std over seeds
    n_seeds: int
    top1_seeds: tuple[float, ...]
    delta: float | None              # top1_mean - the parent's
    delta_se: float | None           # standard error of that difference (independent seeds)
    paper_delta: float | None        # paper_top1 - the parent's
    direction: str | None            # agree, disagree, paper_flat (no published change)
    within_noise: bool | None        # |delta| < 2 * delta_se
    note: str = ""
    ceiling: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["top1_seeds"] = list(self.top1_seeds)
        return out


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far the proxy tracks the paper: Spearman rank of top-1 over rows, and per-change direction."""

    spearman: float | None
    spearman_p: float | None
    n_ranked: int
    direction_agree: int
    direction_total: int             # changes with a published and a measured difference
    agree_beyond_noise: int          # agreeing changes whose proxy difference is larger than 2 SE
    within_noise: int                # proxy differences smaller than 2 SE
    disagree: tuple[str, ...]        # rows whose proxy change goes the other way from the paper's

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["disagree"] = list(self.disagree)
        return out

    def sentence(self) -> str:
        """The verdict in plain words."""
        if self.spearman is None:
            rank = "Spearman rank correlation: not enough rows with both a paper and a proxy top-1."
        else:
            if self.spearman >= 0.7:
                verdict = "the proxy ranks the rows much as the paper does"
            elif self.spearman >= 0.3:
                verdict = "the proxy follows the paper's ranking only loosely"
            elif self.spearman > -0.3:
                verdict = "the proxy's ranking is unrelated to the paper's"
            else:
                verdict = "the proxy ranks the rows against the paper"
            significance = "" if self.spearman_p is not None and self.spearman_p < 0.05 else \
                ", though not significant at p < 0.05"
            rank = (f"Spearman rank correlation of proxy vs paper top-1 over {self.n_ranked} rows: "
                    f"{self.spearman:+.2f} (p = {self.spearman_p:.2g}): {verdict}{significance}.")
        if not self.direction_total:
            return rank
        direction = (f"Direction of each change agrees with the paper on {self.direction_agree} of "
                     f"{self.direction_total} ({self.agree_beyond_noise} of them beyond 2 SE of seed noise); "
                     f"{self.within_noise} proxy changes are within seed noise.")
        if self.disagree:
            direction += " Opposite direction: " + ", ".join(self.disagree) + "."
        return rank + "\n" + direction


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize_steps(rows: Sequence[ResolvedRow], costs: Mapping[int, Any], proxies: Mapping[int, ArchSpec],
                    proxy_costs: Mapping[int, Any], latencies: Mapping[int, Any],
                    records: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> list[StepSummary]:
    """Per-row summaries from measured costs, latencies and training records (only the chosen seeds count)."""
    wanted = set(seeds)
    top1: dict[int, list[float]] = {r.index: [] for r in rows}
    for rec in records:
        for r in rows:
            if rec["step"] == r.name and rec.get("arch_id") == proxies[r.index].arch_id \
                    and rec.get("recipe") == r.recipe and rec["seed"] in wanted:
                top1[r.index].append(float(rec["top1"]))
    stats = {i: _mean_std(v) for i, v in top1.items()}
    out = []
    for r in rows:
        mean, std = stats[r.index]
        n = len(top1[r.index])
        delta = delta_se = paper_delta = direction = noise = None
        if r.parent is not None:
            p_mean, p_std = stats[r.parent]
            p_n = len(top1[r.parent])
            if mean is not None and p_mean is not None:
                delta = mean - p_mean
                if std is not None and p_std is not None:
                    delta_se = math.sqrt(std ** 2 / n + p_std ** 2 / p_n)
                    noise = abs(delta) < 2 * delta_se
            parent_paper = rows[r.parent].row.paper.top1
            if r.row.paper.top1 is not None and parent_paper is not None:
                paper_delta = round(r.row.paper.top1 - parent_paper, 4)
                if delta is not None:
                    if paper_delta == 0:
                        direction = "paper_flat"
                    else:
                        direction = "agree" if (delta > 0) == (paper_delta > 0) and delta != 0 else "disagree"
        paper = r.row.paper
        cost, latency = costs[r.index], latencies.get(r.index)
        out.append(StepSummary(
            index=r.index, step=r.name, kind=r.kind, parent=None if r.parent is None else rows[r.parent].name,
            recipe=r.recipe, arch_id=r.spec.arch_id, params=cost.params, macs=cost.macs, img_size=r.spec.img_size,
            paper_top1=paper.top1,
            paper_top1_std=paper.top1_std, paper_gflops=paper.gflops,
            macs_vs_paper=None if paper.gflops is None else cost.macs / (paper.gflops * 1e9) - 1.0,
            gflops_note=paper.gflops_note, proxy_arch_id=proxies[r.index].arch_id,
            proxy_params=proxy_costs[r.index].params, proxy_macs=proxy_costs[r.index].macs,
            latency_ms=None if latency is None else latency.latency_ms,
            latency_p90_ms=None if latency is None else latency.p90_ms,
            latency_cv=None if latency is None else latency.cv,
            top1_mean=mean, top1_std=std, n_seeds=n, top1_seeds=tuple(top1[r.index]), delta=delta, delta_se=delta_se,
            paper_delta=paper_delta, direction=direction, within_noise=noise, note=r.row.note, ceiling=r.row.ceiling))
    return out


def agreement(steps: Sequence[StepSummary]) -> Agreement:
    """Spearman rank of proxy vs paper top-1 over rows with both, and direction agreement per change."""
    pairs = [(s.paper_top1, s.top1_mean) for s in steps if s.paper_top1 is not None and s.top1_mean is not None]
    rho = p = None
    if len(pairs) >= 3 and len({a for a, _ in pairs}) > 1 and len({b for _, b in pairs}) > 1:
        from scipy.stats import spearmanr
        res = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
        rho, p = float(res.statistic), float(res.pvalue)
    changes = [s for s in steps if s.direction in ("agree", "disagree")]
    agree = [s for s in changes if s.direction == "agree"]
    return Agreement(spearman=rho, spearman_p=p, n_ranked=len(pairs), direction_agree=len(agree),
                     direction_total=len(changes), agree_beyond_noise=sum(1 for s in agree if s.within_noise is False),
                     within_noise=sum(1 for s in steps if s.within_noise),
                     disagree=tuple(s.step for s in changes if s.direction == "disagree"))


# --- running ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AblationReport:
    """The outcome of one `run_ablation`: per-row summaries, the agreement verdict and where it was written."""

    ladder: Ladder
    steps: tuple[StepSummary, ...]
    agreement: Agreement
    seeds: tuple[int, ...]
    trained: bool
    out: str | None
    setting: dict[str, Any]          # dataset, sizes, reduction, budget, device, latency protocol
    wall_s: float                    # this invocation
    train_wall_s: float              # summed over every counted record (resumed ones included)
    trained_now: int = 0             # (row, seed) pairs this invocation trained
    started: str = ""                # ISO time this invocation started

    def to_dict(self) -> dict[str, Any]:
        """The ablation.json document."""
        return {"study": self.ladder.name, "title": self.ladder.title, "source": self.ladder.source,
                "ladder_file": self.ladder.file, "base": self.ladder.base, "seeds": list(self.seeds),
                "trained": self.trained, "setting": self.setting, "agreement": self.agreement.to_dict(),
                "verdict": self.agreement.sentence(), "wall_s": self.wall_s, "train_wall_s": self.train_wall_s,
                "invocations": [self.invocation()], "steps": [s.to_dict() for s in self.steps]}

    def invocation(self) -> dict[str, Any]:
        """This invocation's line in ablation.json's `invocations` (a resumed folder keeps the earlier ones)."""
        return {"started": self.started, "wall_s": self.wall_s, "trained": self.trained_now,
                "seeds": list(self.seeds)}

    def steps_json(self) -> list[dict[str, Any]]:
        """The `--json` list: one object per row."""
        return [s.to_dict() for s in self.steps]


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_out(ladder: Ladder) -> Path:
    """runs/<study name>-<YYYYmmdd-HHMMSS> under the current directory."""
    return Path("runs") / f"{ladder.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _prepare_out(out: Path, ladder: Ladder) -> None:
    """Create the run folder, or check that an existing one holds the same ladder (then it resumes)."""
    kept = out / "ladder.yaml"
    if kept.exists():
        try:
            previous = ladder_from_dict(load_yaml_text(kept.read_text(), file=str(kept)), file=str(kept))
        except SpecError as err:
            raise ArchlabError(f"{out}: holds a ladder.yaml that no longer validates ({err}); use a new --out") from None
        if previous.fingerprint() != ladder.fingerprint():
            raise ArchlabError(f"{out}: holds results of a different ladder (rows, recipes or proxy differ from "
                               f"{ladder.file}); use a new --out to start a fresh run")
        return
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(kept, ladder.text or json.dumps(ladder.fingerprint(), indent=2))


def _setting(ladder: Ladder, in_chans: int, num_classes: int, threads: int) -> dict[str, Any]:
    from archlab.measure.latency import device_name
    p = ladder.proxy
    return {"dataset": p.dataset, "img_size": p.img_size, "in_chans": in_chans, "num_classes": num_classes,
            "width": p.width, "depth": p.depth, "val_fraction": p.val_fraction, "limit": p.limit,
            "budget": p.budget, "recipes": p.recipes, "device": p.device, "device_name": device_name(p.device),
            "threads": threads, "complexity": "analytic, full-size network at its own img_size (224 for ImageNet)",
            "latency": f"median of repeated batch-{p.latency_batch} forward passes of the proxy-size network at "
                       f"{p.img_size} px on {p.device} ({threads} threads), archlab.measure.latency.measure_latency",
            "top1": "proxy top-1 (%) on the validation split carved from the training set"}


def run_ablation(ladder: Ladder, *, out: str | Path | None = None, train: bool = True,
                 seeds: Sequence[int] | None = None, log: Log | None = _stderr) -> AblationReport:
    """Measure every row of `ladder` and (if `train`) train each (row, seed) not yet in `out`'s results.jsonl.

    Writes `out`/ladder.yaml, results.jsonl (one line per finished (row, seed)), ablation.json and
    ablation.csv; without `train` and without `out` nothing is written.
    """
    import torch

    from archlab.measure.latency import measure_latency
    from archlab.nn.complexity import complexity

    started, started_at = time.perf_counter(), datetime.now().isoformat(timespec="seconds")
    say = log or (lambda _m: None)
    seeds = tuple(ladder.seeds if seeds is None else seeds)
    rows = resolve_ladder(ladder)
    p = ladder.proxy
    threads = p.threads or torch.get_num_threads()
    out_dir = Path(out) if out is not None else (default_out(ladder) if train else None)
    if out_dir is not None:
        _prepare_out(out_dir, ladder)
    from archlab.measure.data import DATASETS, load_data
    in_chans = p.in_chans or DATASETS.get(p.dataset).native_chans

    def load(limit: int | None = p.limit, val_limit: int | None = p.val_limit) -> Any:
        return load_data(p.dataset, img_size=p.img_size, in_chans=in_chans, root=p.root,
                         val_fraction=p.val_fraction, seed=0, limit=limit, val_limit=val_limit)

    # the data are loaded only when something trains; the class count comes from the run folder if it has one
    data = None
    num_classes = _stored_num_classes(out_dir)
    if num_classes is None:
        if train:
            data = load()
            num_classes = data.num_classes
        else:  # one training and one validation image reveal the class count without resizing the whole set
            num_classes = load(limit=1, val_limit=1).num_classes
    costs = {r.index: complexity(r.spec) for r in rows}
    proxies = {r.index: proxy_spec(r.spec, p, num_classes=num_classes, in_chans=in_chans) for r in rows}
    proxy_costs = {i: complexity(s) for i, s in proxies.items()}
    latencies = {i: measure_latency(spec, batch=p.latency_batch, device=p.device, threads=threads,
                                    max_seconds=p.latency_seconds) for i, spec in proxies.items()}
    records = read_records(out_dir / "results.jsonl") if out_dir is not None else []
    trained_now = 0
    if train:
        trained_now = _train_missing(ladder, rows, proxies, records, seeds, lambda: data or load(),
                                     out_dir, threads, say)  # type: ignore[arg-type]
        records = read_records(out_dir / "results.jsonl")  # type: ignore[operator]
    steps = summarize_steps(rows, costs, proxies, proxy_costs, latencies, records, seeds)
    counted = {(s.step, s.proxy_arch_id) for s in steps}
    train_wall = sum(float(rec.get("wall_s", 0.0)) for rec in records
                     if (rec["step"], rec.get("arch_id")) in counted and rec["seed"] in set(seeds))
    report = AblationReport(ladder=ladder, steps=tuple(steps), agreement=agreement(steps), seeds=seeds,
                            trained=any(s.n_seeds for s in steps), out=None if out_dir is None else str(out_dir),
                            setting=_setting(ladder, in_chans, num_classes, threads),
                            wall_s=time.perf_counter() - started, train_wall_s=train_wall, trained_now=trained_now,
                            started=started_at)
    if out_dir is not None:
        write_report(out_dir, report)
    return report


def _stored_num_classes(out_dir: Path | None) -> int | None:
    """The class count an earlier invocation wrote into the run folder's ablation.json, if any."""
    if out_dir is None:
        return None
    try:
        return int(json.loads((out_dir / "ablation.json").read_text())["setting"]["num_classes"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _train_missing(ladder: Ladder, rows: Sequence[ResolvedRow], proxies: Mapping[int, ArchSpec],
                   records: Sequence[Mapping[str, Any]], seeds: Sequence[int], get_data: Callable[[], Any],
                   out_dir: Path, threads: int, say: Log) -> int:
    """Train every (row, seed) without a matching record, seed-major so a whole ladder lands early; the count."""
    from archlab.measure.recipes import get_recipe
    from archlab.measure.train import Budget, train

    p = ladder.proxy
    done = {(rec["step"], rec["seed"], rec.get("arch_id"), rec.get("recipe")) for rec in records}
    budget = Budget(**p.budget)
    todo = [(seed, r) for seed in seeds for r in rows
            if (r.name, seed, proxies[r.index].arch_id, r.recipe) not in done]
    if len(todo) < len(seeds) * len(rows):
        say(f"{ladder.name}: resuming {out_dir}: {len(seeds) * len(rows) - len(todo)} of "
            f"{len(seeds) * len(rows)} (row, seed) results kept")
    data = get_data() if todo else None
    for k, (seed, r) in enumerate(todo, 1):
        recipe = get_recipe(p.recipes.get(r.recipe, r.recipe))
        result = train(proxies[r.index], data, recipe=recipe, budget=budget, seed=seed, device=p.device,
                       threads=threads)
        record = {"step": r.name, "index": r.index, "seed": seed, "arch_id": proxies[r.index].arch_id,
                  "full_arch_id": r.spec.arch_id, "recipe": r.recipe, "top1": result.top1,
                  "eval_split": result.eval_split, "epochs_run": result.epochs_run,
                  "images_seen": result.images_seen, "wall_s": result.wall_s, "train_s": result.train_s,
                  "images_per_s": result.images_per_s, "memory_format": result.memory_format,
                  "history": [asdict(h) for h in result.history], "dataset": p.dataset, "img_size": p.img_size,
                  "budget": p.budget, "finished": datetime.now().isoformat(timespec="seconds")}
        _append_record(out_dir / "results.jsonl", record)
        say(f"[{k}/{len(todo)}] seed {seed} {r.index:>2} {r.name}: top-1 {record['top1']:.2f}% "
            f"({result.wall_s:.0f} s)")
    return len(todo)


# --- writing ------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("index", "step", "kind", "parent", "recipe", "params", "macs", "img_size", "paper_gflops", "macs_vs_paper",
               "paper_top1", "paper_top1_std", "proxy_params", "proxy_macs", "latency_ms", "latency_p90_ms",
               "top1_mean", "top1_std", "n_seeds", "delta", "delta_se", "paper_delta", "direction", "within_noise",
               "arch_id", "proxy_arch_id", "gflops_note")


def write_report(out: str | Path, report: AblationReport) -> None:
    """Write ablation.json and ablation.csv (one row per step) into the run folder, atomically."""
    out = Path(out)
    doc = report.to_dict()
    try:  # keep the history of earlier invocations (the first one's wall time is the replay's cost)
        earlier = json.loads((out / "ablation.json").read_text()).get("invocations", [])
        doc["invocations"] = [i for i in earlier if isinstance(i, dict)] + doc["invocations"]
    except (OSError, ValueError, AttributeError):
        pass
    _write_atomic(out / "ablation.json", json.dumps(doc, indent=2) + "\n")
    tmp = out / f".ablation.csv.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for s in report.steps:
            writer.writerow({k: ("" if v is None else v) for k, v in s.to_dict().items()})
    os.replace(tmp, out / "ablation.csv")


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_report(report: AblationReport) -> str:
    """The replay as a readable table, the setting, and the agreement verdict in plain words."""
    ladder, setting = report.ladder, report.setting
    head = ["#", "step", "kind", "params", "GMACs", "paper", "vs paper", "lat ms", "cv", "paper top1", "proxy top1",
            "d proxy", "d paper", "dir"]
    lines: list[list[str]] = [head]
    for s in report.steps:
        proxy_top1 = "-" if s.top1_mean is None else (f"{s.top1_mean:.2f}" + (f" +- {s.top1_std:.2f}"
                                                                              if s.top1_std is not None else ""))
        d_proxy = "-" if s.delta is None else (f"{s.delta:+.2f}" + (f" +- {s.delta_se:.2f}" if s.delta_se is not None
                                                                    else ""))
        vs = "-" if s.macs_vs_paper is None else f"{100 * s.macs_vs_paper:+.1f}%" + ("*" if s.gflops_note else "")
        direction = {"agree": "ok", "disagree": "OPP", "paper_flat": "flat"}.get(s.direction or "", "-")
        if s.within_noise and direction in ("ok", "OPP"):
            direction += " (noise)"
        gmacs = f"{s.macs / 1e9:.{3 if s.macs >= 1e7 else 5}f}" + ("" if s.img_size == 224 else f"@{s.img_size}")
        lines.append([str(s.index), s.step, s.kind, f"{s.params / 1e6:.2f}M", gmacs,
                      _fmt(s.paper_gflops, ".2f"), vs, _fmt(s.latency_ms, ".2f"), _fmt(s.latency_cv, ".2f"),
                      _fmt(s.paper_top1, ".2f"), proxy_top1, d_proxy, _fmt(s.paper_delta, "+.2f"), direction])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = [f"{ladder.name}: {ladder.title}" if ladder.title else ladder.name]
    if ladder.source:
        text.append(f"paper: {ladder.source}")
    budget = ", ".join(f"{k} {v:g}" for k, v in setting["budget"].items())
    text.append(f"proxy: {setting['dataset']} at {setting['img_size']} px ({setting['in_chans']} ch), every row "
                f"reduced to width x{setting['width']:g}, depth x{setting['depth']:g}; budget {budget} per "
                f"(row, seed); seeds {', '.join(map(str, report.seeds))}")
    text.append(f"params/GMACs: full-size network at 224 px (or @N px), analytic. latency: {setting['latency']} "
                f"[{setting['device_name']}]")
    text.append("")
    for i, row in enumerate(lines):
        text.append("  ".join(cell.rjust(w) if j not in (1, 2) else cell.ljust(w)
                              for j, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            text.append("-" * len(text[-1]))
    notes = [f"  * {s.step}: {s.gflops_note}" for s in report.steps if s.gflops_note]
    if notes:
        text.append("")
        text.extend(notes)
    text.append("")
    text.append("d proxy / d paper: change from the parent row (the last adopted row); +- is one standard error "
                "over seeds. dir: ok = same direction as the paper, OPP = opposite, (noise) = |d| < 2 SE.")
    noisy = [s.step for s in report.steps if s.latency_cv is not None and s.latency_cv > 0.2]
    if noisy:
        text.append(f"Latency: {len(noisy)} of {len(report.steps)} rows were timed with a coefficient of variation "
                    "above 0.2 (the machine was busy); compare their latencies with care, or rerun --no-train "
                    "on an idle machine.")
    if report.trained:
        text.append(report.agreement.sentence())
        text.append(f"Training time: {report.train_wall_s / 60:.1f} min summed over (row, seed); this invocation "
                    f"took {report.wall_s / 60:.1f} min.")
    else:
        text.append("Not trained (--no-train, or no results yet): proxy top-1 and the agreement need training.")
    if report.out:
        text.append(f"Run folder: {report.out}")
    return "\n".join(text)
