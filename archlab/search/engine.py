"""The search engine: an Optuna multi-objective study whose trials Ray Tune runs (docs/search.md).

`run_search` opens (or resumes) a run folder, creates the Optuna study on its storage with the objectives'
names, and runs Ray Tune with archlab's searcher (archlab.search.searcher: Optuna ask/tell behind Ray Tune's
public `Searcher`) and scheduler: Pareto-aware successive halving (archlab.search.early_stopping), which judges
a trial at each rung only against trials at least as fast while the searcher stays multi-objective; a stopped
trial is told to Optuna as PRUNED. Each trial (archlab.search.trial) measures its latency first, so one too
slow to reach the front is skipped before it trains. The Optuna storage is the source of truth: the trials
table, the Pareto front, the hypervolume and the summary are computed from it, and `resume` continues from
it after Ctrl-C or kill -9 with no finished trial lost or re-run. A complete trial reports its weights as a
Ray Tune checkpoint; the study's `keep_weights` decides which of them the run folder keeps
(trials/NNNN/weights.safetensors: the front's by default), settled after every trial and at the end.
"""
from __future__ import annotations

import datetime
import inspect
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from archlab.core.errors import ArchlabError
from archlab.measure.chance import chance_check
from archlab.search.results import (
    STATE_ATTR,
    TRIED_STATES,
    front_table,
    latency_note,
    load_trials,
    summary_dict,
    write_table,
)
from archlab.search.run_folder import RunFolder, software_versions
from archlab.search.runlock import RunLock, resumed_budget
from archlab.search.study import Study, load_study
from archlab.search.trial import CONST, WEIGHTS_FILE, TrialSettings

__all__ = ["CHECKPOINT_ATTR", "SearchSummary", "format_summary", "make_sampler", "run_search", "summary_json"]

