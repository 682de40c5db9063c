"""The file boundary: every YAML or JSON file archlab reads passes here, in bounded time and memory.

A file is refused, with a message naming it, the line, the key path, the rule and a shortened value, when it is
not a regular file (a directory, `/dev/zero`, a FIFO), is larger than the size cap, is not UTF-8 (the byte offset
is given), nests deeper than `MAX_DEPTH`, repeats a mapping key (both lines are given), expands through aliases
to more than `MAX_NODES` nodes (billion-laughs files) or holds a number too long to read. YAML is read with
PyYAML's SafeLoader (no Python tags, no code). No message ever quotes the file's contents beyond the
value shortened by `archlab.core.errors`.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from archlab.core.errors import ArchlabError, SpecError

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "load_data_file", "load_json_text",
           "load_yaml_file", "load_yaml_text", "load_yaml_with_lines", "max_file_bytes", "parse_number",
           "read_text_file"]

MAX_FILE_BYTES = 4 * 1024 * 1024   # the largest shipped file is ~10 KB; override with ARCHLAB_MAX_FILE_BYTES
MAX_DEPTH = 64                     # shipped files nest 5 deep; far below Python's recursion limit
MAX_NODES = 20_000                 # 10x the largest shipped file (1,712); bounds composing and probing values
MAX_ALIASES = 1000
ENV_MAX_BYTES = "ARCHLAB_MAX_FILE_BYTES"


def max_file_bytes() -> int:
    """The size cap on an input file: ARCHLAB_MAX_FILE_BYTES if set, else MAX_FILE_BYTES."""
    raw = os.environ.get(ENV_MAX_BYTES)
    if raw is None or not raw.strip():
        return MAX_FILE_BYTES
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value <= 0:
        raise ArchlabError(f"{ENV_MAX_BYTES} must be a positive number of bytes, got {raw[:40]!r}")
    return value


def read_text_file(path: str | Path) -> str:
    """The text of a regular UTF-8 file no larger than the size cap; anything else is a SpecError naming it."""
    name = str(path)
    if not name.strip():   # os.open('') says only "No such file or directory", and the message had no name
        raise SpecError("path", "must name a file", name)
    cap = max_file_bytes()
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat below then refuses it
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise SpecError("", f"cannot be read ({err.strerror})", show_value=False, file=name) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SpecError("", "is a directory, not a file", show_value=False, file=name)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError("", "is not a regular file (a device, FIFO or socket); refusing to read it",
                            show_value=False, file=name)
        if info.st_size > cap:
            raise SpecError("", _too_big(info.st_size, cap), show_value=False, file=name)
        data = _read_at_most(fd, cap + 1)
    except OSError as err:
        raise SpecError("", f"cannot be read ({err.strerror})", show_value=False, file=name) from None
    finally:
        os.close(fd)
    if len(data) > cap:  # it grew after the stat
        raise SpecError("", _too_big(len(data), cap, at_least=True), show_value=False, file=name)
    return decode_utf8(data, file=name)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _too_big(size: int, cap: int, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return (f"is {more}{size:,} bytes, over the input-file limit of {cap:,} bytes "
            f"(set {ENV_MAX_BYTES} to raise it)")


def decode_utf8(data: bytes, *, file: str | None = None) -> str:
    """Bytes as UTF-8 text (a leading byte-order mark is dropped); else a SpecError with the byte offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = data[err.start:err.start + 1].hex()
        line = data.count(b"\n", 0, err.start) + 1
        raise SpecError("", f"is not UTF-8 text: byte 0x{bad} at byte offset {err.start} cannot be decoded",
                        show_value=False, file=file, line=line) from None


# --- YAML ---------------------------------------------------------------------------------------------------

class _BoundaryError(yaml.YAMLError):
    """A refusal by the boundary itself (depth, size, duplicates), carrying its key path and line."""

    def __init__(self, rule: str, *, line: int | None = None, path: str = "") -> None:
        super().__init__(rule)
        self.rule, self.line, self.path = rule, line, path


