"""`archlab validate`: tell what kind of YAML file each path is, then run that kind's own loader.

Kinds live in a registry (`VALIDATORS`): each names the top-level keys only it uses and the loader its command
runs (`archlab space`, `archlab search`, `archlab ablate`), so a file validates exactly when that command would
accept it. A file may also say what it is with a top-level `kind:` key. Another kind registers the same way:

    VALIDATORS.register("recipe")(Validator(markers=("optimizer", "schedule"),
                                            loader="archlab.measure.recipes:get_recipe"))
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archlab.core.errors import ArchlabError, SpecError, did_you_mean
from archlab.core.registry import Registry

__all__ = ["VALIDATORS", "ValidationResult", "Validator", "file_kind", "refuse_other_kind", "validate_file",
           "validate_files"]


@dataclass(frozen=True, slots=True)
class Validator:
    """How to recognise one kind of file (keys only it uses) and load it (raising ArchlabError if bad)."""

    markers: tuple[str, ...]
    loader: str | Callable[[str], Any]              # a callable, or "module:function" imported on first use
    describe: str | Callable[[Any], str] | None = None   # one line about a valid file (same forms)
    aliases: tuple[str, ...] = ()                   # other accepted values of `kind:`

    def load(self, path: str) -> Any:
        """Run the loader on `path`."""
        return _resolve(self.loader)(path)

    def summary(self, obj: Any) -> str:
        """One line about a loaded file ('' without a describer)."""
        return _resolve(self.describe)(obj) if self.describe else ""


def _resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(target):
        return target
    module, _, name = target.partition(":")
    resolved: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return resolved


VALIDATORS: Registry[Validator] = Registry("file kind")
VALIDATORS.register("space")(Validator(
    markers=("base", "tied", "stem", "all_stages", "stages", "head", "scaling", "landmarks", "generate"),
    loader="archlab.space.search_space:load_space", describe="archlab.space.describe:one_line",
    aliases=("search_space",)))
VALIDATORS.register("ladder")(Validator(
    markers=("steps", "proxy", "seeds"), loader="archlab.ablation.ladder:validate_ladder_file",
    describe="archlab.ablation.ladder:describe_ladder", aliases=("ablation",)))
VALIDATORS.register("study")(Validator(
    markers=("space", "objectives", "sampler", "dataset", "budget", "early_stopping", "execution", "trials"),
    loader="archlab.search.study:load_study", describe="archlab.search.study:describe_study"))


def file_kind(data: Any, *, file: str | None = None) -> str:
    """The registered kind of a parsed file: its `kind:` key, else the kind with most of its marker keys."""
    if not isinstance(data, dict):
        raise SpecError("", "must be a mapping at the top level", type(data).__name__, file=file)
    if "kind" in data:
        kind = data["kind"]
        for name in VALIDATORS:
            if kind == name or kind in VALIDATORS.get(name).aliases:
                return name
        raise SpecError("kind", "must be one of " + ", ".join(VALIDATORS.names())
                        + did_you_mean(str(kind), VALIDATORS.names(), list_valid=False), kind, file=file)
    best, hits = None, 0
    for name in VALIDATORS:
        count = sum(1 for key in VALIDATORS.get(name).markers if key in data)
        if count > hits:
            best, hits = name, count
    if best is None:
        expected = "; ".join(f"{name} ({', '.join(VALIDATORS.get(name).markers[:4])}, ...)" for name in VALIDATORS)
        raise SpecError("", f"is not a kind of file archlab knows: none of the keys of {expected}, and no kind: key",
                        show_value=False, file=file)
    return best


# what each kind is and the command that reads it, for the message that says a file went to the wrong command
KIND_NAMES = {"space": ("a search space", "archlab space describe / sample"),
              "ladder": ("an ablation ladder", "archlab ablate"), "study": ("a study", "archlab search")}


def refuse_other_kind(path: str | Path, expected: str) -> None:
    """Refuse a file that holds none of `expected`'s marker keys and at least two of another kind's (a study given
    to `archlab ablate`), naming both kinds; its loader would only call the file's first key unknown. Anything less
    clear (a ladder with `base:` and a misspelt `steps:`) is left to that loader's own did-you-mean."""
    from archlab.core.yamlio import load_yaml_file
    try:
        data = load_yaml_file(path)
        kind = file_kind(data, file=str(path))
    except ArchlabError:
        return
    if kind == expected or any(key in data for key in VALIDATORS.get(expected).markers) \
            or sum(key in data for key in VALIDATORS.get(kind).markers) < 2:
        return
    what, reader = KIND_NAMES.get(kind, (f"a {kind} file", ""))
    raise SpecError("", f"is {what}, not {KIND_NAMES.get(expected, (f'a {expected} file',))[0]}"
                    + (f" ({reader} reads it)" if reader else ""), show_value=False, file=str(path))


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The outcome for one file: its kind (when known), and the error message or a one-line summary."""

    path: str
    kind: str | None
    ok: bool
    message: str


def validate_file(path: str | Path) -> ValidationResult:
    """Recognise and load one file; a user error becomes a failed result, never an exception."""
    from archlab.core.yamlio import load_yaml_file
    path = str(path)
    kind = None
    try:
        kind = file_kind(load_yaml_file(path), file=path)
        validator = VALIDATORS.get(kind)
        obj = validator.load(path)
        return ValidationResult(path, kind, True, validator.summary(obj))
    except ArchlabError as err:
        message = str(err)
        if path not in message:
            message = f"{path}: {message}"
        return ValidationResult(path, kind, False, message)


def validate_files(paths: Iterable[str | Path]) -> list[ValidationResult]:
    """Validate every file (one bad file does not stop the others)."""
    return [validate_file(p) for p in paths]
