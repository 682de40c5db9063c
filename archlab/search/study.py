"""Study files: what a search optimises, on which data, with which sampler and resources.

A study names a search space file, a dataset and training recipe with a per-trial budget, objectives
(top-1 against measured latency by default), constraints, an Optuna sampler, early stopping, execution
resources (local Ray, the GPUs of one box, or a cluster address) and an Optuna storage. Every record here is an
`archlab.core.schema.Schema`: the file is read by the records' type hints and bounds, and a study writes itself
back (`to_dict`, `to_yaml`) for the run folder's study.yaml.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from archlab.arch.spec import MAX_IMG_SIZE
from archlab.core.errors import ArchlabError, SpecError, did_you_mean, shorten
from archlab.core.registry import Registry
from archlab.core.schema import Range, Schema, internal, load_document
from archlab.measure.recipes import Budget
from archlab.search.prescreen import Prescreen

__all__ = ["OBJECTIVES", "SAMPLERS", "SINGLE_OBJECTIVE_SAMPLERS", "DatasetConfig", "EarlyStopping", "Execution",
           "LatencyTarget", "Objective", "Study", "describe_study", "is_study", "load_study", "sampler_class_name",
           "study_from_dict"]

OBJECTIVES = {"top1": "maximize", "latency_ms": "minimize", "params": "minimize", "macs": "minimize"}
# short names for Optuna's samplers; any other Optuna sampler class name is accepted as well
SAMPLERS = {"nsga2": "NSGAIISampler", "nsga3": "NSGAIIISampler", "motpe": "TPESampler", "tpe": "TPESampler",
            "random": "RandomSampler", "gp": "GPSampler"}
# Optuna 5.0's CmaEsSampler raises "If the study is being used for multi-objective optimization, CmaEsSampler
# cannot be used" at its first trial; refused when the study is read instead
SINGLE_OBJECTIVE_SAMPLERS = frozenset({"CmaEsSampler"})
CONSTRAINT_KEYS = ("max_params", "max_macs", "max_latency_ms", "min_params", "min_macs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DEVICE = re.compile(r"^(cpu|cuda(:\d{1,3})?)$")

Metric = Literal["top1", "latency_ms", "params", "macs"]
Direction = Literal["maximize", "minimize"]
Count = Annotated[int, Range(ge=10, le=10 ** 9)]           # images in a subset


def sampler_class_name(name: str) -> str:
    """The Optuna class a study's sampler name stands for; an ArchlabError with a did-you-mean otherwise."""
    import optuna.samplers  # Optuna is a core dependency; its sampler classes are the valid names
    registry: Registry[str] = Registry("Optuna sampler")
    for short, cls in SAMPLERS.items():
        registry.register(short)(cls)
    for cls in sorted(n for n in dir(optuna.samplers) if n.endswith("Sampler") and not n.startswith("Base")):
        registry.register(cls)(cls)
    return registry.lookup(name)


@dataclass(frozen=True, slots=True)
class DatasetConfig(Schema):
    """Which data trials train on: a registered dataset name, the proxy side and the subset sizes."""

    name: str = "fashion_mnist"
    img_size: Annotated[int, Range(ge=8, le=MAX_IMG_SIZE)] = 32
    limit: Count | None = None         # training images used per trial (None: all)
    val_limit: Count | None = None     # validation images evaluated after each epoch (None: the whole split)
    val_fraction: Annotated[float, Range(ge=0.01, le=0.9)] = 0.1
    root: str | None = None

    def __post_init__(self) -> None:
        self._normalise()
        from archlab.measure.data import DATASETS  # the registry of loadable datasets is the list of valid names
        if self.name not in DATASETS:
            try:
                DATASETS.lookup(self.name)
            except ArchlabError as err:
                raise SpecError("name", "must be one of " + ", ".join(DATASETS.names()) + _hint(err),
                                self.name) from None


def _hint(err: ArchlabError) -> str:
    """The ' (did you mean ...)' part of a registry miss, to append to a rule."""
    text = str(err)
    return text[text.index(" (did you mean"):] if " (did you mean" in text else ""


