"""One reader for every file kind: frozen dataclass records read from and written to plain dicts by their type hints.

A record derives from `Schema`. `from_dict` checks every key against its field's type hint: `int`, `float`, `str`,
`bool`, `Path`, `Literal[...]` choices, `tuple[X, ...]`, nested records, `X | None`, unions, `dict[K, V]` and
`Any`; `Annotated[int, Range(...)]` adds bounds. Unknown keys get a did-you-mean, and every error names the file,
the line (from `load_document`), the key path, the rule and the value (shortened by `archlab.core.errors`).
Numbers are finite, integers within their field's bounds (2**53 in size when a field states none), booleans are
not integers. `to_dict` writes the plain form that `from_dict` reads back into an equal record.

Optuna's and pydantic's validators are the models for the shape of the messages; this module stays torch-free.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from archlab.core.errors import SpecError, did_you_mean

__all__ = ["MAX_INT", "Document", "Range", "Schema", "check_plain", "internal", "line_map", "line_of",
           "load_document"]

MAX_INT = 2 ** 53      # an integer field without stated bounds: beyond this a float no longer holds it exactly

# YAML 1.1 reads `1e-6` and `4.5e3` (no sign or no dot) as strings, and archlab's files write sizes as `600M`:
# a string is read as a number only in those two forms, never a plain "64" (a quoted number is a mistake)
_NUMBER_TEXT = re.compile(r"^[+-]?(\d[\d_]*\.?\d*|\.\d+)(e[+-]?\d+[KMGT]?|[KMGT])$", re.IGNORECASE)
_SI = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


@dataclass(frozen=True, slots=True)
class Range:
    """Bounds of a number field, used as `Annotated[int, Range(gt=0, le=2**16)]`: the reader checks them."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def check(self, value: float, path: str, shown: Any = None) -> None:
        """Raise a SpecError naming the first bound `value` breaks (quoting `shown`, the value as written)."""
        shown = value if shown is None else shown
        if self.ge is not None and not value >= self.ge:
            raise SpecError(path, f"must be >= {_num(self.ge)}", shown)
        if self.gt is not None and not value > self.gt:
            raise SpecError(path, f"must be > {_num(self.gt)}", shown)
        if self.le is not None and not value <= self.le:
            raise SpecError(path, f"must be <= {_num(self.le)}", shown)
        if self.lt is not None and not value < self.lt:
            raise SpecError(path, f"must be < {_num(self.lt)}", shown)


def _num(bound: float) -> str:
    if isinstance(bound, int) or float(bound).is_integer():
        return str(int(bound))
    return f"{bound:g}"


def internal(default: Any = None) -> Any:
    """A field that is not part of the file format (where a record was read from): never read, never written."""
    return dataclasses.field(default=default, compare=False, metadata={"internal": True})


