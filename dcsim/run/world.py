"""Build a run's world from a validated scenario, run it, and assemble the :class:`Result`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcsim._version import __version__
from dcsim.cost import breakdown, node_price, storage_cost_usd
from dcsim.energy import accelerator_energy_j, node_power, to_kwh
from dcsim.engine.simulation import Simulation
from dcsim.run.jobs_runner import JobsRunner, job_usage
from dcsim.run.result import Result
from dcsim.scenario import load_scenario
from dcsim.scenario.schema import Scenario
from dcsim.scheduler.cluster import Cluster, NodeGroup
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.placement import resolve_placement
from dcsim.scheduler.policies import resolve_policy

RUNNERS = {"jobs": JobsRunner}


def run_scenario(source: str | Path | Mapping[str, Any] | Scenario, *, trace: bool = False) -> Result:
    """Simulate a scenario (path, mapping or :class:`Scenario`) and return its :class:`Result`.

    ``trace=True`` records the event log for :meth:`Result.write_chrome_trace`.
    Raises :class:`dcsim.errors.UserInputError` for an invalid scenario.
    """
    scenario = source if isinstance(source, Scenario) else load_scenario(source)
    sim = Simulation(scenario.seed, trace=trace)
    nodes = scenario.datacenter.nodes
    cluster = Cluster(
        [NodeGroup(n.name, n.count, n.accelerator, n.accelerators_per_node, n.nodes_per_rack) for n in nodes]
    )
    spec = scenario.scheduler
    scheduler = ClusterScheduler(
        sim,
        cluster,
        resolve_policy(spec.policy)(),
        resolve_placement(spec.placement)(),
        preemption=spec.preemption,
        checkpoint_s=spec.checkpoint_s,
        restart_s=spec.restart_s,
    )
    runners = [RUNNERS[w.kind](w, sim, scheduler, scenario) for w in scenario.workloads]
    for runner in runners:
        runner.start()
    sim.env.run(until=scenario.duration_s)
    end_s = float(scenario.duration_s if scenario.duration_s is not None else sim.now)
    scheduler.close(end_s)
    return _result(scenario, sim, cluster, scheduler, runners, end_s)


def _per_accelerator(scenario: Scenario, cluster: Cluster) -> pd.DataFrame:
    rows = []
    for node in cluster.nodes:
        spec = next(n for n in scenario.datacenter.nodes if n.name == node.node_type)
        power = node_power(spec)
        for index in node.accelerators:
            rows.append(
                {
                    "accelerator_index": index,
                    "node": node.name,
                    "node_type": node.node_type,
                    "accelerator": node.accelerator,
                    "idle_w": power.idle_w,
                    "max_w": power.max_w,
                }
            )
    return pd.DataFrame(rows)


def _result(
    scenario: Scenario,
    sim: Simulation,
    cluster: Cluster,
    scheduler: ClusterScheduler,
    runners: list[JobsRunner],
    end_s: float,
) -> Result:
    dc = scenario.datacenter
    accelerators = _per_accelerator(scenario, cluster)
    busy_s = np.minimum(scheduler.busy_s, end_s)
    energy_j = accelerator_energy_j(busy_s, end_s, accelerators["idle_w"].to_numpy(), accelerators["max_w"].to_numpy())
    accelerators["busy_s"] = busy_s
    accelerators["utilization"] = busy_s / end_s if end_s > 0 else 0.0
    accelerators["jobs"] = scheduler.jobs_run
    accelerators["energy_kwh"] = energy_j * dc.pue / 3.6e6

    host_j = sum(n.count * n.host_power_w * end_s for n in dc.nodes)
    it_kwh = to_kwh(float(energy_j.sum()) + host_j)
    facility_kwh = it_kwh * dc.pue
    compute_usd = 0.0
    rate: dict[str, float] = {}
    busy_w: dict[str, float] = {}
    price_basis: dict[str, str] = {}
    for node in dc.nodes:
        price = node_price(node)
        power = node_power(node)
        node_kwh = to_kwh(float(energy_j[accelerators["node_type"].to_numpy() == node.name].sum()))
        node_kwh = (node_kwh + to_kwh(node.count * node.host_power_w * end_s)) * dc.pue
        compute_usd += price.usd_per_s * node.count * end_s
        electricity = dc.electricity_usd_per_kwh / 3.6e6 * power.max_w * dc.pue if price.pays_electricity else 0.0
        if price.pays_electricity:
            compute_usd += node_kwh * dc.electricity_usd_per_kwh
        rate[node.accelerator] = price.usd_per_s / node.accelerators_per_node + electricity
        busy_w[node.accelerator] = power.max_w
        price_basis[node.name] = price.basis
    usage = job_usage(scheduler, end_s)
    workloads = {r.spec.name: r.summary(end_s, usage, rate, busy_w, dc.pue) for r in runners}
    total_accelerators = cluster.size
    summary: dict[str, Any] = {
        "name": scenario.name,
        "seed": scenario.seed,
        "dcsim_version": __version__,
        "simulated_time_s": end_s,
        "workloads": workloads,
        "datacenter": {
            "accelerators": total_accelerators,
            "accelerator_utilization": float(busy_s.sum() / (total_accelerators * end_s)) if end_s > 0 else 0.0,
            "energy_kwh": facility_kwh,
            "it_energy_kwh": it_kwh,
            "electricity_usd": facility_kwh * dc.electricity_usd_per_kwh,
            "cost_usd": breakdown(compute_usd, storage_cost_usd(dc, end_s)),
            "carbon_kg": None if dc.carbon_g_per_kwh is None else facility_kwh * dc.carbon_g_per_kwh / 1000.0,
            "price_basis": price_basis,
        },
    }
    jobs = pd.concat([r.table(usage, end_s) for r in runners], ignore_index=True)
    timeline = pd.DataFrame(scheduler.timeline, columns=["time_s", "busy_accelerators", "queued_jobs"])
    timeline["utilization"] = timeline["busy_accelerators"] / total_accelerators
    tables = {"jobs": jobs, "accelerators": accelerators, "timeline": timeline}
    return Result(scenario=scenario, summary=summary, tables=tables, event_log=sim.log)
