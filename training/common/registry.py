"""A small name -> factory registry, so adding a model or encoder is one entry, not an `if`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from app.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries (factories, specs); unknown names raise a helpful ConfigError."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Register ``entry`` under ``name``; without ``entry`` this is a decorator."""
        if entry is not None:
            self._add(name, entry)
            return entry

        def decorator(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorator

    def _add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry called ``name``.

        Raises:
            ConfigError: naming the unknown entry and listing the known ones.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
