"""Directed link table of a network graph: each full-duplex edge becomes two directed links.

Link ``2e`` is edge ``e`` in the direction it was stored (``u -> v``), link ``2e + 1`` the reverse.
Nodes are numbered in graph order. Arrays are numpy so that the flow simulator works on indices only.
"""

from __future__ import annotations

from collections.abc import Hashable

import networkx as nx
import numpy as np

from dcsim.network.graph import check_graph


class LinkTable:
    """Indices, capacities (bytes/s per direction) and latencies (s) of a graph's directed links."""

    def __init__(self, graph: nx.Graph) -> None:
        check_graph(graph)
        self.nodes: list[Hashable] = list(graph.nodes)
        self.node_index: dict[Hashable, int] = {n: i for i, n in enumerate(self.nodes)}
        edges = list(graph.edges(data=True))
        count = 2 * len(edges)
        self.src = np.empty(count, dtype=np.int64)
        self.dst = np.empty(count, dtype=np.int64)
        self.capacity_bytes_per_s = np.empty(count)
        self.latency_s = np.empty(count)
        self.tier: list[str] = []
        roles = [graph.nodes[n].get("role") for n in self.nodes]
        self.roles: list[str | None] = roles  # each node's ``role`` attribute, in node order
        self.link_id: dict[tuple[int, int], int] = {}
        for e, (u, v, data) in enumerate(edges):
            ui, vi = self.node_index[u], self.node_index[v]
            for link, (a, b) in ((2 * e, (ui, vi)), (2 * e + 1, (vi, ui))):
                self.src[link], self.dst[link] = a, b
                self.capacity_bytes_per_s[link] = data["capacity_bytes_per_s"]
                self.latency_s[link] = data["latency_s"]
                self.link_id[(a, b)] = link
            self.tier += [str(data.get("tier", "link"))] * 2
        # a NIC (host) does not forward between accelerators: its links into one end a path there
        self.final_only = np.array(
            [
                roles[int(a)] == "host" and roles[int(b)] == "accelerator"
                for a, b in zip(self.src, self.dst, strict=True)
            ],
            dtype=bool,
        )
        self.neighbours: list[list[tuple[int, int]]] = [[] for _ in self.nodes]
        for link in range(count):
            self.neighbours[int(self.src[link])].append((int(self.dst[link]), link))
        order = np.argsort(self.src, kind="stable")
        self._csr_dst = self.dst[order]
        self._csr_link = order
        self._csr_ptr = np.searchsorted(self.src[order], np.arange(len(self.nodes) + 1))
        # out-links grouped by source node, each node's in link order (as ``neighbours``), and their ends
        self.out_links = order
        self.out_tail, self.out_head, self.out_final = self.src[order], self.dst[order], self.final_only[order]

    @property
    def count(self) -> int:
        """Number of directed links."""
        return int(self.src.size)

    def endpoints(self, link: int) -> tuple[Hashable, Hashable]:
        """The (from, to) node names of directed ``link``."""
        return self.nodes[int(self.src[link])], self.nodes[int(self.dst[link])]

    def links_of_path(self, path: list[int]) -> np.ndarray:
        """Directed link ids along a path given as node indices."""
        ids = self.link_id
        return np.fromiter((ids[(a, b)] for a, b in zip(path[:-1], path[1:], strict=True)), np.int64, len(path) - 1)

    def hop_distances(self, target: int, alive: np.ndarray) -> np.ndarray:
        """Hop count from every node to ``target`` over links with ``alive`` true (-1: unreachable).

        Breadth-first search over the reverse links, one numpy step per level; a ``final_only`` link
        (NIC into accelerator) is used only into ``target``.
        """
        dist = np.full(len(self.nodes), -1, dtype=np.int64)
        dist[target] = 0
        frontier = np.array([target], dtype=np.int64)
        level = 0
        while frontier.size:
            starts, ends = self._csr_ptr[frontier], self._csr_ptr[frontier + 1]
            lengths = ends - starts
            total = int(lengths.sum())
            offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
            # links out of the frontier, reversed: the neighbour reaches the frontier over its own link back.
            reverse = self._csr_link[offsets] ^ 1
            usable = alive[reverse] & ~(self.final_only[reverse] & (np.repeat(frontier, lengths) != target))
            neighbours = self._csr_dst[offsets][usable]
            seen = np.zeros(dist.size, dtype=bool)
            seen[neighbours[dist[neighbours] < 0]] = True
            fresh = np.flatnonzero(seen)
            level += 1
            dist[fresh] = level
            frontier = fresh
        return dist
