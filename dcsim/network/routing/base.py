"""Routing policies: how the SDN controller picks a path for a flow, and their registry.

A policy is a short subclass of :class:`RoutingPolicy` that overrides one hook:

- ``choose(candidates, key)``: pick one of the candidate paths (default candidates: the equal-cost
  shortest paths by hop count), or
- ``candidates(src, dst)``: offer other paths (``least_loaded`` offers the k shortest simple paths), or
- ``path(src, dst, key)``: the whole decision (``ecmp`` hashes hop by hop).

Register it with :func:`register_routing_policy` to name it from YAML, or name it ``module:Class``.
Paths are lists of node indices of the controller's :class:`~dcsim.network.links.LinkTable`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dcsim.network.controller import Controller

Path = list[int]

ROUTING_POLICIES: dict[str, type[RoutingPolicy]] = {}
MASK64 = (1 << 64) - 1


class NoRouteError(RuntimeError):
    """No path joins two nodes over the links that are up."""


def mix64(*values: int) -> int:
    """A deterministic 64-bit hash of integers (splitmix64 finaliser; Python's ``hash`` is salted for str)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & MASK64)) * 0xBF58476D1CE4E5B9 & MASK64
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & MASK64
        state ^= state >> 29
    return state


class RoutingPolicy:
    """Base routing policy. ``static`` is True when a path depends only on (src, dst, key) and on which
    links are up, not on the load, so that a fixed set of flows can be routed once and reused."""

    name: ClassVar[str] = ""
    static: ClassVar[bool] = True
    max_candidates: ClassVar[int] = 64

    def __init__(self, controller: Controller, **params: Any) -> None:
        if params:
            raise ValueError(
                f"routing policy {self.name or type(self).__name__} takes no parameters "
                f"(got {', '.join(sorted(params))})"
            )
        self.controller = controller

    def path(self, src: int, dst: int, key: int) -> Path:
        """The path of a flow with hash key ``key`` from node ``src`` to node ``dst`` (node indices)."""
        return self.choose(self.candidates(src, dst), key)

    def candidates(self, src: int, dst: int) -> list[Path]:
        """Equal-cost shortest paths (hop count), at most ``max_candidates``, in a deterministic order."""
        dist = self.controller.distances(dst)
        if dist[src] < 0:
            raise NoRouteError(f"no route from {self.controller.name(src)} to {self.controller.name(dst)}")
        found: list[Path] = []
        stack: list[Path] = [[src]]
        while stack and len(found) < self.max_candidates:
            partial = stack.pop()
            here = partial[-1]
            if here == dst:
                found.append(partial)
                continue
            for nxt in reversed(self.controller.next_hops(here, dst)):
                stack.append([*partial, nxt])
        return found

    def choose(self, candidates: list[Path], key: int) -> Path:
        """Pick one candidate; the base policy takes the first."""
        return candidates[0]


def register_routing_policy(name: str) -> Callable[[type[RoutingPolicy]], type[RoutingPolicy]]:
    """Class decorator registering a policy under ``name`` (a duplicate name is an error)."""

    def add(cls: type[RoutingPolicy]) -> type[RoutingPolicy]:
        if name in ROUTING_POLICIES:
            raise ValueError(f"routing policy {name!r} is already registered")
        cls.name = name
        ROUTING_POLICIES[name] = cls
        return cls

    return add


def resolve_policy(spec: str | type[RoutingPolicy]) -> type[RoutingPolicy]:
    """A policy class from a registered name, a ``module:Class`` reference, or a class."""
    if isinstance(spec, type):
        if not issubclass(spec, RoutingPolicy):
            raise ValueError(f"{spec.__name__} is not a RoutingPolicy subclass")
        return spec
    if spec in ROUTING_POLICIES:
        return ROUTING_POLICIES[spec]
    if ":" not in spec:
        raise ValueError(f"unknown routing policy {spec!r} (known: {', '.join(ROUTING_POLICIES)}, or module:Class)")
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot load routing policy {spec!r}: {error}") from None
    return resolve_policy(cls)


def make_policy(controller: Controller, spec: str | type[RoutingPolicy], params: Mapping[str, Any]) -> RoutingPolicy:
    """An instance of the policy ``spec`` bound to ``controller``."""
    return resolve_policy(spec)(controller, **params)
