"""2-D or 3-D torus (TPU-style): every chip is both an endpoint and a router, linked to its two
neighbours in each dimension with wrap-around (Jouppi et al., "TPU v4", ISCA 2023). A dimension of size 2
has a single link between its two chips (a graph holds one link per pair); size 1 has none."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import networkx as nx

from dcsim.network.graph import TopologyError, add_link, add_node
from dcsim.network.topologies.common import check_params
from dcsim.network.units import gbps_to_bytes_per_s, us_to_s

PARAMS = ("dims",)


def _dims(params: Mapping[str, Any]) -> tuple[int, ...]:
    dims = params.get("dims")
    if not isinstance(dims, list | tuple) or len(dims) not in (2, 3):
        raise TopologyError(f"torus: dims must be a list of 2 or 3 sizes, got {dims!r}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise TopologyError(f"torus: every size in dims must be an integer >= 1, got {list(dims)}")
    return tuple(dims)


def _name(coords: tuple[int, ...]) -> str:
    return "chip" + "-".join(str(c) for c in coords)


def build(params: Mapping[str, Any], link_gbps: float, link_latency_us: float, seed: int) -> nx.Graph:
    """Torus with ``dims`` [x, y] or [x, y, z]; chips named ``chip{x}-{y}[-{z}]`` (role host)."""
    check_params("torus", params, PARAMS)
    dims = _dims(params)
    cap, lat = gbps_to_bytes_per_s(link_gbps), us_to_s(link_latency_us)
    graph = nx.Graph(topology="torus", params={"dims": list(dims)})
    for coords in itertools.product(*(range(d) for d in dims)):
        add_node(graph, _name(coords), "host", coords=list(coords))
    for coords in itertools.product(*(range(d) for d in dims)):
        for axis, size in enumerate(dims):
            if size == 1:
                continue
            nxt = list(coords)
            nxt[axis] = (coords[axis] + 1) % size
            if not graph.has_edge(_name(coords), _name(tuple(nxt))):
                add_link(graph, _name(coords), _name(tuple(nxt)), cap, lat, f"torus-{'xyz'[axis]}")
    return graph


def smallest(n_hosts: int) -> dict[str, Any]:
    """The smallest near-square 2-D torus with at least ``n_hosts`` chips."""
    side = 1
    while side * side < n_hosts:
        side += 1
    rows = side if side * (side - 1) < n_hosts else side - 1
    return {"dims": [side, max(rows, 1)]}
