"""Turn what a user names (a zoo name, a spec file, a mapping or a spec) into an ArchSpec."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from archlab.arch.spec import ArchSpec, load_spec
from archlab.arch.zoo import ZOO, get_spec
from archlab.core.errors import ArchlabError, SpecError

__all__ = ["resolve_spec"]


def resolve_spec(source: str | Path | Mapping[str, Any] | ArchSpec, *, img_size: int | None = None,
                 num_classes: int | None = None) -> ArchSpec:
    """A zoo name, a .yaml/.yml/.json spec file, a spec mapping or an ArchSpec, with overrides applied."""
    if isinstance(source, ArchSpec):
        spec = source
    elif isinstance(source, Mapping):
        spec = ArchSpec.from_dict(dict(source))
    elif str(source) in ZOO:
        spec = get_spec(str(source))
    elif Path(source).suffix in (".yaml", ".yml", ".json") or Path(source).exists():
        spec = load_spec(source)
        if not spec.name:
            spec = replace(spec, name=Path(source).stem)
    else:
        get_spec(str(source))  # raises with a did-you-mean over the zoo names
        raise ArchlabError(f"unknown network {str(source)!r}")
    changes: dict[str, Any] = {}
    if img_size is not None:
        changes["img_size"] = img_size
    if num_classes is not None:
        changes["num_classes"] = num_classes
    try:
        return replace(spec, **changes) if changes else spec
    except SpecError as err:   # e.g. a side too small for this network: say which network (the zoo name, the file)
        if err.file:
            raise
        label = str(source) if isinstance(source, (str, Path)) else spec.name or spec.arch_id
        raise err.with_context(file=label) from None
