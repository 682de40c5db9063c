"""The search engine: an Optuna multi-objective study whose trials Ray Tune runs.

Ray Tune's `OptunaSearch` is the search algorithm (define-by-run over the search space); each trial decodes
its architecture from the trial's parameters, measures its latency, trains it on the proxy data and reports
validation top-1 per epoch. Early stopping is ASHA (Li et al. 2020) on validation top-1 while the searcher
stays multi-objective: a stopped trial is told to Optuna as PRUNED (its partial accuracy is kept as a user
attribute, never passed off as a final value). Latency is known before training, so a trial whose latency
puts it far from the current front is skipped before it trains. An architecture is trained once per study:
when the sampler proposes one already tried (other parameters can decode to the same arch_id, and samplers
re-propose good points), the proposal is answered from the earlier trial, as Optuna's FAQ does for repeated
parameters, and another is asked for. The Optuna storage is the source of truth; the trials table, Pareto
front and hypervolume are computed from it.
"""
from __future__ import annotations

import datetime
import inspect
import json
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archlab.core.errors import ArchlabError
from archlab.search.results import (
    STATE_ATTR,
    TABLE_STATES,
    TRIAL_ATTRS,
    front_table,
    load_trials,
    summary_dict,
    write_table,
)
from archlab.search.study import Study, load_study

__all__ = ["RunFolder", "SearchSummary", "TrialSettings", "make_sampler", "run_search", "software_versions",
           "tell_duplicate"]

CONST = "archlab_"  # prefix of the constants the searcher adds to a trial's config (never a search dimension)
FAULTS_ENV = "ARCHLAB_INJECT_FAULTS"  # "N:raise,M:nan,K:die" by trial number: the fault-path tests use it
LATENCY_SKIP_MIN_COMPLETE = 5  # completed trials before the latency pre-filter starts skipping
MAX_DUPLICATES_IN_A_ROW = 50  # re-proposals of tried architectures before one is trained again (space exhausted)
# outcomes that count toward the study's target: every table state but interrupted (those are re-run)
TRIED_STATES = tuple(s for s in TABLE_STATES if s != "interrupted")


# --- the run folder -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunFolder:
    """A run's folder: the study and space as run, the Optuna storage, trial specs, tables and logs."""

    path: Path

    @property
    def study_file(self) -> Path:
        return self.path / "study.yaml"

    @property
    def space_file(self) -> Path:
        return self.path / "space.yaml"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def storage_url(self) -> str:
        """Default Optuna storage: SQLite inside the run folder (optuna-dashboard opens it)."""
        return f"sqlite:///{(self.path / 'optuna.db').resolve()}"

    def trial_dir(self, number: int) -> Path:
        """Folder of one trial's files (spec, log)."""
        return self.path / "trials" / f"{number:04d}"

    def create(self, study: Study) -> None:
        """Lay out a new run: copy the study and its space, pointing the copy at the copied space."""
        if self.path.exists() and any(self.path.iterdir()):
            raise ArchlabError(f"{self.path} already holds a run; pass --resume to continue it or another --out")
        (self.path / "trials").mkdir(parents=True, exist_ok=True)
        (self.path / "logs").mkdir(exist_ok=True)
        shutil.copyfile(study.space, self.space_file)
        raw = dict(study.raw, space="space.yaml")
        import yaml
        _atomic_write(self.study_file, yaml.safe_dump(raw, sort_keys=False))

    def read_state(self) -> dict[str, Any]:
        """The run's bookkeeping (elapsed time, target trials, settings of each session)."""
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def write_state(self, state: dict[str, Any]) -> None:
        """Atomically replace the bookkeeping file."""
        _atomic_write(self.state_file, json.dumps(state, indent=2, default=str))


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and os.replace, so a kill never leaves half a file (as Ray Tune saves)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- what a worker needs ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialSettings:
    """Everything a trial needs besides its parameters; pickled once to each worker."""

    space_file: str
    dataset: dict[str, Any]
    in_chans: int
    num_classes: int
    recipe: Any
    budget: dict[str, Any]
    latency: dict[str, Any]
    constraints: dict[str, float]
    latency_skip: float | None
    seed: int
    threads: int
    device: str
    run_dir: str


