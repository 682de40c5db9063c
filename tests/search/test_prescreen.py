"""Pre-screening by zero-cost proxy: the study option, the pure choice, neighbours, the searcher and a search."""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archlab.core.errors import ArchlabError, SpecError
from archlab.search.prescreen import Candidate, Neighbourhood, Prescreen, Prescreener, choose
from archlab.search.results import load_table, load_trials
from archlab.search.run_folder import RunFolder
from archlab.search.searcher import ArchlabSearcher, Progress, Proposals
from archlab.search.study import load_study, study_from_dict
from archlab.space.search_space import load_space

DATA = Path(__file__).parents[1] / "data"
STUDY = DATA / "tiny_study.yaml"
FIT = dict(img_size=16, in_chans=1, num_classes=10)


# --- the study option --------------------------------------------------------------------------------------

@pytest.fixture()
def base(tmp_path: Path) -> tuple[dict, Path]:
    (tmp_path / "space.yaml").write_text("name: tiny\n")
    return {"name": "tiny", "space": "space.yaml", "dataset": {"name": "digits", "img_size": 16}}, \
        tmp_path / "study.yaml"


def test_the_option_reads_with_defaults_and_writes_back(base):
    data, file = base
    study = study_from_dict({**data, "prescreen": {"proxy": "nwot", "candidates": 4}}, file=file)
    assert study.prescreen == Prescreen(proxy="nwot", candidates=4, resample=1, rule="dominate", batch_size=32)
    assert study_from_dict({**data, "prescreen": "synflow"}, file=file).prescreen.proxy == "synflow"
    assert study_from_dict(data, file=file).prescreen is None
    again = study_from_dict({**study.to_dict(), "space": "space.yaml"}, file=file)
    assert again.prescreen == study.prescreen


@pytest.mark.parametrize("prescreen, message", [
    ({"proxy": "nwto"}, "prescreen.proxy must be a zero-cost proxy (params, macs, synflow"),
    ({"proxy": "nwto"}, "(did you mean 'nwot'?), got 'nwto'"),
    ({"proxy": "nwot", "candidates": 1}, "prescreen.candidates must be >= 2, got 1"),
    ({"proxy": "nwot", "candidates": 2.5}, "prescreen.candidates must be an integer, got 2.5"),
    ({"proxy": "nwot", "candidates": True}, "prescreen.candidates must be an integer"),
    ({"proxy": "nwot", "resample": 0}, "prescreen.resample must be >= 1, got 0"),
    ({"proxy": "nwot", "rule": "pareto"}, "prescreen.rule must be dominate or best, got 'pareto'"),
    ({"proxy": "nwot", "candidate": 4}, "prescreen.candidate is not a known key (did you mean 'candidates'?)"),
    ({"candidates": 4}, "prescreen is missing required key(s) proxy"),
    ([4], "prescreen must be a proxy name or a mapping {proxy: NAME, candidates: K, ...}, got [4]"),
    (7, "prescreen must be a proxy name or a mapping {proxy: NAME, candidates: K, ...}, got 7"),
])
def test_a_bad_option_names_file_key_rule_and_value(base, prescreen, message):
    data, file = base
    with pytest.raises(SpecError) as err:
        study_from_dict({**data, "prescreen": prescreen}, file=file)
    assert str(err.value).startswith(f"{file}: ") and message in str(err.value)


