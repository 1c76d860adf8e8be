"""Where replicas go: node types in order, nodes in order.

A replica of ``tp x pp`` accelerators that fits one node takes ``tp x pp`` consecutive accelerators of one
node. A larger one spans nodes: each pipeline stage's ``tp`` group stays inside one node, and the stages
fill consecutive nodes of one node type in order, as many whole groups of ``tp`` per node as are free, on
the fewest nodes a node of that type allows (``ceil(pp / (accelerators_per_node // tp))``), so the replica
pays the fewest inter-node stage boundaries. :class:`ReplicaPlacer` keeps the free accelerators of every
node, so that several inference workloads of one run (or of one scenario check) never take the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReplicaSegment:
    """The part of a replica on one node: the node's number within its type, the first of the replica's
    accelerators there, and how many consecutive accelerators it has there."""

    node_index: int
    first_accelerator: int
    accelerators: int


@dataclass(frozen=True)
class Place:
    """A replica's place: its node type (the scenario's ``NodeType``), the node's number within the type,
    and the first of its accelerators on that node. A replica spanning nodes has one :class:`ReplicaSegment` per
    node, in pipeline-stage order (the first is ``node_index`` / ``first_accelerator``); ``segments`` is
    empty for a replica inside one node."""

    node: Any
    node_index: int
    first_accelerator: int
    segments: tuple[ReplicaSegment, ...] = ()

    def slots(self, size: int) -> list[tuple[int, int]]:
        """(node number, accelerator number on that node) of each of the replica's ``size`` accelerators,
        in rank order (stage by stage, tensor-parallel rank within a stage)."""
        if not self.segments:
            return [(self.node_index, self.first_accelerator + i) for i in range(size)]
        return [(s.node_index, s.first_accelerator + i) for s in self.segments for i in range(s.accelerators)]

    @property
    def node_indices(self) -> list[int]:
        """The numbers of the nodes the replica is on, in stage order."""
        return [s.node_index for s in self.segments] if self.segments else [self.node_index]

    def stages_per_node(self, tp: int, pp: int) -> list[int]:
        """Pipeline stages on each of the replica's nodes, in stage order (``[pp]`` inside one node)."""
        return [s.accelerators // tp for s in self.segments] if self.segments else [pp]


def spans_nodes(node: Any, tp: int, pp: int) -> bool:
    """True if a replica of ``tp x pp`` accelerators does not fit one node of ``node``'s type."""
    return bool(tp * pp > node.accelerators_per_node)


def nodes_per_replica(node: Any, tp: int, pp: int) -> int:
    """Nodes of ``node``'s type one replica of ``tp x pp`` takes: 1 inside one node, else the fewest that
    hold its ``pp`` groups of ``tp`` (``ceil(pp / (accelerators_per_node // tp))``; ValueError if ``tp``
    exceeds a node's accelerators)."""
    if not spans_nodes(node, tp, pp):
        return 1
    groups = node.accelerators_per_node // tp
    if groups < 1:
        raise ValueError(f"tp ({tp}) exceeds the {node.accelerators_per_node} accelerators of a {node.name} node")
    return -(-pp // groups)


class ReplicaPlacer:
    """Free accelerators per node of ``nodes`` (objects with ``name``, ``count``, ``accelerators_per_node``)."""

    def __init__(self, nodes: Iterable[Any]) -> None:
        self.free = {n.name: [n.accelerators_per_node] * n.count for n in nodes}

    def take(self, nodes: Iterable[Any], tp: int, pp: int, count: int) -> list[Place]:
        """Up to ``count`` places of replicas of ``tp x pp`` accelerators on ``nodes`` (fewer if they run
        out); node types whose nodes have fewer than ``tp`` accelerators are skipped."""
        places: list[Place] = []
        size = tp * pp
        for node in nodes:
            free = self.free[node.name]
            if not spans_nodes(node, tp, pp):
                for index in range(node.count):
                    while free[index] >= size and len(places) < count:
                        places.append(Place(node, index, node.accelerators_per_node - free[index]))
                        free[index] -= size
                continue
            if node.accelerators_per_node < tp:
                continue
            span = nodes_per_replica(node, tp, pp)
            start = 0
            while len(places) < count and start + span <= node.count:
                place = self._span(node, start, span, tp, pp)
                if place is None:
                    start += 1
                else:
                    places.append(place)
        return places

    def _span(self, node: Any, start: int, span: int, tp: int, pp: int) -> Place | None:
        """A replica's place on nodes ``start .. start + span - 1`` of ``node``'s type, stages filling each
        node's free whole groups of ``tp`` in order (taken), or None (nothing taken) if they do not hold its
        ``pp`` stages or the first node has no free group."""
        free = self.free[node.name]
        stages = [min(free[i] // tp, pp) for i in range(start, start + span)]
        if stages[0] == 0 or sum(stages) < pp:
            return None
        segments = []
        left = pp
        for i, n in zip(range(start, start + span), stages, strict=True):
            n = min(n, left)
            if n:
                segments.append(ReplicaSegment(i, node.accelerators_per_node - free[i], n * tp))
                free[i] -= n * tp
                left -= n
        first = segments[0]
        return Place(node, first.node_index, first.first_accelerator, tuple(segments))