# --- type hints -----------------------------------------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}
_PLANS: dict[type, tuple[tuple[str, str, Any], ...]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a record's fields, Annotated bounds kept (cached per class)."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls, include_extras=True)
        _HINTS[cls] = {f.name: hints[f.name] for f in fields(cls)}
    return _HINTS[cls]


def _unwrap(hint: Any) -> tuple[Any, Range | None]:
    """(the bare hint, its Range) for an Annotated hint; (hint, None) otherwise."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        return base, next((e for e in extras if isinstance(e, Range)), None)
    return hint, None


def _scalar_kind(hint: Any) -> tuple[str, Any]:
    """What __post_init__ normalises and checks on records made directly in code, for one field (Optional
    stripped): ('int' or 'float', its Range), ('literal', its choices), ('tuple', the kind and Range of its
    numeric items, or None) or ('other', None)."""
    base, bounds = _unwrap(hint)
    origin = typing.get_origin(base)
    if origin in (typing.Union, types.UnionType):
        options = [h for h in typing.get_args(base) if h is not type(None)]
        if len(options) == 1:
            kind, extra = _scalar_kind(options[0])
            return kind, extra if extra is not None or kind == "literal" else bounds
        return "other", None
    if origin is Literal:
        return "literal", typing.get_args(base)
    if origin is tuple:
        args = typing.get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _scalar_kind(args[0])
            return "tuple", item if item[0] in ("int", "float") else None
        return "tuple", None
    return {int: "int", float: "float"}.get(base, "other"), bounds


def _plan(cls: type) -> tuple[tuple[str, str, Any], ...]:
    if cls not in _PLANS:
        _PLANS[cls] = tuple((name, *_scalar_kind(hint)) for name, hint in _hints(cls).items())
    return _PLANS[cls]


# --- the base class -----------------------------------------------------------------------------------------

class Schema:
    """Base of archlab's file records: a frozen dataclass read by `from_dict` and written by `to_dict`.

    A subclass with its own `__post_init__` calls `self._normalise()` first; it stores ints given for float
    fields as floats and lists as tuples (so equal records hash equal) and checks every number's finiteness,
    bounds and choices, so a record made in code obeys the same limits as one read from a file.
    """

    __slots__ = ()
    if typing.TYPE_CHECKING:  # every subclass is a dataclass: lets `fields()` take a Schema or its type
        __dataclass_fields__: typing.ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self) -> None:
        self._normalise()

    def _normalise(self) -> None:
        """Canonical types for numbers and sequences, finite numbers within their bounds."""
        for name, kind, extra in _plan(type(self)):
            value = getattr(self, name)
            if kind == "literal" and value is not None:
                _choice(value, extra, name)
                continue
            if isinstance(value, bool) and kind in ("int", "float"):   # True is an int to Python, not to a file
                raise SpecError(name, "must be an integer" if kind == "int" else "must be a number", value)
            if value is None or isinstance(value, bool):
                continue
            if kind == "float" and isinstance(value, numbers.Real) and not isinstance(value, float):
                value = float(value)   # an int, a Fraction, a numpy scalar
                object.__setattr__(self, name, value)
            elif kind == "int" and isinstance(value, numbers.Integral) and not isinstance(value, int):
                value = int(value)
                object.__setattr__(self, name, value)
            elif isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, name, value)
            if kind == "float" and isinstance(value, float):
                _check_float(value, name, extra)
            elif kind == "int" and isinstance(value, int):
                _check_int(value, name, extra)
            elif kind == "tuple" and extra is not None and isinstance(value, tuple):
                _check_items(value, name, *extra)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (lists for tuples, str for paths) that `from_dict` turns back into an equal record."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)
                if not f.metadata.get("internal")}

    def to_yaml(self) -> str:
        """The record as YAML (block style, keys in field order)."""
        import yaml  # kept local: only writing YAML needs PyYAML here
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def _prepare(cls, data: Any, path: str) -> Any:
        """Hook: rewrite a file's shorthand forms (a bare name for a mapping, an empty section) into the
        record's mapping before its keys are read."""
        return data

    @classmethod
    def from_dict(cls, data: Any, *, path: str = "", file: str | Path | None = None,
                  lines: Mapping[str, int] | None = None, **context: Any) -> Any:
        """Read and validate a record; errors name `file`, the line, the key path under `path`, the rule and the
        value. The line comes from `lines`, else (on an error only) from reading `file` when it exists. `context`
        sets internal fields; an internal field named `file` gets `file`."""
        if file is not None and "file" not in context and any(
                f.name == "file" and f.metadata.get("internal") for f in fields(cls)):
            context = {**context, "file": file}
        try:
            return _read(cls, data, path, context)
        except SpecError as err:
            if file is None and not lines:
                raise
            if lines is None and file is not None:
                lines = _lines_from_file(file)
            line = err.line or line_of(lines or {}, err.path)
            raise err.with_context(file=None if file is None else str(file), line=line) from None

    @classmethod
    def load(cls, path: str | Path, **context: Any) -> Any:
        """Read a record from a YAML or JSON file (through the file boundary); errors carry file and line."""
        doc = load_document(path)
        return cls.from_dict(doc.data, file=doc.file, lines=doc.lines, **context)


def _read(cls: type[Schema], data: Any, path: str, context: Mapping[str, Any]) -> Any:
    """`cls` from a mapping: each key read by its type hint, unknown keys refused, missing required keys named."""
    data = cls._prepare(data, path)
    if not isinstance(data, Mapping):
        raise SpecError(path or "the document", f"must be a mapping, got {_kind(data)}", show_value=False)
    known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_path = _join(path, str(key))
        if key not in known:
            raise SpecError(key_path, "is not a known key" + _hint_for(str(key), known), show_value=False)
        kwargs[key] = coerce(hints[key], value, key_path)
    missing = [n for n, f in known.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SpecError(path or cls.__name__, f"is missing required key(s) {', '.join(missing)}", show_value=False)
    kwargs.update((k, v) for k, v in context.items() if k not in kwargs)
    try:
        return cls(**kwargs)
    except SpecError as err:
        raise err.with_context(prefix=path) from None


def _hint_for(key: str, known: Mapping[str, Any]) -> str:
    if "flops" in key.lower():  # torchvision's "GFLOPS" column counts MACs; archlab names the unit it counts
        return f" (archlab counts multiply-accumulates: did you mean {key.lower().replace('flops', 'macs')!r}?)"
    return did_you_mean(key, known)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    """What a value is, in words, for messages that must not quote it (a whole file read as a string)."""
    if value is None:
        return "nothing (null)"
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             tuple: "a list", dict: "a mapping"}
    return names.get(type(value), f"a {type(value).__name__}")


# --- one value against one hint ---------------------------------------------------------------------------

def coerce(hint: Any, value: Any, path: str) -> Any:
    """`value` checked against a type hint and returned in the record's form (tuples, floats, Paths)."""
    hint, bounds = _unwrap(hint)
    origin = typing.get_origin(hint)
    if hint is Any:
        return check_plain(value, path)
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(hint), value, path, bounds)
    if origin is Literal:
        return _choice(value, typing.get_args(hint), path)
    if origin is tuple:
        return _tuple(typing.get_args(hint), value, path)
    if origin in (dict, Mapping) or hint is dict:
        key_hint, value_hint = typing.get_args(hint) or (str, Any)
        return _mapping(key_hint, value_hint, value, path)
    if isinstance(hint, type) and issubclass(hint, Schema):
        return value if isinstance(value, hint) else _read(hint, value, path, {})
    if hint is bool:
        if not isinstance(value, bool):
            raise SpecError(path, "must be true or false", value)
        return value
    if hint is int:
        return _check_int(_integer(value, path), path, bounds, value)
    if hint is float:
        return _check_float(_number(value, path), path, bounds, value)
    if hint is str:
        if not isinstance(value, str):
            raise SpecError(path, f"must be a string, got {_kind(value)}", show_value=False)
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise SpecError(path, "must be a path (a non-empty string)", value)
        return Path(value)
    raise AssertionError(f"unhandled type hint {hint!r}")  # internal: a field with an unsupported type


