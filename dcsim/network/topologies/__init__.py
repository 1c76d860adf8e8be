"""Topology builders: a name picks a function ``build(params, link_gbps, link_latency_us, seed) -> nx.Graph``.

Built-in: ``fat_tree`` (k), ``leaf_spine`` (leaves, spines, hosts_per_leaf, oversubscription),
``rail_optimized`` (nodes, nics_per_node, nodes_per_group, spines, oversubscription; one leaf per NIC
index), ``torus`` (dims), ``dragonfly`` (groups, routers, hosts), ``jellyfish`` (switches, degree, hosts; random,
uses ``seed``) and ``file`` (path to GraphML or an edge list). See :mod:`dcsim.network.graph` for the
attributes every graph carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from dcsim.network.graph import TopologyError
from dcsim.network.topologies import dragonfly, fat_tree, from_file, jellyfish, leaf_spine, rail_optimized, torus

Builder = Callable[[Mapping[str, Any], float, float, int], nx.Graph]

TOPOLOGIES: dict[str, Builder] = {
    "fat_tree": fat_tree.build,
    "leaf_spine": leaf_spine.build,
    "rail_optimized": rail_optimized.build,
    "torus": torus.build,
    "dragonfly": dragonfly.build,
    "jellyfish": jellyfish.build,
    "file": from_file.build,
}

SMALLEST: dict[str, Callable[[int], dict[str, Any]]] = {
    "fat_tree": fat_tree.smallest,
    "leaf_spine": leaf_spine.smallest,
    "rail_optimized": rail_optimized.smallest,
    "torus": torus.smallest,
    "dragonfly": dragonfly.smallest,
    "jellyfish": jellyfish.smallest,
}


def build_topology(
    kind: str,
    params: Mapping[str, Any] | None = None,
    link_gbps: float = 100.0,
    link_latency_us: float = 1.0,
    seed: int = 0,
) -> nx.Graph:
    """Build topology ``kind`` with its ``params``; links run at ``link_gbps`` (Gb/s) with ``link_latency_us``."""
    if kind not in TOPOLOGIES:
        raise TopologyError(f"unknown topology {kind!r} (known: {', '.join(TOPOLOGIES)})")
    if not link_gbps > 0:
        raise TopologyError(f"link_gbps must be > 0, got {link_gbps}")
    if not link_latency_us >= 0:
        raise TopologyError(f"link_latency_us must be >= 0, got {link_latency_us}")
    return TOPOLOGIES[kind](dict(params or {}), float(link_gbps), float(link_latency_us), int(seed))


def smallest_params(kind: str, n_hosts: int) -> dict[str, Any]:
    """Parameters of the smallest topology ``kind`` with at least ``n_hosts`` hosts."""
    if kind not in SMALLEST:
        raise TopologyError(f"topology {kind!r} has no default size: give its params")
    return SMALLEST[kind](n_hosts)


__all__ = ["TOPOLOGIES", "TopologyError", "build_topology", "smallest_params"]
