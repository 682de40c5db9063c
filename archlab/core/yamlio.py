"""Safe YAML loading: no Python tags, no code, and a cap on alias expansion (billion-laughs files)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from archlab.core.errors import SpecError

__all__ = ["load_yaml_file", "load_yaml_text", "MAX_NODES", "parse_number"]

MAX_NODES = 100_000  # far above any real spec or space; an alias bomb expands to millions


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts composed nodes, so nested aliases cannot exhaust memory or time."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._alias_expansions = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._alias_expansions += 1
            if self._alias_expansions > 1000:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than 1000 aliases (line {mark.line + 1}); refusing to expand")
        return super().compose_node(parent, index)

    def construct_document(self, node: Any) -> Any:
        _count_nodes(node, MAX_NODES)
        return super().construct_document(node)


def _count_nodes(root: Any, limit: int) -> None:
    """Walk the node graph (aliases are shared nodes, so a bomb is wide here) and stop past `limit`."""
    seen = 0
    stack = [root]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            raise yaml.YAMLError(f"document expands to more than {limit} nodes; refusing to load it")
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def load_yaml_text(text: str, *, file: str | None = None) -> Any:
    """Parse YAML text safely; a syntax error becomes a SpecError with the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = mark.line + 1 if mark else None
        raise SpecError("", f"is not valid YAML: {err.problem}", show_value=False, file=file, line=line) from None
    except yaml.YAMLError as err:
        raise SpecError("", f"is not valid YAML: {err}", show_value=False, file=file) from None


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file safely; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError("", f"cannot be read ({err.strerror})", show_value=False, file=str(path)) from None
    return load_yaml_text(text, file=str(path))


_SI = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_number(value: Any, path: str) -> float:
    """A number; also '600M' / '4.5G' style strings and '1e-6' (YAML 1.1 reads that as a string)."""
    if isinstance(value, bool):
        raise SpecError(path, "must be a number", value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        scale = _SI.get(text[-1:].upper(), 1.0) if text[-1:].isalpha() and text[-1:].upper() in _SI else 1.0
        try:
            number = float(text[:-1] if scale != 1.0 else text) * scale
        except ValueError:
            pass
        else:
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    raise SpecError(path, "must be a number", value)
