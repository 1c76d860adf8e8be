"""Services (inference replicas) and jobs drawing from one pool: holds preempt jobs, held accelerators are
never given to a job, released ones are (issue #8, "all drawing from one pool")."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from dcsim.engine.simulation import Simulation
from dcsim.scheduler.cluster import Cluster, NodeGroup
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.placement import resolve_placement
from dcsim.scheduler.policies import resolve_policy
from dcsim.workloads.jobs import Job


def _scheduler() -> tuple[Simulation, ClusterScheduler]:
    sim = Simulation(0)
    cluster = Cluster([NodeGroup("n", 2, "a100-sxm-80gb", 4)])
    return sim, ClusterScheduler(sim, cluster, resolve_policy("fifo")(), resolve_placement("pack")(), restart_s=5.0)


def test_a_hold_preempts_the_jobs_there_and_blocks_its_accelerators_until_released() -> None:
    sim, scheduler = _scheduler()
    jobs = [Job(i, f"j{i}", 0.0, 4, 100.0, "w") for i in range(2)]
    held: list[tuple[float, list[int]]] = []

    def service() -> Generator[Any, Any, None]:
        yield sim.env.timeout(10.0)
        victim_accelerators = list(jobs[0].accelerators)
        scheduler.hold("chat/replica-0", victim_accelerators[:2])
        held.append((sim.now, victim_accelerators[:2]))
        for _ in range(50):  # while held (to t=60), no job runs on the held accelerators
            yield sim.env.timeout(1.0)
            assert not set(held[0][1]) & {a for j in scheduler.running.values() for a in j.accelerators}
        scheduler.unhold("chat/replica-0")

    for job in jobs:
        scheduler.submit(job)
    sim.env.process(service())
    sim.env.run()
    scheduler.close(sim.now)
    first, second = jobs
    assert first.preemptions == 1 and second.preemptions == 0
    assert scheduler.service_preemptions == {"chat": 1}
    # the preempted job waits for 4 free accelerators: 2 stay held until t=60, then it restarts (5 s set-up)
    assert first.end_s == pytest.approx(60.0 + 5.0 + 90.0)
    assert second.end_s == pytest.approx(100.0)
    assert scheduler.cluster.busy == 0 and scheduler.service_held == set()
    with pytest.raises(ValueError, match="already held"):
        scheduler.hold("x", [0])
        scheduler.hold("y", [0])

