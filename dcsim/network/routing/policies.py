"""The built-in routing policies: ``shortest_path``, ``ecmp`` and ``least_loaded``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dcsim.network.routing.base import NoRouteError, Path, RoutingPolicy, mix64, register_routing_policy

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


@register_routing_policy("least_loaded")
class LeastLoaded(RoutingPolicy):
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