CHECKPOINT_ATTR = "checkpoint"  # Optuna user attribute: a trial's Ray checkpoint folder, relative to the run folder

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class SearchSummary:
    """What a finished (or interrupted) search produced; `to_dict()` is `summary.json` plus the run's files."""

    run_dir: Path
    study: str
    study_file: Path
    storage: str
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    trials_run: int                    # rows of the trials table (every trial that ran, whatever its outcome)
    counts: dict[str, int]             # by state: complete, stopped, skipped, failed, interrupted
    front: tuple[dict[str, Any], ...]  # the Pareto-optimal completed trials, sorted by the last objective
    hypervolume: float
    savings: dict[str, float]          # trial-epochs early stopping and the latency pre-filter did not train
    wall_s: float
    unfinished: int                    # trials still running when the search stopped (--resume re-runs them)
    infeasible_rejected: int
    duplicates_answered: int
    report: Path | None = None
    chance_note: str = ""              # "the budget is too small to rank ..." (archlab.measure.chance), or ''
    keep_weights: str = "front"        # the study's keep_weights: front, all or none
    weights_kept: tuple[int, ...] = ()  # trials whose trials/NNNN/weights.safetensors the run folder holds
    prescreened: int = 0               # proposals the pre-screen replaced by a neighbour (never trained)
    # where latency_ms comes from: {"source": "measured", device...} or the predictor's `describe()`
    latency: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (paths as strings)."""
        out = asdict(self)
        out.update(run_dir=str(self.run_dir), study_file=str(self.study_file), front=list(self.front),
                   metrics=list(self.metrics), directions=list(self.directions),
                   report=str(self.report) if self.report else None,
                   trials_table=str(self.run_dir / "trials.csv"))
        return out


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


# Nine keyword-only parameters, the CLI's options one to one: grouping them would only move the same list.
def run_search(study: Study | str | Path, *, trials: int | None = None, timeout: float | None = None,
               out: str | Path | None = None, address: str | None = None, resume: bool = False,
               concurrent: int | None = None, progress: Reporter | None = None,
               write_report: Callable[[Path], Path | None] | None = None) -> SearchSummary:
    """Run (or with `resume`, continue the run in `out`) the search a study describes; returns its summary.

    `study` is a Study or a study file (ignored on resume: the run folder's copy is used). `trials`, `timeout`,
    `address` and `concurrent` override the study's. The Ray cluster is `address`, else the study's
    `execution.address`, else RAY_ADDRESS, else a private local Ray. Nothing is printed: `progress` (e.g.
    `print`) receives the status lines. `write_report` (e.g. archlab.report.writer.write_run_report) turns
    the finished run folder into HTML; it is passed in because the report stage sits above this one.
    """
    study, run = _open_run(study, out, resume)
    if resume:  # the first session's --trials/--timeout hold unless given again (archlab.search.runlock)
        trials, timeout = resumed_budget(run.read_state(), trials=trials, timeout=timeout)
    study = study.with_overrides(trials=trials, timeout=timeout, address=address, concurrent=concurrent)
    data = _load_data(study)  # fails early if the data is absent, before the run folder exists
    _check_predictor_classes(study, data)
    if not resume:
        run.create(study)
    # one session per run folder (a second is refused with the holder's pid); a killed session's time is
    # charged to the budget, this one's written as it runs; a read-only or full disk is one clear error
    with RunLock.acquire(run.path) as lock:
        lock.charge_orphaned_time(run.state_file)
        session = _Session.open(study, run, resume=resume, progress=progress, data=data)
        lock.keep_time(session.elapsed_before)
        if session.has_work():
            session.tune()
        return session.finish(write_report)


def _open_run(study: Study | str | Path, out: str | Path | None, resume: bool) -> tuple[Study, RunFolder]:
    """The study and the run folder: the folder's own study copy on resume, else a new folder."""
    if resume:
        if out is None:
            raise ArchlabError("--resume needs --out DIR naming the run folder to continue")
        run = RunFolder(Path(out))
        if not run.study_file.exists():
            raise ArchlabError(f"{run.path} holds no run to resume (no study.yaml)")
        return load_study(run.study_file), run
    if not isinstance(study, Study):
        study = load_study(study)
    return study, RunFolder(Path(out) if out else Path("runs") / f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}")


def _load_data(study: Study) -> Any:
    """The study's dataset, loaded as the trials will load it."""
    from archlab.measure.data import DATASETS, load_data
    ds = study.dataset
    return load_data(ds.name, img_size=ds.img_size, in_chans=DATASETS.get(ds.name).native_chans, root=ds.root,
                     val_fraction=ds.val_fraction, seed=study.seed, limit=ds.limit, val_limit=ds.val_limit)


def latency_info(study: Study) -> dict[str, Any]:
    """Where a study's latency comes from: measured on its device, or predicted by its predictor file."""
    lat = study.latency
    if lat.predictor is None:
        return {"source": "measured", "device": lat.device, "threads": lat.threads, "batch": lat.batch,
                "backend": lat.backend}
    from archlab.estimators.latency_model import load_predictor
    return {**load_predictor(lat.predictor).describe(), "copy": RunFolder(Path()).predictor_file.name}


def _check_predictor_classes(study: Study, data: Any) -> None:
    """A predictor answers for one number of classes (its classifier's cost): the dataset's, known once loaded,
    must be it, or every trial would fail (load_study has checked the space, input and settings)."""
    if study.latency.predictor is None:
        return
    from archlab.estimators.latency_model import load_predictor
    want = load_predictor(study.latency.predictor).target["num_classes"]
    if want != int(data.num_classes):
        raise ArchlabError(f"{study.file or study.name}: latency.predictor {study.latency.predictor} was fitted for "
                           f"{want} classes, but the dataset {study.dataset.name} has {int(data.num_classes)}; fit "
                           f"one with --num-classes {int(data.num_classes)}")


def _storage(url: str) -> Any:
    """The Optuna storage object for a URL: archlab writes through its public API (BaseStorage) only."""
    import optuna
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # SQLAlchemy's errors for an unknown dialect or an unreachable database vary
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__  # SQLAlchemy adds lines
        raise ArchlabError(f"storage {url!r}: cannot open it as an Optuna RDB storage: {first}") from None


class _Session:
    """One run of the engine on a run folder: the Optuna study, the budget left and the driver's state."""

    def __init__(self, study: Study, run: RunFolder, optuna_study: Any, storage: Any, state: dict[str, Any],
                 data: Any, progress: Reporter | None) -> None:
        self.study, self.run, self.optuna_study, self.storage, self.state = study, run, optuna_study, storage, state
        self.in_chans, self.num_classes = int(data.train.images.shape[1]), int(data.num_classes)
        self.n_eval = len(data.val)  # images each top-1 is measured on: the noise archlab.measure.chance uses
        self.data = data  # the pre-screen's proxy reads a minibatch of it on the driver
        self.report = progress
        done_before = sum(1 for t in optuna_study.get_trials(deepcopy=False)
                          if t.user_attrs.get(STATE_ATTR) in TRIED_STATES)
        self.remaining = None if study.trials is None else max(0, study.trials - done_before)
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.time_left = None if study.timeout is None else max(0.0, study.timeout - self.elapsed_before)
        self.start = time.time()
        self.deadline = None if self.time_left is None else self.start + self.time_left
        self.infeasible = 0
        self.done_before = done_before

    @classmethod
    def open(cls, study: Study, run: RunFolder, *, resume: bool, progress: Reporter | None, data: Any) -> _Session:
        """Create or load the Optuna study (named objectives), settle a killed session's trials, record it."""
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        state = run.read_state() if resume else {}
        url = study.storage or state.get("storage") or run.storage_url
        storage = _storage(url)
        optuna_study = optuna.create_study(study_name=study.name, storage=storage, directions=study.directions,
                                           sampler=make_sampler(study), load_if_exists=True)
        # Optuna's plots and optuna-dashboard then say top1 / latency_ms, not "Objective 0"; the API has been
        # marked experimental since Optuna 3.2 and is stable in use, so its warning is not the user's concern
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna_study.set_metric_names(study.metric_names)
        interrupted = _settle_interrupted(optuna_study, storage, run) if resume else 0
        if not resume or "latency" not in state:  # a resumed run keeps the predictor's original path
            state["latency"] = latency_info(study)
        state.update(storage=url, study=study.name, target_trials=study.trials, timeout=study.timeout,
                     versions=software_versions(),
                     sessions=state.get("sessions", []) + [{"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                             "resume": resume, "interrupted": interrupted}])
        run.write_state(state)
        session = cls(study, run, optuna_study, storage, state, data, progress)
        session.say(f"archlab search: study {study.name!r}, {study.trials or 'unbounded'} trials"
                    f"{f', {study.timeout:.0f} s budget' if study.timeout else ''}, sampler {study.sampler}, "
                    f"run folder {run.path}" + (f" (resumed: {session.done_before} done, {interrupted} "
                                                "interrupted re-queued)" if resume else ""))
        return session

    def say(self, line: str) -> None:
        """Send a line to the progress reporter, if any."""
        if self.report is not None:
            self.report(line)

    def has_work(self) -> bool:
        """Whether trials and time are left."""
        return (self.remaining is None or self.remaining > 0) and (self.time_left is None or self.time_left > 0)

    def save_tables(self, *, final: bool = False) -> Any:
        """Settle the kept weights, rewrite trials.csv/.parquet from the Optuna storage (the one source of
        truth); the table. `final`: Ray has stopped, so unrecorded checkpoint folders are orphans."""
        table = load_trials(self.optuna_study, self.study.metric_names)
        have = self.sync_weights(table, sweep=final)
        table["weights"] = [f"trials/{n:04d}/{WEIGHTS_FILE}" if n in have else None for n in table["number"]]
        write_table(table, self.run.path)
        return table

    def sync_weights(self, table: Any, *, sweep: bool = False) -> set[int]:
        """Keep the weights `keep_weights` asks for (the current front's, every complete trial's, or none);
        the trials that have them.

        Done after every told trial, not only at the end: a trial that falls off the front never returns to it,
        so its Ray checkpoint is deleted at once and a long search holds the front's weights only (Ray's
        CheckpointConfig(num_to_keep) cannot do this: it ranks one trial's checkpoints, and each trial reports
        one). Interrupted, stopped and failed trials are never kept.
        """
        from optuna.trial import TrialState
        mode = self.study.keep_weights
        done = table[table["state"] == "complete"]
        if mode == "all":
            keep = {int(n) for n in done["number"]}
        elif mode == "front":
            keep = {int(n) for n in front_table(table, self.study.metric_names, self.study.directions)["number"]}
        else:
            keep = set()
        checkpoints = {t.number: (t.user_attrs[CHECKPOINT_ATTR], str(t.user_attrs.get("arch_id")))
                       for t in self.optuna_study.get_trials(deepcopy=False)
                       if CHECKPOINT_ATTR in t.user_attrs and t.state != TrialState.RUNNING}
        return self.run.sync_weights(keep, checkpoints, sweep=sweep)

    def tune(self) -> None:
        """Start or join Ray and run the Tuner until the target or the time budget is reached."""
        from archlab.search.ray_local import cluster_address, init_ray, shutdown_ray
        from archlab.search.searcher import ArchlabSearcher, Progress, Proposals, progress_callback
        from archlab.space.search_space import load_space
        _quiet_ray()
        ex = self.study.execution
        address, via = cluster_address(ex.address)
        cluster = init_ray(address=address, num_cpus=None if address else float(os.cpu_count() or 1))
        self.state.setdefault("ray", []).append({**cluster, "joined_via": via})
        self.run.write_state(self.state)
        progress = Progress(self.study, self.optuna_study, target=self.study.trials, deadline=self.deadline,
                            report=self.report)
        try:
            space = load_space(self.run.space_file)
            proposals = Proposals(self.study, self.run, space, self.optuna_study, in_chans=self.in_chans,
                                  num_classes=self.num_classes, prescreener=self.prescreener(space))
            searcher = ArchlabSearcher(self.optuna_study, proposals, progress, on_told=self.save_tables)
            _tuner(self, searcher, [progress_callback(progress), _checkpoint_recorder(self)]).fit()
        finally:
            shutdown_ray()
        self.infeasible = progress.infeasible

    def prescreener(self, space: Any) -> Any:
        """The study's pre-screen on the driver (archlab.search.prescreen), or None without one."""
        if self.study.prescreen is None:
            return None
        from archlab.search.prescreen import Neighbourhood, Prescreener
        near = Neighbourhood(space, resample=self.study.prescreen.resample, img_size=self.study.dataset.img_size,
                             in_chans=self.in_chans, num_classes=self.num_classes)
        return Prescreener(self.study.prescreen, near, self.data, seed=self.study.seed)

    def finish(self, write_report: Callable[[Path], Path | None] | None) -> SearchSummary:
        """Settle trials the time budget ended, write tables and summary.json (and the report); the summary."""
        from optuna.trial import TrialState
        running = self.optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if running and self.deadline is not None and time.time() >= self.deadline - 1.0:
            _settle_stopped_by_budget(self.optuna_study, self.storage, running)
            running = []
        wall = time.time() - self.start
        self.state["elapsed_s"] = self.elapsed_before + wall
        self.run.write_state(self.state)
        table = self.save_tables(final=True)
        data = summary_dict(table, self.study.metric_names, self.study.directions,
                            max_epochs=self.study.budget.epochs)
        kept = [int(n) for n in table.loc[table["weights"].notna(), "number"]]
        data.update(keep_weights=self.study.keep_weights, weights_kept=kept, latency=self.state.get("latency") or {})
        duplicates = sum(1 for t in self.optuna_study.get_trials(deepcopy=False)
                         if t.user_attrs.get(STATE_ATTR) == "duplicate")
        prescreened = sum(1 for t in self.optuna_study.get_trials(deepcopy=False)
                          if t.user_attrs.get(STATE_ATTR) == "prescreened")
        data.update(wall_s=wall, infeasible_rejected=self.infeasible, run_dir=str(self.run.path),
                    duplicates_answered=duplicates, prescreened=prescreened)
        chance = chance_check(table.loc[table["state"] == "complete", "top1"] if "top1" in table else (),
                              self.num_classes, n_eval=self.n_eval)   # a front of noise is said to be one
        data.update(num_classes=self.num_classes, n_eval=self.n_eval, chance=chance.to_dict() if chance else None)
        self.run.write_json("summary.json", data)
        summary = SearchSummary(
            run_dir=self.run.path, study=self.study.name, study_file=self.study.file or self.run.study_file,
            storage=self.state["storage"], metrics=tuple(self.study.metric_names),
            directions=tuple(self.study.directions), trials_run=len(table), counts=data["counts"],
            front=tuple(data["front"]), hypervolume=data["hypervolume"], savings=data["savings"], wall_s=wall,
            unfinished=len(running), infeasible_rejected=self.infeasible, duplicates_answered=duplicates,
            chance_note=chance.message() if chance else "", keep_weights=self.study.keep_weights,
            weights_kept=tuple(kept), prescreened=prescreened, latency=data["latency"])
        return summary if write_report is None else replace(summary, report=write_report(self.run.path))


def _quiet_ray() -> None:
    """Ray's own console output off: archlab reports its own progress."""
    import logging
    logging.getLogger("ray.tune").setLevel(logging.ERROR)  # Ray's own resume hints do not apply to archlab runs
    # per-epoch results carry val_top1 only; the objectives arrive with the final result
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then silences Ray's progress table


def _tuner(session: _Session, searcher: Any, callbacks: list[Any]) -> Any:
    """The Ray Tune Tuner: the trial function with its resources, the searcher, the scheduler, the budget."""
    from ray import tune

    from archlab.search.trial import run_trial
    study, ex = session.study, session.study.execution
    settings = TrialSettings(
        space_file=str(session.run.space_file.resolve()), dataset=asdict(study.dataset), in_chans=session.in_chans,
        num_classes=session.num_classes, recipe=study.recipe, budget=study.budget.to_dict(),
        latency=asdict(study.latency), constraints=dict(study.constraints),
        latency_skip=study.early_stopping.latency_skip, seed=study.seed, threads=max(1, int(ex.cpus_per_trial)),
        device="cuda" if ex.gpus_per_trial > 0 else "cpu", run_dir=str(session.run.path.resolve()),
        save_weights=study.keep_weights != "none")
    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings),
                                    {"cpu": ex.cpus_per_trial, "gpu": ex.gpus_per_trial})
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=_scheduler(study),
                                    num_samples=-1 if session.remaining is None else session.remaining,
                                    max_concurrent_trials=ex.concurrent, time_budget_s=session.time_left,
                                    reuse_actors=True),  # a warm worker keeps torch, the data and the space
        # the storage path is where every trial's checkpoint goes, from whichever node: a multi-node run needs
        # the run folder on a filesystem all nodes share (docs/cluster.md)
        run_config=tune.RunConfig(name="tune", storage_path=str(session.run.ray_dir.resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=ex.max_failures),
                                  callbacks=callbacks, log_to_file=True))


