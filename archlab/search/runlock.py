"""One search session per run folder, its time charged as it runs, and disk trouble as one clear error.

`RunLock.acquire(run_dir)` holds `run_dir/session.lock`: an advisory `flock` (the kernel drops it when the
holder dies, kill -9 included) over a small JSON record of the holder's pid, host, start and elapsed time.
A second session on the same folder is refused with the holder's pid; a lock left by a dead process is taken
over, and the time its session ran (written every few seconds while it ran) is charged to the study's time
budget. A read-only folder, a full disk or a quota is turned into one ArchlabError naming the folder.
`resumed_budget` keeps the first session's --trials/--timeout on a resume unless they are given again.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from archlab.core.errors import ArchlabError

try:  # POSIX; elsewhere the pid record alone decides
    import fcntl
except ImportError:  # pragma: no cover - archlab runs on Linux and macOS
    fcntl = None  # type: ignore[assignment]  # None marks "no flock here"; mypy types the name as the module

__all__ = ["LOCK_NAME", "RunLock", "disk_error", "resumed_budget"]

LOCK_NAME = "session.lock"
HEARTBEAT_S = 5.0            # how often the running session's elapsed time reaches the disk
_RECORD_BYTES = 512          # the record is rewritten in place (the flock belongs to the open file)
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT})


def disk_error(run_dir: str | Path, err: OSError) -> ArchlabError:
    """The one message for a run folder that cannot be written (read-only, full disk, quota)."""
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
            errno.EROFS: "the file system is read-only"}.get(err.errno or 0, err.strerror or str(err))
    return ArchlabError(f"{run_dir}: cannot write to the run folder ({what}); completed trials are kept in its "
                        "Optuna storage: free space or fix permissions, then continue with --resume")


def resumed_budget(state: dict[str, Any], *, trials: int | None, timeout: float | None
                   ) -> tuple[int | None, float | None]:
    """The trials and timeout a resumed session runs to: the options given now, else the first session's."""
    if trials is None and isinstance(state.get("target_trials"), int):
        trials = state["target_trials"]
    if timeout is None and isinstance(state.get("timeout"), (int, float)):
        timeout = float(state["timeout"])
    return trials, timeout


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class RunLock:
    """The lock a search session holds on its run folder (a context manager; see the module docstring)."""

    def __init__(self, run_dir: Path, fd: int, previous: dict[str, Any] | None) -> None:
        self.run_dir, self.path, self._fd = run_dir, run_dir / LOCK_NAME, fd
        self.previous = previous           # the record of a dead session whose lock was taken over, if any
        self.started = time.time()
        self.elapsed_before = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write()

    @classmethod
    def acquire(cls, run_dir: str | Path) -> RunLock:
        """Hold the folder's lock, or raise ArchlabError naming the pid of the session that holds it."""
        run_dir = Path(run_dir)
        path = run_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as err:
            if err.errno in DISK_ERRNOS:
                raise disk_error(run_dir, err) from None
            raise ArchlabError(f"{run_dir}: cannot open the run folder's lock ({err.strerror})") from None
        try:
            record = _read_record(fd)
            if not _try_flock(fd):
                raise ArchlabError(f"{run_dir}: another archlab search (pid {record.get('pid', '?')} on "
                                   f"{record.get('host', '?')}) is running on this run folder; wait for it to "
                                   "finish or stop it, then --resume")
            pid, host = record.get("pid"), record.get("host")
            if fcntl is None and isinstance(pid, int) and host == socket.gethostname() and _alive(pid) \
                    and pid != os.getpid():  # pragma: no cover - without flock the pid alone decides
                raise ArchlabError(f"{run_dir}: another archlab search (pid {pid}) is running on this run folder")
            # a record left behind means its session died without releasing: its time is charged below
            return cls(run_dir, fd, record or None)
        except BaseException:
            os.close(fd)
            raise

    # -- time --------------------------------------------------------------------------------------------
    def orphaned_elapsed(self) -> float:
        """Total elapsed seconds a dead session had recorded (0 when the last session ended cleanly)."""
        value = (self.previous or {}).get("elapsed_s")
        return float(value) if isinstance(value, (int, float)) and value >= 0 else 0.0

    def charge_orphaned_time(self, state_file: Path) -> float:
        """Raise state.json's elapsed_s to what a killed session had run; returns the seconds added."""
        from archlab.core.files import atomic_write_text
        from archlab.core.yamlio import load_json_text, read_text_file
        orphaned = self.orphaned_elapsed()
        if not orphaned or not state_file.exists():
            return 0.0
        state = load_json_text(read_text_file(state_file), file=str(state_file))
        before = float(state.get("elapsed_s", 0.0))
        if orphaned <= before:
            return 0.0
        state["elapsed_s"] = orphaned
        try:
            atomic_write_text(state_file, json.dumps(state, indent=2, default=str))
        except OSError as err:
            raise disk_error(self.run_dir, err) from None
        return orphaned - before

    def keep_time(self, elapsed_before: float, *, every: float = HEARTBEAT_S) -> None:
        """Write this session's running total (earlier sessions + now) every `every` seconds until release."""
        self.elapsed_before = float(elapsed_before)
        self.started = time.time()
        self._write()
        self._thread = threading.Thread(target=self._beat, args=(every,), name="archlab-run-lock", daemon=True)
        self._thread.start()

    def elapsed(self) -> float:
        """Earlier sessions' time plus this session's so far."""
        return self.elapsed_before + (time.time() - self.started)

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self._write()
            except OSError:  # a full disk: the main thread hits it too and reports it once
                pass

    def _write(self) -> None:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                  "elapsed_s": round(self.elapsed(), 3)}
        data = json.dumps(record).encode().ljust(_RECORD_BYTES)
        try:
            os.pwrite(self._fd, data, 0)
        except OSError as err:
            if err.errno in DISK_ERRNOS:
                raise disk_error(self.run_dir, err) from None
            raise

    # -- release -----------------------------------------------------------------------------------------
    def release(self) -> None:
        """Stop the heartbeat, remove the record and drop the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * HEARTBEAT_S)
        if self._fd < 0:
            return
        try:
            self.path.unlink(missing_ok=True)   # unlinked while held: no one can lock a record we drop
        except OSError:
            pass
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
                 ) -> None:
        self.release()
        if isinstance(exc, OSError) and not isinstance(exc, ArchlabError) and exc.errno in DISK_ERRNOS:
            raise disk_error(self.run_dir, exc) from None


def _try_flock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_record(fd: int) -> dict[str, Any]:
    """The holder's record, or {} for an empty or torn one."""
    try:
        raw = os.pread(fd, _RECORD_BYTES, 0)
        data = json.loads(raw.decode("utf-8", "replace").strip() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