class _Loader(yaml.SafeLoader):
    """SafeLoader that caps nesting while composing and checks the node graph before constructing."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _BoundaryError(f"uses more than {MAX_ALIASES} aliases; refusing to expand them",
                                     line=self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        self._nodes += 1   # counted while composing, so a file of a million scalars stops at the cap
        if self._nodes > MAX_NODES:
            raise _BoundaryError(f"holds more than {MAX_NODES:,} values; refusing to load it",
                                 line=self.peek_event().start_mark.line + 1)
        # PyYAML composes recursively: the cap stops a deep file long before Python's recursion limit
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _BoundaryError(f"nests deeper than {MAX_DEPTH} levels",
                                     line=self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Any) -> Any:
        self.key_lines = check_nodes(node)
        return super().construct_document(node)


def check_nodes(root: Any) -> dict[str, int]:
    """Walk a composed YAML graph iteratively: refuse more than MAX_NODES nodes (aliases expanded) and a
    mapping that repeats a key (naming both lines and the key path); returns key path -> 1-based line
    (`stages[2].kernel_size`), so error messages need no second parse."""
    lines: dict[str, int] = {}
    seen = 0
    stack: list[tuple[Any, str, int]] = [(root, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise _BoundaryError(f"expands to more than {MAX_NODES:,} nodes (aliases included); refusing to "
                                 "load it")
        if depth > MAX_DEPTH:  # an alias can nest a node inside itself: composing did not see this depth
            raise _BoundaryError(f"nests deeper than {MAX_DEPTH} levels (aliases included)",
                                 line=node.start_mark.line + 1, path=path)
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                name = _key_text(key)
                child = f"{path}.{name}" if path else name
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    earlier = first.get((key.tag, key.value))
                    if earlier is not None:
                        raise _BoundaryError(f"is given twice (lines {earlier} and {line}); a key may appear "
                                             "once", line=line, path=child)
                    first[(key.tag, key.value)] = line
                lines.setdefault(child, key.start_mark.line + 1)
                stack.append((key, path, depth + 1))
                stack.append((value, child, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(f"{path}[{i}]", item.start_mark.line + 1)
                stack.append((item, f"{path}[{i}]", depth + 1))
    return lines


def _key_text(key: Any) -> str:
    if isinstance(key, yaml.ScalarNode):
        return key.value if len(key.value) <= 60 else key.value[:57] + "..."
    return "<complex key>"


def load_yaml_text(text: str, *, file: str | None = None) -> Any:
    """Parse YAML text within the boundary's limits; every problem is a SpecError with the file and line."""
    return load_yaml_with_lines(text, file=file)[0]


