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
from typing import TYPE_CHECKING, Any

import numpy as np

from dcsim.network.links import LinkTable
from dcsim.network.routing.base import MASK64, MIX_A, MIX_B, NoRouteError

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

# scipy.sparse (~0.1 s to import) is imported where it is used: only graphs over the controller's
# ROUTE_TABLE_MAX_NODES are routed here, and every other run (a serving scenario on one node) never needs it.

INF = 1 << 40  # "unreachable" in integer distances (sums of a few of these stay exact)
#: Largest region the router takes; a graph with a larger one (a torus of hosts, no switches) keeps
#: per-destination tables. A DGX server is 25 nodes (8 GPUs, NVSwitch, 8 PCIe ports, 8 NICs).
MAX_REGION_NODES = 4096
#: Cached next-hop lists before the cache is emptied (bounds memory on long searches; routes do not change).
MAX_CACHED_HOPS = 1_000_000

# next nodes and the links to them, in link order (tuples of ints: the garbage collector stops tracking them)
Hops = tuple[tuple[int, ...], tuple[int, ...]]


class _Region:
    """One region: its node count, boundary switches (ascending), and its links as arrays of local node
    indices: internal ``(tail, head, final_only)``, entries from switches ``(switch, head, final_only)`` and
    exits to switches ``(tail, switch)``. Python adjacency and the distances out to each boundary switch
    are made on first use (a search touches few of a large fabric's regions)."""

    __slots__ = ("_entries", "_exits", "_into", "_links", "boundary", "size")

    def __init__(self, size: int, boundary: list[int], links: tuple[np.ndarray, ...]) -> None:
        self.size = size
        self.boundary = boundary
        self._links = links
        self._into: tuple[tuple[tuple[int, bool], ...], ...] | None = None
        self._entries: tuple[tuple[int, int, bool], ...] | None = None
        self._exits: tuple[tuple[int, ...], ...] | None = None

    @property
    def into(self) -> tuple[tuple[tuple[int, bool], ...], ...]:
        """Per local node, its in-links from the region: ``(tail, final_only)``."""
        if self._into is None:
            tail, head, final = self._links[:3]
            into: list[list[tuple[int, bool]]] = [[] for _ in range(self.size)]
            for u, v, f in zip(tail.tolist(), head.tolist(), final.tolist(), strict=True):
                into[v].append((u, f))
            self._into = tuple(tuple(links) for links in into)
        return self._into

    @property
    def entries(self) -> tuple[tuple[int, int, bool], ...]:
        """The links into the region from switches: ``(switch, local head, final_only)``."""
        if self._entries is None:
            switch, head, final = self._links[3:6]
            self._entries = tuple(zip(switch.tolist(), head.tolist(), final.tolist(), strict=True))
        return self._entries

    def exits(self) -> tuple[tuple[int, ...], ...]:
        """Per boundary switch, the hop count from each local node to it, staying in the region until the
        last hop and crossing no ``final_only`` link (INF where there is no such path)."""
        if self._exits is None:
            exits = []
            tails, switches = self._links[6].tolist(), self._links[7].tolist()
            for b in self.boundary:
                dist = [INF] * self.size
                queue: deque[int] = deque()
                for local, switch in zip(tails, switches, strict=True):
                    if switch == b and dist[local] == INF:
                        dist[local] = 1
                        queue.append(local)
                self._search(dist, queue, -1)
                exits.append(tuple(dist))
            self._exits = tuple(exits)
        return self._exits

    def inner(self, target: int) -> tuple[int, ...]:
        """Hop count from each local node to local node ``target`` within the region (``final_only`` links
        only into ``target``)."""
        dist = [INF] * self.size
        dist[target] = 0
        self._search(dist, deque([target]), target)
        return tuple(dist)

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
    inner: tuple[int, ...] | None
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
        order = members[np.argsort(region_of[members], kind="stable")]  # region by region, ascending nodes
        count = int(region_of.max()) + 1 if members.size else 0
        sizes = np.bincount(region_of[members], minlength=count)
        first = np.cumsum(sizes) - sizes
        local = np.zeros(n, dtype=np.int64)
        local[order] = np.arange(order.size) - np.repeat(first, sizes)
        self.local_of: list[int] = local.tolist()
        self.regions = self._wire(alive, is_switch, region_of, local, count, sizes)
        self._reduced = self._reduced_graph(switches.size, alive, is_switch)
        self._columns: dict[int, np.ndarray] = {}
        self._switch_dist: dict[tuple[tuple[int, int], ...], tuple[int, list[int]]] = {}
        self._destinations: dict[int, Destination] = {}
        self._single: list[bool] = [len(region.boundary) == 1 for region in self.regions]
        # next hops, by who shares them (see _hops_cache)
        self._shared: dict[int, Hops] = {}
        self._own: dict[int, Hops] = {}
        self._out: dict[int, Hops] = {}
        self._out_by_key: dict[int, Hops] = {}

    @classmethod
    def build(cls, links: LinkTable, alive: np.ndarray, roles: list[str | None]) -> RegionRouter | None:
        """The router for ``links`` with ``alive`` links, or None when the graph has no switches or a region
        larger than :data:`MAX_REGION_NODES` (per-destination tables serve those)."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

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

    def _wire(
        self,
        alive: np.ndarray,
        is_switch: np.ndarray,
        region_of: np.ndarray,
        local: np.ndarray,
        count: int,
        sizes: np.ndarray,
    ) -> list[_Region]:
        """The regions, each with its boundary switches and its live links (internal, in from switches,
        out to switches) in local indices, grouped with numpy."""
        links = self.links
        live = np.flatnonzero(alive)
        tail, head, final = links.src[live], links.dst[live], links.final_only[live]
        from_switch, to_switch = is_switch[tail], is_switch[head]

        def grouped(mask: np.ndarray, by: np.ndarray, *columns: np.ndarray) -> list[list[np.ndarray]]:
            keep = np.flatnonzero(mask)
            order = keep[np.argsort(region_of[by[keep]], kind="stable")]
            cuts = np.searchsorted(region_of[by[order]], np.arange(count + 1))
            picked = [column[order] for column in columns]
            return [[c[cuts[r] : cuts[r + 1]] for c in picked] for r in range(count)]

        internal = grouped(~from_switch & ~to_switch, head, local[tail], local[head], final)
        entries = grouped(from_switch & ~to_switch, head, tail, local[head], final)
        exits = grouped(~from_switch & to_switch, tail, local[tail], head)
        pairs = np.concatenate(
            (
                region_of[head[from_switch & ~to_switch]] * len(links.nodes) + tail[from_switch & ~to_switch],
                region_of[tail[~from_switch & to_switch]] * len(links.nodes) + head[~from_switch & to_switch],
            )
        )
        pairs = np.unique(pairs)
        owner, switch = pairs // len(links.nodes), pairs % len(links.nodes)
        cuts = np.searchsorted(owner, np.arange(count + 1)).tolist()
        switches = switch.tolist()
        return [
            _Region(int(sizes[r]), switches[cuts[r] : cuts[r + 1]], (*internal[r], *entries[r], *exits[r]))
            for r in range(count)
        ]

    def _reduced_graph(self, count: int, alive: np.ndarray, is_switch: np.ndarray) -> csr_matrix:
        """The switches' graph, transposed (row ``v``, column ``u`` for a way ``u -> v``): switch-to-switch
        links weigh 1, a crossing of a region from one boundary switch to another its hop count. Duplicate
        ways keep the lightest."""
        from scipy.sparse import csr_matrix

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
            from scipy.sparse.csgraph import dijkstra

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
        inner: tuple[int, ...] | None = None
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
            if found[0]:  # none: unreachable, which for a node of a one-switch region depends on the destination
                if len(cache) >= MAX_CACHED_HOPS:
                    cache.clear()
                cache[key] = found
        return found

    def _hops_cache(self, dest: Destination, node: int) -> tuple[dict[Any, Hops], Any]:
        """Where ``node``'s next hops towards ``dest`` are cached, and under which key. A switch off the
        destination's boundary: for every destination of the same key (its neighbours' distances are the
        key's switch distances and the ways out of their own regions). A node of a region with one boundary
        switch, other than the destination's: for every destination outside it that it reaches (the way
        out; "no next hop" is not cached). Of a region with several: for every destination outside it of
        the same key. Anything else: for this destination alone."""
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
        return self._out_by_key, dest.key_id * n + node

    def _scan(self, dest: Destination, node: int) -> Hops:
        """Next hops of ``node`` towards ``dest`` from its neighbours' distances. From a switch, a neighbour
        in a region with that switch as its only boundary (other than the destination's) is skipped: it is
        farther than the switch."""
        want = self.distance(dest, node) - 1
        alive, final, distance, target = self.alive_list, self.final_list, self.distance, dest.node
        region_of, single, position, switch_dist = self.region_of, self._single, self.switch_position, dest.switch_dist
        from_switch = region_of[node] < 0
        nodes: list[int] = []
        hop_links: list[int] = []
        for w, link in self.links.neighbours[node]:
            if not alive[link] or (final[link] and w != target):
                continue
            r = region_of[w]
            if r < 0:
                hops = switch_dist[position[w]]
            elif from_switch and single[r] and r != dest.region:
                continue
            else:
                hops = distance(dest, w)
            if hops == want:
                nodes.append(w)
                hop_links.append(link)
        return tuple(nodes), tuple(hop_links)

    def walk_many(self, src: list[int], dst: list[int], state: list[int]) -> tuple[list[int], list[int]]:
        """The ECMP routes of flows ``src[i] -> dst[i]`` with hash states ``state[i]``: at every node with
        several next hops, the one :func:`~dcsim.network.routing.base.mix64_step` of the state and the node
        picks (as ``Ecmp.route_one`` over a hop table). Returns each flow's link count and all their links,
        flow after flow. The cache look-ups of :meth:`next_hops` and the hash are inlined (the hot loop of
        a large plan search). Raises :class:`NoRouteError` for the first flow that has no route."""
        n = len(self.region_of)
        region_of, single = self.region_of, self._single
        shared, own, out, out_by_key = self._shared, self._own, self._out, self._out_by_key
        destinations, destination, next_hops = self._destinations, self.destination, self.next_hops
        lengths: list[int] = []
        links: list[int] = []
        append = links.append
        dest: Destination | None = None
        for source, target, flow_state in zip(src, dst, state, strict=True):
            if dest is None or dest.node != target:
                dest = destinations.get(target) or destination(target)
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
                    found = out.get(here) if single[r] else out_by_key.get(shared_at + here)
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
