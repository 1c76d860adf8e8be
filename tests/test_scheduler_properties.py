"""Property tests of every built-in policy, with the public kit (dcsim.testing) users get."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.scheduler.policies import POLICIES
from dcsim.testing import check_invariants, simulate_policy
from dcsim.testing.strategies import clusters, job_streams


@st.composite
def cases(draw, estimates=False):
    groups = draw(clusters())
    return (
        groups,
        draw(job_streams(groups, estimates=estimates)),
        draw(st.sampled_from(["pack", "spread", "topology_aware"])),
    )


@pytest.mark.parametrize("policy", POLICIES.names())
@settings(max_examples=60, deadline=None)
@given(case=cases(), preemption=st.booleans())
def test_general_invariants(policy, case, preemption):
    groups, jobs, placement = case
    run = simulate_policy(groups, jobs, policy, placement, preemption=preemption, checkpoint_s=1.0, restart_s=2.0)
    cls = POLICIES.resolve(policy)
    assert check_invariants(run, conserving=cls.work_conserving) == []
    # without a stop time every job completes
    assert len(run.scheduler.finished) == len(jobs)


@settings(max_examples=100, deadline=None)
@given(case=cases())
def test_fifo_starts_in_order(case):
    groups, jobs, placement = case
    assert check_invariants(simulate_policy(groups, jobs, "fifo", placement), fifo_order=True) == []


@settings(max_examples=100, deadline=None)
@given(case=cases())
def test_backfill_keeps_head_reservation(case):
    groups, jobs, placement = case
    run = simulate_policy(groups, jobs, "backfill", placement)
    assert check_invariants(run, reservations=True) == []


@settings(max_examples=60, deadline=None)
@given(case=cases(), until=st.floats(1.0, 200.0))
def test_runs_cut_short_lose_nothing(case, until):
    groups, jobs, placement = case
    run = simulate_policy(groups, jobs, "las", placement, preemption=True, restart_s=1.0, until_s=until)
    assert check_invariants(run) == []


@pytest.mark.parametrize("policy", POLICIES.names())
@settings(max_examples=40, deadline=None)
@given(case=cases(), quota=st.integers(1, 16))
def test_quotas_cap_each_team(policy, case, quota):
    groups, jobs, placement = case
    quotas = {"a": max(quota, max(j.gpus for j in jobs if j.team == "a") if any(j.team == "a" for j in jobs) else 1)}
    run = simulate_policy(groups, jobs, policy, placement, quotas=quotas)
    cls = POLICIES.resolve(policy)
    assert check_invariants(run, conserving=cls.work_conserving) == []
    assert len(run.scheduler.finished) == len(jobs)


def test_selectors_and_taints_steer_jobs():
    from dcsim.scheduler.cluster import NodeGroup
    from dcsim.testing.strategies import JobSpec

    groups = [
        NodeGroup("a", 1, "h100-sxm", 4, labels=(("zone", "a"),)),
        NodeGroup("b", 1, "h100-sxm", 4, labels=(("zone", "b"),), taints=("spot",)),
    ]
    jobs = [
        JobSpec(0, 4, 10),  # no toleration: only zone a
        JobSpec(0, 4, 10),  # waits for zone a even though zone b is free
        JobSpec(0, 4, 10, node_selector=(("zone", "b"),), tolerations=("spot",)),
    ]
    run = simulate_policy(groups, jobs, "sjf")
    pools = {seg.job.job_id: run.cluster.pool_of[seg.accelerators[0]] for seg in run.scheduler.segments}
    assert pools["j0"].startswith("h100-sxm[zone=a") and pools["j1"].startswith("h100-sxm[zone=a")
    assert pools["j2"] == "h100-sxm[zone=b,taint:spot]"
    assert run.jobs[1].start_s == 10 and run.jobs[2].start_s == 0
    assert check_invariants(run, conserving=True) == []


def test_kit_catches_a_broken_policy():
    """The checks are not vacuous: a policy that never starts a fitting job is flagged as non-conserving,
    and one that reorders under FIFO's name is flagged as out of order."""
    from dcsim.scheduler.cluster import NodeGroup
    from dcsim.scheduler.policies import SchedulingPolicy
    from dcsim.testing.strategies import JobSpec

    class Lazy(SchedulingPolicy):
        def schedule(self, scheduler):
            for job in scheduler.waiting():
                if job.gpus > 1:
                    scheduler.try_start(job)

    class Reversed(SchedulingPolicy):
        blocking = False

        def key(self, job):
            return -job.seq

    groups = [NodeGroup("g", 1, "h100-sxm", 2)]
    jobs = [JobSpec(0, 2, 10), JobSpec(1, 1, 5), JobSpec(0, 2, 5)]
    lazy = simulate_policy(groups, jobs, Lazy())
    assert any("fit but waited" in p for p in check_invariants(lazy, conserving=True))
    reordered = simulate_policy(groups, jobs, Reversed())
    assert any("before earlier" in p for p in check_invariants(reordered, fifo_order=True))
