"""Every `type: ignore` left in the package names its error code and says why (issue 12: only the needed ones)."""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import archlab

PACKAGE = Path(archlab.__file__).parent
# "type: ignore[code, code]" then a comment with the reason: a bare ignore would hide every other error on the line
_GOOD = re.compile(r"type:\s*ignore\[[a-z0-9-]+(,\s*[a-z0-9-]+)*\]\s+#\s*\S")


def _ignores(source: str) -> list[tuple[int, str]]:
    """(line, comment) of every comment token that carries a `type: ignore` (strings and docstrings skipped)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT and "type: ignore" in t.string]


def test_ignores_in_text_are_found() -> None:
    source = 'x = 1  # type: ignore\ny = "# type: ignore"\nz = 2  # type: ignore[assignment]  # why\n'
    found = _ignores(source)
    assert [line for line, _ in found] == [1, 3]
    assert [bool(_GOOD.search(c)) for _, c in found] == [False, True]
    assert not _GOOD.search("# type: ignore[assignment]")          # a code but no reason
    assert not _GOOD.search("# type: ignore  # no code given")


def test_every_type_ignore_has_a_code_and_a_reason() -> None:
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line}: {comment}"
           for path in sorted(PACKAGE.rglob("*.py"))
           for line, comment in _ignores(path.read_text(encoding="utf-8"))
           if not _GOOD.search(comment)]
    assert not bad, "type: ignore without an error code and a reason:\n" + "\n".join(bad)
