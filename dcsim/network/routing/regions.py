"""Exact hop distances and equal-cost next hops on large datacenter graphs, without a table per destination.

A per-destination route table (:meth:`~dcsim.network.controller.Controller.hop_table`) searches the whole
graph: on 16,384 DGX H100 GPUs on a fat tree (53,405 nodes) that is ~24 ms and ~14 MB per destination
accelerator, and a training plan's collectives reach thousands of them. This module gets the same hop
distances, and so the same next hops, from two small parts:

- **Regions.** Removing the switches (role ``switch``) leaves the servers: connected groups of accelerators,
  NVSwitches, PCIe ports and NICs (a plain host alone). A region is entered and left only through its
  *boundary* switches. Within a region distances are searched on the region alone (a few dozen nodes).
- **Switch distances.** The hop distance between two switches over the whole graph is a shortest path
  over the switches, where a path may also cross a region from one of its boundary switches to another
  (an edge weighted by that crossing's hop count). Dijkstra's algorithm on that reduced graph (a few
  thousand nodes) gives one column (every switch's distance to one switch) in about a millisecond, and
  columns are kept per boundary switch.

Every shortest path to a destination ``d`` in region ``R`` enters ``R`` for the last time from a boundary
switch ``b`` and then stays in ``R``; so a switch's distance to ``d`` is ``min_b dist(s, b) + entry(b, d)``,
a region node's is the shortest way out of its region to a boundary switch plus that switch's distance
(or, inside ``R``, the way within ``R`` if shorter). These are exactly the breadth-first hop counts of
:meth:`~dcsim.network.links.LinkTable.hop_distances` (the ``final_only`` rule included: a NIC forwards
into an accelerator only when it is the destination), so the next hops, kept in link order, are exactly
:meth:`~dcsim.network.controller.Controller.next_hops` and ECMP picks the same routes. Destinations with
the same boundary switches and entry distances (the accelerators of one server, the servers under one
edge switch) share their switch distances and the next hops of every switch off their boundary.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from dcsim.network.links import LinkTable
from dcsim.network.routing.base import MASK64, MIX_A, MIX_B, NoRouteError, mix64_step

INF = 1 << 40  # "unreachable" in integer distances (sums of a few of these stay exact)
#: Largest region the router takes; a graph with a larger one (a torus of hosts, no switches) keeps
#: per-destination tables. A DGX server is 33 nodes (8 GPUs, NVSwitch, 8 PCIe ports, 8 NICs).
MAX_REGION_NODES = 4096
#: Cached next-hop lists before the cache is emptied (bounds memory on long searches; routes do not change).
MAX_CACHED_HOPS = 1_000_000

Hops = tuple[list[int], list[int]]  # next nodes and the links to them, in link order


class _Region:
    """One region: its nodes (global indices, ascending), boundary switches, in-links per local node
    ``(tail local index, link is final_only)``, entry links ``(switch, local head, final_only)`` and its
    distances out to each boundary switch (computed on first use)."""

    __slots__ = ("_exits", "boundary", "entries", "into", "nodes", "outs")

    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes
        self.boundary: list[int] = []
        self.into: list[list[tuple[int, bool]]] = [[] for _ in nodes]
        self.entries: list[tuple[int, int, bool]] = []
        self.outs: list[tuple[int, int]] = []  # (local tail, switch) of the links out of the region
        self._exits: list[list[int]] | None = None

    def exits(self) -> list[list[int]]:
        """Per boundary switch, the hop count from each local node to it, staying in the region until the
        last hop and crossing no ``final_only`` link (INF where there is no such path)."""
        if self._exits is None:
            self._exits = []
            for b in self.boundary:
                dist = [INF] * len(self.nodes)
                queue: deque[int] = deque()
                for local, switch in self.outs:
                    if switch == b and dist[local] == INF:
                        dist[local] = 1
                        queue.append(local)
                self._search(dist, queue, -1)
                self._exits.append(dist)
        return self._exits

    def inner(self, target: int) -> list[int]:
        """Hop count from each local node to local node ``target`` within the region (``final_only`` links
        only into ``target``)."""
        dist = [INF] * len(self.nodes)
        dist[target] = 0
        self._search(dist, deque([target]), target)
        return dist

    def _search(self, dist: list[int], queue: deque[int], target: int) -> None:
        """Breadth-first search backwards over the region's links from the seeded ``queue``."""
        into = self.into
        while queue:
            x = queue.popleft()
            step = dist[x] + 1
            for w, final in into[x]:
                if dist[w] == INF and (not final or x == target):
                    dist[w] = step
                    queue.append(w)


