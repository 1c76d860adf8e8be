"""Services (inference replicas) and jobs drawing from one pool: holds preempt jobs, held accelerators are
never given to a job, released ones are (issue #8, "all drawing from one pool")."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.engine.simulation import Simulation
from dcsim.scheduler.cluster import Cluster, NodeGroup
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.placement import resolve_placement
from dcsim.scheduler.policies import POLICIES, resolve_policy
from dcsim.testing import check_invariants, simulate_policy
from dcsim.testing.strategies import clusters, job_streams
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


def test_host_requests_bound_what_a_node_grants() -> None:
    """A node of 4 accelerators and 8 cores runs at most 2 jobs of 1 accelerator and 4 cores at once."""
    sim = Simulation(0)
    cluster = Cluster([NodeGroup("n", 1, "a100-sxm-80gb", 4, cpu_cores=8.0, memory_gb=64.0)])
    scheduler = ClusterScheduler(sim, cluster, resolve_policy("fifo")(), resolve_placement("pack")())
    jobs = [Job(i, f"j{i}", 0.0, 1, 10.0, "w") for i in range(4)]
    for job in jobs:
        job.cpus_per_accelerator = 4.0
        scheduler.submit(job)
    sim.env.run()
    assert sorted(job.start_s for job in jobs) == [0.0, 0.0, 10.0, 10.0]
    assert cluster.nodes[0].free_cpus == 8.0 and cluster.nodes[0].free_memory_gb == 64.0
    # memory binds the same way
    big = Job(9, "big", sim.now, 2, 5.0, "w")
    big.memory_gb_per_accelerator = 40.0  # 2 x 40 GB > 64 GB: only one accelerator's worth fits per node
    assert not scheduler.fits(big)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_no_policy_over_commits_host_cpus(data: st.DataObject) -> None:
    groups = data.draw(clusters(host=True, labels=False))
    jobs = data.draw(job_streams(groups, max_jobs=25))
    policy = data.draw(st.sampled_from(POLICIES.names()))
    run = simulate_policy(groups, jobs, policy=policy)
    assert check_invariants(run) == []
