"""argparse `type=` checkers for every numeric and path option: finite, in range, said in one message.

A bad value makes argparse print `archlab <command>: error: argument --x: <rule>, got <value>` and exit 2
before any work starts (no Ray, no data, no file written). The ranges are the documented limits
(docs/search_spaces.md, "Limits").
"""
from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from archlab.core.errors import shorten

__all__ = ["MAX_SAMPLES", "batch", "channels", "classes", "concurrent", "count", "epochs", "image_count",
           "img_size", "int_in", "new_file", "out_dir", "positive_seconds", "real_in", "samples", "seed",
           "threads", "trials"]

MAX_SAMPLES = 100_000        # `space sample -n`: printing more is never useful and each sample costs a decode
MAX_SECONDS = 366 * 86_400   # a time budget of over a year is a typo


def _shown(text: str) -> str:
    return shorten(repr(text), 60)


def int_in(low: int, high: int, what: str = "an integer") -> Callable[[str], int]:
    """A `type=` function: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {_shown(text)}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what} in [{low:,}, {high:,}], got {shorten(str(value), 60)}")
        return value

    parse.__name__ = what
    return parse


def real_in(low: float, high: float, *, low_open: bool = True, what: str = "a number") -> Callable[[str], float]:
    """A `type=` function: a finite number in (low, high] (or [low, high] with low_open=False)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {_shown(text)}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {_shown(text)}")
        above = value > low if low_open else value >= low
        if not (above and value <= high):
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be in {bracket}{low:g}, {high:,.0f}], got {value:g}")
        return value

    parse.__name__ = what
    return parse


def out_dir(text: str) -> str:
    """A run folder: may exist as a folder (a resume), must not name an existing file."""
    path = Path(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got ''")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"names an existing file, not a folder: {_shown(text)}")
    _check_writable_place(path)
    return text


def new_file(text: str) -> str:
    """An output file: may be overwritten, must not name an existing folder, device, FIFO or socket."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a file, got ''")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"names an existing folder, not a file: {_shown(text)}")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"names a device, FIFO or socket, not a file: {_shown(text)}")
    _check_writable_place(path.parent)
    return text


def _check_writable_place(path: Path) -> None:
    """The nearest existing ancestor of `path` is a folder this process can create entries in.

    Checked before any work, so that a typo in an output path costs nothing measured or trained; missing
    folders below that ancestor are created by the writer.
    """
    here = path.absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise argparse.ArgumentTypeError(f"cannot be created: {_shown(str(here))} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot be written: no permission to write in {_shown(str(here))}")


# the options archlab's commands share, each with its limit
seed = int_in(0, 2 ** 32 - 1, "a seed")
samples = int_in(1, MAX_SAMPLES, "a number of samples")
count = int_in(1, 10 ** 6, "a positive integer")
trials = int_in(1, 10 ** 6, "a number of trials")
concurrent = int_in(1, 4096, "a number of concurrent trials")
img_size = int_in(1, 8192, "an image side in pixels")
channels = int_in(1, 4096, "a number of channels")
classes = int_in(1, 10 ** 6, "a number of classes")
batch = int_in(1, 65_536, "a batch size")
threads = int_in(1, 4096, "a number of threads")
image_count = int_in(1, 10 ** 9, "a number of images")
epochs = real_in(0, 10_000, what="a number of epochs")
positive_seconds = real_in(0, MAX_SECONDS, what="a number of seconds")
