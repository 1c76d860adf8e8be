"""The network layer: topologies (networkx graphs), an SDN controller with a routing policy registry, a
max-min fair flow simulator on SimPy, collectives as flow sets, and per-link utilization.

Units: rates in bytes per second and times in seconds inside the layer; ``*_gbps`` arguments are
gigabits per second (the scenario contract), catalog interconnect figures gigabytes per second.
"""

from dcsim.network.collectives import (
    OPS,
    CollectiveResult,
    bus_factor,
    run_collective,
    simulate_collective,
)
from dcsim.network.controller import Controller, Route
from dcsim.network.datacenter import DatacenterFabric, NetworkConfig, NodeGroup, ServerGroup, build_datacenter_fabric
from dcsim.network.flows import FlowSimulator, RoutedFlows, TransferDone
from dcsim.network.graph import TopologyError, accelerators, hosts
from dcsim.network.routing import (
    ROUTING_POLICIES,
    NoRouteError,
    RoutingPolicy,
    register_routing_policy,
    resolve_policy,
    resolve_routing_policy,
)
from dcsim.network.topologies import TOPOLOGIES, build_topology, smallest_params

__all__ = [
    "OPS",
    "ROUTING_POLICIES",
    "TOPOLOGIES",
    "CollectiveResult",
    "Controller",
    "DatacenterFabric",
    "FlowSimulator",
    "NetworkConfig",
    "NoRouteError",
    "NodeGroup",
    "Route",
    "RoutedFlows",
    "RoutingPolicy",
    "ServerGroup",
    "TopologyError",
    "TransferDone",
    "accelerators",
    "build_datacenter_fabric",
    "build_topology",
    "bus_factor",
    "hosts",
    "register_routing_policy",
    "resolve_policy",
    "resolve_routing_policy",
    "run_collective",
    "simulate_collective",
    "smallest_params",
]
