"""Scheduling policies: which waiting job starts next, and which running job gives way.

A policy is one short subclass. Hooks, combined by the base class's :meth:`SchedulingPolicy.schedule`:

- ``key(job)``: the queue order, smallest first; it must not change while the job waits;
- ``blocking``: stop at the first waiting job that does not fit (FIFO's head-of-line rule), or try all;
- ``rank(job)``: a job's current importance (smaller first); with preemption enabled in the scenario, a
  waiting job may take the accelerators of running jobs of strictly larger rank;
- ``review_after_s(job)``: seconds after a running job's start when its priority changes (LAS demotion),
  so that a dispatch pass reconsiders it.

Policies with their own algorithm (``backfill``, ``drf``) override ``schedule``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dcsim.scheduler.registry import Registry
from dcsim.workloads.jobs import Job

if TYPE_CHECKING:
    from dcsim.scheduler.dispatcher import ClusterScheduler


class SchedulingPolicy:
    """Base class: greedy in ``key`` order, optionally blocking and preemptive."""

    blocking = True
    work_conserving = False

    def attach(self, scheduler: ClusterScheduler) -> None:
        """Called once when the scheduler is built (policies may keep a reference or set up state)."""

    def key(self, job: Job) -> Any:
        """Sort key of a waiting job; smaller runs first. Default: submission order."""
        return (job.submit_s, job.seq)

    def rank(self, job: Job) -> Any:
        """Importance of a job right now, smaller is more important; a waiting job may preempt a running
        job of strictly larger rank. ``None`` (the default) means the policy never preempts."""
        return None

    def review_after_s(self, job: Job) -> float | None:
        """Seconds from now until a running job's priority changes; ``None`` if it never does."""
        return None

    def schedule(self, scheduler: ClusterScheduler) -> None:
        """One dispatch pass: start waiting jobs in ``key`` order, preempting where allowed.

        After a preemption the scan starts again, since the preempted jobs are waiting now too (each
        preemption favours a strictly higher-priority job, so this ends)."""
        rescan = True
        while rescan:
            rescan = False
            preemptable = scheduler.preemption
            for job in scheduler.waiting():
                if scheduler.try_start(job):
                    continue
                if preemptable:
                    outcome = self._preempt_for(scheduler, job)
                    if outcome is None:  # ranks only grow along the queue: no later job can preempt either
                        preemptable = False
                    elif outcome:
                        rescan = True
                        break
                if self.blocking or scheduler.cluster.busy == scheduler.cluster.size:
                    return

    def _preempt_for(self, scheduler: ClusterScheduler, job: Job) -> bool | None:
        """Preempt the least important running jobs, if that frees enough accelerators for ``job``.

        Returns whether ``job`` started, or ``None`` when it outranks no running job at all."""
        rank = self.rank(job)
        if rank is None or not scheduler.running:
            return None
        cluster = scheduler.cluster
        outranks_any = False
        if not scheduler.within_quota(job):
            return False
        for pool in scheduler.pools_for(job):
            victims = sorted(
                (
                    (self.rank(v), v.segment_start_s, v.seq, v)
                    for v in scheduler.running.values()
                    if cluster.pool_of[v.accelerators[0]] == pool.name
                ),
                reverse=True,
            )
            freed = pool.free_total
            chosen: list[Job] = []
            for victim_rank, _, _, victim in victims:
                if freed >= job.gpus or not rank < victim_rank:
                    break
                outranks_any = True
                chosen.append(victim)
                freed += victim.gpus
            if freed >= job.gpus and chosen:
                for victim in chosen:
                    scheduler.preempt(victim)
                return scheduler.try_start(job)
        return False if outranks_any else None


POLICIES: Registry[SchedulingPolicy] = Registry("scheduler policy", SchedulingPolicy)
register_policy = POLICIES.register


def resolve_policy(reference: str) -> type[SchedulingPolicy]:
    """The policy class for a registered name or ``module:Class``."""
    return POLICIES.resolve(reference)


@register_policy("fifo")
class Fifo(SchedulingPolicy):
    """First in, first out with head-of-line blocking: jobs start in submission order."""

    blocking = True


@register_policy("sjf")
class ShortestJobFirst(SchedulingPolicy):
    """Shortest (estimated) job first, greedy: any waiting job that fits starts, shortest first.

    Uses the trace's ``estimate_s`` where given, else the true duration (an oracle estimate).
    """

    blocking = False
    work_conserving = True

    def key(self, job: Job) -> Any:
        return (job.estimate_s, job.submit_s, job.seq)


@register_policy("priority")
class Priority(SchedulingPolicy):
    """Highest ``priority`` first (FIFO within a priority), greedy; with preemption enabled, a waiting job
    preempts running jobs of strictly lower priority (lowest priority, most recently started first)."""

    blocking = False
    work_conserving = True

    def key(self, job: Job) -> Any:
        return (-job.priority, job.submit_s, job.seq)

    def rank(self, job: Job) -> Any:
        return -job.priority


