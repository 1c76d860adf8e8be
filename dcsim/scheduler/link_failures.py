"""Network link failures: a Poisson process over the fabric's switch-to-switch links, or an explicit schedule,
with repairs. A failed link is taken down on the shared network's controller (both directions), so routes
move around it; the running jobs' and services' traffic is re-routed and their slowdowns re-priced
(:meth:`~dcsim.scheduler.dispatcher.ClusterScheduler.network_changed`). A repair brings it back and
re-prices again.

A failure that would cut the network in two (no route left between some of its nodes, with the links
already down) is skipped and counted: a partitioned fabric is an outage, which this model does not price.

What a failure changes is how the running jobs share the links (cross-job contention,
:mod:`dcsim.scheduler.contention`): each job's step time alone stays priced on the intact network, so a
failure that only concentrates a lone job's own traffic is not priced.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from functools import partial
from typing import Any

import networkx as nx
import numpy as np
import simpy

from dcsim.engine.distributions import Distribution
from dcsim.errors import Problem, UserInputError
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.shared_network import SharedNetwork

Link = tuple[str, str]

#: Drawn link failures one run may simulate (each re-routes and re-prices every running job, ~1 ms on a
#: large fabric): a run that reaches it stops with a line at ``failures.links.mtbf_h``.
MAX_LINK_FAILURES = 200_000


class LinkFailureStorm(UserInputError):
    """A run stopped because links fail faster than its work finishes (one problem, at
    ``failures.links.mtbf_h``). Its ``args`` are the message alone, so SimPy rebuilds it whole."""

    def __init__(self, message: str) -> None:
        super().__init__([Problem("failures.links.mtbf_h", message)])
        self.args = (message,)


class LinkFailureInjector:
    """Fails and repairs links of ``network`` (the scheduler's shared network) until ``done`` fires.

    ``links`` are the links a drawn failure picks from (uniformly), each failing at rate 1/``mtbf_s``;
    ``repair_s`` draws a drawn failure's repair time. ``events`` records ``(time s, link, down s)``."""

    def __init__(
        self,
        scheduler: ClusterScheduler,
        network: SharedNetwork,
        rng: np.random.Generator,
        links: Sequence[Link] = (),
        mtbf_s: float | None = None,
        repair_s: Distribution | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.env = scheduler.env
        self.network = network
        self.rng = rng
        self.links = list(links)
        self.rate = len(self.links) / mtbf_s if mtbf_s and self.links else 0.0
        self.repair_s = repair_s
        self.down: set[frozenset[str]] = set()
        self.events: list[tuple[float, Link, float]] = []
        self.skipped = 0  # failures that would have partitioned the network

    def start(self, done: simpy.Event | None = None) -> None:
        """Start drawing failures (if a rate is given); stop once ``done`` has fired."""
        if self.rate > 0:
            self.env.process(self._poisson(done))

    def _poisson(self, done: simpy.Event | None) -> Generator[simpy.Event, Any, None]:
        assert self.repair_s is not None
        drawn = 0
        while True:
            timeout = self.env.timeout(float(self.rng.exponential(1.0 / self.rate)))
            yield timeout if done is None else self.env.any_of([timeout, done])
            if done is not None and done.triggered:
                return
            drawn += 1
            if drawn > MAX_LINK_FAILURES:
                raise LinkFailureStorm(
                    f"run stopped at {float(self.env.now):.3g} s of simulated time after {MAX_LINK_FAILURES:,} link "
                    "failures with work still left: give a longer mtbf_h"
                )
            link = self.links[int(self.rng.integers(len(self.links)))]
            self.fail(link, float(self.repair_s.sample(self.rng, 1)[0]))

    def fail(self, link: Link, down_s: float) -> None:
        """Take ``link`` down now for ``down_s`` seconds (a link already down is left alone) and re-price."""
        key = frozenset(link)
        if key in self.down:
            return
        if not self._connected_without(link):
            self.skipped += 1
            return
        self.down.add(key)
        self.events.append((float(self.env.now), link, down_s))
        self.network.controller.fail_link(*link)
        self.scheduler.network_changed()
        self.env.timeout(max(0.0, down_s)).callbacks.append(partial(self._repair, link))

    def _connected_without(self, link: Link) -> bool:
        """True if the network stays connected with ``link`` down too."""
        graph = self.network.controller.graph
        down = [tuple(k) for k in self.down] + [link]
        return bool(nx.is_connected(nx.restricted_view(graph, [], down)))

    def _repair(self, link: Link, _event: simpy.Event) -> None:
        self.down.discard(frozenset(link))
        self.network.controller.restore_link(*link)
        self.scheduler.network_changed()

    def schedule(self, events: Sequence[tuple[float, Link, float]]) -> None:
        """Explicit failures: ``(time s, link, down s)`` each."""

        def run() -> Generator[simpy.Event, Any, None]:
            for at_s, link, down_s in sorted(events):
                yield self.env.timeout(max(0.0, at_s - float(self.env.now)))
                self.fail(link, down_s)

        if events:
            self.env.process(run())

    def summary(self, end_s: float) -> dict[str, Any]:
        """``link_failures`` (count), ``link_down_s`` (seconds of link downtime up to ``end_s``) and
        ``link_failures_skipped`` (failures that would have partitioned the network)."""
        down = sum(max(0.0, min(at + s, end_s) - at) for at, _, s in self.events if at <= end_s)
        return {"link_failures": len(self.events), "link_down_s": down, "link_failures_skipped": self.skipped}