def _union(options: tuple[Any, ...], value: Any, path: str, bounds: Range | None) -> Any:
    if value is None:
        if type(None) in options:
            return None
        raise SpecError(path, "must be given (not null)", show_value=False)
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return coerce(Annotated[option, bounds] if bounds else option, value, path)
        except SpecError as err:
            errors.append(err)
    # an option the value's shape matched failed deeper down (a path below `path`): that is the real error;
    # else the first option's rule is the clearest (a name before a mapping, a number before a list)
    deeper = [err for err in errors if err.path != path]
    raise deeper[0] if deeper else errors[0]


def _tuple(args: tuple[Any, ...], value: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise SpecError(path, "must be a list", value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise SpecError(path, f"must be a list of {len(args)} items", value)
    return tuple(coerce(h, v, f"{path}[{i}]") for i, (h, v) in enumerate(zip(args, value)))


def _mapping(key_hint: Any, value_hint: Any, value: Any, path: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be a mapping, got {_kind(value)}", show_value=False)
    out = {}
    for key, item in value.items():
        key_path = _join(path, str(key))
        if typing.get_origin(key_hint) is Literal:
            choices = [str(c) for c in typing.get_args(key_hint)]
            if key not in choices:
                raise SpecError(key_path, "is not a known key" + _hint_for(str(key), choices), show_value=False)
        elif not isinstance(key, str):
            raise SpecError(key_path, "must be a name (a string key)", key)
        out[key] = coerce(value_hint, item, key_path)
    return out


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise SpecError(path, "must be an integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)   # 2.0, or 1.0e+3 as YAML reads it; the bounds check its size next
    if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
        number = _from_text(value, path)
        if number.is_integer():
            return int(number)
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(path, "must be a finite number", value)
    raise SpecError(path, "must be an integer", value)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise SpecError(path, "must be a number", value)
    if isinstance(value, int):
        if abs(value) > MAX_INT:  # float(10**400) overflows; no archlab quantity is this large
            raise SpecError(path, f"must be a number at most {MAX_INT:.3g} in size", value)
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
        return _from_text(value, path)
    raise SpecError(path, "must be a number", value)


def _from_text(value: str, path: str) -> float:
    """'4e-3', '600M', '1.5G' as a float (the regex has already accepted the form)."""
    text = value.strip().replace("_", "")
    scale = _SI.get(text[-1].upper(), 1.0) if text[-1].isalpha() and text[-1].upper() in _SI else 1.0
    try:
        number = float(text[:-1] if scale != 1.0 else text) * scale
    except (ValueError, OverflowError):
        raise SpecError(path, "must be a number", value) from None
    if not math.isfinite(number):
        raise SpecError(path, "must be a finite number", value)
    return number


def _choice(value: Any, choices: tuple[Any, ...], path: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, typing.Hashable) or value not in choices:
        words = [str(c) for c in choices]
        rule = f"must be {words[0]} or {words[1]}" if len(words) == 2 else "must be one of " + ", ".join(words)
        raise SpecError(path, rule + did_you_mean(str(value), words, list_valid=False), value)
    return value


def _check_items(items: tuple[Any, ...], path: str, kind: str, bounds: Range | None) -> None:
    """The numeric items of a tuple field made in code: finite and within the item bounds."""
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, numbers.Real):
            continue   # a wrong type made in code is the code's bug; files are checked by `coerce`
        if kind == "int":
            _check_int(int(item), f"{path}[{i}]", bounds)
        else:
            _check_float(float(item), f"{path}[{i}]", bounds)


def _check_float(value: float, path: str, bounds: Range | None, shown: Any = None) -> float:
    if not math.isfinite(value):
        raise SpecError(path, "must be a finite number", value if shown is None else shown)
    if bounds is not None:
        bounds.check(value, path, shown)
    return value


def _check_int(value: int, path: str, bounds: Range | None, shown: Any = None) -> int:
    if bounds is not None:
        bounds.check(value, path, shown)
    if abs(value) > MAX_INT:
        raise SpecError(path, f"must be at most {MAX_INT:.3g} in size", value if shown is None else shown)
    return value


def check_plain(value: Any, path: str) -> Any:
    """A free-form value (options passed through to a library): plain YAML data with finite, sane numbers."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise SpecError(where, "must be a finite number", item)
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            raise SpecError(where, f"must be at most {MAX_INT:.3g} in size", item)
        if isinstance(item, Mapping):
            stack.extend((v, _join(where, str(k))) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Schema):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


# --- documents with line numbers ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Document:
    """A parsed YAML or JSON file: its data, its text and the line of every key path (`stages[2].width`)."""

    file: str
    data: Any
    text: str
    lines: dict[str, int]


def _lines_from_file(file: str | Path) -> dict[str, int]:
    """The line map of `file` if it can be read through the file boundary, else {} (only for an error message)."""
    from archlab.core.yamlio import read_text_file
    try:
        return line_map(read_text_file(file))
    except (SpecError, OSError):
        return {}


def load_document(path: str | Path) -> Document:
    """Read a file through the file boundary (size, UTF-8, depth, duplicate keys) and map its key paths to lines."""
    from archlab.core.yamlio import load_json_text, load_yaml_text, read_text_file
    text = read_text_file(path)
    # the same rule as yamlio.load_data_file, on text read once
    load = load_json_text if str(path).lower().endswith(".json") else load_yaml_text
    data = load(text, file=str(path))
    return Document(file=str(path), data=data, text=text, lines=line_map(text))


def line_map(text: str) -> dict[str, int]:
    """Key path -> 1-based line, from YAML (or JSON) text that already loaded; {} where it cannot be composed."""
    import yaml
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return {}
    out: dict[str, int] = {}
    stack: list[tuple[Any, str]] = [(root, "")]
    budget = 100_000   # the file boundary caps nodes as well; this keeps the walk bounded on its own
    while stack and budget > 0:
        node, prefix = stack.pop()
        budget -= 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = _join(prefix, str(key.value)) if isinstance(key, yaml.ScalarNode) else prefix
                out.setdefault(name, key.start_mark.line + 1)
                stack.append((value, name))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                name = f"{prefix}[{i}]"
                out.setdefault(name, item.start_mark.line + 1)
                stack.append((item, name))
    return out


def line_of(lines: Mapping[str, int], path: str) -> int | None:
    """Line of `path` in the file, or of its nearest enclosing key."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            break
        path = path[:cut]
    return lines.get(path)
