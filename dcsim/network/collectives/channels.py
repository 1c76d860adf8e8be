"""Where a communicator's channels run on a fabric graph: its ranks grouped by node, each rank's NIC
rail, the :class:`~.nccl_model.CommTopology` NCCL's tuner sees, and the flows of one step of the channels
(the flow-level path of :mod:`.nccl_model`).

Channel ``c`` enters and leaves every node through rail ``r`` (:func:`~.nccl_model.channel_rail`): the
first of the node's ranks whose NIC is the node's ``r``-th NIC. A ring channel visits the node's ranks from
there; across nodes its last rank hands its data back to that first rank over NVLink (NCCL's PXN, so the
inter-node hop stays on one rail) and the first rank sends it to the same rail's rank on the next node.

The flows measure what NCCL's topology search finds for each channel (its bandwidth inside a node and on
its rail: one flow per channel each way on every link it uses), so every algorithm's channels run as such
rings on their own rails; NCCL's tuning model then turns that bandwidth into the algorithm's (a tree's
reduce-then-broadcast is its 0.5 ratio, not a different set of flows). NVLS and CollNet reduce inside the
switches, so only their inter-node traffic runs, as rings over the nodes' rail heads.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import networkx as nx

from dcsim.catalog import load_catalog
from dcsim.network.collectives.nccl_constants import nccl_tuning
from dcsim.network.collectives.nccl_model import CommTopology, channel_rail

Pair = tuple[int, int]


@dataclass(frozen=True)
class ChannelLayout:
    """Rank positions by node (communicator order within a node) and, per node, the first position on
    each of its NIC rails (NIC order). ``topology`` is what NCCL's tuner sees."""

    nodes: tuple[tuple[int, ...], ...]
    rail_heads: tuple[tuple[int, ...], ...]
    topology: CommTopology

    @property
    def rails(self) -> int:
        """Rails every node has (the least over nodes)."""
        return self.topology.rails


def _nic(graph: nx.Graph, rank: Hashable) -> tuple[Hashable, float]:
    """The NIC a rank's inter-node traffic leaves through, and its line rate (bytes/s): an accelerator's NIC
    behind its PCIe port (``nic``-tier links), or the rank itself when it is a network host."""
    if graph.nodes[rank].get("role") == "accelerator":
        for port in graph[rank]:
            if graph[rank][port].get("tier") != "nic":
                continue
            for nic in graph[port]:
                if nic != rank and graph[port][nic].get("tier") == "nic":
                    edge = min(graph[rank][port]["capacity_bytes_per_s"], graph[port][nic]["capacity_bytes_per_s"])
                    uplinks = [
                        d["capacity_bytes_per_s"] for _, _, d in graph.edges(nic, data=True) if d.get("tier") != "nic"
                    ]
                    return nic, min(edge, max(uplinks, default=math.inf))
        return rank, math.inf  # a server off the network
    caps = [d["capacity_bytes_per_s"] for _, _, d in graph.edges(rank, data=True)]
    return rank, max(caps, default=math.inf)


def _intra_bytes_per_s(graph: nx.Graph, rank: Hashable) -> float:
    caps = [d["capacity_bytes_per_s"] for _, _, d in graph.edges(rank, data=True) if d.get("tier") == "intra"]
    return sum(caps) if caps else math.inf


@functools.cache
def _interconnect_traits(interconnect: str | None) -> tuple[str, bool]:
    """(``nvlink`` or ``pcie``, NVLS available) for a catalog interconnect id."""
    if interconnect is None:
        return "nvlink", False
    link = load_catalog().interconnect(interconnect)
    return ("pcie" if link.topology == "bus" else "nvlink"), bool(getattr(link, "nvls", None))


