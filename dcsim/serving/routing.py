"""Routers: which replica a request goes to. A registry (``ROUTERS``) maps names to classes; register your
own with ``@register_router("name")`` or name it as ``module:Class`` in a scenario.

A router sees the replicas that accept requests now and picks one; ``outstanding`` (requests routed to a
replica and not finished) is the load signal of ``least_loaded`` and ``power_of_two``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from dcsim.scheduler.registry import Registry

if TYPE_CHECKING:
    from dcsim.serving.replica import Replica


class Router:
    """Base class: ``choose(replicas, rid)`` returns one of ``replicas`` (never empty)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._uniform = np.empty(0)
        self._next = 0

    def uniform(self) -> float:
        """A uniform [0, 1) draw from the router's stream (drawn in blocks: one numpy call per 4096)."""
        if self._next >= len(self._uniform):
            self._uniform = self.rng.random(4096)
            self._next = 0
        value = float(self._uniform[self._next])
        self._next += 1
        return value

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        raise NotImplementedError


ROUTERS: Registry[Router] = Registry("router", Router)


def register_router(name: str) -> Callable[[type[Router]], type[Router]]:
    """Class decorator: add a router under ``name``."""
    return ROUTERS.register(name)


@register_router("round_robin")
class RoundRobin(Router):
    """Each replica in turn."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self.turn = 0

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        replica = replicas[self.turn % len(replicas)]
        self.turn += 1
        return replica


@register_router("random")
class RandomRouter(Router):
    """A replica uniformly at random."""

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        return replicas[int(self.uniform() * len(replicas))]


@register_router("least_loaded")
class LeastLoaded(Router):
    """The replica with the fewest outstanding requests (the first such one on ties)."""

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        best = replicas[0]
        load = best.outstanding
        for replica in replicas:
            if replica.outstanding < load:
                best, load = replica, replica.outstanding
        return best


@register_router("power_of_two")
class PowerOfTwo(Router):
    """Two replicas at random, the one with fewer outstanding requests (Mitzenmacher's two choices)."""

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        n = len(replicas)
        a = replicas[int(self.uniform() * n)]
        b = replicas[int(self.uniform() * n)]
        return a if a.outstanding <= b.outstanding else b


ROUTERS.register("least_outstanding")(LeastLoaded)


def resolve_router(name: str) -> type[Router]:
    """The router class for a registered name or ``module:Class`` (ValueError naming the options)."""
    return ROUTERS.resolve(name)
