"""The resource pool: nodes of accelerators, grouped into pools by accelerator type.

Accelerators are numbered 0..N-1 in the order of the scenario's node types and nodes; node ``i`` of node
type ``dgx`` is named ``dgx-i``. A job runs on accelerators of one type (its pool).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Node:
    """One server: its accelerators (global indices) and the ones currently free (a stack)."""

    name: str
    node_type: str
    accelerator: str
    accelerators: list[int]
    free: list[int] = field(default_factory=list)
    pool_index: int = 0

    def __post_init__(self) -> None:
        self.free = list(reversed(self.accelerators))

    @property
    def free_count(self) -> int:
        """Free accelerators on this node."""
        return len(self.free)


@dataclass
class Pool:
    """All nodes whose accelerators are of one catalog type.

    Kept up to date on every take and release: ``free_total``, and ``buckets[k]``, the set of pool indices
    of nodes with exactly ``k`` free accelerators (so placements find a best-fit node without a scan).
    """

    accelerator: str
    nodes: list[Node]
    capacity: int = 0
    free_total: int = 0
    buckets: list[set[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.capacity = sum(len(n.accelerators) for n in self.nodes)
        self.free_total = self.capacity
        self.buckets = [set() for _ in range(max(len(n.accelerators) for n in self.nodes) + 1)]
        for index, node in enumerate(self.nodes):
            node.pool_index = index
            self.buckets[len(node.free)].add(index)

    @property
    def max_free(self) -> int:
        """The largest number of free accelerators any node can have."""
        return len(self.buckets) - 1

    def first_node_with(self, free: int) -> Node | None:
        """The lowest-indexed node with exactly ``free`` free accelerators, if any."""
        bucket = self.buckets[free]
        return self.nodes[min(bucket)] if bucket else None

    def moved(self, node: Node, old_free: int) -> None:
        """Record that ``node`` went from ``old_free`` free accelerators to its current count."""
        self.buckets[old_free].discard(node.pool_index)
        self.buckets[len(node.free)].add(node.pool_index)


class Cluster:
    """Nodes and pools built from ``(node_type_name, count, accelerator_id, accelerators_per_node)``."""

    def __init__(self, node_types: list[tuple[str, int, str, int]]) -> None:
        self.nodes: list[Node] = []
        self.node_of: list[int] = []
        self.accelerator_type: list[str] = []
        pools: dict[str, list[Node]] = {}
        for type_name, count, accelerator, per_node in node_types:
            for i in range(count):
                first = len(self.node_of)
                node = Node(f"{type_name}-{i}", type_name, accelerator, list(range(first, first + per_node)))
                self.node_of += [len(self.nodes)] * per_node
                self.accelerator_type += [accelerator] * per_node
                self.nodes.append(node)
                pools.setdefault(accelerator, []).append(node)
        self.pools = {name: Pool(name, nodes) for name, nodes in pools.items()}
        self.busy = 0

    @property
    def size(self) -> int:
        """Accelerators in the cluster."""
        return len(self.node_of)

    def largest_pool(self) -> int:
        """Accelerators in the largest pool: no gang job can be larger."""
        return max(pool.capacity for pool in self.pools.values())

    def pool_for(self, gpus: int, accelerator: str | None) -> Pool | None:
        """The pool a job of ``gpus`` accelerators (of type ``accelerator`` or any) can start in now."""
        if accelerator is not None:
            pool = self.pools.get(accelerator)
            return pool if pool is not None and pool.free_total >= gpus else None
        for pool in self.pools.values():
            if pool.free_total >= gpus:
                return pool
        return None

    def take(self, pool: Pool, node: Node, count: int) -> list[int]:
        """Take ``count`` free accelerators from ``node``."""
        old = len(node.free)
        taken = node.free[-count:]
        del node.free[-count:]
        pool.moved(node, old)
        pool.free_total -= count
        self.busy += count
        return taken

    def release(self, accelerators: list[int]) -> None:
        """Return accelerators to their nodes."""
        for index in accelerators:
            node = self.nodes[self.node_of[index]]
            pool = self.pools[node.accelerator]
            node.free.append(index)
            pool.moved(node, len(node.free) - 1)
            pool.free_total += 1
        self.busy -= len(accelerators)
