"""Jellyfish (Singla et al., NSDI 2012): ``switches`` top-of-rack switches wired as a random ``degree``-regular
graph, ``hosts`` hosts on each. The wiring comes from :func:`networkx.random_regular_graph` with ``seed=``;
a disconnected draw is redrawn with the next seed (seed + 1, seed + 2, ...), so the result is deterministic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from dcsim.network.graph import TopologyError, add_link, add_node
from dcsim.network.topologies.common import check_params, positive_int
from dcsim.network.units import gbps_to_bytes_per_s, us_to_s

PARAMS = ("switches", "degree", "hosts")
MAX_DRAWS = 100


def default_degree(switches: int) -> int:
    """Switch-to-switch links per switch when ``degree`` is not given: 3, fewer on fewer than 4 switches."""
    return min(3, switches - 1) if switches > 1 else 0


def _wiring(switches: int, degree: int, seed: int) -> nx.Graph:
    if switches == 1:
        return nx.empty_graph(1)
    for attempt in range(MAX_DRAWS):
        wiring = nx.random_regular_graph(degree, switches, seed=seed + attempt)
        if nx.is_connected(wiring):
            return wiring
    raise TopologyError(f"jellyfish: no connected {degree}-regular graph on {switches} switches in {MAX_DRAWS} draws")


def build(params: Mapping[str, Any], link_gbps: float, link_latency_us: float, seed: int) -> nx.Graph:
    """Jellyfish; switches ``sw{i}``, hosts ``host0``... numbered switch by switch."""
    check_params("jellyfish", params, PARAMS)
    switches = positive_int("jellyfish", params, "switches")
    degree = positive_int("jellyfish", params, "degree", default_degree(switches), minimum=0)
    per_switch = positive_int("jellyfish", params, "hosts", 1)
    if switches > 1 and (degree < 1 or degree >= switches or switches * degree % 2):
        raise TopologyError(
            f"jellyfish: need 1 <= degree < switches and switches*degree even, got switches={switches}, degree={degree}"
        )
    cap, lat = gbps_to_bytes_per_s(link_gbps), us_to_s(link_latency_us)
    graph = nx.Graph(topology="jellyfish", params=dict(params))
    host = 0
    for s in range(switches):
        add_node(graph, f"sw{s}", "switch", tier="tor")
        for _ in range(per_switch):
            add_node(graph, f"host{host}", "host", rack=f"sw{s}")
            add_link(graph, f"host{host}", f"sw{s}", cap, lat, "access")
            host += 1
    for a, b in sorted(_wiring(switches, degree, seed).edges):
        add_link(graph, f"sw{a}", f"sw{b}", cap, lat, "fabric")
    return graph


def smallest(n_hosts: int) -> dict[str, Any]:
    """Four hosts per switch, degree 3 (or fewer where there are too few switches)."""
    switches = max(-(-n_hosts // 4), 1)
    degree = 3 if switches > 3 else switches - 1
    if switches * degree % 2:
        switches += 1
    return {"switches": switches, "degree": degree, "hosts": 4}
