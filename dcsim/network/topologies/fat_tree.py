"""k-ary fat-tree (Al-Fares, Loukissas & Vahdat, SIGCOMM 2008): k pods of k/2 edge and k/2 aggregation
switches, (k/2)^2 core switches and k^3/4 hosts, every link at the same speed (full bisection)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from dcsim.network.graph import TopologyError, add_link, add_node
from dcsim.network.topologies.common import check_params, positive_int
from dcsim.network.units import gbps_to_bytes_per_s, us_to_s

PARAMS = ("k",)


def build(params: Mapping[str, Any], link_gbps: float, link_latency_us: float, seed: int) -> nx.Graph:
    """Fat-tree with even ``k`` >= 2; hosts ``host0``... numbered pod by pod, edge by edge."""
    check_params("fat_tree", params, PARAMS)
    k = positive_int("fat_tree", params, "k", minimum=2)
    if k % 2:
        raise TopologyError(f"fat_tree: k must be even, got {k}")
    half = k // 2
    cap, lat = gbps_to_bytes_per_s(link_gbps), us_to_s(link_latency_us)
    graph = nx.Graph(topology="fat_tree", params={"k": k})
    for c in range(half * half):
        add_node(graph, f"core{c}", "switch", tier="core")
    host = 0
    for p in range(k):
        for a in range(half):
            add_node(graph, f"pod{p}-agg{a}", "switch", tier="aggregation", pod=p)
            for j in range(half):
                add_link(graph, f"pod{p}-agg{a}", f"core{a * half + j}", cap, lat, "core")
        for e in range(half):
            edge = f"pod{p}-edge{e}"
            add_node(graph, edge, "switch", tier="edge", pod=p)
            for a in range(half):
                add_link(graph, edge, f"pod{p}-agg{a}", cap, lat, "aggregation")
            for _ in range(half):
                add_node(graph, f"host{host}", "host", pod=p, rack=f"pod{p}-edge{e}")
                add_link(graph, f"host{host}", edge, cap, lat, "access")
                host += 1
    return graph


def smallest(n_hosts: int) -> dict[str, Any]:
    """The smallest fat-tree with at least ``n_hosts`` hosts."""
    k = 2
    while k**3 // 4 < n_hosts:
        k += 2
    return {"k": k}
