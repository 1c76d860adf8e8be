"""Placement: which free accelerators of a pool a gang job gets. One short subclass per strategy."""

from __future__ import annotations

import heapq

from dcsim.scheduler.cluster import Cluster, Pool
from dcsim.scheduler.registry import Registry


class Placement:
    """Base class: ``choose`` takes ``gpus`` free accelerators from ``pool`` (the caller checked they exist)."""

    def choose(self, cluster: Cluster, pool: Pool, gpus: int) -> list[int]:
        raise NotImplementedError


PLACEMENTS: Registry[Placement] = Registry("placement", Placement)
register_placement = PLACEMENTS.register


def resolve_placement(reference: str) -> type[Placement]:
    """The placement class for a registered name or ``module:Class``."""
    return PLACEMENTS.resolve(reference)


@register_placement("pack")
class Pack(Placement):
    """Fewest nodes, best fit: the node whose free count fits the rest most tightly, else the emptiest.

    Keeps whole nodes free for large jobs and a job's ranks on as few nodes as possible.
    """

    def choose(self, cluster: Cluster, pool: Pool, gpus: int) -> list[int]:
        chosen: list[int] = []
        remaining = gpus
        while remaining > 0:
            best = None
            largest = None
            for node in pool.nodes:
                free = len(node.free)
                if free >= remaining and (best is None or free < len(best.free)):
                    best = node
                if free and (largest is None or free > len(largest.free)):
                    largest = node
            node = best if best is not None else largest
            assert node is not None, "pack placement called without enough free accelerators"
            count = min(remaining, len(node.free))
            chosen += cluster.take(pool, node, count)
            remaining -= count
        return chosen


@register_placement("spread")
class Spread(Placement):
    """One accelerator at a time from the node with the most free ones (ties: lowest node first)."""

    def choose(self, cluster: Cluster, pool: Pool, gpus: int) -> list[int]:
        heap = [(-len(node.free), i) for i, node in enumerate(pool.nodes) if node.free]
        heapq.heapify(heap)
        chosen: list[int] = []
        while len(chosen) < gpus:
            negative_free, i = heapq.heappop(heap)
            chosen += cluster.take(pool, pool.nodes[i], 1)
            if negative_free + 1 < 0:
                heapq.heappush(heap, (negative_free + 1, i))
        return chosen
