"""RunFolder: which trials keep weights (sync_weights), atomic copies from Ray's checkpoint folders, what is deleted;
reading the bookkeeping of a run to resume."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from archlab.core.errors import ArchlabError
from archlab.nn.weights import load_checkpoint, save_weights
from archlab.search.run_folder import RunFolder

DATA = Path(__file__).resolve().parents[1] / "data"


def _checkpoint(run: RunFolder, number: int, arch_id: str, *, claims: int | None = None) -> str:
    """A checkpoint folder as a trial reports it, under the run's Ray storage; its record (relative path)."""
    folder = run.ray_dir / "tune" / f"run_trial_{number}" / "checkpoint_000000"
    folder.mkdir(parents=True)
    save_weights({"w": torch.full((2, 2), float(number))}, folder / "weights.safetensors",
                 metadata={"number": str(number if claims is None else claims), "arch_id": arch_id})
    (run.trial_dir(number)).mkdir(parents=True, exist_ok=True)
    return run.checkpoint_ref(str(folder))


def test_kept_trials_get_their_weights_and_ray_copies_go(tmp_path):
    run = RunFolder(tmp_path / "run")
    refs = {n: (_checkpoint(run, n, f"a{n}"), f"a{n}") for n in (0, 1, 2)}
    assert refs[0][0].startswith("ray/tune/")     # recorded relative to the run folder, so the folder can move
    have = run.sync_weights({0, 2}, refs)
    assert have == {0, 2}
    for n in (0, 2):
        assert torch.equal(load_checkpoint(run.weights_file(n))["w"], torch.full((2, 2), float(n)))
    assert not run.weights_file(1).exists()
    # every checkpoint folder is settled: kept here or not at all
    assert not list(run.ray_dir.rglob("checkpoint_*"))
    # a later sync with trial 0 off the front drops its file; trial 2 stays (its checkpoint is gone by now)
    assert run.sync_weights({2}, refs) == {2}
    assert not run.weights_file(0).exists() and run.weights_file(2).exists()
    # keep_weights: none
    assert run.sync_weights(set(), refs) == set() and not list((run.path / "trials").rglob("*.safetensors"))


def test_a_checkpoint_of_another_trial_is_never_kept(tmp_path):
    run = RunFolder(tmp_path / "run")
    wrong_number = _checkpoint(run, 0, "a0", claims=5)
    wrong_arch = _checkpoint(run, 1, "other")
    have = run.sync_weights({0, 1}, {0: (wrong_number, "a0"), 1: (wrong_arch, "a1")})
    assert have == set() and not run.weights_file(0).exists() and not run.weights_file(1).exists()
    assert len(list(run.ray_dir.rglob("checkpoint_*"))) == 2   # left for a look, not deleted unexamined


def test_nothing_outside_the_run_storage_is_deleted(tmp_path):
    run = RunFolder(tmp_path / "run")
    outside = tmp_path / "elsewhere" / "checkpoint_000000"
    outside.mkdir(parents=True)
    save_weights({"w": torch.zeros(1)}, outside / "weights.safetensors", metadata={"number": "0", "arch_id": "a"})
    run.trial_dir(0).mkdir(parents=True)
    assert run.checkpoint_ref(str(outside)) == str(outside)   # not inside the run folder: recorded as given
    for ref in (str(outside), "../elsewhere/checkpoint_000000"):
        assert run.sync_weights(set(), {0: (ref, "a")}) == set()
        assert (outside / "weights.safetensors").is_file()
    assert Path(run.path / "trials" / "0000").is_dir()


def test_unrecorded_checkpoints_go_only_once_ray_has_stopped(tmp_path):
    # a worker persists its checkpoint before the driver records it: mid-run such a folder is someone's in flight,
    # at the end of a session it is an orphan of a killed trial (interrupted, re-run on resume)
    run = RunFolder(tmp_path / "run")
    _checkpoint(run, 0, "a0")
    kept = _checkpoint(run, 1, "a1")
    assert run.sync_weights({1}, {1: (kept, "a1")}) == {1}
    assert len(list(run.ray_dir.rglob("checkpoint_*"))) == 1
    assert run.sync_weights({1}, {1: (kept, "a1")}, sweep=True) == {1}
    assert not list(run.ray_dir.rglob("checkpoint_*")) and run.weights_file(1).is_file()


@pytest.mark.parametrize("text, message", [
    ("{", "state.json:1: is not valid JSON: Expecting property name enclosed in double quotes"),
    ("[]", "state.json: must hold a JSON object (the run's bookkeeping), got 'list'"),
    ('{"elapsed_s": "long"}', "state.json: elapsed_s must be a finite number of seconds, got 'long'"),
    ('{"elapsed_s": -5}', "state.json: elapsed_s must be >= 0 (seconds), got -5"),
    ('{"storage": 5}', "state.json: storage must be an Optuna storage URL (a string), got 5"),
    ('{"target_trials": true}', "state.json: target_trials must be a whole number of trials, got True"),
])
def test_a_damaged_state_file_stops_a_resume_with_one_message(tmp_path, capsys, text, message):
    # a resume read it with json.loads and .get: JSONDecodeError and AttributeError tracebacks
    from archlab.cli.main import main
    study = tmp_path / "study.yaml"
    study.write_text((DATA / "tiny_study.yaml").read_text().replace("space: tiny_space.yaml",
                                                                    f"space: {DATA / 'tiny_space.yaml'}"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "study.yaml").write_text(study.read_text())
    (run / "state.json").write_text(text)
    with pytest.raises(ArchlabError, match=re.escape(message)):
        RunFolder(run).read_state()
    assert main(["search", str(study), "--resume", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == f"archlab: error: {run}/{message}\n", err
    assert sorted(p.name for p in run.iterdir()) == ["state.json", "study.yaml"]   # nothing started, nothing lost


def test_a_state_file_with_nan_figures_still_reads(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text('{"elapsed_s": 12.5, "latency": {"cv": {"spearman": NaN}}}')
    assert RunFolder(run).read_state()["elapsed_s"] == 12.5


def test_a_storage_that_is_not_a_database_is_one_line(tmp_path, capsys):
    # SQLAlchemy's message runs over three lines ([SQL: ...], a link): the first is kept
    from archlab.cli.main import main
    run = tmp_path / "run"
    run.mkdir()
    (run / "study.yaml").write_text((DATA / "tiny_study.yaml").read_text().replace(
        "space: tiny_space.yaml", f"space: {DATA / 'tiny_space.yaml'}"))
    (run / "state.json").write_text("{}")
    (run / "optuna.db").write_text("not a database")
    assert main(["search", str(run / "study.yaml"), "--resume", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("cannot open it as an Optuna RDB storage: (sqlite3.DatabaseError) "
                                                  "file is not a database\n"), err
