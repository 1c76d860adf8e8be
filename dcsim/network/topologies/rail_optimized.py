"""Rail-optimized two-tier Clos, as GPU clusters are wired (NVIDIA DGX SuperPOD reference architectures,
e.g. "NVIDIA DGX SuperPOD: Next Generation Scalable Infrastructure for AI Leadership, Reference
Architecture featuring NVIDIA DGX H100", RA-11333-001: each DGX's eight compute NICs go to eight
different leaf switches of its scalable unit, one per *rail*).

``nodes`` nodes of ``nics_per_node`` NICs each are cut into rail groups of ``nodes_per_group`` nodes
(a SuperPOD scalable unit, default 32). Each group has one leaf switch per NIC index, ``group{g}-rail{i}``,
and NIC ``i`` of every node of the group is wired to leaf ``i``; every leaf links to every one of
``spines`` spine switches. Traffic between the same NIC index of two nodes of a group (GPU ``i`` to GPU
``i``, as NCCL's rings and trees send it) crosses one leaf and no spine; anything else crosses a spine.

Hosts (the NICs) are ``host{n * nics_per_node + i}``, node by node and NIC by NIC, so that the datacenter
builder, which hands consecutive hosts to a server's NICs in order, puts NIC ``i`` of every server on rail
``i``. NIC links run at ``nic_gbps`` (default: the network's ``link_gbps``). Oversubscription is a leaf's
host-facing capacity over its spine-facing capacity, ``hosts_per_leaf * nic_gbps / (spines * uplink_gbps)``
with ``hosts_per_leaf = min(nodes, nodes_per_group)``: give ``oversubscription`` (default 1) and the uplink
speed follows, or give ``uplink_gbps``. One leaf-to-spine link stands for the bundle of parallel cables
between the two switches (a graph holds one link per pair).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from dcsim.network.graph import TopologyError, add_link, add_node
from dcsim.network.topologies.common import check_params, positive_float, positive_int
from dcsim.network.units import gbps_to_bytes_per_s, us_to_s

PARAMS = ("nodes", "nics_per_node", "nic_gbps", "nodes_per_group", "spines", "oversubscription", "uplink_gbps")
#: Compute NICs per node: a DGX H100 has eight ConnectX-7 400 Gb/s compute NICs (NVIDIA DGX H100 datasheet).
DEFAULT_NICS_PER_NODE = 8
#: Nodes per rail group: a DGX H100 SuperPOD scalable unit is 32 DGX nodes (RA-11333-001).
DEFAULT_NODES_PER_GROUP = 32
#: Spine switches when not given: one per rail of an eight-NIC node (a modelling default, not from the RA).
DEFAULT_SPINES = 8
KIND = "rail_optimized"


def rail_groups(nodes: int, nodes_per_group: int) -> int:
    """Number of rail groups for ``nodes`` nodes, ``nodes_per_group`` per group (the last may be partial)."""
    return -(-nodes // nodes_per_group)


def uplink_gbps(params: Mapping[str, Any], link_gbps: float) -> float:
    """Speed of one leaf-to-spine link in Gb/s (from ``uplink_gbps`` or ``oversubscription``)."""
    if "uplink_gbps" in params:
        if "oversubscription" in params:
            raise TopologyError(f"{KIND}: give oversubscription or uplink_gbps, not both")
        return positive_float(KIND, params, "uplink_gbps", 1.0)
    nodes = positive_int(KIND, params, "nodes")
    per_leaf = min(nodes, positive_int(KIND, params, "nodes_per_group", DEFAULT_NODES_PER_GROUP))
    spines = positive_int(KIND, params, "spines", DEFAULT_SPINES)
    nic = positive_float(KIND, params, "nic_gbps", link_gbps)
    ratio = positive_float(KIND, params, "oversubscription", 1.0)
    return per_leaf * nic / (spines * ratio)


def build(params: Mapping[str, Any], link_gbps: float, link_latency_us: float, seed: int) -> nx.Graph:
    """Rail-optimized leaf-spine; rail leaves ``group{g}-rail{i}``, spines ``spine{s}``, hosts ``host{k}``."""
    check_params(KIND, params, PARAMS)
    nodes = positive_int(KIND, params, "nodes")
    nics = positive_int(KIND, params, "nics_per_node", DEFAULT_NICS_PER_NODE)
    per_group = positive_int(KIND, params, "nodes_per_group", DEFAULT_NODES_PER_GROUP)
    spines = positive_int(KIND, params, "spines", DEFAULT_SPINES)
    nic = gbps_to_bytes_per_s(positive_float(KIND, params, "nic_gbps", link_gbps))
    up = gbps_to_bytes_per_s(uplink_gbps(params, link_gbps))
    lat = us_to_s(link_latency_us)
    graph = nx.Graph(topology=KIND, params=dict(params))
    for s in range(spines):
        add_node(graph, f"spine{s}", "switch", tier="spine")
    for g in range(rail_groups(nodes, per_group)):
        for rail in range(nics):
            leaf = f"group{g}-rail{rail}"
            add_node(graph, leaf, "switch", tier="leaf", group=g, rail=rail)
            for s in range(spines):
                add_link(graph, leaf, f"spine{s}", up, lat, "uplink")
    for n in range(nodes):
        g = n // per_group
        for rail in range(nics):
            leaf = f"group{g}-rail{rail}"
            add_node(graph, f"host{n * nics + rail}", "host", rack=leaf, group=g, rail=rail)
            add_link(graph, f"host{n * nics + rail}", leaf, nic, lat, "access")
    return graph


def size(params: Mapping[str, int]) -> tuple[int, int, int]:
    """(hosts, switches, links) of the topology with these whole-number ``params`` (``nodes`` required)."""
    nodes = params["nodes"]
    nics = params.get("nics_per_node", DEFAULT_NICS_PER_NODE)
    spines = params.get("spines", DEFAULT_SPINES)
    leaves = rail_groups(nodes, max(params.get("nodes_per_group", DEFAULT_NODES_PER_GROUP), 1)) * nics
    return nodes * nics, leaves + spines, nodes * nics + leaves * spines


def smallest(n_hosts: int) -> dict[str, Any]:
    """Enough eight-NIC nodes for ``n_hosts`` hosts (NICs)."""
    return {"nodes": max(-(-n_hosts // DEFAULT_NICS_PER_NODE), 1)}


def fit_to_servers(params: Mapping[str, Any], servers: Mapping[str, tuple[int, int, float | None]]) -> dict[str, Any]:
    """``params`` with ``nodes``, ``nics_per_node`` and ``nic_gbps`` filled in from the servers to attach.

    ``servers``: per node type, (servers, NICs per server, NIC Gb/s or None). Every server with NICs must
    have ``nics_per_node`` of them, so that its NIC ``i`` lands on rail ``i``; ``nodes`` defaults to the
    number of such servers, ``nic_gbps`` to their NIC speed when they all give the same one."""
    wired = {name: spec for name, spec in servers.items() if spec[0] > 0 and spec[1] > 0}
    fitted = dict(params)
    if not wired:
        return fitted if "nodes" in fitted else {**fitted, "nodes": 1}
    per_node = {nics for _, nics, _ in wired.values()}
    if len(per_node) > 1:
        shown = ", ".join(f"{name} has {nics}" for name, (_, nics, _) in wired.items())
        raise TopologyError(f"{KIND}: every node needs the same number of NICs, one per rail ({shown})")
    (nics,) = per_node
    given = fitted.setdefault("nics_per_node", nics)
    if given != nics:
        raise TopologyError(f"{KIND}: nics_per_node is {given!r} but the nodes have {nics} NICs (one per rail)")
    fitted.setdefault("nodes", sum(count for count, _, _ in wired.values()))
    speeds = {gbps for _, _, gbps in wired.values()}
    if len(speeds) == 1 and None not in speeds:
        fitted.setdefault("nic_gbps", speeds.pop())
    return fitted
