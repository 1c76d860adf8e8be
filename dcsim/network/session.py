"""Run a set of collectives together on a datacenter fabric (what ``dcsim net`` does), independent of
the scenario schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import simpy

from dcsim.network.collectives import CollectiveResult, run_collective
from dcsim.network.datacenter import DatacenterFabric
from dcsim.network.factory import make_flow_simulator
from dcsim.network.usage import LinkUsage


@dataclass(frozen=True)
class CollectiveSpec:
    """One collective: ``op`` of ``bytes`` (nccl-tests size) over ``ranks`` (accelerator names), started
    at ``arrival_s`` (simulated seconds)."""

    name: str
    op: str
    bytes: float
    ranks: Sequence[str]
    algorithm: str = "auto"
    arrival_s: float = 0.0
    protocol: str = "auto"


@dataclass(frozen=True)
class NetworkRun:
    """Outcome: each collective's result by name, per-link usage, re-rate statistics."""

    results: dict[str, CollectiveResult]
    usage: LinkUsage
    rerates: int
    flows_rerated: int
    flows_started: int


def _result(process: simpy.Process) -> CollectiveResult:
    value = process.value
    assert isinstance(value, CollectiveResult)
    return value


def run_collectives(
    fabric: DatacenterFabric, specs: Sequence[CollectiveSpec], seed: int = 0, routing: str | None = None
) -> NetworkRun:
    """Run every collective on ``fabric`` in one simulation, so that they contend for links."""
    env = simpy.Environment()
    sim = make_flow_simulator(env, fabric.graph, routing or fabric.routing, seed)
    processes = {}

    def launch(spec: CollectiveSpec) -> simpy.events.ProcessGenerator:
        yield env.timeout(spec.arrival_s)
        body = run_collective(sim, spec.op, list(spec.ranks), spec.bytes, spec.algorithm, protocol=spec.protocol)
        result = yield env.process(body)
        return result

    for spec in specs:
        processes[spec.name] = env.process(launch(spec))
    env.run()
    results = {name: _result(process) for name, process in processes.items()}
    return NetworkRun(results, sim.usage, sim.rerates, sim.flows_rerated, sim.flows_started)