@dataclass(frozen=True, slots=True)
class Objective(Schema):
    """One objective: a metric of the trials table and its direction (the metric's natural one by default)."""

    name: Metric
    direction: Direction

    @classmethod
    def _prepare(cls, data: Any, path: str) -> Any:
        if isinstance(data, str):   # `- top1` is short for `- {name: top1}`
            data = {"name": data}
        if isinstance(data, dict) and "direction" not in data and data.get("name") in OBJECTIVES:
            data = {**data, "direction": OBJECTIVES[data["name"]]}
        return data


@dataclass(frozen=True, slots=True)
class LatencyTarget(Schema):
    """Where latency is measured: device, batch size, CPU threads and backend."""

    device: str = "cpu"
    batch: Annotated[int, Range(ge=1, le=4096)] = 1
    threads: Annotated[int, Range(ge=1, le=1024)] | None = 1
    backend: str = "eager"           # a name in archlab.measure.latency.BACKENDS
    # cap on one measurement (it stops earlier once the median is stable)
    max_seconds: Annotated[float, Range(ge=0.1, le=3600)] = 5.0
    # a latency predictor file (archlab predictor fit): trials predict their latency instead of measuring it
    predictor: str | None = None

    def __post_init__(self) -> None:
        self._normalise()
        if not _DEVICE.match(self.device):
            raise SpecError("device", "must be cpu, cuda or cuda:N", self.device)
        from archlab.measure.latency import BACKENDS  # every trial would fail on a name that does not exist
        if self.backend not in BACKENDS:
            try:
                BACKENDS.lookup(self.backend)
            except ArchlabError as err:
                raise SpecError("backend", "must be a latency backend (" + ", ".join(BACKENDS.names()) + ")"
                                + _hint(err), self.backend) from None


@dataclass(frozen=True, slots=True)
class EarlyStopping(Schema):
    """Successive halving on validation top-1 (Pareto-aware, or Ray's ASHA) and a latency pre-filter."""

    scheduler: Literal["pareto_asha", "asha", "none"] = "pareto_asha"
    grace_epochs: Annotated[int, Range(ge=1, le=10 ** 4)] = 1
    reduction_factor: Annotated[float, Range(ge=1.01, le=1000)] = 2.0
    # skip when latency > factor x the latency of the front's best-top-1 point; null disables
    latency_skip: Annotated[float, Range(ge=1.0, le=1e6)] | None = 1.5


@dataclass(frozen=True, slots=True)
class Execution(Schema):
    """Ray resources: per-trial CPUs and (fractional) GPUs, concurrency, cluster address, retries."""

    cpus_per_trial: Annotated[float, Range(ge=0.01, le=4096)] = 1.0
    gpus_per_trial: Annotated[float, Range(ge=0, le=64)] = 0.0
    concurrent: Annotated[int, Range(ge=1, le=4096)] = 2
    address: str | None = None
    max_failures: Annotated[int, Range(ge=0, le=1000)] = 1    # retries of a trial whose worker died