_SPACES: dict[str, Any] = {}


def _space(path: str) -> Any:
    """The search space, loaded once per process (workers run many trials)."""
    if path not in _SPACES:
        from archlab.space.search_space import load_space
        _SPACES[path] = load_space(path)
    return _SPACES[path]


def _arch_params(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith(CONST)}


def _inject_fault(number: int, run_dir: str) -> str | None:
    """The fault named for this trial number in ARCHLAB_INJECT_FAULTS, if any (tests only)."""
    for item in filter(None, os.environ.get(FAULTS_ENV, "").split(",")):
        n, _, kind = item.partition(":")
        if n.strip() == str(number):
            if kind == "die":  # die once: the retry must then succeed
                marker = Path(run_dir) / "logs" / f"died-{number}"
                if marker.exists():
                    return None
                marker.touch()
            return kind
    return None


def run_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    """Ray Tune trainable: decode, measure latency, maybe skip, train with per-epoch reports, report final."""
    from ray import tune
    start = time.perf_counter()
    number = int(config[f"{CONST}number"])
    base: dict[str, Any] = {"number": number, "node_id": _node_id(), "hostname": socket.gethostname(),
                            "gpu_ids": _gpu_ids() if settings.device.startswith("cuda") else None}
    # on a cluster without a shared filesystem this makes a node-local folder of the same path for logs
    (Path(settings.run_dir) / "logs").mkdir(parents=True, exist_ok=True)
    try:
        import torch

        from archlab.measure.data import load_data
        from archlab.measure.latency import LatencyCache, measure_latency
        from archlab.measure.train import train
        from archlab.nn.complexity import complexity
        torch.set_num_threads(settings.threads)
        fault = _inject_fault(number, settings.run_dir)
        if fault == "die":
            os._exit(3)  # a worker that dies mid-trial: Ray retries the trial
        if fault == "raise":
            raise RuntimeError("injected fault")
        spec = _space(settings.space_file).decode(_arch_params(config), img_size=settings.dataset["img_size"],
                                                  in_chans=settings.in_chans, num_classes=settings.num_classes)
        cost = complexity(spec)
        base.update(arch_id=spec.arch_id, params=cost.params, macs=cost.macs)
        lat = settings.latency
        cache = LatencyCache(Path(settings.run_dir) / "latency_cache.json")
        result = measure_latency(spec, batch=lat["batch"], device=lat["device"], threads=lat["threads"],
                                 backend=lat["backend"], max_seconds=lat["max_seconds"], cache=cache)
        # the objective is the drift-corrected figure (archlab.measure.latency: reference kernel); the raw median is kept
        base.update(latency_ms=result.latency_ms, latency_raw_ms=result.median_ms, latency_p90_ms=result.p90_ms,
                    latency_cv=result.cv, latency_repeats=result.repeats)
        reason = _skip_reason(result.latency_ms, config.get(f"{CONST}front_latency"), settings)
        if reason:
            tune.report({**base, "state": "skipped", "error": reason, "final": True,
                         "trial_s": time.perf_counter() - start})
            return
        recipe = settings.recipe
        if fault == "nan":
            recipe = {"base": recipe, "lr": 1e12} if isinstance(recipe, str) else {**recipe, "lr": 1e12}
        data = load_data(settings.dataset["name"], img_size=settings.dataset["img_size"],
                         in_chans=settings.in_chans, root=settings.dataset.get("root"),
                         val_fraction=settings.dataset["val_fraction"], seed=settings.seed,
                         limit=settings.dataset.get("limit"), val_limit=settings.dataset.get("val_limit"))

        def on_epoch(report: Any) -> None:
            if report.last:
                return  # the last evaluation goes out with the final result, so ASHA cannot cut it off
            tune.report({**base, "epoch": report.epoch, "val_top1": report.val_top1,
                         "train_loss": report.train_loss, "trial_s": time.perf_counter() - start})

        out = train(spec, data, recipe=recipe, budget=settings.budget, seed=settings.seed, device=settings.device,
                    threads=settings.threads, callback=on_epoch)
        tune.report({**base, "state": "complete", "final": True, "top1": out.top1, "val_top1": out.top1,
                     "epoch": out.epochs_run, "epochs_run": out.epochs_run, "train_s": out.wall_s,
                     "images_per_s": out.images_per_s, "paused_s": out.paused_s,
                     "trial_s": time.perf_counter() - start})
    except Exception as err:
        if _is_tune_stop(err):
            raise
        reason = f"{type(err).__name__}: {err}"
        if "out of memory" in str(err).lower():
            reason = f"out of memory: {err}"
        log = Path(settings.run_dir) / "logs" / f"trial-{number:04d}.log"
        log.write_text(traceback.format_exc())
        tune.report({**base, "state": "failed", "error": reason[:500], "final": True,
                     "trial_s": time.perf_counter() - start})


