"""Runs that survive misuse (archlab.search.runlock): one session per folder, time charged, disk errors."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archlab.core.errors import ArchlabError
from archlab.search import runlock
from archlab.search.runlock import LOCK_NAME, RunLock, resumed_budget

DATA = Path(__file__).resolve().parents[1] / "data"

_HOLDER = """
import sys, time
from archlab.search.runlock import RunLock
lock = RunLock.acquire(sys.argv[1])
lock.keep_time(float(sys.argv[2]), every=0.05)
print("held", flush=True)
time.sleep(120)
"""


def _hold(run_dir: Path, elapsed_before: float = 0.0) -> subprocess.Popen:
    """A separate process holding the run folder's lock (as a running `archlab search` does)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir), str(elapsed_before)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_session_is_refused_with_the_first_ones_pid(tmp_path):
    with RunLock.acquire(tmp_path):
        with pytest.raises(ArchlabError, match=rf"another archlab search \(pid {os.getpid()} on "):
            RunLock.acquire(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()   # released cleanly: nothing left to take over
    with RunLock.acquire(tmp_path) as lock:
        assert lock.previous is None and lock.orphaned_elapsed() == 0.0


def test_a_killed_sessions_lock_is_taken_over_and_its_time_charged(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"elapsed_s": 100.0, "target_trials": 5}))
    proc = _hold(tmp_path, elapsed_before=100.0)
    try:
        with pytest.raises(ArchlabError, match=rf"pid {proc.pid} "):
            RunLock.acquire(tmp_path)
        time.sleep(0.3)   # a few heartbeats
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with RunLock.acquire(tmp_path) as lock:
        assert lock.previous is not None and lock.previous["pid"] == proc.pid
        assert 100.2 <= lock.orphaned_elapsed() < 160
        added = lock.charge_orphaned_time(tmp_path / "state.json")
        assert added >= 0.2
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["elapsed_s"] == pytest.approx(100.0 + added) and state["target_trials"] == 5


def test_the_running_total_reaches_the_disk_while_the_session_runs(tmp_path):
    with RunLock.acquire(tmp_path) as lock:
        lock.keep_time(40.0, every=0.02)
        time.sleep(0.2)
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and 40.1 <= record["elapsed_s"] < 45


def test_a_resume_keeps_the_first_sessions_budget_unless_given_again():
    state = {"target_trials": 12, "timeout": 300.0}
    assert resumed_budget(state, trials=None, timeout=None) == (12, 300.0)
    assert resumed_budget(state, trials=20, timeout=None) == (20, 300.0)
    assert resumed_budget(state, trials=None, timeout=60.0) == (12, 60.0)
    assert resumed_budget({"target_trials": None, "timeout": None}, trials=None, timeout=None) == (None, None)


@pytest.mark.parametrize("code, words", [(errno.EROFS, "the file system is read-only"),
                                         (errno.ENOSPC, "the disk is full"), (errno.EACCES, "Permission denied")])
def test_a_run_folder_that_cannot_be_written_is_one_clear_error(tmp_path, monkeypatch, code, words):
    real_open = os.open

    def refuse(path, flags, *args):
        if str(path).endswith(LOCK_NAME):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(runlock.os, "open", refuse)
    with pytest.raises(ArchlabError) as err:
        RunLock.acquire(tmp_path)
    assert str(err.value).startswith(f"{tmp_path}: cannot write to the run folder ({words})")
    assert "--resume" in str(err.value)


def test_a_full_disk_during_the_run_becomes_the_same_error(tmp_path):
    with pytest.raises(ArchlabError, match="the disk is full"):
        with RunLock.acquire(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_second_search_resume_is_refused_before_ray_starts(tmp_path, monkeypatch):
    """`archlab search --resume` on a folder another session holds: refused with its pid, nothing run."""
    from archlab.search import engine
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(DATA / "tiny_space.yaml", run / "space.yaml")
    (run / "study.yaml").write_text((DATA / "tiny_study.yaml").read_text().replace("tiny_space.yaml", "space.yaml"))
    (run / "state.json").write_text(json.dumps({"target_trials": 3, "timeout": None}))
    monkeypatch.setattr(engine._Session, "open", classmethod(lambda *a, **k: pytest.fail("session opened")))
    proc = _hold(run)
    try:
        with pytest.raises(ArchlabError, match=rf"another archlab search \(pid {proc.pid} on "):
            engine.run_search(str(run / "study.yaml"), out=run, resume=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
