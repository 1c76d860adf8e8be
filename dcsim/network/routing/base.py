"""Routing policies: how the SDN controller picks a path for a flow, and their registry.

A policy is a short subclass of :class:`RoutingPolicy` that overrides one hook:

- ``choose(candidates, key)``: pick one of the candidate paths (default candidates: the equal-cost
  shortest paths by hop count), or
- ``candidates(src, dst)``: offer other paths (``least_loaded`` offers the k shortest simple paths), or
- ``path(src, dst, key)``: the whole decision (``ecmp`` hashes hop by hop).

A ``multipath`` policy (``adaptive``) spreads each flow over several paths at once: it overrides
``split(src, dst, key)``, which gives the links the flow loads and the fraction of its bytes each one
carries; the flow simulator shares links max-min fairly with those fractions.

Register it with :func:`register_routing_policy` to name it from YAML, or name it ``module:Class``; the
family is :data:`ROUTING_POLICIES`, a :class:`dcsim.registry.Registry`.
Paths are lists of node indices of the controller's :class:`~dcsim.network.links.LinkTable`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dcsim.registry import Registry

if TYPE_CHECKING:
    from dcsim.network.controller import Controller

Path = list[int]

MASK64 = (1 << 64) - 1
MIX_START = 0x9E3779B97F4A7C15
MIX_A = 0xBF58476D1CE4E5B9
MIX_B = 0x94D049BB133111EB


class NoRouteError(RuntimeError):
    """No path joins two nodes over the links that are up."""


def mix64(*values: int) -> int:
    """A deterministic 64-bit hash of integers (splitmix64 finaliser; Python's ``hash`` is salted for str)."""
    state = MIX_START
    for value in values:
        state = mix64_step(state, value)
    return state


def mix64_step(state: int, value: int) -> int:
    """One step of :func:`mix64`: ``mix64(a, b) == mix64_step(mix64(a), b)``."""
    state = (state ^ (value & MASK64)) * MIX_A & MASK64
    state = (state ^ (state >> 31)) * MIX_B & MASK64
    return state ^ (state >> 29)


def mix64_array(state: np.ndarray, values: np.ndarray) -> np.ndarray:
    """:func:`mix64_step` element-wise on ``uint64`` arrays (numpy wraps products modulo 2**64)."""
    state = (state ^ values) * np.uint64(MIX_A)
    state = (state ^ (state >> np.uint64(31))) * np.uint64(MIX_B)
    return state ^ (state >> np.uint64(29))


class RoutingPolicy:
    """Base routing policy. ``static`` is True when a path depends only on (src, dst, key) and on which
    links are up, not on the load, so that a fixed set of flows can be routed once and reused."""

    name: ClassVar[str] = ""
    static: ClassVar[bool] = True
    multipath: ClassVar[bool] = False
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

    def split(self, src: int, dst: int, key: int) -> tuple[list[int], list[float], float]:
        """A flow's links (directed link ids), the fraction of its bytes each carries, and the latency (s)
        of its slowest path. A single-path policy puts all of it on its one route."""
        links, latency = self.route_one(src, dst, key)
        return links, [1.0] * len(links), latency

    def route_links(
        self, src: np.ndarray, dst: np.ndarray, key: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Routes of many flows (node indices, keys) as CSR ``ptr``/``links`` and each path's latency (s),
        as :meth:`Controller.route_index` gives them one by one (policies may vectorize this)."""
        routes = [
            self.controller.route_index(s, d, k)
            for s, d, k in zip(src.tolist(), dst.tolist(), key.tolist(), strict=True)
        ]
        ptr = np.concatenate(([0], np.cumsum([r.links.size for r in routes], dtype=np.int64))).astype(np.int64)
        links = np.concatenate([r.links for r in routes]) if routes else np.empty(0, dtype=np.int64)
        return ptr, links, np.array([r.latency_s for r in routes], dtype=float)

    def route_one(self, src: int, dst: int, key: int) -> tuple[list[int], float]:
        """The links (ids) and latency (s) of one flow's route, as :meth:`Controller.route_index` gives it."""
        route = self.controller.route_index(src, dst, key)
        return route.links.tolist(), route.latency_s


ROUTING_POLICIES: Registry[RoutingPolicy] = Registry("routing policy", RoutingPolicy)


def register_routing_policy(name: str, *aliases: str) -> Callable[[type[RoutingPolicy]], type[RoutingPolicy]]:
    """Class decorator registering a policy under ``name`` (and ``aliases``) and setting its ``name``; a
    duplicate name is an error."""

    def add(cls: type[RoutingPolicy]) -> type[RoutingPolicy]:
        ROUTING_POLICIES.add(name, cls, aliases)
        cls.name = name
        return cls

    return add


def resolve_routing_policy(spec: str | type[RoutingPolicy]) -> type[RoutingPolicy]:
    """A policy class from a registered name, a ``module:Class`` reference, or a class (ValueError naming the
    options otherwise)."""
    if isinstance(spec, type):
        if not issubclass(spec, RoutingPolicy):
            raise ValueError(f"{spec.__name__} is not a RoutingPolicy subclass")
        return spec
    return ROUTING_POLICIES.resolve(spec)


#: The former name of :func:`resolve_routing_policy` (the scheduler has its own ``resolve_policy``).
resolve_policy = resolve_routing_policy


def make_policy(controller: Controller, spec: str | type[RoutingPolicy], params: Mapping[str, Any]) -> RoutingPolicy:
    """An instance of the policy ``spec`` bound to ``controller``."""
    return resolve_routing_policy(spec)(controller, **params)
