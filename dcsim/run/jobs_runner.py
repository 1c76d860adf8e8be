"""Runs a ``kind: jobs`` workload: generates or reads its jobs, submits them, summarises them."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import pandas as pd

from dcsim.engine.distributions import Gamma
from dcsim.engine.simulation import Simulation
from dcsim.run.context import JobUsage, RunContext, job_usage
from dcsim.run.runner import Runner, RunServices
from dcsim.run.stats import quantiles
from dcsim.scenario.network import build_fabric
from dcsim.scenario.schema import Scenario
from dcsim.scenario.workloads import JobsWorkload
from dcsim.scheduler.contention import StepTraffic
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.shared_network import SharedNetwork
from dcsim.scheduler.traffic import Transfers, ring_transfers
from dcsim.workloads.jobs import Job, synthetic_jobs

__all__ = ["JobUsage", "JobsRunner", "job_usage", "make_jobs"]


def make_jobs(spec: JobsWorkload, sim: Simulation, base_dir: str) -> list[Job]:
    """The workload's jobs. Synthetic streams draw arrivals, sizes and durations from three child streams
    (``NAME/arrivals``, ``NAME/gpus``, ``NAME/durations``), so changing one leaves the others' draws alone."""
    jobs = _jobs(spec, sim, base_dir)
    selector, tolerations = dict(spec.node_selector), frozenset(spec.tolerations)
    cpus, memory = spec.cpus_per_accelerator, spec.memory_gb_per_accelerator
    for job in jobs:
        job.node_selector = selector
        job.tolerations = tolerations
        if cpus is not None:
            job.cpus_per_accelerator = cpus
        if memory is not None:
            job.memory_gb_per_accelerator = memory
        if spec.team is not None and not job.user:
            job.user = spec.team
    return jobs


def _jobs(spec: JobsWorkload, sim: Simulation, base_dir: str) -> list[Job]:
    if spec.synthetic is None:
        return spec.read_trace(base_dir)
    synth = spec.synthetic
    count = synth.count
    mean_gap = 1.0 / synth.rate_per_second
    arrivals = sim.stream(f"{spec.name}/arrivals")
    if synth.arrival == "poisson":
        gaps = arrivals.exponential(mean_gap, count)
    elif synth.arrival == "constant":
        gaps = np.full(count, mean_gap)
    else:
        gaps = Gamma(mean_gap, float(synth.cv or 1.0)).sample(arrivals, count)
    gpus = np.maximum(1, np.rint(synth.gpus.sample(sim.stream(f"{spec.name}/gpus"), count))).astype(int)
    durations = np.maximum(0.0, synth.duration_s.sample(sim.stream(f"{spec.name}/durations"), count))
    return synthetic_jobs(spec.name, count, gaps, gpus, durations, spec.arrival_s, spec.accelerator)


