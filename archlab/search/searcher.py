"""The Ray Tune searcher: Optuna's ask/tell behind Ray Tune's public `Searcher` interface.

`suggest` asks the Optuna study for a trial and decodes it define-by-run into an ArchSpec (the sampler sees
only the parameters the decoder asked for). An infeasible sample (the analytic constraints fail) is told to
Optuna as pruned and another is asked; so is a re-proposal of an architecture already tried, answered from the
earlier trial (`tell_duplicate`); neither ever reaches Ray. With the study's `prescreen`, a feasible new proposal is
first compared with its neighbours by a zero-cost proxy (archlab.search.prescreen); where one wins, the
proposal is told PRUNED and the winner is enqueued and asked in its place. `on_trial_complete` tells Optuna the outcome
honestly: a complete trial its objective values, a stopped or skipped one PRUNED (its partial accuracy kept as
a user attribute), a failed one FAIL with its reason. Optuna cannot prune multi-objective studies, so
intermediate results go to the scheduler (archlab.search.early_stopping), not to Optuna.
`save`/`restore` are not implemented: the Optuna storage is the searcher's whole state, and
`archlab search --resume` restores from it rather than from Ray Tune's experiment checkpoint.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.search import Searcher

from archlab.core.errors import ArchlabError, SpecError
from archlab.core.files import atomic_write_text
from archlab.search.prescreen import Prescreener, record, replace_proposal
from archlab.search.results import STATE_ATTR, TRIAL_ATTRS, TRIED_STATES
from archlab.search.run_folder import RunFolder
from archlab.search.study import Study
from archlab.search.trial import CONST

__all__ = ["LATENCY_SKIP_MIN_COMPLETE", "MAX_DUPLICATES_IN_A_ROW", "ArchlabSearcher", "Progress",
           "Proposals", "outcome", "progress_callback", "tell_duplicate"]

LATENCY_SKIP_MIN_COMPLETE = 5  # completed trials before the latency pre-filter starts skipping
MAX_DUPLICATES_IN_A_ROW = 50  # re-proposals of tried architectures before one is trained again (space exhausted)
MAX_INFEASIBLE_IN_A_ROW = 10_000  # samples breaking the constraints before the search gives up


def tell_duplicate(optuna_study: Any, trial: Any, number: int) -> None:
    """Answer `trial`, which re-proposes the architecture of trial `number`, from that trial: nothing is trained.

    Its values when it completed (Optuna's FAQ answers repeated parameters so), else failed or pruned as it was;
    an earlier trial still running has no values yet, so the repeat is pruned.
    """
    earlier = optuna_study.get_trials(deepcopy=False)[number]  # trials are listed by number
    trial.set_user_attr(STATE_ATTR, "duplicate")
    trial.set_user_attr("duplicate_of", number)
    if earlier.state == TrialState.COMPLETE:
        optuna_study.tell(trial, earlier.values)
    else:
        optuna_study.tell(trial, state=TrialState.FAIL if earlier.state == TrialState.FAIL else TrialState.PRUNED)


def outcome(result: dict | None, error: bool, metric_names: list[str]) -> tuple[str, list[float] | None,
                                                                                  dict[str, Any]]:
    """State, objective values and user attributes of a finished trial, from its last Ray Tune result."""
    result = result or {}
    # top1 is read from the final result of a complete trial only (below), never from an epoch report
    attrs = {k: result[k] for k in TRIAL_ATTRS if k in result and k not in ("top1", "top1_partial")}
    if result.get("final") and result.get("state") == "complete":
        attrs.update(top1=result["top1"], **{STATE_ATTR: "complete"})
        return "complete", [float(result[m]) for m in metric_names], attrs
    if result.get("final"):
        attrs[STATE_ATTR] = result.get("state", "failed")
        return attrs[STATE_ATTR], None, attrs
    if error:
        attrs[STATE_ATTR] = "failed"
        attrs.setdefault("error", "the trial's worker failed (retries exhausted); see logs/ray")
        return "failed", None, attrs
    # stopped by the scheduler after an epoch (or before it started): what it reached is not a final accuracy
    attrs.update(top1_partial=result.get("val_top1"), epochs_run=result.get("epoch"), **{STATE_ATTR: "stopped"})
    return "stopped", None, attrs


class Proposals:
    """Driver side of suggest: decode a trial define-by-run, check it analytically, remember what was tried."""

    def __init__(self, study: Study, run: RunFolder, space: Any, optuna_study: Any, *, in_chans: int,
                 num_classes: int, prescreener: Prescreener | None = None) -> None:
        self.study, self.run, self.space, self.optuna_study = study, run, space, optuna_study
        self.in_chans, self.num_classes = in_chans, num_classes
        self.prescreener = prescreener  # the study's `prescreen` (None: every feasible proposal trains as asked)
        self.tried: dict[str, int] = {}  # arch_id -> the trial that first trained it
        self.duplicates_in_a_row = 0
        for t in optuna_study.get_trials(deepcopy=False):  # a resumed run remembers what it tried
            if t.user_attrs.get(STATE_ATTR) in TRIED_STATES and t.user_attrs.get("arch_id"):
                self.tried.setdefault(t.user_attrs["arch_id"], t.number)

    def propose(self, trial: Any, *, screen: bool = True) -> tuple[str, Any]:
        """("run", config), ("infeasible", reason), ("duplicate", earlier trial number) or, with `screen` and a
        pre-screen, ("prescreened", Choice) when a neighbour should train instead, for an asked trial."""
        try:
            spec = self.space.suggest(trial, img_size=self.study.dataset.img_size, in_chans=self.in_chans,
                                      num_classes=self.num_classes)
        except SpecError as err:  # an assignment that is not a valid network (e.g. too small for the input)
            return "infeasible", f"invalid: {err}"
        trial.set_user_attr("arch_id", spec.arch_id)
        problems = self.violations(spec)
        if problems:
            return "infeasible", "; ".join(problems)
        if spec.arch_id in self.tried and self.duplicates_in_a_row < MAX_DUPLICATES_IN_A_ROW:
            self.duplicates_in_a_row += 1
            return "duplicate", self.tried[spec.arch_id]
        if screen and self.prescreener is not None:
            choice = self.prescreener.screen(trial.number, trial.params, spec, exclude=set(self.tried),
                                             keep=lambda s: not self.violations(s))
            if choice.replaced:
                return "prescreened", choice
            record(trial, choice, self.prescreener.config.proxy)
        self.duplicates_in_a_row = 0
        self.tried.setdefault(spec.arch_id, trial.number)
        folder = self.run.trial_dir(trial.number)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "spec.yaml", spec.to_yaml())
        return "run", {**trial.params, f"{CONST}number": trial.number, f"{CONST}front_latency": self.front_latency()}

    def violations(self, spec: Any) -> list[str]:
        """The space's and the study's constraints that `spec` breaks, computed without building it."""
        from archlab.nn.complexity import complexity
        problems = list(self.space.violations(spec))
        cost = complexity(spec)
        limits = self.study.constraints
        for key, value in (("params", cost.params), ("macs", cost.macs)):
            if f"max_{key}" in limits and value > limits[f"max_{key}"]:
                problems.append(f"{key} {value:,} > max_{key} {limits[f'max_{key}']:,.0f}")
            if f"min_{key}" in limits and value < limits[f"min_{key}"]:
                problems.append(f"{key} {value:,} < min_{key} {limits[f'min_{key}']:,.0f}")
        return problems

    def front_latency(self) -> float | None:
        """Latency of the most accurate completed trial (the front's top end), for the latency pre-filter."""
        names = self.study.metric_names
        if "latency_ms" not in names or "top1" not in names:
            return None
        done = self.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(done) < LATENCY_SKIP_MIN_COMPLETE:  # an early front is too thin to judge against
            return None
        i_top, i_lat = names.index("top1"), names.index("latency_ms")
        best = max(done, key=lambda t: (t.values[i_top], -t.values[i_lat]))
        return float(best.values[i_lat])


class Progress:
    """Driver-side counts of a search and its status line, sent to `report` (None: kept silent)."""

    def __init__(self, study: Study, optuna_study: Any, *, target: int | None, deadline: float | None,
                 report: Callable[[str], None] | None) -> None:
        self.study, self.optuna_study, self.report = study, optuna_study, report
        self.target, self.deadline = target, deadline
        self.counts = dict.fromkeys(TRIED_STATES, 0)
        for t in optuna_study.get_trials(deepcopy=False):
            if t.user_attrs.get(STATE_ATTR) in self.counts:
                self.counts[t.user_attrs[STATE_ATTR]] += 1
        self.infeasible = 0
        self.prescreened = 0  # proposals a neighbour replaced (told PRUNED, never trained, not counted as done)
        self.running: set[int] = set()
        self.start, self._last = time.time(), 0.0

    def finished(self, number: int, state: str) -> None:
        """Book-keep a finished trial and report it."""
        self.running.discard(number)
        self.counts[state] = self.counts.get(state, 0) + 1
        self.tick(force=True, last=(number, state))

    def tick(self, force: bool = False, last: tuple[int, str] | None = None) -> None:
        """Report the status line: at most every 15 s unless `force`."""
        now = time.time()
        if self.report is None or (not force and now - self._last < 15):
            return
        self._last = now
        self.report(self.line(now, last))

    def line(self, now: float, last: tuple[int, str] | None = None) -> str:
        """'[time] trial N state; done d/t (complete ...) running r | front ... | x min left'."""
        c = self.counts
        done = sum(c.values())
        left = ""
        if self.deadline:
            left = f" | {max(0, self.deadline - now) / 60:.1f} min left"
        elif self.target and done:
            left = f" | ~{(now - self.start) / done * (self.target - done) / 60:.1f} min left"
        event = f"trial {last[0]} {last[1]}; " if last else ""
        target = f"/{self.target}" if self.target else ""
        screened = f", {self.prescreened} proposals replaced by pre-screening" if self.prescreened else ""
        return (f"[{time.strftime('%H:%M:%S')}] {event}done {done}{target} (complete {c['complete']}, stopped "
                f"{c['stopped']}, skipped {c['skipped']}, failed {c['failed']}{screened}) running "
                f"{len(self.running)} | {self.front_summary()}{left}")

    def front_summary(self) -> str:
        """'front N | best top1 X | best latency_ms Y' over the completed trials."""
        # a re-proposed architecture's trial repeats its earlier trial's values: count each architecture once
        front = [t for t in self.optuna_study.best_trials if t.user_attrs.get(STATE_ATTR) == "complete"]
        if not front:
            return "front 0"
        parts = [f"front {len(front)}"]
        for i, name in enumerate(self.study.metric_names):
            best = max if self.study.directions[i] == "maximize" else min
            parts.append(f"best {name} {best(t.values[i] for t in front):.4g}")
        return " | ".join(parts)


class ArchlabSearcher(Searcher):
    """Ray Tune searcher over an Optuna study: ask, decode, reject or answer without Ray, tell the outcome."""

    def __init__(self, optuna_study: Any, proposals: Proposals, progress: Progress, *,
                 on_told: Callable[[], None] | None = None) -> None:
        super().__init__()  # metric and mode stay unset: the study's objectives go to Optuna, not to Tune
        self.optuna_study, self.proposals, self.progress, self.on_told = optuna_study, proposals, progress, on_told
        self.metric_names = proposals.study.metric_names
        self.live: dict[str, Any] = {}  # Ray trial id -> the Optuna trial it runs

    def suggest(self, trial_id: str) -> dict | None:
        """A feasible, untried architecture's config for Ray; rejected samples are told to Optuna here."""
        for _ in range(MAX_INFEASIBLE_IN_A_ROW):
            # a trial waiting in Optuna's queue (re-queued after an interruption) is re-run as it was, unscreened
            screen = self.proposals.prescreener is not None and not self.optuna_study.get_trials(
                deepcopy=False, states=(TrialState.WAITING,))
            trial = self.optuna_study.ask()
            kind, answer = self.proposals.propose(trial, screen=screen)
            if kind == "prescreened":  # the proposal is told PRUNED; the chosen neighbour is asked in its place
                trial = replace_proposal(self.optuna_study, trial, answer, self.proposals.prescreener.config.proxy)
                self.progress.prescreened += 1
                kind, answer = self.proposals.propose(trial, screen=False)
            if kind == "run":
                self.live[trial_id] = trial
                self.progress.running.add(trial.number)
                return answer
            if kind == "duplicate":
                tell_duplicate(self.optuna_study, trial, answer)
                continue
            # analytic constraints failed: never built, never scheduled; Optuna learns it was pruned
            trial.set_user_attr(STATE_ATTR, "infeasible")
            trial.set_user_attr("error", answer[:500])
            self.optuna_study.tell(trial, state=TrialState.PRUNED)
            self.progress.infeasible += 1
        raise ArchlabError(f"{MAX_INFEASIBLE_IN_A_ROW:,} consecutive samples broke the constraints; loosen them "
                           "or the space")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna the trial's outcome: values when complete, PRUNED when stopped or skipped, else FAIL."""
        trial = self.live.pop(trial_id, None)
        if trial is None:  # told already (Tune reports some trials twice), or never ours
            return
        state, values, attrs = outcome(result, error, self.metric_names)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if state == "complete":
            self.optuna_study.tell(trial, values, state=TrialState.COMPLETE)
        else:
            self.optuna_study.tell(trial, state=TrialState.PRUNED if state in ("stopped", "skipped")
                                   else TrialState.FAIL)
        if self.on_told is not None:
            self.on_told()
        self.progress.finished(trial.number, state)


def progress_callback(progress: Progress) -> Callback:
    """A Ray Tune callback that reports the status line every 15 s between trial events."""

    class _Tick(Callback):
        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            progress.tick()

    return _Tick()