def test_validate_exits_2_with_one_line_naming_the_line(tmp_path):
    text = STUDY.read_text().replace("tiny_space.yaml", str(DATA / "tiny_space.yaml"))
    (tmp_path / "study.yaml").write_text(text + "prescreen: {proxy: snipp, candidates: 4}\n")
    line = len(text.splitlines()) + 1
    proc = subprocess.run([sys.executable, "-m", "archlab.cli", "validate", str(tmp_path / "study.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = (proc.stdout + proc.stderr).strip()
    assert len(message.splitlines()) == 1, message
    assert f"study.yaml:{line}: prescreen.proxy must be a zero-cost proxy" in message
    assert "(did you mean 'snip'?), got 'snipp'" in message


# --- the choice ------------------------------------------------------------------------------------------

def _c(name: str, macs: float) -> Candidate:
    return Candidate({"x": name}, name, macs)


def _choose(pool: list[Candidate], scores: dict[str, float], rule: str, k: int = 8):
    return choose(pool[0], lambda n: pool[1:1 + n], lambda cs: [scores[c.arch_id] for c in cs], k, rule=rule)


def test_dominate_replaces_only_with_a_better_score_at_no_more_macs():
    pool = [_c("p", 100), _c("bigger", 200), _c("cheap", 80), _c("same", 100)]
    scores = {"p": 1.0, "bigger": 9.0, "cheap": 2.0, "same": 3.0}
    choice = _choose(pool, scores, "dominate")
    assert choice.winner.arch_id == "same" and choice.replaced and choice.scored == 4
    assert (choice.score, choice.proposal_score) == (3.0, 1.0)
    assert _choose(pool, scores, "best").winner.arch_id == "bigger"
    # nothing better at no more MACs: the proposal trains
    assert not _choose(pool, {**scores, "cheap": 0.5, "same": 1.0}, "dominate").replaced
    # an equal score wins at fewer MACs only; an exact tie keeps the proposal
    assert _choose(pool, {**scores, "cheap": 3.0}, "dominate").winner.arch_id == "cheap"
    assert not _choose(pool[:2], {"p": 1.0, "bigger": 1.0}, "best").replaced


def test_the_choice_scores_at_most_k_and_ignores_non_finite_scores():
    pool = [_c("p", 1), _c("a", 1), _c("b", 1), _c("c", 1)]
    asked = []
    choice = choose(pool[0], lambda n: asked.append(n) or pool[1:], lambda cs: [float(len(cs))] * len(cs), 3)
    assert asked == [2] and choice.scored == 3   # k-1 neighbours asked, extra ones cut
    nan = {"p": 0.0, "a": math.nan, "b": math.inf * -1, "c": -1.0}
    assert not _choose(pool, nan, "best").replaced
    with pytest.raises(ArchlabError, match="k >= 2"):
        choose(pool[0], lambda n: [], lambda cs: [0.0], 1)


# --- neighbours ------------------------------------------------------------------------------------------

def test_neighbours_redraw_resample_dimensions_deterministically():
    space = load_space(DATA / "tiny_space.yaml")
    (params, spec), = space.sample(1, seed=3, **FIT)
    for resample in (1, 2):
        near = Neighbourhood(space, resample=resample, **FIT)
        found = near.near(params, random.Random(7), 5, keep=lambda s, a: True, exclude={spec.arch_id})
        again = near.near(params, random.Random(7), 5, keep=lambda s, a: True, exclude={spec.arch_id})
        assert [a for *_, a in found] == [a for *_, a in again] and len(found) == 5
        assert len({a for *_, a in found} | {spec.arch_id}) == 6   # distinct, and not the proposal
        for point, neighbour, arch_id in found:
            shared = set(point) & set(params)
            assert 1 <= sum(point[k] != params[k] for k in shared) <= resample
            # its parameters are the network
            assert space.decode(point, **FIT).arch_id == neighbour.arch_id == arch_id
    kept = Neighbourhood(space, **FIT).near(params, random.Random(7), 5, keep=lambda s, a: False, exclude=set())
    assert kept == []


# --- the searcher without Ray ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from archlab.measure.data import load_data
    return load_data("digits", img_size=16, in_chans=1, val_fraction=0.2, seed=0)


def _screened_search(tmp_path: Path, digits, prescreen: Prescreen, n: int) -> tuple[ArchlabSearcher, optuna.Study]:
    """`n` suggestions of a pre-screened searcher over the tiny space, each told complete at once."""
    study = replace(load_study(STUDY), prescreen=prescreen)
    optuna_study = optuna.create_study(directions=study.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    run = RunFolder(tmp_path / "run")
    run.create(study)
    space = load_space(run.space_file)
    screen = Prescreener(prescreen, Neighbourhood(space, resample=prescreen.resample, **FIT), digits, seed=study.seed)
    proposals = Proposals(study, run, space, optuna_study, in_chans=1, num_classes=10, prescreener=screen)
    searcher = ArchlabSearcher(optuna_study, proposals, Progress(study, optuna_study, target=n, deadline=None,
                                                                 report=None))
    for i in range(n):
        config = searcher.suggest(str(i))
        trial = optuna_study.trials[config["archlab_number"]]
        # what Ray runs is the asked trial's parameters, and they decode to the network the spec file holds
        assert {k: v for k, v in config.items() if not k.startswith("archlab_")} == trial.params
        spec = space.decode(trial.params, **FIT)
        assert (run.trial_dir(trial.number) / "spec.yaml").read_text() == spec.to_yaml()
        searcher.on_trial_complete(str(i), {"final": True, "state": "complete", "top1": 50.0 + i,
                                            "latency_ms": 1.0, "arch_id": spec.arch_id})
    return searcher, optuna_study


def test_a_replaced_proposal_is_pruned_and_its_winner_trains(tmp_path, digits):
    searcher, optuna_study = _screened_search(tmp_path, digits, Prescreen(proxy="params", candidates=4,
                                                                          rule="best"), 5)
    trials = optuna_study.get_trials()
    out = [t for t in trials if t.user_attrs.get("archlab_state") == "prescreened"]
    assert out, "with the params proxy and the best rule some proposal has a bigger neighbour"
    space = load_space(DATA / "tiny_space.yaml")
    for t in out:
        assert t.state == TrialState.PRUNED and t.user_attrs["prescreen_proxy"] == "params"
        winner = trials[t.number + 1]   # enqueued and asked at once
        assert winner.user_attrs["prescreen_of"] == t.number and winner.state == TrialState.COMPLETE
        assert space.decode(winner.params, **FIT).arch_id == t.user_attrs["prescreen_winner"]
        assert winner.user_attrs["prescreen_score"] > t.user_attrs["prescreen_score"]   # more parameters
    trained = [t for t in trials if t.user_attrs.get("archlab_state") == "complete"]
    assert len(trained) == 5 and all(t.user_attrs["prescreen_scored"] >= 2 for t in trained)
    for t in trained:   # the score recorded is the trained network's own parameter count
        from archlab.nn.complexity import complexity
        assert t.user_attrs["prescreen_score"] == complexity(space.decode(t.params, **FIT)).params
    # prescreened proposals are not trials of the table, of the counts or of the status line
    table = load_trials(optuna_study, ["top1", "latency_ms"])
    assert len(table) == 5 and set(table["number"]) == {t.number for t in trained}
    assert searcher.progress.counts["complete"] == 5 and searcher.progress.prescreened == len(out)
    line = searcher.progress.line(time.time())
    assert "done 5/5" in line and f"{len(out)} proposals replaced by pre-screening" in line


def test_the_same_seed_chooses_the_same_architectures(tmp_path, digits):
    screen = Prescreen(proxy="nwot", candidates=3)

    def chosen(folder: str) -> list[tuple]:
        _, study = _screened_search(tmp_path / folder, digits, screen, 3)
        return [(t.user_attrs.get("archlab_state"), t.user_attrs.get("arch_id"), t.user_attrs.get("prescreen_score"))
                for t in study.trials]

    first = chosen("a")
    assert first == chosen("b") and all(score is not None for *_, score in first)


# --- a search ----------------------------------------------------------------------------------------------

def test_a_prescreened_search_end_to_end(tmp_path):
    ray_tmp = f"/tmp/ar-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    os.makedirs(ray_tmp, exist_ok=True)
    text = STUDY.read_text().replace("tiny_space.yaml", str(DATA / "tiny_space.yaml"))
    text = text.replace("budget: {epochs: 2}", "budget: {epochs: 1}")
    (tmp_path / "study.yaml").write_text(text + "prescreen: {proxy: params, candidates: 4, rule: best}\n"
                                                "keep_weights: none\n")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "archlab.cli", "search", str(tmp_path / "study.yaml"), "--trials",
                           "2", "--out", str(run)], capture_output=True, text=True, timeout=400,
                          # its own measurement lock: a long timing run elsewhere on the machine must not stall it
                          env={**os.environ, "RAY_TMPDIR": ray_tmp, "ARCHLAB_LOCK_DIR": str(tmp_path / "locks")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = load_table(run)
    summary = json.loads((run / "summary.json").read_text())
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'optuna.db'}").get_trials()
    screened = [t for t in trials if t.user_attrs.get("archlab_state") == "prescreened"]
    assert len(table) == 2 and summary["counts"] == {"complete": 2} and summary["prescreened"] == len(screened)
    assert all(t.state == TrialState.PRUNED for t in screened)
    for number in table["number"]:
        trial = trials[int(number)]
        assert trial.user_attrs["prescreen_proxy"] == "params" and trial.user_attrs["prescreen_scored"] >= 2
        # the trained network is the one the trial's parameters decode to
        assert trial.user_attrs["arch_id"] == load_space(DATA / "tiny_space.yaml").decode(trial.params, **FIT).arch_id
