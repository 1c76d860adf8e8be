"""The run's shared network for cross-job contention, built once per run on first use."""

from __future__ import annotations

from dcsim.network import Controller
from dcsim.network.factory import make_controller
from dcsim.scenario.network import build_fabric, network_config
from dcsim.scenario.schema import Scenario
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.shared_network import SharedNetwork


def shared_network(scheduler: ClusterScheduler, scenario: Scenario) -> SharedNetwork | None:
    """The scheduler's :class:`SharedNetwork` on the scenario's fabric and routing (created on the first
    call, its controller once two communicating jobs run at once); None when the scenario turns contention
    off (``scheduler.network_contention: false``)."""
    if not scenario.scheduler.network_contention:
        return None
    if scheduler.network is None:

        def controller() -> Controller:
            graph = build_fabric(scenario.datacenter, scenario.seed).graph
            return make_controller(graph, network_config(scenario.datacenter).routing, scenario.seed)

        scheduler.network = SharedNetwork(controller)
    return scheduler.network
