"""Invariant checks for scheduling runs; each returns a list of violations (empty when all hold)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dcsim.testing.harness import PolicyRun

EPS = 1e-7


def check_job_invariants(jobs: pd.DataFrame, capacity: int) -> list[str]:
    """Violations in a run's jobs table (``Result.jobs``) for runs without preemption.

    Checks: every job id appears once; a started job started at or after its submission; a completed job
    ran exactly ``duration_s``; at no instant do running jobs hold more than ``capacity`` accelerators.
    """
    problems: list[str] = []
    duplicated = jobs["job_id"][jobs.duplicated(["workload", "job_id"])]
    if len(duplicated):
        problems.append(f"jobs listed more than once: {sorted(duplicated)[:5]}")
    started = jobs[jobs["start_s"].notna()]
    early = started[started["start_s"] < started["submit_s"] - 1e-9]
    if len(early):
        problems.append(f"jobs started before submission: {list(early['job_id'])[:5]}")
    done = jobs[jobs["status"] == "completed"]
    wrong = done[~np.isclose(done["end_s"] - done["start_s"], done["duration_s"], rtol=1e-9, atol=1e-6)]
    if len(wrong):
        problems.append(f"jobs whose run time differs from their duration: {list(wrong['job_id'])[:5]}")
    end = started["end_s"].fillna(np.inf).to_numpy()
    times = np.concatenate([started["start_s"].to_numpy(), end])
    deltas = np.concatenate([started["gpus"].to_numpy(), -started["gpus"].to_numpy()])
    order = np.lexsort((deltas, times))  # at equal times, releases (negative) before allocations
    peak = int(np.max(np.cumsum(deltas[order]), initial=0))
    if peak > capacity:
        problems.append(f"{peak} accelerators held at once, capacity {capacity}")
    return problems


def no_over_allocation(run: PolicyRun) -> list[str]:
    """No accelerator runs two segments at once; every segment is a full gang of one accelerator type."""
    problems = []
    spans: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    types = run.cluster.accelerator_type
    for seg in run.scheduler.segments:
        job = seg.job
        if len(seg.accelerators) != job.gpus or len(set(seg.accelerators)) != job.gpus:
            problems.append(f"{job.job_id}: segment holds {len(set(seg.accelerators))} accelerators, asked {job.gpus}")
        kinds = {types[a] for a in seg.accelerators}
        if len(kinds) != 1 or (job.accelerator is not None and kinds != {job.accelerator}):
            problems.append(f"{job.job_id}: ran on {sorted(kinds)}, asked {job.accelerator or 'any one type'}")
        for a in seg.accelerators:
            spans[a].append((seg.start_s, seg.end_s, job.job_id))
    for accelerator, items in spans.items():
        items.sort()
        for (_, end, first), (start, _, second) in zip(items, items[1:], strict=False):
            if start < end - EPS:
                problems.append(f"accelerator {accelerator} ran {first} and {second} at once")
    if run.cluster.busy != sum(j.gpus for j in run.scheduler.running.values()):
        problems.append("busy count differs from the running jobs' accelerators")
    return problems


def placement_constraints_kept(run: PolicyRun) -> list[str]:
    """Every segment ran on nodes whose labels match the job's node selector and whose taints it tolerates."""
    cluster = run.cluster
    problems = []
    for seg in run.scheduler.segments:
        job = seg.job
        for pool_name in {cluster.pool_of[a] for a in seg.accelerators}:
            if not cluster.pools[pool_name].admits(job.accelerator, job.node_selector, job.tolerations):
                problems.append(f"{job.job_id} ran in pool {pool_name}, which its selector/tolerations exclude")
    return problems


def quotas_respected(run: PolicyRun) -> list[str]:
    """At no instant does a team hold more accelerators than its quota."""
    quotas = run.scheduler.quotas
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for seg in run.scheduler.segments:
        if seg.job.user in quotas:
            events[seg.job.user] += [(seg.start_s, len(seg.accelerators)), (seg.end_s, -len(seg.accelerators))]
    problems = []
    for team, items in events.items():
        held = 0
        for _, delta in sorted(items, key=lambda item: (item[0], item[1])):  # releases first at equal times
            held += delta
            if held > quotas[team]:
                problems.append(f"team {team} held {held} accelerators, quota {quotas[team]}")
                break
    return problems


def every_job_once(run: PolicyRun) -> list[str]:
    """Every job completed exactly once, or is still running or waiting; none lost or duplicated."""
    finished = [job.job_id for job in run.scheduler.finished]
    if len(finished) != len(set(finished)):
        return ["a job completed more than once"]
    accounted = set(finished) | {j.job_id for j in run.scheduler.running.values()}
    accounted |= {j.job_id for j in run.scheduler.waiting()}
    submitted = {job.job_id for job in run.jobs[: run.scheduler.submitted]}
    lost = submitted - accounted
    return [f"jobs lost: {sorted(lost)[:5]}"] if lost else []


