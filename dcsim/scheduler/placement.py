"""Placement: which free accelerators of a pool a gang job gets. One short subclass per strategy."""

from __future__ import annotations

from dcsim.scheduler.cluster import Buckets, Cluster, Pool
from dcsim.scheduler.registry import Registry


class Placement:
    """Base class: ``choose`` takes ``gpus`` free accelerators from ``pool`` (the caller checked they exist).

    ``uses_racks``: the cluster must index free accelerators per rack for this placement."""

    uses_racks = False

    def choose(self, cluster: Cluster, pool: Pool, gpus: int) -> list[int]:
        raise NotImplementedError


PLACEMENTS: Registry[Placement] = Registry("placement", Placement)
register_placement = PLACEMENTS.register


def resolve_placement(reference: str) -> type[Placement]:
    """The placement class for a registered name or ``module:Class``."""
    return PLACEMENTS.resolve(reference)


def pack_into(cluster: Cluster, pool: Pool, buckets: Buckets, gpus: int) -> list[int]:
    """Best fit on the fewest nodes among ``buckets``: the node whose free count fits the rest most
    tightly, else the emptiest node taken whole. ``buckets`` must hold at least ``gpus`` free."""
    chosen: list[int] = []
    remaining = gpus
    while remaining > 0:
        index = buckets.best_fit(remaining)
        if index is None:
            index = buckets.emptiest()
        assert index is not None, "placement called without enough free accelerators"
        node = pool.nodes[index]
        count = min(remaining, len(node.free))
        chosen += cluster.take(pool, node, count)
        remaining -= count
    return chosen


@register_placement("pack")
class Pack(Placement):
    """Fewest nodes, best fit: keeps whole nodes free for large jobs and a job's ranks together."""

    def choose(self, cluster: Cluster, pool: Pool, gpus: int) -> list[int]:
        return pack_into(cluster, pool, pool.buckets, gpus)


@register_placement("spread")
class Spread(Placement):
    """One accelerator at a time from the node with the most free ones (ties: lowest node first)."""

    def choose(self, cluster: Cluster, pool: Pool, gpus: int) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < gpus:
            index = pool.buckets.emptiest()
            assert index is not None, "placement called without enough free accelerators"
            chosen += cluster.take(pool, pool.nodes[index], 1)
        return chosen


@register_placement("topology_aware")
class TopologyAware(Placement):
    """Fewest racks (top-of-rack switches), then fewest nodes.

    A job that fits in one rack goes to the rack that fits it most tightly (best fit, lowest rack on ties);
    a larger one takes racks with the most free accelerators first. Within a rack it packs like ``pack``.
    """

    uses_racks = True

    def choose(self, cluster: Cluster, pool: Pool, gpus: int) -> list[int]:
        fitting = [(b.free, rack) for rack, b in pool.racks.items() if b.free >= gpus]
        if fitting:
            return pack_into(cluster, pool, pool.racks[min(fitting)[1]], gpus)
        chosen: list[int] = []
        for _, rack in sorted((-b.free, rack) for rack, b in pool.racks.items() if b.free):
            take = min(gpus - len(chosen), pool.racks[rack].free)
            chosen += pack_into(cluster, pool, pool.racks[rack], take)
            if len(chosen) == gpus:
                break
        return chosen
