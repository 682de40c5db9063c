"""Errors archlab raises for bad user input; the CLI turns each into one message and exit code 2."""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["MAX_SHOWN", "ArchlabError", "SpecError", "did_you_mean", "memory_shortfall", "shorten"]

MAX_SHOWN = 200  # characters of user data a message may quote: a value is shown, never a file's contents


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` cut to `limit` characters with the number of characters left out, for quoting user data."""
    if len(text) <= limit:
        return text
    keep = max(limit - 30, 10)
    return f"{text[:keep]}... ({len(text) - keep:,} more characters)"


class ArchlabError(Exception):
    """Base class of every error caused by user input (files, names, options)."""


class SpecError(ArchlabError, ValueError):
    """A value that breaks a rule; the message names the file, key path, rule and value."""

    def __init__(self, path: str, rule: str, value: object = None, *, file: str | None = None,
                 line: int | None = None, show_value: bool = True) -> None:
        self.path, self.rule, self.value, self.file, self.line = path, rule, value, file, line
        self.show_value = show_value
        super().__init__(self._message())

    def _message(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        got = f", got {shorten(_repr(self.value))}" if self.show_value else ""
        subject = f"{shorten(self.path, 120)} " if self.path else ""
        return f"{where}{subject}{self.rule}{got}"

    def with_context(self, *, file: str | None = None, prefix: str = "", line: int | None = None) -> SpecError:
        """The same error with a file name, a key-path prefix and a line number added."""
        path = f"{prefix}.{self.path}" if prefix and self.path else (prefix or self.path)
        if path.startswith(".") or ".[" in path:
            path = path.lstrip(".").replace(".[", "[")
        return SpecError(path, self.rule, self.value, file=file or self.file, line=line or self.line,
                         show_value=self.show_value)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except ValueError:  # an int past Python's 4300-digit conversion limit
        return f"<an integer of about {value.bit_length() * 0.30103:.0f} digits>" if isinstance(value, int) \
            else "<a value that cannot be shown>"


def did_you_mean(word: str, choices: Iterable[str], *, list_valid: bool = True) -> str:
    """A ' (did you mean 'x'?)' hint for a misspelt name; else the valid names, or '' without `list_valid`."""
    choices = sorted(choices)
    word = word[:100]  # difflib is quadratic in the word's length; no real name is this long
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if not list_valid:
        return ""
    return f" (valid: {', '.join(choices)})" if choices else " (there is none to choose from)"


def memory_shortfall(err: BaseException) -> str | None:
    """What an allocation failure lacked ('29.9 GiB could not be allocated'), or None when `err` is no such failure.

    torch reports a CPU allocation failure as a RuntimeError ("can't allocate memory: you tried to allocate N
    bytes") and a GPU one as OutOfMemoryError; matched by text so that this module stays torch-free.
    """
    text = str(err)
    if not (isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "out of memory" in text.lower()):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    if asked:
        return f"{int(asked[1]) / 2**30:.1f} GiB could not be allocated"
    return shorten(" ".join(text.split()), 160) or type(err).__name__
