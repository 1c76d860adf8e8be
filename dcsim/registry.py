"""The one registry every plugin family uses: named implementations, duplicates refused, ``module:Class``.

A family (scheduler policies, placements, request routers, network routing policies, batching policies,
workload kinds, trace formats, compression methods) is one :class:`Registry`. A plugin is one short class
with the family's decorator (``@register_policy("fifo")``); a scenario names it by its registered name or
as ``module:Class`` (imported on demand, checked against the family's base class). The property tests of
a family iterate :meth:`Registry.names`, so a registered plugin is tested without further wiring.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one family; ``base`` is the class every entry must subclass."""

    def __init__(self, family: str, base: type[T]) -> None:
        self.family = family
        self.base = base
        self._entries: dict[str, type[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[type[T]], type[T]]:
        """Class decorator adding the class under ``name`` (and ``aliases``, other names that resolve to it);
        a second class under one name is an error."""

        def add(cls: type[T]) -> type[T]:
            self.add(name, cls, aliases)
            return cls

        return add

    def add(self, name: str, cls: type[T], aliases: tuple[str, ...] = ()) -> None:
        """Add ``cls`` under ``name`` and ``aliases`` (ValueError on a name another class holds)."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise ValueError(f"{self.family} {name!r}: {cls!r} is not a {self.base.__name__} subclass")
        for key in (name, *aliases):
            held = self._entries.get(key) or self._entries.get(self._aliases.get(key, ""))
            if held is not None and held is not cls:
                raise ValueError(f"{self.family} {key!r} is already registered ({held.__name__})")
        self._entries[name] = cls
        for alias in aliases:
            self._aliases[alias] = name

    @contextmanager
    def scope(self) -> Iterator[Registry[T]]:
        """A block whose registrations are undone at its end (tests registering example plugins). A module
        first imported inside the block is not imported again: import the modules registering what must stay
        before it."""
        entries, aliases = dict(self._entries), dict(self._aliases)
        try:
            yield self
        finally:
            self._entries, self._aliases = entries, aliases

    def names(self) -> list[str]:
        """Registered names in registration order (aliases left out)."""
        return list(self._entries)

    def canonical(self, reference: str) -> str:
        """The registered name ``reference`` stands for (itself unless it is an alias)."""
        return self._aliases.get(reference, reference)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> type[T]:
        """The class registered under ``name`` or an alias of it (KeyError otherwise; no ``module:Class``)."""
        return self._entries[self.canonical(name)]

    def items(self) -> list[tuple[str, type[T]]]:
        """(name, class) pairs in registration order."""
        return list(self._entries.items())

    def resolve(self, reference: str) -> type[T]:
        """The class for a registered name, an alias or a ``module:Class`` reference (ValueError naming the
        options)."""
        name = self.canonical(reference)
        if name in self._entries:
            return self._entries[name]
        if ":" not in reference:
            raise ValueError(
                f"unknown {self.family} {reference!r} (available: {', '.join(self.names())}, or 'module:Class')"
            )
        return load_class(reference, self.base, self.family)


def load_class(reference: str, base: type[T], family: str) -> type[T]:
    """The class a ``module:Class`` reference names, imported on demand and checked to subclass ``base``
    (ValueError naming the reference otherwise)."""
    module_name, _, class_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module {module_name!r} for {family} {reference!r}: {error}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{reference!r} is not a {base.__name__} subclass")
    return cls
