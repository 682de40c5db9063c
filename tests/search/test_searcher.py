"""The searcher and the engine's bookkeeping without Ray: Optuna ask/tell through Ray Tune's Searcher interface,
honest outcomes, infeasible and repeated proposals, trials a killed driver left running, the summary."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archlab.core.errors import ArchlabError
from archlab.search import searcher as searcher_module
from archlab.search.engine import (
    SearchSummary,
    _open_run,
    _settle_interrupted,
    _settle_stopped_by_budget,
    format_summary,
    summary_json,
)
from archlab.search.ray_local import cluster_address
from archlab.search.run_folder import RunFolder
from archlab.search.searcher import ArchlabSearcher, Progress, Proposals, outcome
from archlab.search.study import load_study
from archlab.space.search_space import load_space

STUDY = Path(__file__).parents[1] / "data" / "tiny_study.yaml"
METRICS = ["top1", "latency_ms"]


def _searcher(tmp_path, study=None, storage=None):
    study = study or load_study(STUDY)
    optuna_study = optuna.create_study(directions=study.directions, storage=storage, study_name="tiny",
                                       sampler=optuna.samplers.RandomSampler(seed=0))
    run = RunFolder(tmp_path / "run")
    run.create(study)
    proposals = Proposals(study, run, load_space(run.space_file), optuna_study, in_chans=1, num_classes=10)
    progress = Progress(study, optuna_study, target=3, deadline=None, report=None)
    return ArchlabSearcher(optuna_study, proposals, progress), optuna_study, run


def _final(top1: float, latency_ms: float) -> dict:
    return {"final": True, "state": "complete", "top1": top1, "latency_ms": latency_ms, "arch_id": "x",
            "epochs_run": 2, "trial_s": 1.5}


def test_outcome_is_honest():
    assert outcome(_final(80.0, 2.0), False, METRICS)[:2] == ("complete", [80.0, 2.0])
    state, values, attrs = outcome({"epoch": 1, "val_top1": 55.0, "latency_ms": 3.0}, False, METRICS)
    # stopped after an epoch: its accuracy so far is kept aside, never as top1 or an objective value
    assert (state, values) == ("stopped", None) and attrs["top1_partial"] == 55.0 and "top1" not in attrs
    assert outcome({"final": True, "state": "skipped", "error": "slow"}, False, METRICS)[0] == "skipped"
    state, _, attrs = outcome(None, True, METRICS)
    assert state == "failed" and "worker failed" in attrs["error"]
    assert outcome(None, False, METRICS)[0] == "stopped"   # stopped before it reported anything


def test_searcher_asks_and_tells_optuna(tmp_path):
    searcher, optuna_study, run = _searcher(tmp_path)
    config = searcher.suggest("a")
    number = config["archlab_number"]
    assert set(config) - {"archlab_number", "archlab_front_latency"} == set(optuna_study.trials[number].params)
    assert (run.trial_dir(number) / "spec.yaml").exists()
    searcher.on_trial_complete("a", _final(80.0, 2.0))
    done = optuna_study.trials[number]
    assert done.state == TrialState.COMPLETE and done.values == [80.0, 2.0]
    assert done.user_attrs["archlab_state"] == "complete" and done.user_attrs["top1"] == 80.0

    searcher.suggest("b")
    searcher.on_trial_complete("b", {"epoch": 1, "val_top1": 40.0})
    searcher.suggest("c")
    searcher.on_trial_complete("c", None, error=True)
    searcher.on_trial_complete("c", _final(99.0, 0.1))   # told already: ignored
    states = [(t.state, t.user_attrs.get("archlab_state")) for t in optuna_study.trials]
    assert states[-2:] == [(TrialState.PRUNED, "stopped"), (TrialState.FAIL, "failed")]
    assert searcher.progress.counts == {"complete": 1, "stopped": 1, "skipped": 0, "failed": 1}


def test_a_repeated_architecture_is_answered_from_its_earlier_trial(tmp_path):
    searcher, optuna_study, _ = _searcher(tmp_path)
    first = searcher.suggest("a")["archlab_number"]
    searcher.on_trial_complete("a", _final(70.0, 1.0))
    optuna_study.enqueue_trial(optuna_study.trials[first].params)   # the sampler proposes it again
    config = searcher.suggest("b")
    repeat = optuna_study.trials[first + 1]
    assert repeat.user_attrs["archlab_state"] == "duplicate" and repeat.user_attrs["duplicate_of"] == first
    assert repeat.state == TrialState.COMPLETE and repeat.values == [70.0, 1.0]
    assert config["archlab_number"] == first + 2   # and another architecture went to Ray instead


def test_infeasible_samples_never_reach_ray(tmp_path, monkeypatch):
    from dataclasses import replace
    study = load_study(STUDY)
    searcher, optuna_study, _ = _searcher(tmp_path, replace(study, constraints={"max_params": 10}))
    monkeypatch.setattr(searcher_module, "MAX_INFEASIBLE_IN_A_ROW", 7)
    with pytest.raises(ArchlabError, match="7 consecutive samples broke the constraints"):
        searcher.suggest("a")
    trials = optuna_study.trials
    assert len(trials) == 7 and searcher.progress.infeasible == 7
    assert all(t.state == TrialState.PRUNED and t.user_attrs["archlab_state"] == "infeasible" for t in trials)
    assert "params" in trials[0].user_attrs["error"] and "max_params 10" in trials[0].user_attrs["error"]


def test_trials_a_killed_driver_left_running_are_settled_through_public_apis(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher, _, run = _searcher(tmp_path, storage=url)
    searcher.suggest("a")                      # reached Ray: its spec is written
    searcher.suggest("b")
    searcher.optuna_study.ask()                # asked, killed before it was decoded: no spec
    # a new driver (the resumed search) opens the same storage
    storage = optuna.storages.RDBStorage(url)
    again = optuna.load_study(study_name="tiny", storage=storage)
    assert _settle_interrupted(again, storage, run) == 3
    trials = again.get_trials()
    assert [t.state for t in trials[:3]] == [TrialState.FAIL] * 3
    assert {t.user_attrs["archlab_state"] for t in trials[:3]} == {"interrupted"}
    queued = again.get_trials(states=(TrialState.WAITING,))
    # their parameters run again; the third never ran
    assert [t.system_attrs["fixed_params"] for t in queued] == [trials[0].params, trials[1].params]

    # the time budget ends two running trials: stopped (PRUNED), with the time they trained
    running = [again.ask(), again.ask()]
    _settle_stopped_by_budget(again, storage, [again.trials[t.number] for t in running])
    for t in running:
        frozen = again.trials[t.number]
        assert frozen.state == TrialState.PRUNED and frozen.user_attrs["archlab_state"] == "stopped"
        assert frozen.user_attrs["trial_s"] >= 0 and "time budget" in frozen.user_attrs["error"]


def test_the_run_folders_study_copy_reads_back(tmp_path):
    study = load_study(STUDY)
    run = RunFolder(tmp_path / "run")
    run.create(study)
    copy = load_study(run.study_file)
    assert copy.space == run.space_file and run.space_file.read_text() == study.space.read_text()
    assert (copy.name, copy.objectives, copy.dataset, copy.budget, copy.early_stopping, copy.trials) == \
        (study.name, study.objectives, study.dataset, study.budget, study.early_stopping, study.trials)
    with pytest.raises(ArchlabError, match="already holds a run"):
        run.create(study)


def test_run_search_takes_a_study_object_or_a_path(tmp_path):
    study = load_study(STUDY)
    same, run = _open_run(study, tmp_path / "a", resume=False)
    assert same is study and run.path == tmp_path / "a"
    loaded, _ = _open_run(STUDY, tmp_path / "b", resume=False)
    assert loaded.name == "tiny" and loaded.file == STUDY
    with pytest.raises(ArchlabError, match="--resume needs --out"):
        _open_run(STUDY, None, resume=True)
    with pytest.raises(ArchlabError, match="holds no run to resume"):
        _open_run(STUDY, tmp_path / "empty", resume=True)


@pytest.mark.parametrize("explicit, env, expected", [
    ("10.0.0.1:6379", {"RAY_ADDRESS": "10.0.0.2:6379"}, ("10.0.0.1:6379", "address")),
    (None, {"RAY_ADDRESS": "10.0.0.2:6379"}, ("10.0.0.2:6379", "RAY_ADDRESS")),
    (None, {"RAY_ADDRESS": "  "}, (None, "local")),
    (None, {}, (None, "local")),
])
def test_the_cluster_is_chosen_as_ray_chooses_it(explicit, env, expected):
    assert cluster_address(explicit, env) == expected


def test_summary_as_json_and_text(tmp_path):
    summary = SearchSummary(
        run_dir=tmp_path, study="tiny", study_file=STUDY, storage="sqlite:///x.db", metrics=("top1", "latency_ms"),
        directions=("maximize", "minimize"), trials_run=3, counts={"complete": 2, "failed": 1},
        front=({"number": 0, "arch_id": "a", "top1": 80.0, "latency_ms": 1.0},), hypervolume=1.5,
        savings={"epochs_saved": 2.0, "epochs_trained": 6.0, "share_saved": 0.25}, wall_s=60.0, unfinished=1,
        infeasible_rejected=0, duplicates_answered=2)
    data = json.loads(summary_json(summary))
    assert data["run_dir"] == str(tmp_path) and data["front"][0]["top1"] == 80.0 and data["counts"]["failed"] == 1
    text = format_summary(summary)
    assert "saved 2 of 8 trial-epochs (25%)" in text and "2 re-proposed architectures" in text
    assert f"archlab search {STUDY} --resume --out {tmp_path}" in text and "optuna-dashboard sqlite:///x.db" in text
    with pytest.raises(AttributeError):
        summary.wall_s = 0.0   # frozen


def test_the_fronts_counts_stay_integers_beside_a_failed_row():
    import numpy as np
    import pandas as pd

    from archlab.search.results import front_table
    table = pd.DataFrame({"number": [0, 1, 2], "state": ["complete", "failed", "complete"],
                          "arch_id": ["a", None, "b"], "top1": [80.0, np.nan, 70.0], "latency_ms": [2.0, np.nan, 1.0],
                          "params": [100.0, np.nan, 50.0], "macs": [10.0, np.nan, 5.0]})
    records = front_table(table, METRICS, ["maximize", "minimize"]).to_dict(orient="records")
    assert [(r["number"], r["params"], r["macs"]) for r in records] == [(2, 50, 5), (0, 100, 10)]
    assert all(type(r["params"]) is int for r in records)   # JSON says 50, not 50.0