def _checkpoint_recorder(session: _Session) -> Any:
    """A Ray Tune callback that records each trial's checkpoint folder on its Optuna trial (`checkpoint`).

    Ray calls `on_checkpoint` once the worker has persisted the checkpoint to the storage path and before the
    searcher tells the trial's outcome, so the trial is still RUNNING and its attributes can be set through the
    storage's public API; the searcher's tell then triggers `sync_weights`.
    """
    from ray.tune import Callback

    study_id = session.storage.get_study_id_from_name(session.optuna_study.study_name)

    class _Recorder(Callback):
        def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
            number = int(trial.config[f"{CONST}number"])
            trial_id = session.storage.get_trial_id_from_study_id_trial_number(study_id, number)
            session.storage.set_trial_user_attr(trial_id, CHECKPOINT_ATTR, session.run.checkpoint_ref(checkpoint.path))

    return _Recorder()


def _scheduler(study: Study) -> Any:
    """Pareto-aware successive halving (default), Ray Tune's single-metric ASHA, or none (FIFO)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    es, epochs = study.early_stopping, study.budget.epochs
    if es.scheduler == "none" or not epochs or epochs <= es.grace_epochs:
        return FIFOScheduler()
    if es.scheduler == "pareto_asha" and "latency_ms" in study.metric_names:
        from archlab.search.early_stopping import ParetoASHA
        return ParetoASHA(grace=es.grace_epochs, reduction_factor=es.reduction_factor, max_t=epochs)
    return ASHAScheduler(time_attr="epoch", metric="val_top1", mode="max", max_t=epochs,
                         grace_period=es.grace_epochs, reduction_factor=es.reduction_factor)


def _settle(optuna_study: Any, storage: Any, number: int, state: Any, attrs: dict[str, Any]) -> None:
    """Finish a trial a previous (or killed) driver left RUNNING: user attributes, then Optuna's tell.

    The attributes go through the storage's public API (the trial's Trial object belonged to that driver);
    the state through `study.tell`, which accepts a trial number.
    """
    study_id = storage.get_study_id_from_name(optuna_study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
    optuna_study.tell(number, state=state)


def _settle_interrupted(optuna_study: Any, storage: Any, run: RunFolder) -> int:
    """Mark trials a killed driver left RUNNING as failed (interrupted) and queue their parameters again."""
    from optuna.trial import TrialState
    running = optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in running:
        _settle(optuna_study, storage, t.number, TrialState.FAIL,
                {STATE_ATTR: "interrupted", "error": "interrupted: the search stopped while it ran; re-run"})
        # a trial whose ask the kill interrupted never reached Ray (no spec written): nothing to re-run
        if t.params and (run.trial_dir(t.number) / "spec.yaml").exists():
            optuna_study.enqueue_trial(t.params, skip_if_exists=False)
    return len(running)


def _settle_stopped_by_budget(optuna_study: Any, storage: Any, running: list[Any]) -> None:
    """Trials the time budget ended: stopped (PRUNED), not interrupted, so a resume does not re-run them."""
    from optuna.trial import TrialState
    now = datetime.datetime.now()
    for t in running:
        attrs: dict[str, Any] = {STATE_ATTR: "stopped", "error": "stopped by the study's time budget"}
        if t.datetime_start is not None:  # the time it trained counts as trial work, not engine overhead
            attrs["trial_s"] = (now - t.datetime_start).total_seconds()
        _settle(optuna_study, storage, t.number, TrialState.PRUNED, attrs)


def format_summary(summary: SearchSummary) -> str:
    """The end-of-search text the CLI prints: counts, savings, the front, the files, how to resume."""
    import pandas as pd
    lines = ["", f"search finished in {summary.wall_s / 60:.1f} min: " +
             ", ".join(f"{k} {v}" for k, v in summary.counts.items())]
    saved = summary.savings
    if saved.get("epochs_saved"):
        lines.append(f"early stopping and the latency pre-filter saved {saved['epochs_saved']:.0f} of "
                     f"{saved['epochs_saved'] + saved['epochs_trained']:.0f} trial-epochs "
                     f"({saved['share_saved']:.0%})")
    if summary.duplicates_answered:
        lines.append(f"{summary.duplicates_answered} re-proposed architectures were answered from their earlier "
                     "trials, not trained again")
    if summary.prescreened:
        lines.append(f"{summary.prescreened} proposals were replaced by a neighbour the pre-screen's proxy "
                     "preferred (not trained, not counted)")
    if summary.chance_note:
        lines.append(summary.chance_note)
    if latency_note(summary.latency):
        lines.append(latency_note(summary.latency))
    lines.append("")
    if summary.front:
        lines.append(f"Pareto front ({len(summary.front)} architectures):")
        lines.append(pd.DataFrame(list(summary.front)).to_string(index=False))
    else:
        lines.append("no completed trial: no front")
    lines += ["", f"run folder: {summary.run_dir}", f"trials table: {summary.run_dir / 'trials.csv'}"]
    if summary.weights_kept:
        first = summary.weights_kept[0]
        lines.append(f"weights of {len(summary.weights_kept)} trial(s) (keep_weights: {summary.keep_weights}): "
                     f"{summary.run_dir}/trials/NNNN/{WEIGHTS_FILE}; e.g. archlab export {summary.run_dir}:{first} "
                     "--format onnx --out DIR")
    if summary.report:
        lines.append(f"report: {summary.report}")
    if summary.unfinished:
        lines.append(f"interrupted with {summary.unfinished} trial(s) running: continue with "
                     f"archlab search {summary.study_file} --resume --out {summary.run_dir}")
    lines.append(f"optuna-dashboard {summary.storage}")
    return "\n".join(lines)


def summary_json(summary: SearchSummary) -> str:
    """The summary as the JSON `archlab search --json` prints."""
    return json.dumps(summary.to_dict(), indent=2, default=str)
