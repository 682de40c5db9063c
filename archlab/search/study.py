"""Study files: what a search optimises, on which data, with which sampler and resources.

A study names a search space file, a dataset and training recipe with a per-trial budget, objectives
(top-1 against measured latency by default), constraints, an Optuna sampler, early stopping, execution
resources (local Ray, the GPUs of one box, or a cluster address) and an Optuna storage.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from archlab.core.errors import ArchlabError, SpecError, did_you_mean
from archlab.core.yamlio import load_yaml_file, parse_number

__all__ = ["OBJECTIVES", "SAMPLERS", "DatasetConfig", "EarlyStopping", "Execution", "LatencyTarget",
           "Objective", "Study", "describe_study", "load_study", "is_study"]

OBJECTIVES = {"top1": "maximize", "latency_ms": "minimize", "params": "minimize", "macs": "minimize"}
# short names for Optuna's samplers; any other Optuna sampler class name is accepted as well
SAMPLERS = {"nsga2": "NSGAIISampler", "nsga3": "NSGAIIISampler", "motpe": "TPESampler", "tpe": "TPESampler",
            "random": "RandomSampler", "gp": "GPSampler"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _keys(data: Any, allowed: set[str], path: str, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check that `data` is a mapping with only `allowed` keys (did-you-mean on typos) and the required ones."""
    if not isinstance(data, dict):
        raise SpecError(path, "must be a mapping", data)
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            hint = did_you_mean(str(key), allowed)
            if "flops" in str(key).lower():  # torchvision's "GFLOPS" are MACs; archlab names the unit
                hint = f" (archlab counts multiply-accumulates: did you mean {str(key).lower().replace('flops', 'macs')!r}?)"
            raise SpecError(where, "is not a known key" + hint, show_value=False)
    for key in required:
        if key not in data:
            raise SpecError(f"{path}.{key}" if path else key, "is required", show_value=False)
    return data


