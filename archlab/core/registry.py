"""Registries by name (blocks, stems, norms, activations, zoo networks, ablation steps)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from archlab.core.errors import ArchlabError, did_you_mean

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object map that raises on a duplicate name and lists the valid names on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an object under `name`."""
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"duplicate {self.kind} name {name!r}")
            self._items[name] = obj
            return obj
        return add

    def get(self, name: str) -> T:
        """The object registered as `name`; KeyError naming the valid names otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}") from None

    def lookup(self, name: str) -> T:
        """Like `get`, but a miss is a user error (ArchlabError)."""
        try:
            return self.get(name)
        except KeyError as err:
            raise ArchlabError(err.args[0]) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