def _is_tune_stop(err: BaseException) -> bool:
    return type(err).__name__ in ("StopIteration", "_StopTrial", "SessionTerminated")


def _gpu_ids() -> str | None:
    """The GPUs Ray gave this trial ("0", "0,1"; with fractional GPUs trials share one), or None outside Ray."""
    try:
        import ray
        return ",".join(str(g) for g in ray.get_gpu_ids()) or None
    except Exception:
        return None


def _node_id() -> str:
    try:
        import ray
        return ray.get_runtime_context().get_node_id()
    except Exception:
        return ""


def _skip_reason(latency_ms: float, front_latency: float | None, settings: TrialSettings) -> str | None:
    """Why a trial with this latency should not train, or None."""
    cap = settings.constraints.get("max_latency_ms")
    if cap is not None and latency_ms > cap:
        return f"latency {latency_ms:.3g} ms > max_latency_ms {cap:g}"
    factor = settings.latency_skip
    if factor and front_latency and latency_ms > factor * front_latency:
        return (f"latency {latency_ms:.3g} ms > {factor:g} x {front_latency:.3g} ms of the front's most accurate "
                "point: it would have to beat the best top-1 so far while being far slower")
    return None


# --- the searcher -------------------------------------------------------------------------------------

def make_sampler(study: Study) -> Any:
    """The study's Optuna sampler, seeded: nsga2 (default), motpe, random, or any Optuna sampler by name."""
    import optuna

    from archlab.search.study import SAMPLERS
    name = SAMPLERS.get(study.sampler, study.sampler)
    cls = getattr(optuna.samplers, name)
    args = dict(study.sampler_args)
    if study.sampler == "motpe":
        args.setdefault("multivariate", True)
    # the signature, not __init__.__code__: Optuna wraps some samplers' __init__ (TPE, NSGA-III, CMA-ES, QMC),
    # which hides their `seed` from the code object and left them unseeded
    if "seed" in inspect.signature(cls).parameters:
        args.setdefault("seed", study.seed)
    try:
        return cls(**args)
    except TypeError as err:
        raise ArchlabError(f"sampler {study.sampler!r}: {err}") from None


def tell_duplicate(optuna_study: Any, trial: Any, number: int) -> None:
    """Answer `trial`, which re-proposes the architecture of trial `number`, from that trial: nothing is trained.

    Its values when it completed (Optuna's FAQ answers repeated parameters so), else failed or pruned as it was;
    an earlier trial still running has no values yet, so the repeat is pruned.
    """
    from optuna.trial import TrialState
    earlier = optuna_study.get_trials(deepcopy=False)[number]  # trials are listed by number
    trial.set_user_attr(STATE_ATTR, "duplicate")
    trial.set_user_attr("duplicate_of", number)
    if earlier.state == TrialState.COMPLETE:
        optuna_study.tell(trial, earlier.values)
    else:
        optuna_study.tell(trial, state=TrialState.FAIL if earlier.state == TrialState.FAIL else TrialState.PRUNED)