@register_policy("las")
class LeastAttainedService(SchedulingPolicy):
    """Tiresias-style discretized 2D least attained service (Gu et al., NSDI 2019).

    A job's service is its accelerator-seconds so far; queues are separated by ``thresholds_s``
    (accelerator-seconds, default 1 h and 10 h of one accelerator). Lower queues run first, FIFO inside a
    queue. With preemption enabled, a job in a lower queue preempts running jobs in higher queues, and a
    running job is reconsidered when it crosses a threshold (demotion).
    """

    blocking = False
    work_conserving = True
    thresholds_s: Sequence[float] = (3600.0, 36000.0)

    def level(self, attained_s: float) -> int:
        """The queue of a job with ``attained_s`` accelerator-seconds (0 is the first served)."""
        return sum(attained_s * (1 + 1e-9) + 1e-9 >= t for t in self.thresholds_s)

    def attach(self, scheduler: ClusterScheduler) -> None:
        self.scheduler = scheduler

    def key(self, job: Job) -> Any:
        return (self.level(job.attained_s), job.submit_s, job.seq)

    def rank(self, job: Job) -> Any:
        return self.level(self.scheduler.attained_now_s(job))

    def review_after_s(self, job: Job) -> float | None:
        attained = self.scheduler.attained_now_s(job)
        above = [t for t in self.thresholds_s if t > attained * (1 + 1e-9) + 1e-9]  # not the one just crossed
        return (min(above) - attained) / job.gpus if above else None


@register_policy("backfill")
class Backfill(SchedulingPolicy):
    """EASY backfilling (Lifka 1995): FIFO, and when the head job does not fit it gets a reservation at
    the earliest time enough accelerators free up (from running jobs' estimated ends); a later job may start
    now if it fits and either ends (by its estimate) before that time or uses only accelerators the head
    job will not need. At most ``depth`` queued jobs are tried per pass (Slurm's ``bf_max_job_test`` idea).
    """

    blocking = True
    depth = 256

    def schedule(self, scheduler: ClusterScheduler) -> None:
        waiting = scheduler.waiting()
        head = None
        for job in waiting:
            if not scheduler.try_start(job):
                head = job
                break
        if head is None:
            return
        candidates: list[Job] = []  # later jobs that fit now; without any there is nothing to backfill
        for job in waiting:
            if len(candidates) >= self.depth or scheduler.cluster.busy == scheduler.cluster.size:
                break
            if scheduler.fits(job):
                candidates.append(job)
        if not candidates:
            return
        reservation = self._reservation(scheduler, head)
        if reservation is None:
            return
        shadow_s, pool_name, extra = reservation
        scheduler.reservations.setdefault(head.seq, shadow_s)
        now = scheduler.now
        for job in candidates:
            pool = scheduler.pool_for(job)
            if pool is None or not scheduler.within_quota(job):
                continue
            if pool.name != pool_name or now + job.estimate_s <= shadow_s:
                scheduler.try_start(job)
            elif job.gpus <= extra:
                extra -= job.gpus
                scheduler.try_start(job)

    @staticmethod
    def _reservation(scheduler: ClusterScheduler, head: Job) -> tuple[float, str, int] | None:
        """(shadow time, pool, accelerators spare at that time) of the earliest pool for the head job."""
        best: tuple[float, str, int] | None = None
        for pool in scheduler.pools_for(head):
            if pool.capacity < head.gpus:
                continue
            free = pool.free_total
            for end_s, _, gpus in scheduler.expected_ends[pool.name]:
                free += gpus
                if free >= head.gpus:
                    candidate = (max(end_s, scheduler.now), pool.name, free - head.gpus)
                    if best is None or candidate[0] < best[0]:
                        best = candidate
                    break
        return best


@register_policy("drf")
class DominantResourceFairness(SchedulingPolicy):
    """Dominant resource fairness across teams (Ghodsi et al., NSDI 2011), greedy.

    Teams are the jobs' ``user`` field. Each pass repeatedly offers the free accelerators to the team with
    the lowest dominant share (its accelerators in use over the cluster's; the only resource jobs ask for
    here, so the dominant share is the accelerator share), starting that team's oldest job that fits.
    """

    blocking = False
    work_conserving = True

    def schedule(self, scheduler: ClusterScheduler) -> None:
        usage: dict[str, int] = {}
        for job in scheduler.running.values():
            usage[job.user] = usage.get(job.user, 0) + job.gpus
        by_team: dict[str, list[Job]] = {}
        for job in scheduler.waiting():
            by_team.setdefault(job.user, []).append(job)
        size = scheduler.cluster.size
        while by_team and scheduler.cluster.busy < size:
            team = min(by_team, key=lambda t: (usage.get(t, 0) / size, t))
            started = next((job for job in by_team[team] if scheduler.try_start(job)), None)
            if started is None:
                del by_team[team]
                continue
            by_team[team].remove(started)
            if not by_team[team]:
                del by_team[team]
            usage[team] = usage.get(team, 0) + started.gpus