def work_accounted(run: PolicyRun) -> list[str]:
    """Useful work over a job's segments equals its duration when it completed and never exceeds it (work
    kept across preemptions and failures is counted once); no segment does more work than it had time."""
    useful: dict[int, float] = defaultdict(float)
    for seg in run.scheduler.segments:
        if seg.useful_s > max(0.0, seg.end_s - seg.start_s - seg.setup_s) + EPS:
            return [f"{seg.job.job_id}: {seg.useful_s:g} s of work in a {seg.end_s - seg.start_s:g} s segment"]
        useful[seg.job.seq] += seg.useful_s
    problems = []
    for job in run.jobs:
        done = useful.get(job.seq, 0.0)
        if job.end_s == job.end_s and abs(done - job.duration_s) > 1e-6 * max(1.0, job.duration_s):
            problems.append(f"{job.job_id}: {done:g} s of useful work for a {job.duration_s:g} s job")
        if done > job.duration_s + 1e-6 * max(1.0, job.duration_s):
            problems.append(f"{job.job_id}: counted {done:g} s of work, more than its {job.duration_s:g} s")
    return problems


def starts_in_submission_order(run: PolicyRun) -> list[str]:
    """FIFO: no job starts before one submitted earlier."""
    started = sorted((j for j in run.jobs if j.start_s == j.start_s), key=lambda j: j.seq)
    return [
        f"{b.job_id} started at {b.start_s:g} before earlier {a.job_id} at {a.start_s:g}"
        for a, b in zip(started, started[1:], strict=False)
        if b.start_s < a.start_s - EPS
    ] + [
        f"{b.job_id} started while earlier {a.job_id} still waits"
        for a in run.jobs
        if a.start_s != a.start_s and a.seq < run.scheduler.submitted
        for b in started
        if b.seq > a.seq
    ][:5]


def reservations_kept(run: PolicyRun) -> list[str]:
    """Backfill with exact estimates: a head job starts no later than its first reservation."""
    jobs = {job.seq: job for job in run.jobs}
    return [
        f"{jobs[seq].job_id} reserved for {shadow:g} s, started {jobs[seq].start_s:g} s"
        for seq, shadow in run.scheduler.reservations.items()
        if jobs[seq].start_s == jobs[seq].start_s and jobs[seq].start_s > shadow + EPS
    ]


def host_resources_respected(run: PolicyRun) -> list[str]:
    """At no time do the jobs on a node request more CPU cores or memory than it has."""
    cluster = run.cluster
    events: dict[int, list[tuple[float, float, float]]] = {}
    for seg in run.scheduler.segments:
        job = seg.job
        if not (job.cpus_per_accelerator or job.memory_gb_per_accelerator):
            continue
        for accelerator in seg.accelerators:
            changes = events.setdefault(cluster.node_of[accelerator], [])
            changes.append((seg.start_s, job.cpus_per_accelerator, job.memory_gb_per_accelerator))
            changes.append((seg.end_s, -job.cpus_per_accelerator, -job.memory_gb_per_accelerator))
    problems = []
    for number, changes in events.items():
        node = cluster.nodes[number]
        cpus = memory = 0.0
        for t, d_cpus, d_memory in sorted(changes, key=lambda c: (c[0], c[1])):  # releases first at a tie
            cpus += d_cpus
            memory += d_memory
            if cpus > node.cpu_cores + 1e-9 or memory > node.memory_gb + 1e-9:
                problems.append(f"at {t:g} s, {node.name} had {cpus:g} cores and {memory:g} GB requested")
                break
    return problems


def work_conserving(run: PolicyRun) -> list[str]:
    """No dispatch pass ended with a waiting job that would have fit the free accelerators."""
    return [f"at {t:g} s, {job_id} fit but waited" for t, job_id in run.idle_while_fitting[:5]]


def check_invariants(
    run: PolicyRun, *, fifo_order: bool = False, conserving: bool = False, reservations: bool = False
) -> list[str]:
    """All general invariants (allocation, completion, work accounting, selectors and taints, quotas),
    plus the policy-specific ones asked for."""
    problems = no_over_allocation(run) + every_job_once(run) + work_accounted(run)
    problems += placement_constraints_kept(run) + quotas_respected(run) + host_resources_respected(run)
    if fifo_order:
        problems += starts_in_submission_order(run)
    if conserving:
        problems += work_conserving(run)
    if reservations:
        problems += reservations_kept(run)
    return problems
