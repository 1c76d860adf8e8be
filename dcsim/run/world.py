"""Build a run's world from a validated scenario, run it, and assemble the :class:`Result`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import simpy

from dcsim._version import __version__
from dcsim.compute import prediction_basis
from dcsim.cost import breakdown, busy_accelerator_usd_per_s, node_price, storage_cost_usd
from dcsim.energy import accelerator_energy_j, node_power, to_kwh
from dcsim.engine.simulation import Simulation
from dcsim.progress import Stage, run_simulation
from dcsim.run.context import RunContext, job_usage
from dcsim.run.link_failures import link_failures
from dcsim.run.network_session import NetworkSession
from dcsim.run.result import Result
from dcsim.run.runner import Runner, RunServices, runner_class
from dcsim.scenario import load_scenario
from dcsim.scenario.schema import Scenario
from dcsim.scheduler.checkpointing import NO_CHECKPOINTS, Checkpointing
from dcsim.scheduler.cluster import Cluster, NodeGroup
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.failures import FailureInjector
from dcsim.scheduler.placement import resolve_placement
from dcsim.scheduler.policies import resolve_policy


def run_scenario(source: str | Path | Mapping[str, Any] | Scenario, *, trace: bool = False) -> Result:
    """Simulate a scenario (path, mapping or :class:`Scenario`) and return its :class:`Result`.

    ``trace=True`` records the event log for :meth:`Result.write_chrome_trace`.
    Raises :class:`dcsim.errors.UserInputError` for an invalid scenario. The accelerators the scenario declares
    are in the catalog during the run only (:meth:`Scenario.catalog_scope`).
    """
    scenario = source if isinstance(source, Scenario) else load_scenario(source)
    with scenario.catalog_scope():
        return _run(scenario, trace)


def _run(scenario: Scenario, trace: bool) -> Result:
    """:func:`run_scenario` of a validated scenario, its declared accelerators in the catalog."""
    preparing = Stage("preparing the run")
    sim = Simulation(scenario.seed, trace=trace)
    nodes = scenario.datacenter.nodes
    cluster = Cluster(
        [
            NodeGroup(
                n.name,
                n.count,
                n.accelerator,
                n.accelerators_per_node,
                n.nodes_per_rack,
                tuple(n.labels.items()),
                tuple(n.taints),
                n.cpu_cores,
                n.memory_gb,
            )
            for n in nodes
        ]
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
        checkpointing=checkpointing(scenario),
        quotas=dict(spec.quotas),
    )
    run = RunServices(sim, scenario, scheduler)
    runners = [runner_class(workload).build(workload, run) for workload in scenario.workloads]
    scheduler.on_finish = run.job_finished_hook()
    for runner in runners:
        runner.start()
    # A plain event, not the AllOf itself: SimPy strips a condition's checks when it is nested in another
    # condition (the failure process waits on AnyOf(timeout, done)).
    done = sim.env.event()
    sim.env.all_of([runner.done for runner in runners]).callbacks.append(partial(_succeed, done))
    injector = _failures(scenario, sim, scheduler, done)
    links = link_failures(scenario, sim, scheduler, done)
    preparing.close()
    run_simulation(sim.env, scenario.duration_s, done, partial(expected_horizon_s, runners), _jobs_status(runners))
    end_s = float(scenario.duration_s if scenario.duration_s is not None else sim.now)
    scheduler.close(end_s)
    for runner in runners:
        runner.add_busy_time(scheduler.busy_s, cluster, end_s)
    with Stage("summarising the run"):
        result = _result(scenario, sim, cluster, scheduler, runners, run.network, end_s)
    result.summary["datacenter"]["accelerator_failures"] = len(injector.events) if injector else 0
    if links is not None:
        result.summary["datacenter"].update(links.summary(end_s))
    return result


def expected_horizon_s(runners: list[Runner[Any]]) -> float | None:
    """The simulated time by which the work is expected to have arrived (s), for progress bars: the last job
    submission, request arrival or training end (at its nominal step time); None if nothing says."""
    ends = [0.0]
    for runner in runners:
        end_s = runner.horizon_s()
        if end_s is not None:
            ends.append(end_s)
    return max(ends) or None


def _jobs_status(runners: list[Runner[Any]]) -> Callable[[], str] | None:
    """For a progress bar: ``"12,345/1,000,000 jobs"`` over the run's workloads that count jobs (None without
    any)."""
    progress = [(runner, counts) for runner in runners if (counts := runner.jobs_progress()) is not None]
    if not progress:
        return None
    total = sum(counts[1] for _, counts in progress)
    counting = [runner for runner, _ in progress]

    def status() -> str:
        finished = sum((runner.jobs_progress() or (0, 0))[0] for runner in counting)
        return f"{finished:,}/{total:,} jobs"

    return status


def _succeed(event: simpy.Event, _trigger: simpy.Event) -> None:
    event.succeed()


def checkpointing(scenario: Scenario) -> Checkpointing:
    """The scenario's checkpointing model (none without a ``failures`` section)."""
    failures = scenario.failures
    if failures is None:
        return NO_CHECKPOINTS
    cost_s = failures.checkpoint_s or 0.0
    if failures.checkpoint_gb is not None:
        cost_s = failures.checkpoint_gb * 1e9 / (scenario.datacenter.storage.write_bytes_per_s or 1.0)
    mtbf_s = failures.accelerator_mtbf_h * 3600.0 if failures.accelerator_mtbf_h else None
    return Checkpointing(failures.checkpoint_interval_s, cost_s, failures.restart_s, mtbf_s)


