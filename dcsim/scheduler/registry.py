"""A name -> class registry that refuses duplicates and also resolves ``module:Class`` references."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one family (policies, placements, routers)."""

    def __init__(self, family: str, base: type[T]) -> None:
        self.family = family
        self.base = base
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator adding the class under ``name``; a second class under one name is an error."""

        def add(cls: type[T]) -> type[T]:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.family} {name!r} is already registered ({self._entries[name].__name__})")
            self._entries[name] = cls
            return cls

        return add

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def resolve(self, reference: str) -> type[T]:
        """The class for a registered name or a ``module:Class`` reference (ValueError naming the options)."""
        if reference in self._entries:
            return self._entries[reference]
        if ":" not in reference:
            raise ValueError(
                f"unknown {self.family} {reference!r} (available: {', '.join(self.names())}, or 'module:Class')"
            )
        module_name, _, class_name = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(f"cannot import module {module_name!r} for {self.family} {reference!r}: {error}") from None
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise ValueError(f"{reference!r} is not a {self.base.__name__} subclass")
        return cls
