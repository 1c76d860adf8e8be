"""The resource pool: nodes of accelerators in racks, grouped into pools.

Accelerators are numbered 0..N-1 in the order of the scenario's node types and nodes; node ``i`` of node
type ``dgx`` is named ``dgx-i``. Racks are numbered across the cluster: each node type fills racks of
``nodes_per_rack`` nodes (its own racks). A pool is every node with the same accelerator type, labels and
taints (Kubernetes style); a gang job runs inside one pool: one whose accelerator matches the job's, whose
labels include the job's node selector and whose taints the job tolerates.

Free accelerators are indexed so that placements never scan the cluster: per pool and per rack,
``buckets[k]`` holds the nodes with exactly ``k`` free accelerators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeGroup:
    """``count`` nodes named ``name-i`` with ``per_node`` accelerators of type ``accelerator`` each, and
    ``cpu_cores`` host cores and ``memory_gb`` host memory (None: not limited)."""

    name: str
    count: int
    accelerator: str
    per_node: int
    nodes_per_rack: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[str, ...] = ()
    cpu_cores: float | None = None
    memory_gb: float | None = None

    @property
    def pool_key(self) -> tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]:
        """Node groups with equal keys share a pool."""
        return (self.accelerator, tuple(sorted(self.labels)), tuple(sorted(self.taints)))


@dataclass
class Node:
    """One server: its accelerators (global indices), the free ones (a stack), its rack."""

    name: str
    node_type: str
    accelerator: str
    accelerators: list[int]
    rack: int = 0
    free: list[int] = field(default_factory=list)
    pool_index: int = 0
    pool: str = ""
    cpu_cores: float = math.inf
    memory_gb: float = math.inf
    free_cpus: float = math.inf
    free_memory_gb: float = math.inf

    def __post_init__(self) -> None:
        self.free = list(reversed(self.accelerators))

    def host_capacity(self, cpus_per_accelerator: float, memory_gb_per_accelerator: float) -> int:
        """Free accelerators a job can take here with these host requests per accelerator."""
        count = len(self.free)
        if cpus_per_accelerator > 0:
            count = min(count, int(self.free_cpus / cpus_per_accelerator + 1e-9))
        if memory_gb_per_accelerator > 0:
            count = min(count, int(self.free_memory_gb / memory_gb_per_accelerator + 1e-9))
        return count


class Buckets:
    """Nodes by their free count: ``sets[k]`` = pool indices of nodes with ``k`` free accelerators."""

    def __init__(self, size: int) -> None:
        self.sets: list[set[int]] = [set() for _ in range(size + 1)]
        self.free = 0

    def first(self, free: int) -> int | None:
        """The lowest pool index of a node with exactly ``free`` free accelerators, if any."""
        bucket = self.sets[free]
        return min(bucket) if bucket else None

    def best_fit(self, need: int) -> int | None:
        """The node whose free count is the smallest one >= ``need`` (lowest index on ties)."""
        for k in range(min(need, len(self.sets)), len(self.sets)):
            if self.sets[k]:
                return min(self.sets[k])
        return None

    def emptiest(self) -> int | None:
        """The node with the most free accelerators (lowest index on ties), if any is free."""
        for k in range(len(self.sets) - 1, 0, -1):
            if self.sets[k]:
                return min(self.sets[k])
        return None

    def move(self, index: int, old_free: int, new_free: int) -> None:
        self.sets[old_free].discard(index)
        self.sets[new_free].add(index)
        self.free += new_free - old_free


@dataclass
class Pool:
    """Nodes of one accelerator type, labels and taints, indexed by free count overall and per rack."""

    name: str
    accelerator: str
    nodes: list[Node]
    labels: dict[str, str] = field(default_factory=dict)
    taints: frozenset[str] = frozenset()
    capacity: int = 0
    buckets: Buckets = field(init=False)
    racks: dict[int, Buckets] = field(init=False)

    def __post_init__(self) -> None:
        self.capacity = sum(len(n.accelerators) for n in self.nodes)
        size = max(len(n.accelerators) for n in self.nodes)
        self.buckets = Buckets(size)
        self.racks = {}
        for index, node in enumerate(self.nodes):
            node.pool_index = index
            node.pool = self.name
            self.buckets.move(index, 0, len(node.free))

    def track_racks(self) -> None:
        """Also index free counts per rack (for rack-aware placement; costs one more update per change)."""
        size = len(self.buckets.sets) - 1
        self.racks = {}
        for index, node in enumerate(self.nodes):
            self.racks.setdefault(node.rack, Buckets(size)).move(index, 0, len(node.free))

    @property
    def free_total(self) -> int:
        """Free accelerators in the pool."""
        return self.buckets.free

    def admits(self, accelerator: str | None, selector: dict[str, str], tolerations: frozenset[str]) -> bool:
        """Whether a job with this accelerator pin, node selector and tolerations may run here."""
        return (
            (accelerator is None or accelerator == self.accelerator)
            and all(self.labels.get(key) == value for key, value in selector.items())
            and self.taints <= tolerations
        )

    def moved(self, node: Node, old_free: int) -> None:
        """Record that ``node`` went from ``old_free`` free accelerators to its current count."""
        new_free = len(node.free)
        self.buckets.move(node.pool_index, old_free, new_free)
        if self.racks:
            self.racks[node.rack].move(node.pool_index, old_free, new_free)


class Cluster:
    """Nodes, racks and pools built from :class:`NodeGroup` records (or ``(name, count, acc, per_node)``)."""

    def __init__(self, groups: Sequence[NodeGroup | tuple[str, int, str, int]]) -> None:
        self.nodes: list[Node] = []
        self.node_of: list[int] = []
        self.accelerator_type: list[str] = []
        self.pool_of: list[str] = []
        pools: dict[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]], list[Node]] = {}
        rack = 0
        for group in groups:
            spec = group if isinstance(group, NodeGroup) else NodeGroup(*group)
            per_rack = spec.nodes_per_rack or spec.count
            for i in range(spec.count):
                if i and i % per_rack == 0:
                    rack += 1
                first = len(self.node_of)
                accelerators = list(range(first, first + spec.per_node))
                node = Node(f"{spec.name}-{i}", spec.name, spec.accelerator, accelerators, rack)
                if spec.cpu_cores is not None:
                    node.cpu_cores = node.free_cpus = spec.cpu_cores
                if spec.memory_gb is not None:
                    node.memory_gb = node.free_memory_gb = spec.memory_gb
                self.node_of += [len(self.nodes)] * spec.per_node
                self.accelerator_type += [spec.accelerator] * spec.per_node
                self.nodes.append(node)
                pools.setdefault(spec.pool_key, []).append(node)
            rack += 1
        self.pools: dict[str, Pool] = {}
        for (accelerator, labels, taints), nodes in pools.items():
            extra = ",".join([f"{k}={v}" for k, v in labels] + [f"taint:{t}" for t in taints])
            name = f"{accelerator}[{extra}]" if extra else accelerator
            self.pools[name] = Pool(name, accelerator, nodes, dict(labels), frozenset(taints))
        self.pool_of = [self.nodes[n].pool for n in self.node_of]
        self.busy = 0
        self.down: set[int] = set()

    @property
    def size(self) -> int:
        """Accelerators in the cluster."""
        return len(self.node_of)

    def eligible_pools(
        self, accelerator: str | None, selector: dict[str, str] | None = None, tolerations: frozenset[str] = frozenset()
    ) -> list[Pool]:
        """The pools a job may run in, in cluster order."""
        return [pool for pool in self.pools.values() if pool.admits(accelerator, selector or {}, tolerations)]

    def take(self, pool: Pool, node: Node, count: int) -> list[int]:
        """Take ``count`` free accelerators from ``node``."""
        old = len(node.free)
        taken = node.free[-count:]
        del node.free[-count:]
        pool.moved(node, old)
        self.busy += count
        return taken

    def take_these(self, accelerators: list[int]) -> list[int]:
        """Take these free accelerators (those out of service are skipped); return the ones taken."""
        taken = []
        for index in accelerators:
            if index in self.down:
                continue
            node = self.nodes[self.node_of[index]]
            old = len(node.free)
            node.free.remove(index)
            self.pools[node.pool].moved(node, old)
            taken.append(index)
        self.busy += len(taken)
        return taken

    def hold_host(self, accelerators: list[int], cpus: float, memory_gb: float) -> None:
        """Take ``cpus`` cores and ``memory_gb`` GB of host resources per accelerator on its node
        (negative amounts give them back)."""
        for index in accelerators:
            node = self.nodes[self.node_of[index]]
            node.free_cpus -= cpus
            node.free_memory_gb -= memory_gb

    def release(self, accelerators: list[int]) -> None:
        """Return accelerators to their nodes (failed ones stay out of service until repaired)."""
        by_node: dict[int, list[int]] = {}
        for index in accelerators:
            if index not in self.down:
                by_node.setdefault(self.node_of[index], []).append(index)
        for number, indices in by_node.items():
            node = self.nodes[number]
            old = len(node.free)
            node.free.extend(indices)
            self.pools[node.pool].moved(node, old)
        self.busy -= len(accelerators)

    def bring_online_free(self, index: int) -> None:
        """Make an in-service accelerator that no one holds free (not counted busy before)."""
        self._free(index)

    def _free(self, index: int) -> None:
        node = self.nodes[self.node_of[index]]
        node.free.append(index)
        self.pools[node.pool].moved(node, len(node.free) - 1)

    def take_offline(self, index: int) -> None:
        """Take a failed accelerator out of service (out of the free set if it was free)."""
        if index in self.down:
            return
        self.down.add(index)
        node = self.nodes[self.node_of[index]]
        if index in node.free:
            node.free.remove(index)
            self.pools[node.pool].moved(node, len(node.free) + 1)

    def bring_online(self, index: int, held: bool) -> None:
        """Return a repaired accelerator to service (free unless a job still ``held`` it)."""
        if index in self.down:
            self.down.discard(index)
            if not held:
                self._free(index)