def layout_of(graph: nx.Graph, ranks: Sequence[Hashable], labels: Sequence[Hashable] | None = None) -> ChannelLayout:
    """The channel layout of ``ranks`` (node names of ``graph``). Ranks are grouped by the nodes'
    ``server`` attribute (or by ``labels``); a rank without one is a node of its own."""
    if labels is None:
        labels = [graph.nodes[r].get("server", ("rank", i)) for i, r in enumerate(ranks)]
    groups: dict[Hashable, list[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(label, []).append(position)
    nodes = tuple(tuple(g) for g in groups.values())
    nics = [_nic(graph, r) for r in ranks]
    heads = []
    for group in nodes:
        seen: dict[Hashable, int] = {}
        for position in group:
            seen.setdefault(nics[position][0], position)
        heads.append(tuple(seen.values()))
    first = graph.nodes[ranks[0]]
    kind, nvls = _interconnect_traits(first.get("interconnect"))
    topology = CommTopology(
        ranks=len(ranks),
        nodes=len(nodes),
        ranks_per_node=max(len(g) for g in nodes),
        gpu_bytes_per_s=min(_intra_bytes_per_s(graph, r) for r in ranks),
        nic_bytes_per_s=min(bps for _, bps in nics),
        rails=min(len(h) for h in heads),
        intra=kind,
        generation=nccl_tuning().generation(first.get("accelerator")),
        nvls=nvls,
    )
    return ChannelLayout(nodes, tuple(heads), topology)


def _rotated(group: Sequence[int], head: int) -> list[int]:
    start = group.index(head)
    return list(group[start:]) + list(group[:start])


def ring_edges(layout: ChannelLayout, channels: int, algorithm: str = "ring") -> list[Pair]:
    """(src, dst) rank positions of every channel's ring: per node the ranks in order from the channel's
    rail head (rails assigned as ``algorithm`` assigns them), the last back to the head (PXN) across nodes,
    and head to head between nodes."""
    edges: list[Pair] = []
    rails, nodes = max(layout.rails, 1), layout.nodes
    for c in range(channels):
        r = channel_rail(algorithm, c, rails)
        orders = [_rotated(group, heads[r]) for group, heads in zip(nodes, layout.rail_heads, strict=True)]
        if len(nodes) == 1:
            order = orders[0]
            edges += [(order[i], order[(i + 1) % len(order)]) for i in range(len(order))] if len(order) > 1 else []
            continue
        for k, order in enumerate(orders):
            edges += list(zip(order[:-1], order[1:], strict=True))
            if len(order) > 1:
                edges.append((order[-1], order[0]))
            edges.append((order[0], orders[(k + 1) % len(orders)][0]))
    return edges


def pattern(
    layout: ChannelLayout, op: str, algorithm: str, channels: int, nbytes: float
) -> tuple[list[Pair], float, float]:
    """One step of the channels' flows for the flow path: (edges, bytes per edge, how many such steps the
    channels' link bandwidth is measured over). Ring and tree: every channel a ring on its rail, ``S / (C n)``
    per edge, ``2(n-1)`` steps for all-reduce and ``n-1`` otherwise; NVLS and CollNet: rings over the nodes'
    rail heads, ``2(nodes-1)`` steps of ``S / (C nodes)``."""
    n = layout.topology.ranks
    if algorithm in ("nvls", "collnet"):
        m = len(layout.nodes)
        if m < 2:
            return [], 0.0, 0.0
        rails = max(layout.rails, 1)
        edges = [pair for c in range(channels) for pair in _head_ring(layout, channel_rail("ring", c, rails))]
        return edges, nbytes / (channels * m), float(2 * (m - 1))
    steps = 2 * (n - 1) if op == "all_reduce" else n - 1
    return ring_edges(layout, channels, algorithm), nbytes / (channels * n), float(steps)


def _head_ring(layout: ChannelLayout, rail: int) -> list[Pair]:
    heads = [h[rail] for h in layout.rail_heads]
    return [(heads[k], heads[(k + 1) % len(heads)]) for k in range(len(heads))]


def link_busbw_from(layout: ChannelLayout, op: str, algorithm: str, nbytes: float, seconds: float) -> float:
    """The channels' link bandwidth (bytes/s, as :func:`~.nccl_model.link_busbw` defines it) implied by the
    flows of :func:`pattern` moving ``nbytes`` in ``seconds`` of bandwidth time (inf for no time)."""
    n = len(layout.nodes) if algorithm in ("nvls", "collnet") else layout.topology.ranks
    if seconds <= 0:
        return math.inf
    steps = 2 * (n - 1) if op == "all_reduce" or algorithm in ("nvls", "collnet") else n - 1
    return nbytes * steps / (n * seconds)