def _failures(scenario: Scenario, sim: Simulation, scheduler: ClusterScheduler, done: Any) -> FailureInjector | None:
    failures = scenario.failures
    if failures is None or failures.repair_s is None:  # only links fail (dcsim.run.link_failures)
        return None
    injector = FailureInjector(
        scheduler,
        sim.stream("failures"),
        failures.repair_s,
        failures.accelerator_mtbf_h * 3600.0 if failures.accelerator_mtbf_h else None,
        failures.node_mtbf_h * 3600.0 if failures.node_mtbf_h else None,
    )
    injector.start(done)
    return injector


def _per_accelerator(scenario: Scenario, cluster: Cluster) -> pd.DataFrame:
    powers = {n.name: node_power(n) for n in scenario.datacenter.nodes}
    rows = [
        {
            "accelerator_index": index,
            "node": node.name,
            "node_type": node.node_type,
            "accelerator": node.accelerator,
            "rack": node.rack,
            "idle_w": powers[node.node_type].idle_w,
            "max_w": powers[node.node_type].max_w,
        }
        for node in cluster.nodes
        for index in node.accelerators
    ]
    return pd.DataFrame(rows)


def _result(
    scenario: Scenario,
    sim: Simulation,
    cluster: Cluster,
    scheduler: ClusterScheduler,
    runners: list[Runner[Any]],
    network: NetworkSession | None,
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
    context = RunContext(end_s, scheduler, dc.pue, usage=job_usage(scheduler, end_s))
    compute_usd = 0.0
    price_basis: dict[str, str] = {}
    node_type = accelerators["node_type"].to_numpy()
    for node in dc.nodes:
        price = node_price(node)
        power = node_power(node)
        compute_usd += price.usd_per_s * node.count * end_s
        if price.pays_electricity:
            node_kwh = to_kwh(float(energy_j[node_type == node.name].sum()) + node.count * node.host_power_w * end_s)
            compute_usd += node_kwh * dc.pue * dc.electricity_usd_per_kwh
        context.usd_per_accelerator_s[node.accelerator] = busy_accelerator_usd_per_s(node, dc)
        context.busy_w[node.accelerator] = power.max_w
        price_basis[node.name] = price.basis
    total_accelerators = cluster.size
    workloads = {runner.spec.name: runner.summary(context) for runner in runners}
    for kind in dict.fromkeys(type(runner) for runner in runners):
        kind.compare_summaries(workloads, [r for r in runners if type(r) is kind])
    compression_usd = sum(float(runner.compression_usd) for runner in runners)
    # a distillation run's accelerator time is already in compute: move it to the compression term
    compute_usd -= sum(float(runner.compression_from_compute_usd) for runner in runners)
    summary: dict[str, Any] = {
        "name": scenario.name,
        "seed": scenario.seed,
        "dcsim_version": __version__,
        "simulated_time_s": end_s,
        "workloads": workloads,
        "datacenter": {
            "accelerators": total_accelerators,
            # (clipped: a sum of per-accelerator busy times each <= end_s can exceed n * end_s by rounding)
            "accelerator_utilization": min(1.0, float(busy_s.sum() / (total_accelerators * end_s)))
            if end_s > 0
            else 0.0,
            "energy_kwh": facility_kwh,
            "it_energy_kwh": it_kwh,
            "electricity_usd": facility_kwh * dc.electricity_usd_per_kwh,
            "cost_usd": breakdown(compute_usd, storage_cost_usd(dc, end_s), compression_usd),
            "carbon_kg": None if dc.carbon_g_per_kwh is None else facility_kwh * dc.carbon_g_per_kwh / 1000.0,
            "price_basis": price_basis,
            "goodput": goodput(scheduler.segments, end_s),
            # how dcsim.compute would cost work on each accelerator type: from a calibration profile
            # measured on that device, or from its datasheet with documented efficiency priors
            "compute_basis": {n.accelerator: prediction_basis(n.accelerator) for n in dc.nodes},
        },
    }
    tables = _workload_tables(runners, context)
    tables["accelerators"] = accelerators
    timeline = pd.DataFrame(scheduler.timeline, columns=["time_s", "busy_accelerators", "queued_jobs"])
    timeline["utilization"] = timeline["busy_accelerators"] / total_accelerators
    tables["timeline"] = timeline
    link_usage = None
    if network is not None:
        link_usage = network.flows.usage
        links = link_usage.table(end_s)
        tables["links"] = links[links["bytes"] > 0].astype({"src": str, "dst": str}).reset_index(drop=True)
    return Result(scenario=scenario, summary=summary, tables=tables, event_log=sim.log, link_usage=link_usage)


def _workload_tables(runners: list[Runner[Any]], context: RunContext) -> dict[str, pd.DataFrame]:
    """The runners' tables by name, each the concatenation of its workloads' rows in workload order."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for runner in runners:
        for name, frame in runner.tables(context).items():
            parts.setdefault(name, []).append(frame)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}


def goodput(segments: list[Any], end_s: float) -> float | None:
    """Useful accelerator-seconds over allocated accelerator-seconds (``None`` when nothing ran).

    Useful work excludes set-up (restarts), checkpoint writing and work discarded by failures."""
    allocated = sum((min(seg.end_s, end_s) - seg.start_s) * len(seg.accelerators) for seg in segments)
    useful = sum(seg.useful_s * len(seg.accelerators) for seg in segments)
    return useful / allocated if allocated > 0 else None
