"""Request routers: which replica a request goes to. A registry (``ROUTERS``, a :class:`dcsim.registry.Registry`)
maps names to :class:`RequestRouter` classes; register your own with ``@register_router("name")`` or name it as
``module:Class`` in a scenario. (The network's routing policies, which pick a flow's path, are
:class:`dcsim.network.routing.RoutingPolicy`.)

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


class RequestRouter:
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


#: The former name of :class:`RequestRouter`.
Router = RequestRouter

ROUTERS: Registry[RequestRouter] = Registry("request router", RequestRouter)


def register_router(name: str, *aliases: str) -> Callable[[type[RequestRouter]], type[RequestRouter]]:
    """Class decorator: add a router under ``name`` (and ``aliases``)."""
    return ROUTERS.register(name, *aliases)


@register_router("round_robin")
class RoundRobin(RequestRouter):
    """Each replica in turn."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self.turn = 0

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        replica = replicas[self.turn % len(replicas)]
        self.turn += 1
        return replica


@register_router("random")
class RandomRouter(RequestRouter):
    """A replica uniformly at random."""

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        return replicas[int(self.uniform() * len(replicas))]


@register_router("least_loaded", "least_outstanding")
class LeastLoadedRouter(RequestRouter):
    """The replica with the fewest outstanding requests (the first such one on ties)."""

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        best = replicas[0]
        load = best.outstanding
        for replica in replicas:
            if replica.outstanding < load:
                best, load = replica, replica.outstanding
        return best


@register_router("power_of_two")
class PowerOfTwo(RequestRouter):
    """Two replicas at random, the one with fewer outstanding requests (Mitzenmacher's two choices)."""

    def choose(self, replicas: Sequence[Replica], rid: int) -> Replica:
        n = len(replicas)
        a = replicas[int(self.uniform() * n)]
        b = replicas[int(self.uniform() * n)]
        return a if a.outstanding <= b.outstanding else b


def resolve_router(name: str) -> type[RequestRouter]:
    """The router class for a registered name or ``module:Class`` (ValueError naming the options)."""
    return ROUTERS.resolve(name)
