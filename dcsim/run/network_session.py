"""One run's network: the fabric, its SDN controller and the flow simulator on the run's clock."""

from __future__ import annotations

from dcsim.engine.simulation import Simulation
from dcsim.network.factory import make_flow_simulator
from dcsim.scenario.network import build_fabric, network_config
from dcsim.scenario.schema import Scenario


class NetworkSession:
    """One run's network: the fabric, its SDN controller and the flow simulator on the run's clock, shared by
    every workload whose traffic is flows (collectives, disaggregated serving's KV transfers)."""

    def __init__(self, sim: Simulation, scenario: Scenario) -> None:
        self.fabric = build_fabric(scenario.datacenter, scenario.seed)
        routing = network_config(scenario.datacenter).routing
        self.flows = make_flow_simulator(sim.env, self.fabric.graph, routing, scenario.seed)