class JobsRunner(Runner[JobsWorkload]):
    """Submits one workload's jobs to the shared cluster scheduler at their submit times."""

    def __init__(self, spec: JobsWorkload, sim: Simulation, scheduler: ClusterScheduler, scenario: Scenario) -> None:
        self.spec = spec
        self.sim = sim
        self.scheduler = scheduler
        self.jobs = make_jobs(spec, sim, scenario.base_dir)
        self.done = sim.env.event()
        self._completed = 0
        self.network: SharedNetwork | None = None
        if spec.network_traffic is not None:
            from dcsim.run.shared_network import shared_network
            from dcsim.run.training_runner import fabric_names

            self.network = shared_network(scheduler, scenario)
            if self.network is not None:
                servers = build_fabric(scenario.datacenter, scenario.seed).servers
                self.fabric_names = fabric_names(scheduler.cluster, servers)
                self.network.sources[spec.name] = self.step_traffic

    @classmethod
    def build(cls, spec: JobsWorkload, run: RunServices) -> JobsRunner:
        """The runner, told of its jobs' completions by the run's scheduler."""
        runner = cls(spec, run.sim, run.scheduler, run.scenario)
        run.on_job_finished(spec.name, runner.job_finished)
        return runner

    def step_traffic(self, job: Job) -> StepTraffic | None:
        """A job's step traffic (``network_traffic``): one ring all-reduce over its accelerators per step."""
        traffic = self.spec.network_traffic
        assert traffic is not None and self.network is not None
        names = [self.fabric_names[a] for a in sorted(job.accelerators)]
        transfers: Transfers = {}
        ring_transfers(transfers, "all_reduce", names, traffic.allreduce_gb * 1e9)
        return self.network.loads.step_traffic(transfers, traffic.step_s)

    def start(self) -> None:
        """Start the arrival process."""
        self.sim.env.process(self._arrivals())
        if not self.jobs:
            self.done.succeed()

    @property
    def completed(self) -> int:
        """Jobs finished so far."""
        return self._completed

    def horizon_s(self) -> float | None:
        """The last job's submission (s)."""
        return max(job.submit_s for job in self.jobs) if self.jobs else None

    def jobs_progress(self) -> tuple[int, int]:
        """(jobs finished, jobs)."""
        return self._completed, len(self.jobs)

    def job_finished(self) -> None:
        """Count a completion; ``done`` fires with the last one."""
        self._completed += 1
        if self._completed == len(self.jobs):
            self.done.succeed()

    def _arrivals(self) -> Generator[Any, Any, None]:
        env = self.sim.env
        submit = self.scheduler.submit
        for job in self.jobs:
            delay = job.submit_s - env.now
            if delay > 0:
                yield env.timeout(delay)
            submit(job)

    def _status(self, job: Job, end_s: float) -> str:
        if job.end_s == job.end_s:
            return "completed"
        if job.seq in self.scheduler.running and job.submit_s <= end_s:
            return "running"
        return "waiting" if job.submit_s <= end_s else "not_submitted"

    def tables(self, context: RunContext) -> dict[str, pd.DataFrame]:
        """The ``jobs`` table: one row per job."""
        return {"jobs": self._jobs_table(context)}

    def _jobs_table(self, context: RunContext) -> pd.DataFrame:
        """One row per job: times, size, where it ran, preemptions and its status at the end."""
        usage, end_s, jobs = context.usage, context.end_s, self.jobs
        used = [usage.get(job.seq) for job in jobs]
        submit = np.fromiter((job.submit_s for job in jobs), float, len(jobs))
        start = np.fromiter((job.start_s for job in jobs), float, len(jobs))
        end = np.fromiter((job.end_s for job in jobs), float, len(jobs))
        extra: dict[str, list[float]] = {}
        if self.network is not None:
            extra["network_slowdown"] = self._slowdowns()
        return pd.DataFrame(
            {
                "workload": [job.workload for job in jobs],
                "job_id": [job.job_id for job in jobs],
                "submit_s": submit,
                "start_s": start,
                "end_s": end,
                "wait_s": start - submit,
                "jct_s": end - submit,
                "duration_s": [job.duration_s for job in jobs],
                "gpus": [job.gpus for job in jobs],
                "accelerator": [u.accelerator if u else job.accelerator for u, job in zip(used, jobs, strict=True)],
                "nodes": [";".join(u.nodes) if u else "" for u in used],
                "preemptions": [job.preemptions for job in jobs],
                "status": [self._status(job, end_s) for job in jobs],
                **extra,
            }
        )

    def _slowdowns(self) -> list[float]:
        """Each job's mean network slowdown over its run (NaN for a job that never started)."""
        out = []
        for job in self.jobs:
            slowdown = self.scheduler.network_slowdown(job)
            out.append(slowdown[0] if slowdown is not None else 1.0 if job.start_s == job.start_s else math.nan)
        return out

    def summary(self, context: RunContext) -> dict[str, Any]:
        """The contract's jobs figures plus accelerator-hours, cost and energy of the work done."""
        end_s, usage, pue = context.end_s, context.usage, context.pue
        usd_per_accelerator_s, busy_w = context.usd_per_accelerator_s, context.busy_w
        statuses = [self._status(job, end_s) for job in self.jobs]
        done = [job for job in self.jobs if job.end_s == job.end_s]
        started = [job for job in self.jobs if job.start_s == job.start_s]
        accelerator_s = cost = energy_j = 0.0
        for job in started:
            used = usage[job.seq]
            accelerator_s += used.accelerator_s
            cost += used.accelerator_s * usd_per_accelerator_s[used.accelerator]
            energy_j += used.accelerator_s * busy_w[used.accelerator] * pue
        first_submit = min((job.submit_s for job in self.jobs), default=0.0)
        return {
            "kind": "jobs",
            "jobs_submitted": len(self.jobs) - statuses.count("not_submitted"),
            "jobs_completed": len(done),
            "jobs_running": statuses.count("running"),
            "jobs_waiting": statuses.count("waiting"),
            "jct_s": quantiles([job.end_s - job.submit_s for job in done]),
            "wait_s": quantiles([job.start_s - job.submit_s for job in started]),
            "makespan_s": (max(job.end_s for job in done) - first_submit) if done else None,
            "preemptions": sum(job.preemptions for job in self.jobs),
            "failures": sum(job.failures for job in self.jobs),
            "lost_accelerator_hours": sum(job.lost_s * job.gpus for job in self.jobs) / 3600.0,
            "accelerator_hours": accelerator_s / 3600.0,
            "cost_usd": cost,
            "energy_kwh": energy_j / 3.6e6,
            **self._slowdown_summary(),
        }

    def _slowdown_summary(self) -> dict[str, Any]:
        """``network_slowdown`` quantiles over the started jobs (only with ``network_traffic``)."""
        if self.network is None:
            return {}
        values = [s for s in self._slowdowns() if s == s]
        return {"network_slowdown": quantiles(values), "network_slowdown_max": max(values, default=None)}
