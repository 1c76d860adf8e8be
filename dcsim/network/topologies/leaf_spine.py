"""Two-tier leaf-spine (folded Clos): ``leaves`` top-of-rack switches with ``hosts_per_leaf`` hosts each,
every leaf linked to every one of ``spines`` spine switches.

Oversubscription is the ratio of a leaf's host-facing capacity to its spine-facing capacity:
``hosts_per_leaf * link_gbps / (spines * uplink_gbps)``. Give ``oversubscription`` (default 1) and the
uplink speed follows, or give ``uplink_gbps`` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from dcsim.network.graph import TopologyError, add_link, add_node
from dcsim.network.topologies.common import check_params, positive_float, positive_int
from dcsim.network.units import gbps_to_bytes_per_s, us_to_s

PARAMS = ("leaves", "spines", "hosts_per_leaf", "oversubscription", "uplink_gbps")
DEFAULT_HOSTS_PER_LEAF = 16
DEFAULT_SPINES = 2


def uplink_gbps(params: Mapping[str, Any], link_gbps: float) -> float:
    """Speed of one leaf-to-spine link in Gb/s."""
    if "uplink_gbps" in params:
        if "oversubscription" in params:
            raise TopologyError("leaf_spine: give oversubscription or uplink_gbps, not both")
        return positive_float("leaf_spine", params, "uplink_gbps", 1.0)
    hosts = positive_int("leaf_spine", params, "hosts_per_leaf", DEFAULT_HOSTS_PER_LEAF)
    spines = positive_int("leaf_spine", params, "spines", DEFAULT_SPINES)
    ratio = positive_float("leaf_spine", params, "oversubscription", 1.0)
    return hosts * link_gbps / (spines * ratio)


def build(params: Mapping[str, Any], link_gbps: float, link_latency_us: float, seed: int) -> nx.Graph:
    """Leaf-spine; hosts ``host0``... numbered leaf by leaf."""
    check_params("leaf_spine", params, PARAMS)
    leaves = positive_int("leaf_spine", params, "leaves")
    spines = positive_int("leaf_spine", params, "spines", DEFAULT_SPINES)
    per_leaf = positive_int("leaf_spine", params, "hosts_per_leaf", DEFAULT_HOSTS_PER_LEAF)
    up = gbps_to_bytes_per_s(uplink_gbps(params, link_gbps))
    cap, lat = gbps_to_bytes_per_s(link_gbps), us_to_s(link_latency_us)
    graph = nx.Graph(topology="leaf_spine", params=dict(params))
    for s in range(spines):
        add_node(graph, f"spine{s}", "switch", tier="spine")
    for leaf in range(leaves):
        add_node(graph, f"leaf{leaf}", "switch", tier="leaf")
        for s in range(spines):
            add_link(graph, f"leaf{leaf}", f"spine{s}", up, lat, "uplink")
        for h in range(per_leaf):
            name = f"host{leaf * per_leaf + h}"
            add_node(graph, name, "host", rack=f"leaf{leaf}")
            add_link(graph, name, f"leaf{leaf}", cap, lat, "access")
    return graph


def smallest(n_hosts: int) -> dict[str, Any]:
    """Enough 16-host leaves for ``n_hosts`` hosts, two spines, no oversubscription."""
    per_leaf = min(DEFAULT_HOSTS_PER_LEAF, max(n_hosts, 1))
    return {"leaves": -(-max(n_hosts, 1) // per_leaf), "spines": DEFAULT_SPINES, "hosts_per_leaf": per_leaf}