def _searcher_class() -> type:
    """OptunaSearch subclass, built lazily so importing archlab.search.engine does not import Ray."""
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class ArchlabOptunaSearch(OptunaSearch):
        """OptunaSearch that rejects infeasible samples before Ray sees them and tells Optuna outcomes honestly."""

        def __init__(self, *, engine: _Engine, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._engine = engine

        def suggest(self, trial_id: str) -> dict | None:
            for _ in range(10_000):
                config = super().suggest(trial_id)
                if config is not None and config.get(f"{CONST}duplicate_of") is not None:
                    tell_duplicate(self._ot_study, self._ot_trials.pop(trial_id), int(config[f"{CONST}duplicate_of"]))
                    continue
                if config is None or not config.get(f"{CONST}infeasible"):
                    if config is not None:
                        self._engine.started(config, trial_id)
                    return config
                # analytic constraints failed: never built, never scheduled; Optuna learns it was pruned
                ot_trial = self._ot_trials.pop(trial_id)
                ot_trial.set_user_attr(STATE_ATTR, "infeasible")
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
                self._engine.infeasible += 1
            raise ArchlabError("10,000 consecutive samples broke the constraints; loosen them or the space")

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            state, values, attrs = self._engine.outcome(result, error)
            for key, value in attrs.items():
                ot_trial.set_user_attr(key, value)
            if state == "complete":
                self._ot_study.tell(ot_trial, values, state=TrialState.COMPLETE)
            elif state in ("stopped", "skipped"):
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
            else:
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            self._completed_trials.add(trial_id)
            self._engine.finished(ot_trial.number, state)

    return ArchlabOptunaSearch


class _Engine:
    """Driver-side state shared by the searcher and the progress callback."""

    def __init__(self, study: Study, run: RunFolder, space: Any, in_chans: int, num_classes: int,
                 target: int | None, deadline: float | None, quiet: bool) -> None:
        self.study, self.run, self.space = study, run, space
        self.in_chans, self.num_classes = in_chans, num_classes
        self.target, self.deadline, self.quiet = target, deadline, quiet
        self.infeasible = 0
        self.tried: dict[str, int] = {}  # arch_id -> the trial that first trained it
        self._duplicates_in_a_row = 0
        self.running: set[int] = set()
        self.counts = dict.fromkeys(TRIED_STATES, 0)
        self.optuna_study: Any = None
        self._last_print = 0.0
        self.start = time.time()

    # define-by-run space function: runs in the driver for every sample
    def define(self, trial: Any) -> dict[str, Any]:
        """Suggest an architecture, check its constraints analytically and pass the front's latency along."""
        from archlab.core.errors import SpecError
        from archlab.nn.complexity import complexity
        try:
            spec = self.space.suggest(trial, img_size=self.study.dataset.img_size, in_chans=self.in_chans,
                                      num_classes=self.num_classes)
        except SpecError as err:  # an assignment that is not a valid network (e.g. too small for the input)
            return {f"{CONST}number": trial.number, f"{CONST}infeasible": f"invalid: {err}",
                    f"{CONST}front_latency": None}
        problems = list(self.space.violations(spec))
        cost = complexity(spec)
        limits = self.study.constraints
        for key, value in (("params", cost.params), ("macs", cost.macs)):
            if f"max_{key}" in limits and value > limits[f"max_{key}"]:
                problems.append(f"{key} {value:,} > max_{key} {limits[f'max_{key}']:,.0f}")
            if f"min_{key}" in limits and value < limits[f"min_{key}"]:
                problems.append(f"{key} {value:,} < min_{key} {limits[f'min_{key}']:,.0f}")
        trial.set_user_attr("arch_id", spec.arch_id)
        if not problems and spec.arch_id in self.tried and self._duplicates_in_a_row < MAX_DUPLICATES_IN_A_ROW:
            self._duplicates_in_a_row += 1
            return {f"{CONST}number": trial.number, f"{CONST}duplicate_of": self.tried[spec.arch_id]}
        if not problems:
            self._duplicates_in_a_row = 0
            self.tried.setdefault(spec.arch_id, trial.number)
            folder = self.run.trial_dir(trial.number)
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(folder / "spec.yaml", spec.to_yaml())
        return {f"{CONST}number": trial.number, f"{CONST}infeasible": "; ".join(problems),
                f"{CONST}front_latency": self.front_latency()}

    def remember_tried(self) -> None:
        """Fill `tried` from the storage (a resumed run): architectures of trials that reached an outcome."""
        for t in self.optuna_study.get_trials(deepcopy=False):
            if t.user_attrs.get(STATE_ATTR) in TRIED_STATES and t.user_attrs.get("arch_id"):
                self.tried.setdefault(t.user_attrs["arch_id"], t.number)

    def front_latency(self) -> float | None:
        """Latency of the most accurate completed trial (the front's top end), for the latency pre-filter."""
        if self.optuna_study is None or "latency_ms" not in self.study.metric_names or "top1" not in \
                self.study.metric_names:
            return None
        from optuna.trial import TrialState
        done = self.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(done) < LATENCY_SKIP_MIN_COMPLETE:  # an early front is too thin to judge against
            return None
        i_top, i_lat = self.study.metric_names.index("top1"), self.study.metric_names.index("latency_ms")
        best = max(done, key=lambda t: (t.values[i_top], -t.values[i_lat]))
        return float(best.values[i_lat])

    def started(self, config: dict[str, Any], trial_id: str) -> None:
        """A feasible trial was handed to Ray."""
        self.running.add(int(config[f"{CONST}number"]))

    def outcome(self, result: dict | None, error: bool) -> tuple[str, list[float] | None, dict[str, Any]]:
        """State, objective values and user attributes of a finished trial from its last result."""
        result = result or {}
        # top1 is read from the final result of a complete trial only (below), never from an epoch report
        attrs = {k: result[k] for k in TRIAL_ATTRS if k in result and k not in ("top1", "top1_partial")}
        if result.get("final") and result.get("state") == "complete":
            attrs["top1"] = result["top1"]
            values = [float(result[m]) for m in self.study.metric_names]
            attrs[STATE_ATTR] = "complete"
            return "complete", values, attrs
        if result.get("final"):
            attrs[STATE_ATTR] = result.get("state", "failed")
            return attrs[STATE_ATTR], None, attrs
        if error:
            attrs[STATE_ATTR] = "failed"
            attrs.setdefault("error", "the trial's worker failed (retries exhausted); see logs/ray")
            return "failed", None, attrs
        # stopped by ASHA after an epoch: keep what it reached, but it is not a final accuracy
        attrs[STATE_ATTR] = "stopped"
        attrs["top1_partial"] = result.get("val_top1")
        attrs["epochs_run"] = result.get("epoch")
        return "stopped", None, attrs

    def finished(self, number: int, state: str) -> None:
        """Book-keep a finished trial, rewrite the tables and print a progress line."""
        self.running.discard(number)
        self.counts[state] = self.counts.get(state, 0) + 1
        self.save_tables()
        self.progress(force=True, last=(number, state))

    def save_tables(self) -> None:
        """Rewrite trials.csv/.parquet from the Optuna storage (the one source of truth)."""
        if self.optuna_study is not None:
            write_table(load_trials(self.optuna_study, self.study.metric_names), self.run.path)

    def progress(self, force: bool = False, last: tuple[int, str] | None = None) -> None:
        """Print the live status line: done/running/failed, front size, best values, time left."""
        now = time.time()
        if self.quiet or (not force and now - self._last_print < 15):
            return
        self._last_print = now
        c = self.counts
        done = sum(c.values())
        front = self.front_summary()
        left = ""
        if self.deadline:
            left = f" | {max(0, self.deadline - now) / 60:.1f} min left"
        elif self.target and done:
            left = f" | ~{(now - self.start) / done * (self.target - done) / 60:.1f} min left"
        event = f"trial {last[0]} {last[1]}; " if last else ""
        target = f"/{self.target}" if self.target else ""
        print(f"[{time.strftime('%H:%M:%S')}] {event}done {done}{target} (complete {c['complete']}, stopped "
              f"{c['stopped']}, skipped {c['skipped']}, failed {c['failed']}) running {len(self.running)} | "
              f"{front}{left}", flush=True)

    def front_summary(self) -> str:
        """'front N | best top-1 X | fastest Y ms' over the completed trials."""
        if self.optuna_study is None:
            return "front 0"
        # a re-proposed architecture's trial repeats its earlier trial's values: count each architecture once
        front = [t for t in self.optuna_study.best_trials if t.user_attrs.get(STATE_ATTR) == "complete"]
        if not front:
            return "front 0"
        names = self.study.metric_names
        parts = [f"front {len(front)}"]
        for i, name in enumerate(names):
            best = max if self.study.directions[i] == "maximize" else min
            parts.append(f"best {name} {best(t.values[i] for t in front):.4g}")
        return " | ".join(parts)


def _progress_callback(engine: _Engine) -> Any:
    from ray.tune import Callback

    class Progress(Callback):
        """Ray Tune callback printing archlab's status line every 15 s."""

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            engine.progress()

    return Progress()


# --- the entry point ----------------------------------------------------------------------------------

@dataclass
class SearchSummary:
    """What a finished (or interrupted) search produced."""

    run_dir: Path
    trials_run: int
    counts: dict[str, int]
    front: list[dict[str, Any]]
    wall_s: float
    report: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _interrupted(optuna_study: Any, run: RunFolder) -> int:
    """Mark trials left RUNNING by a killed driver as failed and queue their parameters again."""
    from optuna.trial import TrialState
    n = 0
    for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage = optuna_study._storage
        storage.set_trial_user_attr(t._trial_id, STATE_ATTR, "interrupted")
        storage.set_trial_user_attr(t._trial_id, "error", "interrupted: the search stopped while it ran; re-run")
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params and (run.trial_dir(t.number) / "spec.yaml").exists():
            optuna_study.enqueue_trial(t.params, skip_if_exists=False)
        n += 1
    return n


def _finished_real_trials(optuna_study: Any) -> int:
    """Trials that count toward the study's target: every outcome except infeasible, duplicate and interrupted."""
    return sum(1 for t in optuna_study.get_trials(deepcopy=False) if t.user_attrs.get(STATE_ATTR) in TRIED_STATES)


def run_search(study_path: str | Path, *, trials: int | None = None, timeout: float | None = None,
               out: str | Path | None = None, address: str | None = None, resume: bool = False,
               quiet: bool = False, concurrent: int | None = None,
               write_report: Callable[[Path], Path | None] | None = None) -> SearchSummary:
    """Run (or with `resume`, continue) the search a study file describes; returns the summary.

    `write_report` (e.g. archlab.report.writer.write_run_report) turns the finished run folder into HTML; it is
    passed in because the report stage sits above the search stage.
    """
    import optuna
    if resume:
        if out is None:
            raise ArchlabError("--resume needs --out DIR naming the run folder to continue")
        run = RunFolder(Path(out))
        if not run.study_file.exists():
            raise ArchlabError(f"{run.path} holds no run to resume (no study.yaml)")
        study = load_study(run.study_file)
    else:
        study = load_study(study_path)
        run = RunFolder(Path(out) if out else Path("runs") / f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    study = study.with_overrides(trials=trials, timeout=timeout, address=address, concurrent=concurrent)
    state = run.read_state() if resume else {}
    storage = study.storage or state.get("storage") or run.storage_url

    from archlab.measure.data import load_data
    ds = study.dataset
    data = load_data(ds.name, img_size=ds.img_size, in_chans=_dataset_chans(ds.name), root=ds.root,
                     val_fraction=ds.val_fraction, seed=study.seed, limit=ds.limit,
                     val_limit=ds.val_limit)  # fails early if the data is absent
    if not resume:
        run.create(study)
    space = _space(str(run.space_file.resolve()))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna_study = optuna.create_study(study_name=study.name, storage=storage, directions=study.directions,
                                       load_if_exists=True)
    interrupted = _interrupted(optuna_study, run) if resume else 0
    done_before = _finished_real_trials(optuna_study)
    remaining = None if study.trials is None else max(0, study.trials - done_before)
    elapsed_before = float(state.get("elapsed_s", 0.0))
    time_left = None if study.timeout is None else max(0.0, study.timeout - elapsed_before)
    state.update(storage=storage, study=study.name, target_trials=study.trials, timeout=study.timeout,
                 versions=software_versions(),
                 sessions=state.get("sessions", []) + [{"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                         "resume": resume, "interrupted": interrupted}])
    run.write_state(state)
    start = time.time()
    deadline = start + time_left if time_left is not None else None
    engine = _Engine(study, run, space, data.train.images.shape[1], data.num_classes, study.trials, deadline, quiet)
    engine.optuna_study = optuna_study
    engine.remember_tried()
    for t in optuna_study.get_trials(deepcopy=False):
        s = t.user_attrs.get(STATE_ATTR)
        if s in engine.counts:
            engine.counts[s] += 1
    if not quiet:
        print(f"archlab search: study {study.name!r}, {study.trials or 'unbounded'} trials"
              f"{f', {study.timeout:.0f} s budget' if study.timeout else ''}, sampler {study.sampler}, run folder "
              f"{run.path}" + (f" (resumed: {done_before} done, {interrupted} interrupted re-queued)" if resume else ""),
              flush=True)
    if (remaining is None or remaining > 0) and (time_left is None or time_left > 0):
        _tune(study, run, engine, storage, remaining, time_left, data.num_classes)
    from optuna.trial import TrialState
    running = optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if deadline is not None and time.time() >= deadline - 1.0:
        # the time budget ended these trials: stopped, not interrupted (a resume would not re-run them)
        now = datetime.datetime.now()
        for t in running:
            if t.datetime_start is not None:  # the time it trained counts as trial work, not engine overhead
                optuna_study._storage.set_trial_user_attr(t._trial_id, "trial_s",
                                                          (now - t.datetime_start).total_seconds())
            optuna_study._storage.set_trial_user_attr(t._trial_id, STATE_ATTR, "stopped")
            optuna_study._storage.set_trial_user_attr(t._trial_id, "error", "stopped by the study's time budget")
            optuna_study._storage.set_trial_state_values(t._trial_id, TrialState.PRUNED)
            engine.counts["stopped"] += 1
        running = []
    unfinished = len(running)
    wall = time.time() - start
    state = run.read_state()  # _tune added the Ray cluster's description
    state["elapsed_s"] = elapsed_before + wall
    run.write_state(state)
    engine.save_tables()
    table = load_trials(optuna_study, study.metric_names)
    summary = summary_dict(table, study.metric_names, study.directions, max_epochs=study.budget.get("epochs"))
    summary.update(wall_s=wall, infeasible_rejected=engine.infeasible, run_dir=str(run.path),
                   duplicates_answered=sum(1 for t in optuna_study.get_trials(deepcopy=False)
                                           if t.user_attrs.get(STATE_ATTR) == "duplicate"))
    _atomic_write(run.path / "summary.json", json.dumps(summary, indent=2, default=str))
    report = write_report(run.path) if write_report else None
    result = SearchSummary(run_dir=run.path, trials_run=len(table), counts=summary["counts"],
                           front=summary["front"], wall_s=wall, report=report,
                           extra={"unfinished": unfinished, "savings": summary["savings"],
                                  "duplicates": summary["duplicates_answered"]})
    if not quiet:
        print(_format_summary(result, table, study))
    return result


def _dataset_chans(name: str) -> int:
    from archlab.measure.data import DATASETS
    return DATASETS.get(name).native_chans


def _tune(study: Study, run: RunFolder, engine: _Engine, storage: str, remaining: int | None,
          time_left: float | None, num_classes: int) -> None:
    """Start or join Ray and run the Tuner until the target or the time budget is reached."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from archlab.search.ray_local import init_ray, shutdown_ray

    ex = study.execution
    import logging
    logging.getLogger("ray.tune").setLevel(logging.ERROR)  # Ray's own resume hints do not apply to archlab runs
    # per-epoch results carry val_top1 only; the objectives arrive with the final result
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # archlab prints its own progress; verbose=0 then silences Ray
    cluster = init_ray(address=ex.address, num_cpus=None if ex.address else float(os.cpu_count() or 1),
                       tmpdir=None)
    state = run.read_state()
    state.setdefault("ray", []).append(cluster)
    run.write_state(state)
    try:
        settings = TrialSettings(
            space_file=str(run.space_file.resolve()), dataset=asdict(study.dataset), in_chans=engine.in_chans,
            num_classes=num_classes, recipe=study.recipe, budget=dict(study.budget),
            latency=asdict(study.latency), constraints=dict(study.constraints),
            latency_skip=study.early_stopping.latency_skip, seed=study.seed,
            threads=max(1, int(ex.cpus_per_trial)), device="cuda" if ex.gpus_per_trial > 0 else "cpu",
            run_dir=str(run.path.resolve()))
        searcher = _searcher_class()(
            engine=engine, space=engine.define, metric=study.metric_names,
            mode=["max" if d == "maximize" else "min" for d in study.directions], sampler=make_sampler(study),
            seed=study.seed, study_name=study.name, storage=optuna.storages.RDBStorage(storage)
            if storage.startswith(("sqlite", "postgresql", "mysql")) else None)
        es = study.early_stopping
        epochs = study.budget.get("epochs")
        scheduler = FIFOScheduler()
        if es.scheduler != "none" and epochs and epochs > es.grace_epochs:
            if es.scheduler == "pareto_asha" and "latency_ms" in study.metric_names:
                from archlab.search.early_stopping import ParetoASHA
                scheduler = ParetoASHA(grace=es.grace_epochs, reduction_factor=es.reduction_factor, max_t=epochs)
            else:  # Ray Tune's ASHA on validation top-1 alone
                scheduler = ASHAScheduler(time_attr="epoch", metric="val_top1", mode="max", max_t=epochs,
                                          grace_period=es.grace_epochs, reduction_factor=es.reduction_factor)
        trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings),
                                        {"cpu": ex.cpus_per_trial, "gpu": ex.gpus_per_trial})
        from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner
        tuner = Tuner(
            trainable,
            tune_config=TuneConfig(search_alg=searcher, scheduler=scheduler,
                                   num_samples=-1 if remaining is None else remaining,
                                   max_concurrent_trials=ex.concurrent, time_budget_s=time_left,
                                   reuse_actors=True),  # a warm worker keeps torch, the data and the space
            run_config=RunConfig(name="tune", storage_path=str((run.path / "ray").resolve()), verbose=0,
                                 failure_config=FailureConfig(max_failures=ex.max_failures),
                                 callbacks=[_progress_callback(engine)], log_to_file=True))
        tuner.fit()
    finally:
        if not ex.address:
            shutdown_ray()
        else:
            import ray
            ray.shutdown()


def software_versions() -> dict[str, str]:
    """Versions of the stack a run used (for the run folder and the report)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for name in ("archlab", "torch", "torchvision", "timm", "optuna", "ray", "pandas", "plotly"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _format_summary(summary: SearchSummary, table: Any, study: Study) -> str:
    lines = ["", f"search finished in {summary.wall_s / 60:.1f} min: " +
             ", ".join(f"{k} {v}" for k, v in summary.counts.items())]
    saved = summary.extra.get("savings", {})
    if saved.get("epochs_saved"):
        lines.append(f"early stopping and the latency pre-filter saved {saved['epochs_saved']:.0f} of "
                     f"{saved['epochs_saved'] + saved['epochs_trained']:.0f} trial-epochs "
                     f"({saved['share_saved']:.0%})")
    if summary.extra.get("duplicates"):
        lines.append(f"{summary.extra['duplicates']} re-proposed architectures were answered from their earlier "
                     "trials, not trained again")
    lines.append("")
    front = front_table(table, study.metric_names, study.directions)
    if len(front):
        lines.append(f"Pareto front ({len(front)} architectures):")
        lines.append(front.to_string(index=False))
    else:
        lines.append("no completed trial: no front")
    lines += ["", f"run folder: {summary.run_dir}", f"trials table: {summary.run_dir / 'trials.csv'}"]
    if summary.report:
        lines.append(f"report: {summary.report}")
    if summary.extra.get("unfinished"):
        lines.append(f"interrupted with {summary.extra['unfinished']} trial(s) running: continue with "
                     f"archlab search {study.file} --resume --out {summary.run_dir}")
    lines.append(f"optuna-dashboard {study.storage or RunFolder(summary.run_dir).storage_url}")
    return "\n".join(lines)