@dataclass(frozen=True, slots=True)
class _SamplerBlock(Schema):
    """The file form `sampler: {name: NAME, args: {...}}` (a bare name is short for it)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._normalise()
        cls_name = _check_sampler_name(self.name, "name")
        import optuna.samplers  # already imported by the name check
        params = inspect.signature(getattr(optuna.samplers, cls_name)).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        for key in self.args:   # a misspelt argument would fail every trial's sampler; said here instead
            if key not in params:
                raise SpecError(f"args.{key}", f"is not an argument of {cls_name}" + did_you_mean(
                    str(key), [n for n in params if n != "self"], list_valid=False), show_value=False)
        if self.args:
            _check_sampler_args(cls_name, self.args)


def _check_sampler_args(cls_name: str, args: dict[str, Any]) -> None:
    """Build the sampler once with `args`: a value Optuna refuses (`population_size: -4`) is said when the study
    is read, not as a traceback after the run folder was made."""
    import warnings

    import optuna.samplers
    try:
        with warnings.catch_warnings():   # ExperimentalWarning of GPSampler and the like: not the user's concern
            warnings.simplefilter("ignore")
            getattr(optuna.samplers, cls_name)(**args)
    except (TypeError, ValueError) as err:
        text = " ".join(str(err).split())
        named = [key for key in args if re.search(rf"\b{re.escape(str(key))}\b", text)]
        key = named[0] if len(named) == 1 else next(iter(args)) if len(args) == 1 else None
        raise SpecError(f"args.{key}" if key is not None else "args",
                        f"is refused by {cls_name} ({shorten(text, 120)})", args[key] if key is not None else args
                        ) from None


def _check_sampler_name(name: str, path: str) -> str:
    try:
        return sampler_class_name(name)
    except ArchlabError as err:
        raise SpecError(path, "must be an Optuna sampler" + _hint(err), name) from None


@dataclass(frozen=True, slots=True)
class Study(Schema):
    """A whole study, validated; `file` is where it was read from (paths in it are relative to it)."""

    name: str
    space: Path
    description: str = ""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    recipe: str | dict[str, Any] = "classic"       # a registered name, a file, or `base: NAME` plus overrides
    budget: Budget = field(default_factory=lambda: Budget(epochs=2))
    objectives: tuple[Objective, ...] = (Objective("top1", "maximize"), Objective("latency_ms", "minimize"))
    latency: LatencyTarget = field(default_factory=LatencyTarget)
    constraints: dict[Literal["max_params", "max_macs", "max_latency_ms", "min_params", "min_macs"],
                      Annotated[float, Range(ge=0, le=1e18)]] = field(default_factory=dict)
    sampler: str = "nsga2"
    sampler_args: dict[str, Any] = field(default_factory=dict)   # written as `sampler: {name, args}`
    trials: Annotated[int, Range(ge=1, le=10 ** 6)] | None = 16
    timeout: Annotated[float, Range(ge=1, le=10 ** 7)] | None = None   # seconds
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    seed: Annotated[int, Range(ge=0, le=2 ** 32 - 1)] = 0
    execution: Execution = field(default_factory=Execution)
    storage: str | None = None
    # whose trained weights the run folder keeps (trials/NNNN/weights.safetensors): the final front's, every
    # complete trial's, or none (then trials save nothing)
    keep_weights: Literal["front", "all", "none"] = "front"
    # a zero-cost proxy picks among the proposal and its neighbours before training (archlab.search.prescreen)
    prescreen: Prescreen | None = None
    file: Path | None = internal()

    def __post_init__(self) -> None:
        self._normalise()
        if not _NAME.match(self.name):
            raise SpecError("name", "must be letters, digits, '_', '-' or '.'", self.name)
        if self.trials is None and self.timeout is None:
            raise SpecError("trials", "or timeout must be set", None)
        if not self.objectives:
            raise SpecError("objectives", "must be a non-empty list", [])
        if len({o.name for o in self.objectives}) != len(self.objectives):
            raise SpecError("objectives", "must not repeat a metric", [o.name for o in self.objectives])
        cls = _check_sampler_name(self.sampler, "sampler")
        if cls in SINGLE_OBJECTIVE_SAMPLERS and len(self.objectives) > 1:
            raise SpecError("sampler", f"must handle several objectives: {cls} optimises one only (use nsga2, "
                                       "motpe, random or gp)", self.sampler)
        if self.storage is not None and "://" not in self.storage:
            raise SpecError("storage", "must be an Optuna storage URL such as sqlite:///path/study.db", self.storage)
        _check_recipe(self.recipe)

    @classmethod
    def _prepare(cls, data: Any, path: str) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kind = data.pop("kind", "study")
        if kind != "study":
            raise SpecError("kind", "must be study", kind)
        if "sampler_args" in data:  # not a file key: arguments go under sampler.args
            raise SpecError("sampler_args", "is not a known key (did you mean 'sampler: {name: ..., args: ...}'?)",
                            show_value=False)
        for key in ("dataset", "constraints", "early_stopping", "execution", "latency"):
            if key in data and data[key] is None:   # an empty section: its defaults
                del data[key]
        if "sampler" in data:
            raw = data["sampler"]
            block = _SamplerBlock.from_dict({"name": raw} if isinstance(raw, str) else raw, path="sampler")
            data["sampler"], data["sampler_args"] = block.name, block.args
        return data

    def to_dict(self) -> dict[str, Any]:
        """The study in its file form (what `study_from_dict` reads back into an equal study)."""
        out = Schema.to_dict(self)
        args = out.pop("sampler_args")
        if args:
            out["sampler"] = {"name": self.sampler, "args": args}
        return out

    def to_yaml(self, *, space: str | None = None) -> str:
        """The study as a YAML file; `space` replaces the space path (the run folder's copy is space.yaml)."""
        import yaml
        data = self.to_dict()
        if space is not None:
            data["space"] = space
        return yaml.safe_dump(data, sort_keys=False)

    @property
    def directions(self) -> list[str]:
        """Optuna directions of the objectives, in order."""
        return [o.direction for o in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        """Names of the objectives, in order."""
        return [o.name for o in self.objectives]

    def with_overrides(self, *, trials: int | None = None, timeout: float | None = None,
                       address: str | None = None, concurrent: int | None = None) -> Study:
        """The study with CLI overrides applied (checked by the same rules as the file)."""
        study = self
        try:
            if concurrent is not None:
                study = replace(study, execution=replace(study.execution, concurrent=concurrent))
            if address is not None:
                study = replace(study, execution=replace(study.execution, address=address))
        except SpecError as err:
            raise err.with_context(prefix="execution") from None
        if trials is not None:
            study = replace(study, trials=trials)
        if timeout is not None:
            study = replace(study, timeout=timeout)
        return study


def _check_recipe(recipe: str | Mapping[str, Any]) -> None:
    """An unknown recipe name or a bad recipe key fails when the study is read, not in every trial."""
    from archlab.measure.recipes import get_recipe
    try:
        get_recipe(recipe)
    except SpecError as err:
        raise err.with_context(prefix="recipe" if not err.path.startswith("recipe") else "") from None
    except ArchlabError as err:
        raise SpecError("recipe", str(err), show_value=False) from None


def is_study(data: Any) -> bool:
    """Whether a parsed YAML document is a study file (it names a space and objectives or a dataset)."""
    return isinstance(data, dict) and (data.get("kind") == "study" or ("space" in data and "name" in data and (
        "objectives" in data or "dataset" in data or "budget" in data)))


def study_from_dict(data: Any, *, file: Path | None = None, lines: Mapping[str, int] | None = None) -> Study:
    """Validate a parsed study document; errors carry the file, line and key path. The space path is taken
    relative to the study file, and must exist."""
    file = None if file is None else Path(file)
    if isinstance(data, dict) and isinstance(data.get("space"), str) and file is not None \
            and data["space"] and not Path(data["space"]).is_absolute():
        data = {**data, "space": str(file.parent / data["space"])}
    latency = data.get("latency") if isinstance(data, dict) else None
    if isinstance(latency, dict) and isinstance(latency.get("predictor"), str) and file is not None \
            and latency["predictor"] and not Path(latency["predictor"]).is_absolute():
        data = {**data, "latency": {**latency, "predictor": str(file.parent / latency["predictor"])}}
    study: Study = Study.from_dict(data, file=file, lines=lines)
    if not study.space.exists():
        raise SpecError("space", f"names a file that does not exist ({study.space})", data["space"],
                        file=None if file is None else str(file), line=(lines or {}).get("space"))
    if study.latency.predictor is not None:
        from archlab.estimators.latency_model import load_predictor  # every trial would fail on a bad file
        try:
            load_predictor(study.latency.predictor)
        except ArchlabError as err:
            raise SpecError("latency.predictor", f"must be a latency predictor file ({err})", show_value=False,
                            file=None if file is None else str(file),
                            line=(lines or {}).get("latency.predictor")) from None
    return study


def load_study(path: str | Path) -> Study:
    """Read and validate a study file, and check that its search space loads too."""
    path = Path(path)
    doc = load_document(path)
    study = study_from_dict(doc.data, file=path, lines=doc.lines)
    _check_space(study, doc.lines.get("space"))
    from archlab.space.search_space import load_space  # the space is validated with its own file name in errors
    load_space(study.space)
    _check_predictor(study, doc.data.get("latency"), doc.lines)
    return study


def _check_predictor(study: Study, given: Any, lines: Mapping[str, int]) -> None:
    """A latency predictor must be fitted on this study's space, at its input, and on the device and settings the
    study names (those it leaves out are the predictor's): else every trial would predict the latency of
    something else, or fail."""
    if study.latency.predictor is None:
        return
    from archlab.estimators.latency_fit import load_space_file
    from archlab.estimators.latency_model import load_predictor
    from archlab.measure.data import DATASETS
    path, file = study.latency.predictor, str(study.file) if study.file else None
    try:
        target = load_predictor(path, space=load_space_file(study.space)[1]["hash"]).target
    except ArchlabError as err:
        raise SpecError("latency.predictor", f"must be a latency predictor for this study's space ({err})",
                        show_value=False, file=file, line=lines.get("latency.predictor")) from None
    for key in ("device", "threads", "batch", "backend"):
        mine, theirs = getattr(study.latency, key), target[key]
        if key not in (given or {}) or str(theirs).startswith("unknown") or _same_setting(mine, theirs):
            continue
        raise SpecError(f"latency.{key}", f"must be what the predictor was fitted with ({path} holds latencies "
                        f"measured with {key} {theirs!r}: a predictor only holds for the device and settings it was "
                        f"measured on; drop latency.{key} or fit a predictor there)", mine, file=file,
                        line=lines.get(f"latency.{key}"))
    ds = study.dataset
    chans = DATASETS.get(ds.name).native_chans if ds.name in DATASETS else target["in_chans"]
    if (target["in_chans"], target["img_size"]) != (chans, ds.img_size):
        raise SpecError("latency.predictor", f"must be fitted for the study's input: {path} predicts for "
                        f"{target['in_chans']}x{target['img_size']}x{target['img_size']} inputs, the dataset "
                        f"{ds.name} at img_size {ds.img_size} gives {chans}x{ds.img_size}x{ds.img_size} (fit one with "
                        f"--img-size {ds.img_size} --in-chans {chans})", show_value=False, file=file,
                        line=lines.get("latency.predictor"))


def _same_setting(mine: Any, theirs: Any) -> bool:
    """Whether a study's latency setting is the predictor's (`cuda` is `cuda:0`)."""
    def key(v: Any) -> Any:
        return "cuda:0" if v == "cuda" else v
    return key(mine) == key(theirs)


def _check_space(study: Study, line: int | None) -> None:
    """The space file must be a YAML mapping; said without quoting it (it may be any file the process can read)."""
    from archlab.core.yamlio import load_yaml_file
    try:
        data = load_yaml_file(study.space)
    except SpecError as err:
        raise SpecError("space", f"names a file that cannot be read as YAML ({err.rule})", show_value=False,
                        file=str(study.file), line=line) from None
    if not isinstance(data, dict):
        what = {list: "a list", str: "text", type(None): "empty"}.get(type(data), f"a {type(data).__name__}")
        raise SpecError("space", f"names a file that is not a YAML mapping of a search space (it is {what})",
                        show_value=False, file=str(study.file), line=line)


def describe_study(study: Study) -> str:
    """One line about a valid study (for `archlab validate`)."""
    goals = " vs ".join(f"{o.name} ({o.direction[:3]})" for o in study.objectives)
    size = f"{study.trials} trials" if study.trials else f"{study.timeout:.0f} s"
    screen = f" (pre-screened by {study.prescreen.proxy}, {study.prescreen.candidates} candidates)" \
        if study.prescreen else ""
    return (f"study {study.name}: {goals}, {size}, {study.sampler}{screen}, {study.dataset.name} at "
            f"{study.dataset.img_size} px")
