"""Hypothesis property tests of gang allocation under FIFO, on random clusters and job streams."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.engine.simulation import Simulation
from dcsim.scheduler import Cluster, ClusterScheduler, resolve_placement, resolve_policy
from dcsim.workloads.jobs import Job


@st.composite
def clusters_and_jobs(draw):
    node_types = draw(
        st.lists(
            st.tuples(st.integers(1, 4), st.sampled_from(["a100-sxm-80gb", "h100-sxm"]), st.integers(1, 8)),
            min_size=1,
            max_size=3,
        )
    )
    spec = [(f"t{i}", count, acc, per) for i, (count, acc, per) in enumerate(node_types)]
    pools: dict[str, int] = defaultdict(int)
    for _, count, acc, per in spec:
        pools[acc] += count * per
    largest = max(pools.values())
    raw_jobs = draw(
        st.lists(
            st.tuples(
                st.floats(0, 100, allow_nan=False),
                st.integers(1, largest),
                st.floats(0, 50, allow_nan=False),
                st.sampled_from([None, *pools]),
            ),
            min_size=1,
            max_size=40,
        )
    )
    jobs = []
    for i, (gap, gpus, duration, acc) in enumerate(raw_jobs):
        gpus = min(gpus, pools[acc]) if acc else gpus
        jobs.append((gap, gpus, duration, acc, i))
    placement = draw(st.sampled_from(["pack", "spread"]))
    return spec, jobs, placement


def simulate(spec, raw_jobs, placement):
    sim = Simulation(0)
    cluster = Cluster(spec)
    scheduler = ClusterScheduler(sim, cluster, resolve_policy("fifo")(), resolve_placement(placement)())
    jobs = []
    now = 0.0
    for gap, gpus, duration, acc, i in raw_jobs:
        now += gap
        jobs.append(Job(i, f"j{i}", now, gpus, duration, "w", acc))

    def arrivals():
        for job in jobs:
            yield sim.env.timeout(job.submit_s - sim.env.now)
            scheduler.submit(job)

    sim.env.process(arrivals())
    sim.env.run()
    return cluster, scheduler, jobs


@settings(max_examples=150, deadline=None)
@given(clusters_and_jobs())
def test_gang_never_over_allocates_and_every_job_finishes_once(case):
    spec, raw_jobs, placement = case
    cluster, scheduler, jobs = simulate(spec, raw_jobs, placement)
    # every submitted job finished exactly once
    assert sorted(j.job_id for j in scheduler.finished) == sorted(j.job_id for j in jobs)
    assert not scheduler.running and not scheduler.queue
    for job in jobs:
        # gang: all of its accelerators, distinct, of one type (the requested one if any), for its duration
        assert len(job.accelerators) == len(set(job.accelerators)) == job.gpus
        types = {cluster.accelerator_type[a] for a in job.accelerators}
        assert len(types) == 1 and (job.accelerator is None or types == {job.accelerator})
        assert job.end_s - job.start_s == job.duration_s or abs(job.end_s - job.start_s - job.duration_s) < 1e-9
        assert job.start_s >= job.submit_s
    # no accelerator runs two jobs at once
    intervals = defaultdict(list)
    for job in jobs:
        for a in job.accelerators:
            intervals[a].append((job.start_s, job.end_s))
    for spans in intervals.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end - 1e-9
    # the recorded timeline never exceeds the cluster and ends empty
    assert max(busy for _, busy, _ in scheduler.timeline) <= cluster.size
    assert cluster.busy == 0
    assert all(pool.free_total == pool.capacity for pool in cluster.pools.values())


@settings(max_examples=150, deadline=None)
@given(clusters_and_jobs())
def test_fifo_starts_jobs_in_submission_order(case):
    spec, raw_jobs, placement = case
    _, _, jobs = simulate(spec, raw_jobs, placement)
    starts = [(job.start_s, job.seq) for job in sorted(jobs, key=lambda j: j.seq)]
    for (earlier, _), (later, _) in zip(starts, starts[1:], strict=False):
        assert later >= earlier
