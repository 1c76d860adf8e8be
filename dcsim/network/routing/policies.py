"""The built-in routing policies: ``shortest_path``, ``ecmp``, ``adaptive`` (packet spraying) and
``least_loaded``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dcsim.network.routing.base import (
    MASK64,
    MIX_START,
    NoRouteError,
    Path,
    RoutingPolicy,
    mix64,
    mix64_array,
    mix64_step,
    register_routing_policy,
)
from dcsim.network.routing.regions import RegionRouter

SEQUENTIAL_SUM = 8  # numpy sums fewer values than this one after another (pairwise from here on)

if TYPE_CHECKING:
    from dcsim.network.controller import Controller


@register_routing_policy("shortest_path")
class ShortestPath(RoutingPolicy):
    """One fixed shortest path (hop count) per (src, dst): at every hop the first equal-cost next hop."""

    def path(self, src: int, dst: int, key: int) -> Path:
        dist = self.controller.distances(dst)
        if dist[src] < 0:
            raise NoRouteError(f"no route from {self.controller.name(src)} to {self.controller.name(dst)}")
        path = [src]
        while path[-1] != dst:
            path.append(self.controller.next_hops(path[-1], dst)[0])
        return path


@register_routing_policy("ecmp")
class Ecmp(RoutingPolicy):
    """Equal-cost multi-path: every switch hashes the flow's key (with the run's seed and its own id)
    onto one of its equal-cost next hops, as hardware ECMP hashes a flow's 5-tuple. Collisions of large
    flows on one link are thus possible, as in real networks."""

    _seed_state: tuple[int | None, int] = (None, 0)  # (controller seed, mix64 state after hashing it)

    def path(self, src: int, dst: int, key: int) -> Path:
        dist = self.controller.distances(dst)
        if dist[src] < 0:
            raise NoRouteError(f"no route from {self.controller.name(src)} to {self.controller.name(dst)}")
        seed = self.controller.seed
        path = [src]
        while path[-1] != dst:
            here = path[-1]
            hops = self.controller.next_hops(here, dst)
            path.append(hops[mix64(seed, key, here) % len(hops)] if len(hops) > 1 else hops[0])
        return path

    # The same walk over the controller's per-destination hop tables, without building node paths: one
    # flow in plain Python, many flows vectorized (one numpy step per hop). A subclass overriding ``path``
    # gets the generic versions. Latencies are summed in numpy's order, so routes match bit for bit.
    def route_one(self, src: int, dst: int, key: int) -> tuple[list[int], float]:
        if type(self).path is not Ecmp.path:
            return super().route_one(src, dst, key)
        if src == dst:
            return [], 0.0
        router = self.controller.region_router()
        if router is not None:
            return self._route_regions(router, src, dst, key)
        last = self.controller.leaf_links()[dst]
        target = dst if last < 0 else int(self.controller.links.src[last])  # route to the leaf's switch
        table = self.controller.hop_table(target)
        if table.dist_list[src] < 0:
            raise NoRouteError(f"no route from {self.controller.name(src)} to {self.controller.name(dst)}")
        state = self._hash_state(key)
        count, start, node, link = table.count_list, table.start_list, table.node_list, table.link_list
        links: list[int] = []
        here = src
        while here != target:
            hops = count[here]
            i = start[here] + (mix64_step(state, here) % hops if hops > 1 else 0)
            links.append(link[i])
            here = node[i]
        if last >= 0:
            links.append(last)
        return links, self._latency(links)

    def _latency(self, links: list[int]) -> float:
        """A path's latency (s), summed in numpy's order (:data:`SEQUENTIAL_SUM`)."""
        if len(links) >= SEQUENTIAL_SUM:
            return float(self.controller.links.latency_s[links].sum())
        latency = self.controller.latency_list
        total = 0.0
        for lk in links:
            total += latency[lk]
        return total

    def _hash_state(self, key: int) -> int:
        """The hash state after the run's seed and the flow's key (the seed's part kept for the next flows)."""
        seed = self.controller.seed
        if self._seed_state[0] != seed:
            self._seed_state = (seed, mix64_step(MIX_START, seed))
        return mix64_step(self._seed_state[1], key)

    def _route_regions(self, router: RegionRouter, src: int, dst: int, key: int) -> tuple[list[int], float]:
        """The walk of :meth:`route_one` over a :class:`RegionRouter`'s next hops (no per-destination table)."""
        _, links = router.walk_many([src], [dst], [self._hash_state(key)])
        return links, self._latency(links)

    def route_links(
        self, src: np.ndarray, dst: np.ndarray, key: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if type(self).path is not Ecmp.path:
            return super().route_links(src, dst, key)
        controller = self.controller
        router = controller.region_router()
        if router is not None:  # one walk per flow (a large graph: no table per destination)
            seed = np.full(src.size, controller.seed & MASK64, dtype=np.uint64)
            state = mix64_array(np.full(src.size, MIX_START, dtype=np.uint64), seed)
            state = mix64_array(state, key.astype(np.uint64))
            lengths, walked = router.walk_many(src.tolist(), dst.tolist(), state.tolist())
            count = np.asarray(lengths, dtype=np.int64)
            flow = np.repeat(np.arange(src.size), count)
            return self._with_latency(flow, np.asarray(walked, dtype=np.int64), src.size)
        n = src.size
        last = np.asarray(controller.leaf_links(), dtype=np.int64)[dst] if n else np.zeros(0, dtype=np.int64)
        leaf = (last >= 0) & (src != dst)
        goal = np.where(leaf, controller.links.src[np.maximum(last, 0)], dst)  # a leaf's switch, else dst
        targets, row = np.unique(goal, return_inverse=True)
        tables = [controller.hop_table(d) for d in targets.tolist()]
        dist = np.stack([t.dist for t in tables]) if tables else np.zeros((0, 0), dtype=np.int64)
        unreachable = np.flatnonzero((dist[row, src] < 0) & (src != dst)) if n else np.zeros(0, dtype=np.int64)
        # (a leaf's switch reaches the leaf: the leaf is unreachable exactly when its switch is)
        if unreachable.size:
            first = int(unreachable[0])
            raise NoRouteError(
                f"no route from {controller.name(int(src[first]))} to {controller.name(int(dst[first]))}"
            )
        if n:
            sizes = np.array([t.node.size for t in tables], dtype=np.int64)
            base = np.cumsum(sizes) - sizes
            start = np.stack([t.start for t in tables]) + base[:, None]
            count = np.stack([t.count for t in tables])
            node = np.concatenate([t.node for t in tables])
            link = np.concatenate([t.link for t in tables])
        state = np.full(n, MIX_START, dtype=np.uint64)
        state = mix64_array(state, np.full(n, controller.seed & MASK64, dtype=np.uint64))
        state = mix64_array(state, key.astype(np.uint64))
        here = src.copy()
        moving = np.flatnonzero(here != goal)
        flows, hops = [], []
        while moving.size:
            at, tab = here[moving], row[moving]
            choices, i = count[tab, at], start[tab, at]
            multi = np.flatnonzero(choices > 1)
            if multi.size:
                hashed = mix64_array(state[moving[multi]], at[multi].astype(np.uint64))
                i[multi] += (hashed % choices[multi].astype(np.uint64)).astype(np.int64)
            flows.append(moving)
            hops.append(link[i])
            reached = node[i]
            here[moving] = reached
            moving = moving[reached != goal[moving]]
        ends = np.flatnonzero(leaf)
        flows.append(ends)
        hops.append(last[ends])
        ent_flow = np.concatenate(flows)
        ent_link = np.concatenate(hops)
        order = np.argsort(ent_flow, kind="stable")
        return self._with_latency(ent_flow[order], ent_link[order], n)

    def _with_latency(
        self, ent_flow: np.ndarray, links: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR routes and latencies (s, summed as :meth:`route_one` sums them) of ``n`` flows from their
        links in order, ``ent_flow`` naming each one's flow (ascending)."""
        lengths = np.bincount(ent_flow, minlength=n)
        ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        latency_s = self.controller.links.latency_s
        latency = np.bincount(ent_flow, weights=latency_s[links], minlength=n).astype(float)
        for f in np.flatnonzero(lengths >= SEQUENTIAL_SUM).tolist():  # numpy sums these pairwise
            latency[f] = float(latency_s[links[ptr[f] : ptr[f + 1]]].sum())
        return ptr, links.astype(np.int64), latency


@register_routing_policy("least_loaded")
class LeastLoadedRouting(RoutingPolicy):
    """Among the ``k`` shortest simple paths (Yen's algorithm via networkx), the one whose busiest link
    would give the new flow the largest share: minimise max over links of (flows on it + 1) / capacity.
    Ties go to the shorter path, then to the earlier one. Depends on load, so it is not ``static``."""

    static = False

    def __init__(self, controller: Controller, k: int = 8, **params: Any) -> None:
        super().__init__(controller, **params)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"least_loaded: k must be an integer >= 1, got {k!r}")
        self.k = k

    def candidates(self, src: int, dst: int) -> list[Path]:
        return self.controller.k_shortest_paths(src, dst, self.k)

    def choose(self, candidates: list[Path], key: int) -> Path:
        links = self.controller.links
        load = self.controller.link_flows
        best, best_score = candidates[0], (float("inf"), 0)
        for path in candidates:
            ids = links.links_of_path(path)
            worst = float(((load[ids] + 1) / links.capacity_bytes_per_s[ids]).max()) if ids.size else 0.0
            score = (worst, len(path))
            if score < best_score:
                best, best_score = path, score
        return best


@register_routing_policy("adaptive")
class Adaptive(RoutingPolicy):
    """Adaptive routing as per-packet spraying (InfiniBand adaptive routing, Spectrum-X, the packet
    spraying of Dixit et al., "On the impact of packet spraying in data center networks", INFOCOM 2013),
    modelled at flow level as even splitting: every switch sends an equal share of the flow's bytes to each
    of its equal-cost next hops, so the flow loads all its shortest paths at once. On a symmetric Clos
    fabric (leaf-spine, fat-tree, rail-optimized) that is an equal share per equal-cost path.

    The flow's rate is one number; a link carrying the fraction ``f`` of the flow carries ``f`` times that
    rate (see :class:`~dcsim.network.flows.FlowSimulator`). Reordering, per-packet load feedback and
    congestion signalling are not modelled. ``path`` (a single route, for :meth:`Controller.route`) is the
    first equal-cost path."""

    multipath = True

    def __init__(self, controller: Controller, **params: Any) -> None:
        super().__init__(controller, **params)
        self._splits: dict[tuple[int, int], tuple[list[int], list[float], float]] = {}
        self._version = controller.version

    def split(self, src: int, dst: int, key: int) -> tuple[list[int], list[float], float]:
        controller = self.controller
        if self._version != controller.version:  # links failed or came back: split afresh
            self._splits.clear()
            self._version = controller.version
        cached = self._splits.get((src, dst))
        if cached is None:
            cached = self._splits[(src, dst)] = self._even_split(src, dst)
        return cached

    def _even_split(self, src: int, dst: int) -> tuple[list[int], list[float], float]:
        controller = self.controller
        if src == dst:
            return [], [], 0.0
        if controller.distances(dst)[src] < 0:
            raise NoRouteError(f"no route from {controller.name(src)} to {controller.name(dst)}")
        link_id, latency = controller.links.link_id, controller.latency_list
        share: dict[int, float] = {src: 1.0}  # fraction of the flow reaching each node of the current layer
        arrive: dict[int, float] = {src: 0.0}  # latest arrival (s) over the paths into each node
        fraction: dict[int, float] = {}
        while dst not in share:  # every hop moves one layer closer (all next hops are one hop nearer)
            reached: dict[int, float] = {}
            for here in sorted(share):
                hops = controller.next_hops(here, dst)
                part = share[here] / len(hops)
                for nxt in hops:
                    link = link_id[(here, nxt)]
                    fraction[link] = fraction.get(link, 0.0) + part
                    reached[nxt] = reached.get(nxt, 0.0) + part
                    arrive[nxt] = max(arrive.get(nxt, 0.0), arrive[here] + latency[link])
            share = reached
        return list(fraction), list(fraction.values()), arrive[dst]
