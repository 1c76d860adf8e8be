"""A whole datacenter as one graph: each server's intra-node fabric, its NICs, and the network joining them.

Independent of the scenario schema: plain dataclasses that ``dcsim run``/``dcsim net`` fill from a scenario.
Servers are named ``{node type}-{j}``, their accelerators ``{server}/acc{i}`` and NICs ``{server}/nic{m}``.
The network's hosts (in builder order) become the NICs, server by server, so consecutive servers share
racks. Accelerator i uses NIC ``i * nics // accelerators`` through its own PCIe switch port
(``{accelerator}-pcie``) at the NIC's line rate (GPUDirect RDMA); the port makes a NIC hairpin between
two accelerators longer than the intra-node fabric, so hop-count routing never uses one. A NIC never
forwards into an accelerator other than a flow's destination (see ``LinkTable.final_only``). The NIC's
link into the network runs at min(link_gbps, nic_gbps). A ``rail_optimized`` network takes its node count,
NICs per node and NIC speed from the servers when its params leave them out.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from dcsim.catalog import load_catalog
from dcsim.network.fabric import add_node_fabric
from dcsim.network.graph import TopologyError, add_link, add_node, hosts
from dcsim.network.topologies import build_topology, rail_optimized, smallest_params
from dcsim.network.units import gbps_to_bytes_per_s, us_to_s

NIC_LATENCY_US = 1.0  # estimate, not a datasheet figure: one PCIe traversal from GPU memory to the NIC


@dataclass(frozen=True)
class ServerGroup:
    """``count`` identical servers: accelerators per server, catalog ids, NICs (count, Gb/s each).

    ``intra_node`` None takes the accelerator's catalog interconnect; ``nic_gbps`` None takes the
    network's ``link_gbps``; ``nic_count`` 0 leaves the servers off the network.
    """

    name: str
    count: int
    accelerators_per_node: int
    accelerator: str | None = None
    intra_node: str | None = None
    nic_count: int = 1
    nic_gbps: float | None = None


#: The former name of :class:`ServerGroup` (the scheduler's ``dcsim.scheduler.cluster.NodeGroup`` is a
#: node type of the cluster).
NodeGroup = ServerGroup


@dataclass(frozen=True)
class NetworkConfig:
    """The datacenter network: topology builder and its params (None: smallest that fits), link speed
    (Gb/s), link latency (microseconds), routing policy name."""

    topology: str = "fat_tree"
    params: Mapping[str, Any] | None = None
    link_gbps: float = 100.0
    link_latency_us: float = 1.0
    routing: str = "ecmp"


@dataclass
class DatacenterFabric:
    """The built graph and where things are in it."""

    graph: nx.Graph
    servers: dict[str, list[str]] = field(default_factory=dict)
    nics: dict[str, list[str]] = field(default_factory=dict)
    routing: str = "ecmp"

    @property
    def accelerators(self) -> list[str]:
        """Every accelerator, server by server."""
        return [a for accs in self.servers.values() for a in accs]

    def ranks(self, count: int) -> list[str]:
        """The first ``count`` accelerators (packed placement)."""
        pool = self.accelerators
        if count > len(pool):
            raise ValueError(f"{count} ranks asked for but the datacenter has {len(pool)} accelerators")
        return pool[:count]

    def expand(self, names: Sequence[Hashable]) -> list[str]:
        """Accelerator names from a list of accelerator or server names (a server stands for all its own)."""
        out: list[str] = []
        for name in names:
            if name in self.servers:
                out += self.servers[str(name)]
            elif name in self.graph and self.graph.nodes[name].get("role") == "accelerator":
                out.append(str(name))
            else:
                raise ValueError(f"{name!r} is neither a server nor an accelerator of this datacenter")
        return out


def _intra_link(group: ServerGroup) -> Any:
    catalog = load_catalog()
    link_id = group.intra_node or (catalog.accelerator(group.accelerator).interconnect if group.accelerator else None)
    return catalog.interconnect(link_id) if link_id else None


def _attach_nics(graph: nx.Graph, server: str, accs: list[str], nic_hosts: list[Hashable], nic_bps: float) -> list[str]:
    names = [f"{server}/nic{m}" for m in range(len(nic_hosts))]
    nx.relabel_nodes(graph, dict(zip(nic_hosts, names, strict=True)), copy=False)
    for name in names:
        graph.nodes[name].update(server=server)
        for _, _, data in graph.edges(name, data=True):
            data["capacity_bytes_per_s"] = min(data["capacity_bytes_per_s"], nic_bps)
    for i, acc in enumerate(accs):
        port = f"{acc}-pcie"  # a PCIe switch port: makes the NIC hairpin (acc -> NIC -> acc) a longer path
        add_node(graph, port, "fabric", server=server)
        add_link(graph, acc, port, nic_bps, us_to_s(NIC_LATENCY_US) / 2, "nic")
        add_link(graph, port, names[i * len(names) // len(accs)], nic_bps, us_to_s(NIC_LATENCY_US) / 2, "nic")
    return names


def build_datacenter_fabric(
    groups: Sequence[ServerGroup], network: NetworkConfig | None = None, seed: int = 0
) -> DatacenterFabric:
    """Build the datacenter graph: the network topology with every server's fabric joined to its NICs."""
    network = network or NetworkConfig()
    needed = sum(g.count * g.nic_count for g in groups)
    params: Mapping[str, Any]
    if network.topology == rail_optimized.KIND:  # rails follow the servers' NICs
        servers = {g.name: (g.count, g.nic_count, g.nic_gbps) for g in groups}
        params = rail_optimized.fit_to_servers(network.params or {}, servers)
    else:
        params = network.params if network.params else smallest_params(network.topology, max(needed, 1))
    graph = build_topology(network.topology, params, network.link_gbps, network.link_latency_us, seed)
    free = hosts(graph)
    if len(free) < needed:
        raise TopologyError(f"the {network.topology} network has {len(free)} hosts but the nodes have {needed} NICs")
    fabric = DatacenterFabric(graph, routing=network.routing)
    for group in groups:
        link = _intra_link(group)
        nic_bps = gbps_to_bytes_per_s(group.nic_gbps or network.link_gbps)
        for j in range(group.count):
            server = f"{group.name}-{j}"
            accs = add_node_fabric(graph, server, link, group.accelerators_per_node)
            for acc in accs:  # what NCCL's tuner keys its figures by (dcsim.network.collectives.channels)
                graph.nodes[acc].update(accelerator=group.accelerator, interconnect=link.id if link else None)
            fabric.servers[server] = accs
            taken, free = free[: group.nic_count], free[group.nic_count :]
            fabric.nics[server] = _attach_nics(graph, server, accs, taken, nic_bps) if taken else []
    graph.remove_nodes_from([h for h in free if graph.degree(h) <= 1])  # unused hosts carry no traffic
    return fabric
