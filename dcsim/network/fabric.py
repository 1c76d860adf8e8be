"""Intra-node fabrics: the accelerators of one server and the links between them, from a catalog
:class:`~dcsim.catalog.Interconnect` (its per-accelerator, per-direction GB/s times the efficiency in
``link_efficiency.yaml``).

- ``switch`` (NVSwitch): every accelerator has one link of its full bandwidth to a non-blocking switch node.
- ``bus`` (PCIe): every accelerator has its x16 link to the server's PCIe root node.
- ``mesh`` (NVLink): 8 accelerators form the DGX-1 hybrid cube-mesh (NVIDIA DGX-1 whitepaper: two fully
  linked quads, each GPU also linked to its peer in the other quad; 6 NVLinks per GPU, doubled on the
  0-3, 1-2, 4-7, 5-6 and cross-quad pairs); any other count forms NVLink pairs (0-1, 2-3, ...) whose
  members reach the other pairs through a PCIe 4.0 root.
- ``torus`` (TPU ICI): the server's chips form a ring of ICI links (bandwidth / links per chip each).

A link crossing a fabric node (switch, root) carries half the interconnect's one-hop latency, so one
accelerator-to-accelerator hop costs the catalog's ``latency_us``.
"""

from __future__ import annotations

import networkx as nx

from dcsim.catalog import Interconnect, load_catalog
from dcsim.network.efficiency import link_efficiency
from dcsim.network.graph import TopologyError, add_link, add_node
from dcsim.network.units import gb_per_s_to_bytes_per_s, us_to_s

CUBE_MESH_DOUBLED = {(0, 3), (1, 2), (4, 7), (5, 6), (0, 4), (1, 5), (2, 6), (3, 7)}
PAIR_FALLBACK_BUS = "pcie4"


def accelerator_name(server: str, index: int) -> str:
    """Node name of accelerator ``index`` of ``server``."""
    return f"{server}/acc{index}"


def _capacity(link: Interconnect, share: float = 1.0) -> float:
    return gb_per_s_to_bytes_per_s(link.bandwidth_gb_per_s) * link_efficiency(link.id) * share


def _star(graph: nx.Graph, server: str, names: list[str], link: Interconnect, hub: str) -> None:
    add_node(graph, f"{server}/{hub}", "fabric", server=server)
    for name in names:
        add_link(graph, name, f"{server}/{hub}", _capacity(link), us_to_s(link.latency_us) / 2, "intra")


def _cube_mesh(graph: nx.Graph, names: list[str], link: Interconnect) -> None:
    per_link = 1.0 / link.links_per_accelerator
    for a in range(8):
        peers = [b for b in range(8) if b > a and (b // 4 == a // 4 or b == a + 4)]
        for b in peers:
            count = 2 if (a, b) in CUBE_MESH_DOUBLED else 1
            add_link(graph, names[a], names[b], _capacity(link, count * per_link), us_to_s(link.latency_us), "intra")


def _pairs(graph: nx.Graph, server: str, names: list[str], link: Interconnect) -> None:
    for a in range(0, len(names) - 1, 2):
        add_link(graph, names[a], names[a + 1], _capacity(link), us_to_s(link.latency_us), "intra")
    _star(graph, server, names, load_catalog().interconnect(PAIR_FALLBACK_BUS), "pcie")


def _ring(graph: nx.Graph, names: list[str], link: Interconnect) -> None:
    per_link = 1.0 / link.links_per_accelerator
    for a in range(len(names)):
        b = (a + 1) % len(names)
        if a != b and not graph.has_edge(names[a], names[b]):
            add_link(graph, names[a], names[b], _capacity(link, per_link), us_to_s(link.latency_us), "intra")


def add_node_fabric(graph: nx.Graph, server: str, link: Interconnect | None, accelerators: int) -> list[str]:
    """Add ``server``'s ``accelerators`` and their fabric to ``graph``; returns the accelerator names."""
    if accelerators < 1:
        raise TopologyError(f"{server}: a node needs at least 1 accelerator, got {accelerators}")
    names = [accelerator_name(server, i) for i in range(accelerators)]
    for i, name in enumerate(names):
        add_node(graph, name, "accelerator", server=server, local_rank=i)
    if accelerators == 1 or link is None:
        return names
    if link.topology == "switch":
        _star(graph, server, names, link, "nvswitch")
    elif link.topology == "bus":
        _star(graph, server, names, link, "pcie")
    elif link.topology == "mesh":
        (_cube_mesh if accelerators == 8 else lambda g, n, lk: _pairs(g, server, n, lk))(graph, names, link)
    elif link.topology == "torus":
        _ring(graph, names, link)
    else:
        raise TopologyError(f"interconnect {link.id}: unknown topology {link.topology!r}")
    return names
