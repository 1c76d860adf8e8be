"""Run a scheduling policy on a drawn cluster and job stream, and audit every dispatch pass."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import simpy

from dcsim.engine.distributions import Constant
from dcsim.engine.simulation import Simulation
from dcsim.scheduler.checkpointing import NO_CHECKPOINTS, Checkpointing
from dcsim.scheduler.cluster import Cluster, NodeGroup
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.failures import FailureInjector
from dcsim.scheduler.placement import Placement, resolve_placement
from dcsim.scheduler.policies import SchedulingPolicy, resolve_policy
from dcsim.testing.strategies import JobSpec
from dcsim.workloads.jobs import Job


@dataclass
class PolicyRun:
    """What a run left behind: the scheduler (segments, timeline, reservations), its jobs, and the
    dispatch passes after which a waiting job would have fit (``idle_while_fitting``)."""

    scheduler: ClusterScheduler
    jobs: list[Job]
    idle_while_fitting: list[tuple[float, str]] = field(default_factory=list)

    @property
    def cluster(self) -> Cluster:
        return self.scheduler.cluster


def simulate_policy(
    groups: Sequence[NodeGroup],
    specs: Sequence[JobSpec],
    policy: SchedulingPolicy | str = "fifo",
    placement: Placement | str = "pack",
    *,
    preemption: bool = False,
    checkpoint_s: float = 0.0,
    restart_s: float = 0.0,
    until_s: float | None = None,
    failures: Sequence[tuple[float, int, float]] = (),
    checkpointing: Checkpointing = NO_CHECKPOINTS,
    quotas: dict[str, int] | None = None,
) -> PolicyRun:
    """Simulate ``specs`` on ``groups`` under ``policy`` (an instance, a registered name or ``module:Class``).

    ``failures`` are ``(time_s, accelerator index, repair_s)``; ``checkpointing`` is the jobs' work model."""
    if isinstance(policy, str):
        policy = resolve_policy(policy)()
    if isinstance(placement, str):
        placement = resolve_placement(placement)()
    sim = Simulation(0)
    scheduler = ClusterScheduler(
        sim,
        Cluster(list(groups)),
        policy,
        placement,
        preemption=preemption,
        checkpoint_s=checkpoint_s,
        restart_s=restart_s,
        checkpointing=checkpointing,
        quotas=quotas,
    )
    jobs: list[Job] = []
    now = 0.0
    for i, spec in enumerate(specs):
        now += spec.gap_s
        jobs.append(
            Job(
                i,
                f"j{i}",
                now,
                spec.gpus,
                spec.duration_s,
                "w",
                spec.accelerator,
                user=spec.team,
                priority=spec.priority,
                estimate_s=spec.estimate_s,
            )
        )
        jobs[-1].node_selector = dict(spec.node_selector)
        jobs[-1].tolerations = frozenset(spec.tolerations)
        jobs[-1].cpus_per_accelerator = spec.cpus_per_accelerator
    run = PolicyRun(scheduler, jobs)
    schedule = policy.schedule

    def audited(target: ClusterScheduler) -> None:
        schedule(target)
        fitting = next((job for job in target.waiting() if target.fits(job)), None)
        if fitting is not None:
            run.idle_while_fitting.append((target.now, fitting.job_id))

    policy.schedule = audited  # type: ignore[method-assign, assignment]

    def arrivals() -> Generator[simpy.Event, None, None]:
        for job in jobs:
            yield sim.env.timeout(job.submit_s - sim.env.now)
            scheduler.submit(job)

    sim.env.process(arrivals())
    if failures:
        FailureInjector(scheduler, sim.stream("failures"), Constant(0.0)).schedule(failures)
    sim.env.run(until=until_s)
    scheduler.close(until_s if until_s is not None else sim.now)
    return run