def load_yaml_with_lines(text: str, *, file: str | None = None) -> tuple[Any, dict[str, int]]:
    """`load_yaml_text` and the line of every key path (`stages[2].kernel_size` -> 14) from the same parse."""
    loader = None
    try:
        loader = _Loader(text)   # its reader already refuses control characters (a NUL byte) here
        return loader.get_single_data(), getattr(loader, "key_lines", {})
    except _BoundaryError as err:
        raise SpecError(err.path, err.rule, show_value=False, file=file, line=err.line) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = mark.line + 1 if mark else None
        raise SpecError("", f"is not valid YAML: {_short(err.problem)}", show_value=False, file=file,
                        line=line) from None
    except yaml.reader.ReaderError as err:  # its text is several lines and gives a character offset, not a line
        char = err.character if isinstance(err.character, int) else ord(err.character)
        raise SpecError("", f"is not valid YAML: it holds the control character U+{char:04X}, which YAML does not "
                            "allow", show_value=False, file=file, line=text.count("\n", 0, err.position) + 1) from None
    except yaml.YAMLError as err:
        raise SpecError("", f"is not valid YAML: {_short(str(err))}", show_value=False, file=file) from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits (Python's int-from-text limit)
        raise SpecError("", f"holds a value that cannot be read ({_short(str(err))})", show_value=False,
                        file=file) from None
    except RecursionError:  # pragma: no cover - the depth cap stops composition far earlier
        raise SpecError("", f"nests deeper than {MAX_DEPTH} levels", show_value=False, file=file) from None
    finally:
        if loader is not None:
            loader.dispose()


def _short(text: str | None, limit: int = 120) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file within the boundary's limits; errors name the file."""
    return load_yaml_text(read_text_file(path), file=str(path))


# --- JSON ---------------------------------------------------------------------------------------------------

def load_json_text(text: str, *, file: str | None = None) -> Any:
    """Parse JSON text within the boundary's limits (depth, size, duplicate keys; NaN and Infinity refused)."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise _DuplicateJSONKey(key)
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise _BoundaryError(f"holds {name}, which is not a JSON number")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except _DuplicateJSONKey as err:
        _duplicate_in_json(text, err.key, file)
    except _BoundaryError as err:
        raise SpecError("", err.rule, show_value=False, file=file) from None
    except json.JSONDecodeError as err:
        raise SpecError("", f"is not valid JSON: {err.msg}", show_value=False, file=file, line=err.lineno) from None
    except RecursionError:
        raise SpecError("", f"nests deeper than {MAX_DEPTH} levels", show_value=False, file=file) from None
    except ValueError as err:  # an integer of more than 4300 digits
        raise SpecError("", f"holds a value that cannot be read ({_short(str(err))})", show_value=False,
                        file=file) from None
    _check_plain(data, file)
    return data


class _DuplicateJSONKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _duplicate_in_json(text: str, key: str, file: str | None) -> None:
    """Raise the duplicate-key error with both lines: JSON is YAML flow syntax, so the YAML check finds them."""
    try:
        load_yaml_text(text, file=file)
    except SpecError as err:
        if "given twice" in err.rule:
            raise
    shown = key if len(key) <= 60 else key[:57] + "..."
    raise SpecError(shown, "is given twice in one object; a key may appear once", show_value=False,
                    file=file) from None


def _check_plain(data: Any, file: str | None) -> None:
    """Depth and node count of parsed JSON, walked iteratively."""
    seen = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise SpecError("", f"holds more than {MAX_NODES:,} values; refusing to load it", show_value=False,
                            file=file)
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise SpecError("", f"nests deeper than {MAX_DEPTH} levels", show_value=False, file=file)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


def load_data_file(path: str | Path) -> Any:
    """Read a .json file as JSON and anything else as YAML, within the boundary's limits."""
    text = read_text_file(path)
    if str(path).lower().endswith(".json"):
        return load_json_text(text, file=str(path))
    return load_yaml_text(text, file=str(path))


# --- numbers ------------------------------------------------------------------------------------------------

_SI = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_number(value: Any, path: str) -> float:
    """A finite number; also '600M' / '4.5G' style strings and '1e-6' (YAML 1.1 reads that as a string)."""
    if isinstance(value, bool):
        raise SpecError(path, "must be a number", value)
    if isinstance(value, int):
        if abs(value) > 10 ** 18:   # beyond any count archlab handles, and beyond a float's exact integers
            raise SpecError(path, "must be at most 1e18 in size", value)
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise SpecError(path, "must be a finite number", value)
        return value
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip().replace("_", "")
        scale = _SI.get(text[-1:].upper(), 1.0) if text[-1:].isalpha() and text[-1:].upper() in _SI else 1.0
        try:
            number = float(text[:-1] if scale != 1.0 else text) * scale
        except ValueError:
            pass
        else:
            if number != number or number in (float("inf"), float("-inf")):
                raise SpecError(path, "must be a finite number", value)
            if abs(number) > 1e18:
                raise SpecError(path, "must be at most 1e18 in size", value)
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    raise SpecError(path, "must be a number", value)
