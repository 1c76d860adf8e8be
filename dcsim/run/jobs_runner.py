"""Runs a ``kind: jobs`` workload: generates or reads its jobs, submits them, summarises them."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pandas as pd

from dcsim.engine.distributions import Gamma
from dcsim.engine.simulation import Simulation
from dcsim.run.stats import quantiles
from dcsim.scenario.schema import Scenario
from dcsim.scenario.workloads import JobsWorkload
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.workloads.jobs import Job, synthetic_jobs


def make_jobs(spec: JobsWorkload, sim: Simulation, base_dir: str) -> list[Job]:
    """The workload's jobs. Synthetic streams draw arrivals, sizes and durations from three child streams
    (``NAME/arrivals``, ``NAME/gpus``, ``NAME/durations``), so changing one leaves the others' draws alone."""
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


class JobsRunner:
    """Submits one workload's jobs to the shared cluster scheduler at their submit times."""

    def __init__(self, spec: JobsWorkload, sim: Simulation, scheduler: ClusterScheduler, scenario: Scenario) -> None:
        self.spec = spec
        self.sim = sim
        self.scheduler = scheduler
        self.jobs = make_jobs(spec, sim, scenario.base_dir)

    def start(self) -> None:
        """Start the arrival process."""
        self.sim.env.process(self._arrivals())

    def _arrivals(self) -> Generator[Any, Any, None]:
        env = self.sim.env
        submit = self.scheduler.submit
        for job in self.jobs:
            delay = job.submit_s - env.now
            if delay > 0:
                yield env.timeout(delay)
            submit(job)

    def table(self, cluster_node_of: list[int], node_names: list[str], accelerator_type: list[str]) -> pd.DataFrame:
        """One row per job: times, size, where it ran and its status."""
        rows = []
        for job in self.jobs:
            started = job.start_s == job.start_s
            ended = job.end_s == job.end_s
            nodes = sorted({cluster_node_of[a] for a in job.accelerators})
            rows.append(
                {
                    "workload": job.workload,
                    "job_id": job.job_id,
                    "submit_s": job.submit_s,
                    "start_s": job.start_s,
                    "end_s": job.end_s,
                    "wait_s": job.start_s - job.submit_s,
                    "jct_s": job.end_s - job.submit_s,
                    "duration_s": job.duration_s,
                    "gpus": job.gpus,
                    "accelerator": accelerator_type[job.accelerators[0]] if job.accelerators else job.accelerator,
                    "nodes": ";".join(node_names[n] for n in nodes),
                    "status": "completed" if ended else "running" if started else "waiting",
                }
            )
        return pd.DataFrame(rows)

    def summary(
        self, end_s: float, usd_per_accelerator_s: dict[str, float], busy_w: dict[str, float], pue: float
    ) -> dict[str, Any]:
        """The contract's jobs figures plus accelerator-hours, cost and energy of the work done."""
        done = [job for job in self.jobs if job.end_s == job.end_s]
        started = [job for job in self.jobs if job.start_s == job.start_s]
        submitted = [job for job in self.jobs if job.submit_s <= end_s]
        accelerator_s = 0.0
        cost = 0.0
        energy_j = 0.0
        for job in started:
            ran = (job.end_s if job.end_s == job.end_s else end_s) - job.start_s
            kind = self.scheduler.cluster.accelerator_type[job.accelerators[0]]
            accelerator_s += ran * job.gpus
            cost += ran * job.gpus * usd_per_accelerator_s[kind]
            energy_j += ran * job.gpus * busy_w[kind] * pue
        first_submit = min((job.submit_s for job in self.jobs), default=0.0)
        return {
            "kind": "jobs",
            "jobs_submitted": len(submitted),
            "jobs_completed": len(done),
            "jobs_running": len(started) - len(done),
            "jobs_waiting": len(submitted) - len(started),
            "jct_s": quantiles([job.end_s - job.submit_s for job in done]),
            "wait_s": quantiles([job.start_s - job.submit_s for job in started]),
            "makespan_s": (max(job.end_s for job in done) - first_submit) if done else None,
            "accelerator_hours": accelerator_s / 3600.0,
            "cost_usd": cost,
            "energy_kwh": energy_j / 3.6e6,
        }
