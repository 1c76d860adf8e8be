"""Dragonfly (Kim, Dally, Scott & Abts, ISCA 2008): ``groups`` groups of ``routers`` routers, all routers of
a group linked to each other (local links), ``hosts`` hosts per router, and exactly one global link
between every pair of groups, spread over the routers of each group.

Global ports: group i lists the other groups in order (``consecutive``, the default) or in an order drawn
from ``numpy.random.default_rng(seed)`` (``arrangement: random``); its p-th global link leaves from router
``p mod routers``. ``global_gbps`` sets the global link speed (default ``link_gbps``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from dcsim.network.graph import TopologyError, add_link, add_node
from dcsim.network.topologies.common import check_params, positive_float, positive_int
from dcsim.network.units import gbps_to_bytes_per_s, us_to_s

PARAMS = ("groups", "routers", "hosts", "arrangement", "global_gbps")


def _global_order(groups: int, arrangement: str, rng: np.random.Generator) -> list[list[int]]:
    orders = []
    for g in range(groups):
        others = [o for o in range(groups) if o != g]
        if arrangement == "random":
            others = [others[i] for i in rng.permutation(len(others))]
        orders.append(others)
    return orders


def build(params: Mapping[str, Any], link_gbps: float, link_latency_us: float, seed: int) -> nx.Graph:
    """Dragonfly; routers ``g{i}-r{j}``, hosts ``host0``... numbered group by group, router by router."""
    check_params("dragonfly", params, PARAMS)
    groups = positive_int("dragonfly", params, "groups", minimum=2)
    routers = positive_int("dragonfly", params, "routers")
    per_router = positive_int("dragonfly", params, "hosts")
    arrangement = params.get("arrangement", "consecutive")
    if arrangement not in ("consecutive", "random"):
        raise TopologyError(f"dragonfly: arrangement must be consecutive or random, got {arrangement!r}")
    cap, lat = gbps_to_bytes_per_s(link_gbps), us_to_s(link_latency_us)
    global_cap = gbps_to_bytes_per_s(positive_float("dragonfly", params, "global_gbps", link_gbps))
    graph = nx.Graph(topology="dragonfly", params=dict(params))
    host = 0
    for g in range(groups):
        for r in range(routers):
            add_node(graph, f"g{g}-r{r}", "switch", tier="router", group=g)
            for other in range(r):
                add_link(graph, f"g{g}-r{other}", f"g{g}-r{r}", cap, lat, "local")
            for _ in range(per_router):
                add_node(graph, f"host{host}", "host", group=g, rack=f"g{g}-r{r}")
                add_link(graph, f"host{host}", f"g{g}-r{r}", cap, lat, "access")
                host += 1
    orders = _global_order(groups, arrangement, np.random.default_rng(seed))
    for g in range(groups):
        for port, other in enumerate(orders[g]):
            if other > g:
                back = orders[other].index(g)
                add_link(graph, f"g{g}-r{port % routers}", f"g{other}-r{back % routers}", global_cap, lat, "global")
    return graph


def smallest(n_hosts: int) -> dict[str, Any]:
    """A balanced dragonfly (routers = 2 * hosts per router) with at least ``n_hosts`` hosts."""
    per_router = 1
    while True:
        routers = 2 * per_router
        groups = routers * per_router + 1
        if groups * routers * per_router >= n_hosts:
            return {"groups": groups, "routers": routers, "hosts": per_router}
        per_router += 1
