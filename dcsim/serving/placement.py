"""Where replicas go: ``tp x pp`` accelerators inside one node each, node types in order, nodes in order.

:class:`ReplicaPlacer` keeps the free accelerators of every node, so that several inference workloads of one
run (or of one scenario check) never take the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Place:
    """A replica's place: its node type (the scenario's ``NodeType``), the node's number within the type,
    and the first of its accelerators on that node."""

    node: Any
    node_index: int
    first_accelerator: int


class ReplicaPlacer:
    """Free accelerators per node of ``nodes`` (objects with ``name``, ``count``, ``accelerators_per_node``)."""

    def __init__(self, nodes: Iterable[Any]) -> None:
        self.free = {n.name: [n.accelerators_per_node] * n.count for n in nodes}

    def take(self, nodes: Iterable[Any], size: int, count: int) -> list[Place]:
        """Up to ``count`` places of ``size`` accelerators on ``nodes`` (fewer if they run out)."""
        places: list[Place] = []
        for node in nodes:
            free = self.free[node.name]
            for index in range(node.count):
                while free[index] >= size and len(places) < count:
                    places.append(Place(node, index, node.accelerators_per_node - free[index]))
                    free[index] -= size
        return places
