"""A job's step traffic on the links of the datacenter network: transfers routed to per-link bytes.

A *transfer* is ``(src, dst) -> bytes per step`` between two accelerators (fabric names). Collectives
become transfers as NCCL's ring algorithm moves them (:func:`ring_transfers`): ranks in group order form a
ring and each sends ``2 (n-1)/n`` of the message to the next for an all-reduce, ``(n-1)/n`` for an
all-gather or reduce-scatter (Patarasuk & Yuan 2009; NCCL's ``busBw`` factors in nccl-tests'
``doc/PERFORMANCE.md``); an all-to-all sends ``1/n`` of it to every other rank. Ranks of one server are
consecutive in a group, so a ring crosses each server boundary once, as NCCL's rings do.

:class:`LinkLoads` routes transfers with the run's :class:`~dcsim.network.Controller` (its routing
policy, one ECMP key per accelerator pair) and sums the bytes per directed link. Routes are cached per pair
until the controller's link state changes (a failure or a repair).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from dcsim.network import Controller
from dcsim.network.routing import mix64
from dcsim.scheduler.contention import StepTraffic

Transfers = dict[tuple[str, str], float]

#: Routes kept per :class:`LinkLoads` before the cache starts afresh (~0.3 kB each: bounds the memory of a
#: long run that places jobs on ever new accelerator pairs).
MAX_CACHED_ROUTES = 200_000

#: Bytes each rank sends to its ring successor per byte of message, times ``n / (n - 1)`` for ``n`` ranks.
RING_PASSES = {"all_reduce": 2.0, "all_gather": 1.0, "reduce_scatter": 1.0}


def ring_transfers(out: Transfers, op: str, group: Sequence[str], nbytes: float, times: float = 1.0) -> None:
    """Add ``times`` runs of collective ``op`` of ``nbytes`` (nccl-tests size per rank) over ``group`` to
    ``out``. ``op`` is ``all_reduce``, ``all_gather``, ``reduce_scatter`` or ``all_to_all``."""
    n = len(group)
    if n < 2 or nbytes <= 0 or times <= 0:
        return
    if op == "all_to_all":
        each = nbytes / n * times
        for src in group:
            for dst in group:
                if src != dst:
                    out[(src, dst)] = out.get((src, dst), 0.0) + each
        return
    each = RING_PASSES[op] * (n - 1) / n * nbytes * times
    for i, src in enumerate(group):
        dst = group[(i + 1) % n]
        if src != dst:
            out[(src, dst)] = out.get((src, dst), 0.0) + each


def send_transfers(out: Transfers, pairs: Iterable[tuple[str, str]], nbytes: float, times: float = 1.0) -> None:
    """Add ``times`` point-to-point sends of ``nbytes`` over each (src, dst) pair to ``out``."""
    for pair in pairs:
        if pair[0] != pair[1] and nbytes > 0 and times > 0:
            out[pair] = out.get(pair, 0.0) + nbytes * times


class LinkLoads:
    """Routes transfers on ``controller``'s network and sums them per directed link."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._routes: dict[tuple[int, int], np.ndarray] = {}
        self._version = controller.version

    @property
    def capacity_bytes_per_s(self) -> np.ndarray:
        """Capacity of each directed link (bytes/s, link efficiency included)."""
        return self.controller.links.capacity_bytes_per_s

    def routes(self, pairs: Sequence[tuple[str, str]]) -> list[np.ndarray]:
        """Directed link ids of the route of each ``(src, dst)`` pair (one ECMP key per pair), cached.
        (Routed one by one: :meth:`Controller.route_index` searches a new destination's distances only,
        which costs a quarter of a batch's per-destination hop tables when most destinations are new.)"""
        controller = self.controller
        cache = self._routes
        if self._version != controller.version or len(cache) > MAX_CACHED_ROUTES:
            cache.clear()
            self._version = controller.version
        index, seed = controller.index, controller.seed
        out = []
        for src, dst in pairs:
            end = (index(src), index(dst))
            links = cache.get(end)
            if links is None:
                key = mix64(seed, end[0], end[1]) & 0x7FFFFFFFFFFFFFFF
                links = cache[end] = controller.route_index(end[0], end[1], key).links
            out.append(links)
        return out

    def step_traffic(self, transfers: Mapping[tuple[str, str], float], step_s: float) -> StepTraffic:
        """Bytes per step on each link the transfers cross, and the step time alone (s)."""
        if not transfers:
            return StepTraffic(np.empty(0, dtype=np.int64), np.empty(0), step_s)
        routes = self.routes(list(transfers))
        lengths = np.fromiter((r.size for r in routes), dtype=np.int64, count=len(routes))
        links = np.concatenate(routes)
        nbytes = np.repeat(np.fromiter(transfers.values(), dtype=float, count=len(routes)), lengths)
        used, inverse = np.unique(links, return_inverse=True)
        return StepTraffic(used, np.bincount(inverse, weights=nbytes, minlength=used.size), step_s)
