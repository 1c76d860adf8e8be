"""Conventions for network graphs: an undirected :class:`networkx.Graph` whose edges are full-duplex links.

Every edge carries ``capacity_bytes_per_s`` (per direction), ``latency_s`` (one traversal) and ``tier``
(a label for reports: ``access``, ``aggregation``, ``core``, ``local``, ``global``, ``intra``, ``nic``...).
Every node carries ``role``: ``host`` (a network endpoint, a NIC), ``switch`` (forwards only),
``accelerator`` (a GPU/TPU endpoint of an intra-node fabric) or ``fabric`` (an NVSwitch, a PCIe root).
"""

from __future__ import annotations

from collections.abc import Hashable

import networkx as nx

ENDPOINT_ROLES = ("host", "accelerator")


class TopologyError(ValueError):
    """A topology cannot be built from the given parameters (the message names the parameter)."""


def add_link(
    graph: nx.Graph, u: Hashable, v: Hashable, capacity_bytes_per_s: float, latency_s: float, tier: str
) -> None:
    """Add a full-duplex link ``u``-``v`` of ``capacity_bytes_per_s`` per direction and ``latency_s``."""
    if not capacity_bytes_per_s > 0:
        raise TopologyError(f"link {u}-{v}: capacity must be > 0 bytes/s, got {capacity_bytes_per_s}")
    if latency_s < 0:
        raise TopologyError(f"link {u}-{v}: latency must be >= 0 s, got {latency_s}")
    graph.add_edge(u, v, capacity_bytes_per_s=float(capacity_bytes_per_s), latency_s=float(latency_s), tier=tier)


def add_node(graph: nx.Graph, name: Hashable, role: str, **attrs: object) -> None:
    """Add a node with its ``role`` (``host``, ``switch``, ``accelerator`` or ``fabric``)."""
    graph.add_node(name, role=role, **attrs)


def nodes_with_role(graph: nx.Graph, role: str) -> list[Hashable]:
    """Nodes whose ``role`` attribute is ``role``, in the graph's (insertion) order."""
    return [n for n, r in graph.nodes(data="role") if r == role]


def hosts(graph: nx.Graph) -> list[Hashable]:
    """The network endpoints (role ``host``) in graph order."""
    return nodes_with_role(graph, "host")


def accelerators(graph: nx.Graph) -> list[Hashable]:
    """The accelerators (role ``accelerator``) in graph order."""
    return nodes_with_role(graph, "accelerator")


def check_graph(graph: nx.Graph) -> None:
    """Raise :class:`TopologyError` unless every edge has a positive capacity and a latency >= 0."""
    if graph.is_directed() or graph.is_multigraph():
        raise TopologyError("a network graph must be an undirected nx.Graph (links are full duplex)")
    for u, v, data in graph.edges(data=True):
        capacity = data.get("capacity_bytes_per_s")
        latency = data.get("latency_s")
        if capacity is None or not capacity > 0:
            raise TopologyError(f"link {u}-{v}: capacity_bytes_per_s must be > 0, got {capacity}")
        if latency is None or latency < 0:
            raise TopologyError(f"link {u}-{v}: latency_s must be >= 0, got {latency}")
