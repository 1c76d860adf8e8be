"""The bridge from a scenario's ``datacenter`` section to the network layer's fabric."""

from __future__ import annotations

import functools

import networkx as nx

from dcsim.errors import UserInputError
from dcsim.network import (
    DatacenterFabric,
    NetworkConfig,
    ServerGroup,
    TopologyError,
    build_datacenter_fabric,
    resolve_routing_policy,
)
from dcsim.scenario.files import scenario_file
from dcsim.scenario.schema import Datacenter


def network_config(datacenter: Datacenter) -> NetworkConfig:
    """The network layer's configuration for the scenario's ``datacenter.network`` (defaults if absent)."""
    net = datacenter.network
    if net is None:
        return NetworkConfig()
    return NetworkConfig(net.topology, net.params or None, net.link_gbps, net.link_latency_us, net.routing)


def with_topology_file(datacenter: Datacenter, base_dir: str) -> Datacenter:
    """The datacenter with a ``topology: file`` path looked up from the scenario's folder ``base_dir`` (see
    :func:`dcsim.scenario.files.scenario_file`); any other datacenter unchanged."""
    net = datacenter.network
    if net is None or net.topology != "file" or not isinstance(net.params.get("path"), str):
        return datacenter
    path = str(scenario_file(net.params["path"], base_dir))
    network = net.model_copy(update={"params": {**net.params, "path": path}})
    return datacenter.model_copy(update={"network": network})


def build_fabric(datacenter: Datacenter, seed: int) -> DatacenterFabric:
    """The datacenter's servers, intra-node fabrics, NICs and network as one graph (built once per
    distinct datacenter and seed in a process; treat it as read-only).

    Raises :class:`UserInputError` naming ``datacenter.network`` fields for a topology that cannot be built.
    """
    return _build_fabric(datacenter.model_dump_json(), seed)


@functools.lru_cache(maxsize=8)
def _build_fabric(datacenter_json: str, seed: int) -> DatacenterFabric:
    datacenter = Datacenter.model_validate_json(datacenter_json)
    groups = [
        ServerGroup(
            n.name,
            n.count,
            n.accelerators_per_node,
            n.accelerator,
            n.intra_node,
            n.nics.count if n.nics else 1,
            n.nics.gbps if n.nics else None,
        )
        for n in datacenter.nodes
    ]
    config = network_config(datacenter)
    try:
        resolve_routing_policy(config.routing)
    except ValueError as error:
        raise UserInputError.single("datacenter.network.routing", str(error)) from None
    try:
        fabric = build_datacenter_fabric(groups, config, seed)
    except (TopologyError, KeyError, ValueError) as error:
        message = str(error).strip("'\"") if isinstance(error, KeyError) else str(error)  # a KeyError quotes its text
        raise UserInputError.single("datacenter.network", message) from None
    apart = unreachable_servers(fabric)
    if apart:
        first = next(iter(fabric.servers))
        shown = ", ".join(apart[:3]) + (f" and {len(apart) - 3} more" if len(apart) > 3 else "")
        raise UserInputError.single(
            "datacenter.network",
            f"servers {shown} cannot reach {first}: the network hosts their NICs are wired to are not connected "
            "to the rest (or the servers have no NICs)",
        )
    return fabric


def unreachable_servers(fabric: DatacenterFabric) -> list[str]:
    """Servers whose accelerators have no path to the first server's (a split topology, a server without
    NICs): traffic between them would find no route."""
    servers = [(name, accs) for name, accs in fabric.servers.items() if accs]
    if len(servers) < 2:
        return []
    reachable = nx.node_connected_component(fabric.graph, servers[0][1][0])
    return [name for name, accs in servers[1:] if accs[0] not in reachable]
