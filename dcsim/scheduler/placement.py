"""Placement: which free accelerators of a pool a gang job gets. One short subclass per strategy."""

from __future__ import annotations

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
            node = next(
                (
                    n
                    for k in range(min(remaining, pool.max_free + 1), pool.max_free + 1)
                    if (n := pool.first_node_with(k)) is not None
                ),
                None,
            )
            if node is None:  # no node fits the rest: take the emptiest node whole
                node = next(n for k in range(pool.max_free, 0, -1) if (n := pool.first_node_with(k)) is not None)
            count = min(remaining, len(node.free))
            chosen += cluster.take(pool, node, count)
            remaining -= count
        return chosen


@register_placement("spread")
class Spread(Placement):
    """One accelerator at a time from the node with the most free ones (ties: lowest node first)."""

    def choose(self, cluster: Cluster, pool: Pool, gpus: int) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < gpus:
            node = next(n for k in range(pool.max_free, 0, -1) if (n := pool.first_node_with(k)) is not None)
            chosen += cluster.take(pool, node, 1)
        return chosen
