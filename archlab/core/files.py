"""Atomic file writes: a temporary file in the same folder, fsync, then os.replace (as Ray Tune saves state).

A reader (or a resumed run after kill -9) sees either the old file or the new one, never half of one.
"""
from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Have `write(tmp_path)` fill a temporary file beside `path`, fsync it and rename it onto `path`.

    For writers that take a path (pandas' to_csv/to_parquet, torch/safetensors savers); the temporary file is
    removed if `write` raises, so nothing half-written is left behind.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    if path.exists() and not path.is_file():
        # os.replace would silently put a regular file in place of a device, FIFO or socket
        raise OSError(errno.EINVAL, "is a device, FIFO or socket, not a file; refusing to replace it", str(path))
    # same folder: os.replace is atomic only within one filesystem; the process and thread in the name keep
    # concurrent writers apart, and (unlike mkstemp's 0600) the file gets the usual permissions
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace `path` with `data` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Replace `path` with `text` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding))
