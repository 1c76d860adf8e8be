"""The scenario's network link failures (``failures.links``) on the run's shared network."""

from __future__ import annotations

from typing import Any

from dcsim.engine.simulation import Simulation
from dcsim.run.shared_network import shared_network
from dcsim.scenario.link_failures import switch_links
from dcsim.scenario.schema import Scenario
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.link_failures import LinkFailureInjector


def link_failures(
    scenario: Scenario, sim: Simulation, scheduler: ClusterScheduler, done: Any
) -> LinkFailureInjector | None:
    """Start the scenario's link failures (drawn from the ``link-failures`` stream; scheduled ``events``);
    None without ``failures.links`` (or with contention off, which the loader refuses)."""
    spec = scenario.failures.links if scenario.failures is not None else None
    if spec is None:
        return None
    network = shared_network(scheduler, scenario)
    if network is None:
        return None
    assert scenario.failures is not None
    injector = LinkFailureInjector(
        scheduler,
        network,
        sim.stream("link-failures"),
        switch_links(scenario) if spec.mtbf_h else (),
        spec.mtbf_h * 3600.0 if spec.mtbf_h else None,
        spec.repair_s if spec.repair_s is not None else scenario.failures.repair_s,
    )
    injector.schedule([(e.at_s, (e.link[0], e.link[1]), e.down_s) for e in spec.events])
    injector.start(done)
    return injector