@dataclass(frozen=True)
class Destination:
    """What routing to one node needs: its region (-1 for a switch) and distances within it, the key it
    shares with destinations entered the same way (boundary switches and entry hop counts) and every
    switch's hop count to it (by switch position, see :attr:`RegionRouter.switch_position`)."""

    node: int
    region: int
    inner: list[int] | None
    key: tuple[tuple[int, int], ...]
    switch_dist: list[int]
    key_id: int  # the key's number (destinations sharing a key share it)
    edge: frozenset[int]  # the boundary switches (the key's)


class RegionRouter:
    """Hop distances and ECMP next hops to any node over the links that are ``alive`` (see the module
    docstring). Build it with :meth:`build`, which returns None where the graph has no such structure."""

    def __init__(self, links: LinkTable, alive: np.ndarray, is_switch: np.ndarray, labels: np.ndarray) -> None:
        self.links = links
        n = len(links.nodes)
        self.alive_list: list[bool] = alive.tolist()
        self.final_list: list[bool] = links.final_only.tolist()
        switches = np.flatnonzero(is_switch)
        position = np.full(n, -1, dtype=np.int64)
        position[switches] = np.arange(switches.size)
        self.switch_position: list[int] = position.tolist()
        region_of = np.full(n, -1, dtype=np.int64)
        members = np.flatnonzero(~is_switch)
        _, region_of[members] = np.unique(labels[members], return_inverse=True)
        self.region_of: list[int] = region_of.tolist()
        order = members[np.argsort(region_of[members], kind="stable")]
        cuts = np.flatnonzero(np.diff(region_of[order])) + 1
        self.regions = [_Region(group.tolist()) for group in np.split(order, cuts)] if order.size else []
        local = np.zeros(n, dtype=np.int64)
        for region in self.regions:
            local[region.nodes] = np.arange(len(region.nodes))
        self.local_of: list[int] = local.tolist()
        self._wire(alive, is_switch)
        self._reduced = self._reduced_graph(switches.size, alive, is_switch)
        self._columns: dict[int, np.ndarray] = {}
        self._switch_dist: dict[tuple[tuple[int, int], ...], tuple[int, list[int]]] = {}
        self._destinations: dict[int, Destination] = {}
        self._single: list[bool] = [len(region.boundary) == 1 for region in self.regions]
        # next hops, by who shares them (see _hops_cache)
        self._shared: dict[int, Hops] = {}
        self._own: dict[int, Hops] = {}
        self._out: dict[int, Hops] = {}
        self._out_multi: dict[tuple[int, ...], Hops] = {}

    @classmethod
    def build(cls, links: LinkTable, alive: np.ndarray, roles: list[object]) -> RegionRouter | None:
        """The router for ``links`` with ``alive`` links, or None when the graph has no switches or a region
        larger than :data:`MAX_REGION_NODES` (per-destination tables serve those)."""
        is_switch = np.array([role == "switch" for role in roles], dtype=bool)
        if not is_switch.any():
            return None
        inside = alive & ~is_switch[links.src] & ~is_switch[links.dst]
        n = len(links.nodes)
        graph = csr_matrix((np.ones(int(inside.sum())), (links.src[inside], links.dst[inside])), shape=(n, n))
        _, labels = connected_components(graph, directed=True, connection="weak")
        sizes = np.bincount(labels[~is_switch])
        if sizes.size and int(sizes.max()) > MAX_REGION_NODES:
            return None
        return cls(links, alive, is_switch, labels)

    def _wire(self, alive: np.ndarray, is_switch: np.ndarray) -> None:
        """Fill each region's in-links, entry and exit links and boundary switches from the link table."""
        links, regions, local, region_of = self.links, self.regions, self.local_of, self.region_of
        final = self.final_list
        live = np.flatnonzero(alive)
        tails, heads = links.src[live].tolist(), links.dst[live].tolist()
        switch = is_switch.tolist()
        boundary: list[set[int]] = [set() for _ in regions]
        for link, u, v in zip(live.tolist(), tails, heads, strict=True):
            if switch[u]:
                if not switch[v]:
                    region = regions[region_of[v]]
                    region.entries.append((u, local[v], final[link]))
                    boundary[region_of[v]].add(u)
            elif switch[v]:
                regions[region_of[u]].outs.append((local[u], v))
                boundary[region_of[u]].add(v)
            else:
                regions[region_of[v]].into[local[v]].append((local[u], final[link]))
        for region, found in zip(regions, boundary, strict=True):
            region.boundary = sorted(found)

    def _reduced_graph(self, count: int, alive: np.ndarray, is_switch: np.ndarray) -> csr_matrix:
        """The switches' graph, transposed (row ``v``, column ``u`` for a way ``u -> v``): switch-to-switch
        links weigh 1, a crossing of a region from one boundary switch to another its hop count. Duplicate
        ways keep the lightest."""
        links, position = self.links, np.asarray(self.switch_position)
        core = alive & is_switch[links.src] & is_switch[links.dst]
        rows = [position[links.dst[core]]]
        cols = [position[links.src[core]]]
        weights = [np.ones(int(core.sum()))]
        for region in self.regions:
            if len(region.boundary) < 2:
                continue
            exits = region.exits()
            for j, b2 in enumerate(region.boundary):
                best: dict[int, int] = {}
                for b1, head, final in region.entries:
                    if b1 != b2 and not final and exits[j][head] < INF:
                        best[b1] = min(best.get(b1, INF), 1 + exits[j][head])
                for b1, hops in best.items():
                    rows.append(np.array([position[b2]]))
                    cols.append(np.array([position[b1]]))
                    weights.append(np.array([float(hops)]))
        row, col, weight = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
        order = np.lexsort((weight, col, row))
        row, col, weight = row[order], col[order], weight[order]
        first = np.ones(row.size, dtype=bool)
        first[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
        return csr_matrix((weight[first], (row[first], col[first])), shape=(count, count))

    def _column(self, switches: list[int]) -> list[np.ndarray]:
        """Every switch's hop count (INF: unreachable) to each of ``switches`` (cached per switch)."""
        missing = sorted({s for s in switches if s not in self._columns})
        if missing:
            position = self.switch_position
            found = dijkstra(self._reduced, directed=True, indices=[position[s] for s in missing])
            found = np.atleast_2d(found)
            for s, row in zip(missing, found, strict=True):
                column = np.full(row.size, INF, dtype=np.int64)
                reached = np.isfinite(row)
                column[reached] = row[reached].astype(np.int64)
                self._columns[s] = column
        return [self._columns[s] for s in switches]

    def destination(self, node: int) -> Destination:
        """The routing state of destination ``node`` (cached)."""
        found = self._destinations.get(node)
        if found is not None:
            return found
        r = self.region_of[node]
        inner: list[int] | None = None
        if r < 0:
            key: tuple[tuple[int, int], ...] = ((node, 0),)
        else:
            region = self.regions[r]
            inner = region.inner(self.local_of[node])
            entry = dict.fromkeys(region.boundary, INF)
            for switch, head, final in region.entries:
                if (not final or head == self.local_of[node]) and inner[head] + 1 < entry[switch]:
                    entry[switch] = inner[head] + 1
            key = tuple(entry.items())
        shared = self._switch_dist.get(key)
        if shared is None:
            reach = [(s, e) for s, e in key if e < INF]
            best = np.full(len(self._reduced.indptr) - 1, INF, dtype=np.int64)
            for (_, e), column in zip(reach, self._column([s for s, _ in reach]), strict=True):
                np.minimum(best, column + e, out=best)
            best[best >= INF] = INF
            shared = self._switch_dist[key] = (len(self._switch_dist), best.tolist())
        if len(self._destinations) >= MAX_CACHED_HOPS:
            self._destinations.clear()
        edge = frozenset(s for s, _ in key)
        found = self._destinations[node] = Destination(node, r, inner, key, shared[1], shared[0], edge)
        return found

    def distance(self, dest: Destination, node: int) -> int:
        """Hop count from ``node`` to ``dest`` over live links (INF: unreachable)."""
        r = self.region_of[node]
        if r < 0:
            return dest.switch_dist[self.switch_position[node]]
        region = self.regions[r]
        i = self.local_of[node]
        best = dest.inner[i] if r == dest.region and dest.inner is not None else INF
        switch_dist, position = dest.switch_dist, self.switch_position
        for b, out in zip(region.boundary, region.exits(), strict=True):
            hops = out[i] + switch_dist[position[b]]
            if hops < best:
                best = hops
        return min(best, INF)

    def next_hops(self, dest: Destination, node: int) -> Hops:
        """Neighbours of ``node`` one hop closer to ``dest`` and the links to them, in link order (exactly
        :meth:`~dcsim.network.controller.Controller.next_hops`), cached (:meth:`_hops_cache` says for whom)."""
        cache, key = self._hops_cache(dest, node)
        found = cache.get(key)
        if found is None:
            found = self._scan(dest, node)
            if len(cache) >= MAX_CACHED_HOPS:
                cache.clear()
            cache[key] = found
        return found

    def _hops_cache(self, dest: Destination, node: int) -> tuple[dict[Any, Hops], Any]:
        """Where ``node``'s next hops towards ``dest`` are cached, and under which key. A switch off the
        destination's boundary: for every destination of the same key (its neighbours' distances are the
        key's switch distances and the ways out of their own regions). A node of a region with one boundary
        switch, other than the destination's: for every destination outside it (the way out). Of a region
        with several: for every destination whose switch distances differ by the same amounts across the
        region's boundary. Anything else: for this destination alone."""
        r = self.region_of[node]
        n = len(self.region_of)
        if r < 0:
            if node in dest.edge:
                return self._own, dest.node * n + node
            return self._shared, dest.key_id * n + node
        if r == dest.region:
            return self._own, dest.node * n + node
        if self._single[r]:
            return self._out, node
        switch_dist, position = dest.switch_dist, self.switch_position
        hops = [switch_dist[position[b]] for b in self.regions[r].boundary]
        least = min(hops)
        return self._out_multi, (node, *[h - least for h in hops])

    def _scan(self, dest: Destination, node: int) -> Hops:
        """Next hops of ``node`` towards ``dest`` from its neighbours' distances."""
        want = self.distance(dest, node) - 1
        alive, final, distance, target = self.alive_list, self.final_list, self.distance, dest.node
        nodes: list[int] = []
        hop_links: list[int] = []
        for w, link in self.links.neighbours[node]:
            if alive[link] and (w == target or not final[link]) and distance(dest, w) == want:
                nodes.append(w)
                hop_links.append(link)
        return nodes, hop_links

    def walk(self, dest: Destination, src: int, state: int) -> list[int]:
        """The links of the ECMP route from ``src`` to ``dest``: at every node with several next hops the
        one :func:`~dcsim.network.routing.base.mix64_step` of the flow's hash ``state`` and the node picks
        (as ``Ecmp.route_one`` over a hop table). Raises :class:`NoRouteError` where ``src`` cannot reach it."""
        target, region, edge, n = dest.node, dest.region, dest.edge, len(self.region_of)
        shared_at, own_at = dest.key_id * n, target * n
        region_of, single = self.region_of, self._single
        shared, own, out = self._shared, self._own, self._out
        links: list[int] = []
        here = src
        while here != target:  # the cache look-ups of next_hops, inlined (the hot loop of a large search)
            r = region_of[here]
            if r < 0:
                found = own.get(own_at + here) if here in edge else shared.get(shared_at + here)
            elif r == region:
                found = own.get(own_at + here)
            else:
                found = out.get(here) if single[r] else None
            nodes, hop_links = found or self.next_hops(dest, here)
            count = len(nodes)
            if count == 0:
                raise NoRouteError(f"no route from {self.links.nodes[src]} to {self.links.nodes[target]}")
            i = mix64_step(state, here) % count if count > 1 else 0
            links.append(hop_links[i])
            here = nodes[i]
        return links

    def walk_many(self, src: list[int], dst: list[int], state: list[int]) -> tuple[list[int], list[int]]:
        """:meth:`walk` for many flows (hash states ``state``): each flow's link count and all their links,
        flow after flow; the same loop with its look-ups and hash inlined."""
        n = len(self.region_of)
        region_of, single = self.region_of, self._single
        shared, own, out = self._shared, self._own, self._out
        destination, next_hops = self.destination, self.next_hops
        lengths: list[int] = []
        links: list[int] = []
        append = links.append
        dest: Destination | None = None
        for source, target, flow_state in zip(src, dst, state, strict=True):
            if dest is None or dest.node != target:
                dest = destination(target)
                region, edge = dest.region, dest.edge
                shared_at, own_at = dest.key_id * n, target * n
            first = len(links)
            here = source
            while here != target:
                r = region_of[here]
                if r < 0:
                    found = own.get(own_at + here) if here in edge else shared.get(shared_at + here)
                elif r == region:
                    found = own.get(own_at + here)
                else:
                    found = out.get(here) if single[r] else None
                nodes, hop_links = found or next_hops(dest, here)
                count = len(nodes)
                if count > 1:  # mix64_step(flow_state, here), inlined
                    mixed = (flow_state ^ here) * MIX_A & MASK64
                    mixed = (mixed ^ (mixed >> 31)) * MIX_B & MASK64
                    i = (mixed ^ (mixed >> 29)) % count
                elif count:
                    i = 0
                else:
                    raise NoRouteError(f"no route from {self.links.nodes[source]} to {self.links.nodes[target]}")
                append(hop_links[i])
                here = nodes[i]
            lengths.append(len(links) - first)
        return lengths, links
