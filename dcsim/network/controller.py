"""The SDN controller: installs a path per flow with a routing policy and reroutes around failed links."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from dcsim.network.links import LinkTable
from dcsim.network.routing import NoRouteError, RoutingPolicy, make_policy
from dcsim.network.routing.regions import RegionRouter

#: Graphs with more nodes than this route ECMP flows with a :class:`RegionRouter` (no table per destination)
#: where their structure allows. A table costs ~0.45 us and ~270 B per node of the graph (measured on a
#: 53,405-node graph: 23.8 ms and 14 MB) against ~6 us per flow for a region walk, so tables pay off only
#: with hundreds of flows per destination: network benchmarks on small fabrics (a ring all-reduce over a
#: k=16 fat tree's 1,024 hosts: ~2,000 flows per destination), not a training plan's collectives (a few
#: per destination, over thousands of destinations). Smaller graphs keep the tables (vectorized).
ROUTE_TABLE_MAX_NODES = 5_000


class HopTable:
    """Next hops of every node towards one destination over live links, in CSR form: the hops of node
    ``u`` are ``node[start[u] : start[u] + count[u]]`` over links ``link[...]``, in the order of
    :meth:`Controller.next_hops`. ``dist`` is the hop count to the destination (-1: unreachable). The
    ``*_list`` attributes are the same as Python lists, for per-flow walks."""

    __slots__ = (
        "count",
        "count_list",
        "dist",
        "dist_list",
        "link",
        "link_list",
        "node",
        "node_list",
        "start",
        "start_list",
    )

    def __init__(self, dist: np.ndarray, start: np.ndarray, count: np.ndarray, node: np.ndarray, link: np.ndarray):
        self.dist, self.start, self.count, self.node, self.link = dist, start, count, node, link
        self.dist_list: list[int] = dist.tolist()
        self.count_list: list[int] = count.tolist()
        self.node_list: list[int] = node.tolist()
        self.link_list: list[int] = link.tolist()
        self.start_list: list[int] = start.tolist()


@dataclass(frozen=True)
class Route:
    """A path: directed link ids in order, node indices, and the sum of link latencies (s)."""

    links: np.ndarray
    nodes: tuple[int, ...]
    latency_s: float


class Controller:
    """Holds the network's link table and link state and routes flows with a policy.

    ``policy`` is a registered name (``shortest_path``, ``ecmp``, ``least_loaded``), ``module:Class`` or a
    :class:`~dcsim.network.routing.RoutingPolicy` subclass; ``policy_params`` go to its constructor.
    ``seed`` feeds the ECMP hash (and any policy that wants it), so paths are a function of the run's seed.
    ``link_flows`` counts the flows installed on each directed link (kept by the flow simulator).
    ``route_tables``: True routes ECMP flows with per-destination hop tables, False with a
    :class:`~dcsim.network.routing.regions.RegionRouter` (where the graph has switches and small regions
    between them; tables otherwise), None (default) picks by the graph's size
    (:data:`ROUTE_TABLE_MAX_NODES`). Both give the same routes.
    """

    def __init__(
        self,
        graph: nx.Graph,
        policy: str | type[RoutingPolicy] = "ecmp",
        seed: int = 0,
        policy_params: Mapping[str, Any] | None = None,
        route_tables: bool | None = None,
    ) -> None:
        self.graph = graph
        self.links = LinkTable(graph)
        self.seed = int(seed)
        self.alive = np.ones(self.links.count, dtype=bool)
        self.link_flows = np.zeros(self.links.count, dtype=np.int64)
        self.version = 0
        self._distances: dict[int, list[int]] = {}
        self._next_hops: dict[int, dict[int, list[int]]] = {}
        self._k_paths: dict[tuple[int, int, int], list[list[int]]] = {}
        self._hop_tables: dict[int, HopTable] = {}
        self._leaf_links: list[int] | None = None
        self.route_tables = len(self.links.nodes) <= ROUTE_TABLE_MAX_NODES if route_tables is None else route_tables
        self._region_router: RegionRouter | bool | None = None  # False: built, and not applicable
        self._live_capacity: tuple[tuple[int, float], np.ndarray, list[float], list[float]] | None = None
        self.latency_list: list[float] = self.links.latency_s.tolist()
        self.policy = make_policy(self, policy, policy_params or {})

    def index(self, node: Hashable) -> int:
        """Index of a node name (KeyError naming it otherwise)."""
        try:
            return self.links.node_index[node]
        except KeyError:
            raise KeyError(f"no node {node!r} in the network") from None

    def name(self, index: int) -> Hashable:
        """Name of the node with this index."""
        return self.links.nodes[index]

    def distances(self, dst: int) -> list[int]:
        """Hop count from every node to ``dst`` over live links (-1 where unreachable), cached."""
        dist = self._distances.get(dst)
        if dist is None:
            dist = self.links.hop_distances(dst, self.alive).tolist()
            self._distances[dst] = dist
        return dist

    def next_hops(self, node: int, dst: int) -> list[int]:
        """Neighbours of ``node`` one hop closer to ``dst`` over live links (cached per destination)."""
        cache = self._next_hops.setdefault(dst, {})
        hops = cache.get(node)
        if hops is None:
            dist, alive, final = self.distances(dst), self.alive, self.links.final_only
            want = dist[node] - 1
            hops = [
                v
                for v, link in self.links.neighbours[node]
                if dist[v] == want and alive[link] and (v == dst or not final[link])
            ]
            cache[node] = hops
        return hops

    def hop_table(self, dst: int) -> HopTable:
        """Next hops of every node towards ``dst`` over live links (the vectorized :meth:`next_hops`), cached."""
        table = self._hop_tables.get(dst)
        if table is None:
            links = self.links
            dist_list = self.distances(dst)
            dist = np.asarray(dist_list, dtype=np.int64)
            out, tail, head = links.out_links, links.out_tail, links.out_head
            usable = (dist[head] == dist[tail] - 1) & self.alive[out] & ((head == dst) | ~links.out_final)
            count = np.bincount(tail[usable], minlength=len(links.nodes))
            start = np.cumsum(count) - count
            table = HopTable(dist, start, count, head[usable], out[usable])
            self._hop_tables[dst] = table
        return table

    def leaf_links(self) -> list[int]:
        """Per node, its only live link in when that link's tail is where every route to the node ends
        (-1 otherwise), cached until a link changes state.

        A node with one live link ``w -> node`` (a host on its switch) is reached only through ``w``, and
        every node other than ``w`` has the same next hops towards it as towards ``w`` (unless a link into
        ``w`` is ``final_only``); so its routes are ``w``'s routes plus that link, and need no search of
        their own."""
        if self._leaf_links is None:
            links, alive = self.links, self.alive
            out_degree = np.bincount(links.src[alive], minlength=len(links.nodes))
            final_into = np.bincount(links.dst[links.final_only], minlength=len(links.nodes)) > 0
            leaf = np.full(len(links.nodes), -1, dtype=np.int64)
            inward = np.flatnonzero(alive & (out_degree[links.dst] == 1) & alive[np.arange(links.count) ^ 1])
            inward = inward[~final_into[links.src[inward]]]
            leaf[links.dst[inward]] = inward
            self._leaf_links = leaf.tolist()
        return self._leaf_links

    def live_capacity(self, saturated: float) -> tuple[np.ndarray, list[float], list[float]]:
        """Per directed link, its capacity (bytes/s) where it is up and 0 where it is down, as an array and a
        list, and ``capacity * (1 - saturated)`` as a list; cached until a link changes (every flow simulator
        on this controller reads the same lists, which no one writes)."""
        if self._live_capacity is None or self._live_capacity[0] != (self.version, saturated):
            capacity = np.where(self.alive, self.links.capacity_bytes_per_s, 0.0)
            values = capacity.tolist()
            self._live_capacity = ((self.version, saturated), capacity, values, [c * (1 - saturated) for c in values])
        return self._live_capacity[1:]

    def region_router(self) -> RegionRouter | None:
        """The region router over the live links when this controller routes without per-destination
        tables and the graph allows it (None otherwise), built on first use and after a link changes."""
        if self.route_tables or self._region_router is False:
            return None
        if self._region_router is None:
            self._region_router = RegionRouter.build(self.links, self.alive, self.links.roles) or False
        return self._region_router if isinstance(self._region_router, RegionRouter) else None

    def k_shortest_paths(self, src: int, dst: int, k: int) -> list[list[int]]:
        """Up to ``k`` shortest simple paths by hop count over live links (Yen's algorithm), cached."""
        cached = self._k_paths.get((src, dst, k))
        if cached is None:
            if self.distances(dst)[src] < 0:
                raise NoRouteError(f"no route from {self.name(src)} to {self.name(dst)}")
            dead = {self.links.endpoints(int(link)) for link in np.flatnonzero(~self.alive)}
            view = nx.restricted_view(self.graph, [], dead) if dead else self.graph
            paths = (
                [self.index(n) for n in path] for path in nx.shortest_simple_paths(view, self.name(src), self.name(dst))
            )
            cached = list(itertools.islice((p for p in paths if self._no_hairpin(p)), k))
            self._k_paths[(src, dst, k)] = cached
        return cached

    def _no_hairpin(self, path: list[int]) -> bool:
        """True unless the path crosses a ``final_only`` link (NIC into accelerator) before its end."""
        return not self.links.final_only[self.links.links_of_path(path[:-1])].any()

    def route_index(self, src: int, dst: int, key: int) -> Route:
        """The route the policy picks for a flow ``src`` -> ``dst`` (node indices) with hash ``key``."""
        nodes = [src] if src == dst else self.policy.path(src, dst, key)
        links = self.links.links_of_path(nodes)
        return Route(links, tuple(nodes), float(self.links.latency_s[links].sum()))

    def route(self, src: Hashable, dst: Hashable, key: int = 0) -> Route:
        """The route for a flow between two node names."""
        return self.route_index(self.index(src), self.index(dst), key)

    def _set_link(self, u: Hashable, v: Hashable, up: bool) -> np.ndarray:
        ui, vi = self.index(u), self.index(v)
        if (ui, vi) not in self.links.link_id:
            raise KeyError(f"no link {u}-{v} in the network")
        ids = np.array([self.links.link_id[(ui, vi)], self.links.link_id[(vi, ui)]])
        self.alive[ids] = up
        self.version += 1
        self._distances.clear()
        self._next_hops.clear()
        self._k_paths.clear()
        self._hop_tables.clear()
        self._leaf_links = None
        self._region_router = None
        return ids

    def fail_link(self, u: Hashable, v: Hashable) -> np.ndarray:
        """Take link ``u``-``v`` down (both directions); returns its two directed link ids."""
        return self._set_link(u, v, False)

    def restore_link(self, u: Hashable, v: Hashable) -> np.ndarray:
        """Bring link ``u``-``v`` back up; returns its two directed link ids."""
        return self._set_link(u, v, True)
