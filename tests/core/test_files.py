"""Atomic writes: the old file or the new one, never half of one, and no temporary file left behind."""
from __future__ import annotations

import os
import stat

import pytest

from archlab.core.files import atomic_write, atomic_write_bytes, atomic_write_text


def test_text_and_bytes_replace_the_file(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new \u00e9")
    assert path.read_text(encoding="utf-8") == "new \u00e9"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "trials.csv"
    path.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["trials.csv"]


def test_permissions_follow_the_umask_not_mkstemp(tmp_path):
    path = atomic_write_text(tmp_path / "summary.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_device_or_folder_is_never_replaced(tmp_path):
    """os.replace would swap a regular file in for a device (as root, even /dev/null) or a FIFO: refused, nothing
    left (tested on a FIFO of its own, so that a regression cannot replace a real device)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="refusing to replace it"):
        atomic_write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(IsADirectoryError):
        atomic_write_text(tmp_path, "x")
    assert sorted(os.listdir(tmp_path)) == ["pipe"]