def _number(data: dict[str, Any], key: str, path: str, *, kind: type = float, low: float | None = None,
            high: float | None = None, default: Any = None) -> Any:
    value = data.get(key, default)
    where = f"{path}.{key}" if path else key
    if value is None:
        return None
    if isinstance(value, str):  # '4M', '4.0e6' (YAML 1.1 reads exponents without a sign as strings)
        value = parse_number(value, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise SpecError(where, "must be an integer" if kind is int else "must be a number", value)
    if low is not None and value < low:
        raise SpecError(where, f"must be >= {low:g}", value)
    if high is not None and value > high:
        raise SpecError(where, f"must be <= {high:g}", value)
    return kind(value)


@dataclass(frozen=True, slots=True)
class DatasetConfig:
    """Which data trials train on: a registered dataset name, the proxy side and the subset sizes."""

    name: str = "fashion_mnist"
    img_size: int = 32
    limit: int | None = None         # training images used per trial (None: all)
    val_limit: int | None = None     # validation images evaluated after each epoch (None: the whole split)
    val_fraction: float = 0.1
    root: str | None = None


@dataclass(frozen=True, slots=True)
class Objective:
    """One objective: a metric of the trials table and its direction."""

    name: str
    direction: str


@dataclass(frozen=True, slots=True)
class LatencyTarget:
    """Where latency is measured: device, batch size, CPU threads and backend."""

    device: str = "cpu"
    batch: int = 1
    threads: int | None = 1
    backend: str = "eager"
    max_seconds: float = 5.0         # cap on one measurement (it stops earlier once the median is stable)


@dataclass(frozen=True, slots=True)
class EarlyStopping:
    """Successive halving on validation top-1 (Pareto-aware, or Ray's ASHA) and a latency pre-filter."""

    scheduler: str = "pareto_asha"   # pareto_asha | asha | none
    grace_epochs: int = 1
    reduction_factor: float = 2.0
    latency_skip: float | None = 1.5  # skip when latency > factor x the latency of the front's best-top-1 point


@dataclass(frozen=True, slots=True)
class Execution:
    """Ray resources: per-trial CPUs and (fractional) GPUs, concurrency, cluster address, retries."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrent: int = 2
    address: str | None = None
    max_failures: int = 1            # retries of a trial whose worker died


@dataclass(frozen=True, slots=True)
class Study:
    """A whole study, validated; `file` is where it was read from (paths in it are relative to it)."""

    name: str
    space: Path
    description: str = ""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    recipe: Any = "classic"
    budget: dict[str, float] = field(default_factory=lambda: {"epochs": 2})  # archlab.measure.train.Budget fields
    objectives: tuple[Objective, ...] = (Objective("top1", "maximize"), Objective("latency_ms", "minimize"))
    latency: LatencyTarget = field(default_factory=LatencyTarget)
    constraints: dict[str, float] = field(default_factory=dict)
    sampler: str = "nsga2"
    sampler_args: dict[str, Any] = field(default_factory=dict)
    trials: int | None = 16
    timeout: float | None = None
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    seed: int = 0
    execution: Execution = field(default_factory=Execution)
    storage: str | None = None
    file: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

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
        """The study with CLI overrides applied."""
        study = self
        if concurrent is not None:
            if concurrent < 1:
                raise ArchlabError(f"--concurrent must be >= 1, got {concurrent}")
            study = replace(study, execution=replace(study.execution, concurrent=concurrent))
        if trials is not None:
            study = replace(study, trials=trials)
        if timeout is not None:
            study = replace(study, timeout=timeout)
        if address is not None:
            study = replace(study, execution=replace(study.execution, address=address))
        return study


_TOP_KEYS = {"name", "description", "space", "dataset", "recipe", "budget", "objectives", "latency", "constraints",
             "sampler", "trials", "timeout", "early_stopping", "seed", "execution", "storage", "kind"}
CONSTRAINT_KEYS = {"max_params", "max_macs", "max_latency_ms", "min_params", "min_macs"}


def is_study(data: Any) -> bool:
    """Whether a parsed YAML document is a study file (it names a space and objectives or a dataset)."""
    return isinstance(data, dict) and (data.get("kind") == "study" or ("space" in data and "name" in data and (
        "objectives" in data or "dataset" in data or "budget" in data)))


def study_from_dict(data: Any, *, file: Path | None = None) -> Study:
    """Validate a parsed study document; errors carry the file and key path."""
    try:
        return _parse(data, file)
    except SpecError as err:
        raise err.with_context(file=str(file) if file else None) from None


def load_study(path: str | Path) -> Study:
    """Read and validate a study file, and check that its search space loads too."""
    path = Path(path)
    study = study_from_dict(load_yaml_file(path), file=path)
    from archlab.space.search_space import load_space  # the space is validated with its own file name in errors
    load_space(study.space)
    return study


def describe_study(study: Study) -> str:
    """One line about a valid study (for `archlab validate`)."""
    goals = " vs ".join(f"{o.name} ({o.direction[:3]})" for o in study.objectives)
    size = f"{study.trials} trials" if study.trials else f"{study.timeout:.0f} s"
    return f"study {study.name}: {goals}, {size}, {study.sampler}, {study.dataset.name} at {study.dataset.img_size} px"


def _parse(data: Any, file: Path | None) -> Study:
    _keys(data, _TOP_KEYS, "", required=("name", "space"))
    if data.get("kind", "study") != "study":
        raise SpecError("kind", "must be study", data["kind"])
    name = data["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError("name", "must be letters, digits, '_', '-' or '.'", name)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SpecError("description", "must be a string", description)
    space = data["space"]
    if not isinstance(space, str):
        raise SpecError("space", "must be a path to a search-space file", space)
    space_path = (file.parent / space) if file is not None and not Path(space).is_absolute() else Path(space)
    if not space_path.exists():
        raise SpecError("space", f"names a file that does not exist ({space_path})", space)

    ds = _keys(data.get("dataset", {}), {"name", "img_size", "limit", "val_limit", "val_fraction", "root"}, "dataset")
    ds_name = ds.get("name", "fashion_mnist")
    from archlab.measure.data import DATASETS  # the registry of loadable datasets is the list of valid names
    if ds_name not in DATASETS:
        raise SpecError("dataset.name", "must be one of " + ", ".join(DATASETS.names()) +
                        did_you_mean(str(ds_name), DATASETS.names(), list_valid=False), ds_name)
    dataset = DatasetConfig(name=ds_name, img_size=_number(ds, "img_size", "dataset", kind=int, low=8, default=32),
                            limit=_number(ds, "limit", "dataset", kind=int, low=10),
                            val_limit=_number(ds, "val_limit", "dataset", kind=int, low=10),
                            val_fraction=_number(ds, "val_fraction", "dataset", low=0.01, high=0.9, default=0.1),
                            root=ds.get("root"))

    recipe = data.get("recipe", "classic")
    if not isinstance(recipe, (str, dict)):
        raise SpecError("recipe", "must be a recipe name or a mapping", recipe)

    from archlab.measure.train import Budget  # the trainer's own budget type validates the block
    budget = Budget.from_dict(data.get("budget", {"epochs": 2}), path="budget").to_dict()
    from archlab.measure.recipes import get_recipe
    try:
        get_recipe(recipe)  # an unknown recipe name or a bad recipe key fails here, not in every trial
    except SpecError as err:
        raise err.with_context(prefix="recipe" if not err.path.startswith("recipe") else "") from None
    except ArchlabError as err:
        raise SpecError("recipe", str(err), show_value=False) from None

    objectives = _objectives(data.get("objectives"))
    lt = _keys(data.get("latency", {}), {"device", "batch", "threads", "backend", "max_seconds"}, "latency")
    device = lt.get("device", "cpu")
    if not isinstance(device, str) or not re.match(r"^(cpu|cuda(:\d+)?)$", device):
        raise SpecError("latency.device", "must be cpu, cuda or cuda:N", device)
    latency = LatencyTarget(device=device, batch=_number(lt, "batch", "latency", kind=int, low=1, default=1),
                            threads=_number(lt, "threads", "latency", kind=int, low=1, default=1),
                            backend=str(lt.get("backend", "eager")),
                            max_seconds=_number(lt, "max_seconds", "latency", low=0.1, default=5.0))

    cons = _keys(data.get("constraints", {}) or {}, CONSTRAINT_KEYS, "constraints")
    constraints = {k: _number(cons, k, "constraints", low=0) for k in cons}

    sampler, sampler_args = _sampler(data.get("sampler", "nsga2"))
    trials = _number(data, "trials", "", kind=int, low=1, default=16)
    timeout = _number(data, "timeout", "", low=1)
    if trials is None and timeout is None:
        raise SpecError("trials", "or timeout must be set", None)

    es = _keys(data.get("early_stopping", {}) or {}, {"scheduler", "grace_epochs", "reduction_factor",
                                                       "latency_skip"}, "early_stopping")
    scheduler = es.get("scheduler", "pareto_asha")
    if scheduler not in ("pareto_asha", "asha", "none"):
        raise SpecError("early_stopping.scheduler", "must be pareto_asha, asha or none", scheduler)
    early = EarlyStopping(scheduler=scheduler,
                          grace_epochs=_number(es, "grace_epochs", "early_stopping", kind=int, low=1, default=1),
                          reduction_factor=_number(es, "reduction_factor", "early_stopping", low=1.01, default=2.0),
                          latency_skip=_number(es, "latency_skip", "early_stopping", low=1.0, default=1.5)
                          if "latency_skip" not in es or es["latency_skip"] is not None else None)

    ex = _keys(data.get("execution", {}) or {}, {"cpus_per_trial", "gpus_per_trial", "concurrent", "address",
                                                  "max_failures"}, "execution")
    execution = Execution(cpus_per_trial=_number(ex, "cpus_per_trial", "execution", low=0.01, default=1.0),
                          gpus_per_trial=_number(ex, "gpus_per_trial", "execution", low=0, default=0.0),
                          concurrent=_number(ex, "concurrent", "execution", kind=int, low=1, default=2),
                          address=ex.get("address"),
                          max_failures=_number(ex, "max_failures", "execution", kind=int, low=0, default=1))
    storage = data.get("storage")
    if storage is not None and (not isinstance(storage, str) or "://" not in storage):
        raise SpecError("storage", "must be an Optuna storage URL such as sqlite:///path/study.db", storage)
    seed = _number(data, "seed", "", kind=int, low=0, default=0)
    return Study(name=name, space=space_path, description=description, dataset=dataset, recipe=recipe,
                 budget=budget, objectives=objectives, latency=latency, constraints=constraints, sampler=sampler,
                 sampler_args=sampler_args, trials=trials, timeout=timeout, early_stopping=early, seed=seed,
                 execution=execution, storage=storage, file=file, raw=dict(data))


def _objectives(raw: Any) -> tuple[Objective, ...]:
    if raw is None:
        return Study.__dataclass_fields__["objectives"].default  # type: ignore[return-value]
    if not isinstance(raw, list) or not raw:
        raise SpecError("objectives", "must be a non-empty list", raw)
    out = []
    for i, item in enumerate(raw):
        path = f"objectives[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        _keys(item, {"name", "direction"}, path, required=("name",))
        name = item["name"]
        if name not in OBJECTIVES:
            raise SpecError(f"{path}.name", "must be one of " + ", ".join(OBJECTIVES) +
                            did_you_mean(str(name), OBJECTIVES, list_valid=False), name)
        direction = item.get("direction", OBJECTIVES[name])
        if direction not in ("maximize", "minimize"):
            raise SpecError(f"{path}.direction", "must be maximize or minimize", direction)
        out.append(Objective(name, direction))
    if len({o.name for o in out}) != len(out):
        raise SpecError("objectives", "must not repeat a metric", [o.name for o in out])
    return tuple(out)


def _sampler(raw: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(raw, str):
        raw = {"name": raw}
    _keys(raw, {"name", "args"}, "sampler", required=("name",))
    name, args = raw["name"], raw.get("args", {}) or {}
    import optuna.samplers  # Optuna is a core dependency; its sampler names are the valid ones
    valid = set(SAMPLERS) | {n for n in dir(optuna.samplers) if n.endswith("Sampler") and not n.startswith("Base")}
    if name not in valid:
        raise SpecError("sampler.name", "must be an Optuna sampler" + did_you_mean(str(name), valid), name)
    if not isinstance(args, dict):
        raise SpecError("sampler.args", "must be a mapping of keyword arguments", args)
    return name, dict(args)
