"""The cluster scheduler as a SimPy component: queue, gang allocation, preemption, completions.

Gang semantics: a job gets all the accelerators it asks for at once, or waits. Same-instant order (see
:mod:`dcsim.engine.simulation`): arrivals, completions and reviews at time t only mark the scheduler
dirty; one dispatch pass runs after all of them, in which the policy's :meth:`schedule` decides.

Preemption (when the scenario enables it and the policy asks for it) suspends a running job: its progress
is kept (it is checkpointed on preemption) and it pays ``checkpoint_s + restart_s`` of set-up time when it
resumes. Every run segment is recorded in ``segments``.

Network contention (when ``network`` is a :class:`~dcsim.scheduler.shared_network.SharedNetwork`): a job
that communicates runs at ``1 / slowdown`` of its alone speed, its slowdown re-priced whenever a job
starts or stops or the network changes; its remaining work, checkpoints and completion follow its speed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from dcsim.engine.simulation import Simulation
from dcsim.scheduler.checkpointing import NO_CHECKPOINTS, Checkpointing
from dcsim.scheduler.cluster import Cluster, Pool
from dcsim.scheduler.placement import Placement
from dcsim.scheduler.policies import SchedulingPolicy
from dcsim.workloads.jobs import Job

if TYPE_CHECKING:
    from dcsim.scheduler.shared_network import Service, SharedNetwork

# Segment outcomes recorded in ``ClusterScheduler.segments``.
COMPLETED, PREEMPTED, FAILED, RUNNING = "completed", "preempted", "failed", "running"


class JobSegment(NamedTuple):
    """One uninterrupted run of a job: ``setup_s`` of overhead, then work (and checkpoints) until ``end_s``;
    ``useful_s`` is the work of this segment that counts towards the job's completion."""

    job: Job
    start_s: float
    end_s: float
    accelerators: list[int]
    setup_s: float
    outcome: str
    useful_s: float


class Pace:
    """A running job's speed under network contention: ``virtual_s`` of its segment's time at alone speed
    had passed at ``since_s``, since when it runs at 1 / ``slowdown`` of that speed; its segment ends at
    ``total_s`` of alone-speed time. ``version`` tells its current completion event from stale ones;
    ``worst`` is the largest slowdown of the segment."""

    __slots__ = ("since_s", "slowdown", "total_s", "version", "virtual_s", "worst")

    def __init__(self, since_s: float, total_s: float) -> None:
        self.virtual_s = 0.0
        self.since_s = since_s
        self.slowdown = 1.0
        self.total_s = total_s
        self.version = 0
        self.worst = 1.0


class ClusterScheduler:
    """Runs jobs on a :class:`Cluster` under a policy and a placement, recording what happened.

    ``timeline`` holds one ``(time_s, busy_accelerators, queued_jobs)`` row per dispatch pass;
    ``segments`` one :class:`JobSegment` per uninterrupted run; ``finished`` the
    completed jobs; after :meth:`close`, ``busy_s[a]`` is the busy time of accelerator ``a`` (seconds) and
    ``jobs_run[a]`` the segments it ran.
    """

    def __init__(
        self,
        sim: Simulation,
        cluster: Cluster,
        policy: SchedulingPolicy,
        placement: Placement,
        *,
        preemption: bool = False,
        checkpoint_s: float = 0.0,
        restart_s: float = 0.0,
        checkpointing: Checkpointing = NO_CHECKPOINTS,
        quotas: dict[str, int] | None = None,
        on_finish: Callable[[Job], None] | None = None,
    ) -> None:
        self.sim = sim
        self.env = sim.env
        self.cluster = cluster
        self.policy = policy
        self.placement = placement
        if placement.uses_racks:
            for pool in cluster.pools.values():
                pool.track_racks()
        self.preemption = preemption
        self.resume_cost_s = checkpoint_s + restart_s
        self.checkpointing = checkpointing
        self.holder: dict[int, Job] = {}
        # per pool: running jobs as (expected end s, seq, gpus), sorted (what backfill reserves against)
        self.expected_ends: dict[str, list[tuple[float, int, int]]] = {name: [] for name in cluster.pools}
        self.quotas = dict(quotas or {})
        self.team_usage: dict[str, int] = {}
        self._pools_of: dict[tuple[Any, ...], list[Pool]] = {}
        self.on_finish = on_finish
        # per workload name: called with a job right after it is placed, before its run time is fixed (a
        # model-backed job re-prices its remaining work for the accelerators it got)
        self.on_start: dict[str, Callable[[Job], None]] = {}
        # accelerators held by services (inference replicas) outside the job queue: owner -> accelerators
        self.service_holds: dict[str, list[int]] = {}
        self.service_held: set[int] = set()
        self._service_taken: dict[str, list[int]] = {}
        self.service_preemptions: dict[str, int] = {}  # jobs preempted by each service (owner up to "/")
        self._keys: list[tuple[Any, int]] = []
        self._waiting: dict[int, Job] = {}
        self.running: dict[int, Job] = {}
        self.finished: list[Job] = []
        self.segments: list[JobSegment] = []
        self.busy_s = np.zeros(cluster.size)
        # cross-job network contention (None: every job runs at its alone speed); see shared_network
        self.network: SharedNetwork | None = None
        self._pace: dict[int, Pace] = {}  # running jobs on the shared network, by seq
        self.slowdowns: dict[int, tuple[float, float, float]] = {}  # by seq: (wall s, alone s, worst)
        self.jobs_run = np.zeros(cluster.size, dtype=np.int64)
        self.timeline: list[tuple[float, int, int]] = [(0.0, 0, 0)]
        self.reservations: dict[int, float] = {}
        self.submitted = 0
        self._dispatch_pending = False
        policy.attach(self)

    # ----------------------------------------------------------------- queue
    @property
    def now(self) -> float:
        """Simulated time (s)."""
        return float(self.env.now)

    def submit(self, job: Job) -> None:
        """A job arrives now; it will be considered in this instant's dispatch pass."""
        job.seq = self.submitted
        self.submitted += 1
        self._enqueue(job)
        self.sim.log.instant("submit", self.env.now, "scheduler", job=job.job_id, gpus=job.gpus)
        self.request_dispatch()

    def _enqueue(self, job: Job) -> None:
        bisect.insort(self._keys, (self.policy.key(job), job.seq))
        self._waiting[job.seq] = job

    def _dequeue(self, job: Job) -> None:
        key = (self.policy.key(job), job.seq)
        index = bisect.bisect_left(self._keys, key)
        assert self._keys[index] == key, "queue key of a waiting job changed"
        del self._keys[index]
        del self._waiting[job.seq]

    def waiting(self) -> Iterator[Job]:
        """Waiting jobs in the policy's order (a snapshot: starting jobs while iterating is safe)."""
        waiting = self._waiting
        return (waiting[seq] for _, seq in list(self._keys) if seq in waiting)

    @property
    def queue_length(self) -> int:
        """Jobs waiting."""
        return len(self._waiting)

    # -------------------------------------------------------------- dispatch
    def request_dispatch(self) -> None:
        """Ask for one dispatch pass at the current instant (after every event already due now)."""
        if not self._dispatch_pending:
            self._dispatch_pending = True
            event = self.env.event()
            event.callbacks.append(self._dispatch)
            event.succeed()

    def _dispatch(self, _event: Any = None) -> None:
        self._dispatch_pending = False
        self.policy.schedule(self)
        now = self.now
        self.timeline.append((now, self.cluster.busy, len(self._waiting)))
        self.sim.log.counter("cluster", now, "scheduler", busy=self.cluster.busy, queued=len(self._waiting))

    def pools_for(self, job: Job) -> list[Pool]:
        """The pools ``job`` may run in (its accelerator pin, node selector and tolerations)."""
        key = (job.accelerator, tuple(sorted(job.node_selector.items())) if job.node_selector else (), job.tolerations)
        pools = self._pools_of.get(key)
        if pools is None:
            pools = self.cluster.eligible_pools(job.accelerator, job.node_selector, job.tolerations)
            self._pools_of[key] = pools
        return pools

    def pool_for(self, job: Job) -> Pool | None:
        """The first eligible pool with enough free accelerators for ``job`` now (and, for a job with host
        requests, enough free CPU cores and memory on the nodes of those accelerators), if any."""
        host = job.cpus_per_accelerator > 0 or job.memory_gb_per_accelerator > 0
        for pool in self.pools_for(job):
            if pool.free_total >= job.gpus and (not host or self._host_capacity(pool, job) >= job.gpus):
                return pool
        return None

    @staticmethod
    def _host_capacity(pool: Pool, job: Job) -> int:
        cpus, memory = job.cpus_per_accelerator, job.memory_gb_per_accelerator
        return sum(node.host_capacity(cpus, memory) for node in pool.nodes if node.free)

    def _place_with_host(self, pool: Pool, job: Job) -> list[int]:
        """Accelerators for a job with host requests: the node that fits the whole gang most tightly, else
        the nodes with the most usable accelerators first (fewest nodes), each within its free CPU cores and
        memory. (The pool's placement policy sees free accelerators only; host requests need this scan.)"""
        cpus, memory = job.cpus_per_accelerator, job.memory_gb_per_accelerator
        usable = [(node.host_capacity(cpus, memory), node.pool_index, node) for node in pool.nodes if node.free]
        whole = [u for u in usable if u[0] >= job.gpus]
        order = [min(whole, key=lambda u: (u[0], u[1]))] if whole else sorted(usable, key=lambda u: (-u[0], u[1]))
        chosen: list[int] = []
        for capacity, _index, node in order:
            count = min(capacity, job.gpus - len(chosen))
            if count > 0:
                chosen += self.cluster.take(pool, node, count)
            if len(chosen) == job.gpus:
                break
        self.cluster.hold_host(chosen, cpus, memory)
        return chosen

    def within_quota(self, job: Job) -> bool:
        """Whether starting ``job`` keeps its team (``user``) within its accelerator quota."""
        quota = self.quotas.get(job.user)
        return quota is None or self.team_usage.get(job.user, 0) + job.gpus <= quota

    def fits(self, job: Job) -> bool:
        """Whether ``job`` could start now (free accelerators in an eligible pool, and within quota)."""
        return self.within_quota(job) and self.pool_for(job) is not None

    def try_start(self, job: Job) -> bool:
        """Start a waiting job now if its gang fits; return whether it started."""
        if not self.within_quota(job):
            return False
        pool = self.pool_for(job)
        if pool is None:
            return False
        self.team_usage[job.user] = self.team_usage.get(job.user, 0) + job.gpus
        self._dequeue(job)
        if job.cpus_per_accelerator > 0 or job.memory_gb_per_accelerator > 0:
            job.accelerators = self._place_with_host(pool, job)
        else:
            job.accelerators = self.placement.choose(self.cluster, pool, job.gpus)
        hook = self.on_start.get(job.workload)
        if hook is not None:
            hook(job)
        now = self.now
        if job.start_s != job.start_s:
            job.start_s = now
        job.segment_start_s = now
        job.token += 1
        self.running[job.seq] = job
        for accelerator in job.accelerators:
            self.holder[accelerator] = job
        job.checkpoint_interval_s = self.checkpointing_of(job).interval_for(job.gpus)
        bisect.insort(self.expected_ends[pool.name], (self.expected_end_s(job), job.seq, job.gpus))
        wall_s = self._segment_s(job)
        timeout = self.env.timeout(wall_s)
        timeout.callbacks.append(partial(self._finish_event, job, job.token))
        review = self.policy.review_after_s(job)
        if review is not None and review < wall_s:
            self.env.timeout(review).callbacks.append(partial(self._review_event, job, job.token))
        if self.network is not None:
            self._repace(self.network.started(job), now)
        return True

    def _segment_s(self, job: Job) -> float:
        """Length of a starting (or running) job's segment at its alone speed: set-up, its remaining work
        and the checkpoints in it (s)."""
        return (
            job.setup_s
            + job.remaining_s
            + self.checkpointing_of(job).overhead_s(job.remaining_s, job.checkpoint_interval_s)
        )

    def _elapsed_s(self, job: Job, now: float) -> float:
        """Time of the job's current segment so far at its alone speed (s): wall time, less what network
        contention slowed it by."""
        pace = self._pace.get(job.seq)
        if pace is None:
            return now - job.segment_start_s
        return pace.virtual_s + (now - pace.since_s) / pace.slowdown

    def _repace(self, slowdowns: dict[Any, float], now: float) -> None:
        """Running jobs' new slowdowns (by seq): each goes on at its new speed, its completion moved."""
        for seq, slowdown in slowdowns.items():
            job = self.running[seq]
            pace = self._pace.get(seq)
            if pace is None:  # its first re-pricing: it ran at its alone speed since its segment began
                pace = self._pace[seq] = Pace(job.segment_start_s, self._segment_s(job))
            if slowdown == pace.slowdown:
                continue
            pace.virtual_s += (now - pace.since_s) / pace.slowdown
            pace.since_s = now
            pace.slowdown = slowdown
            pace.worst = max(pace.worst, slowdown)
            pace.version += 1
            left_s = max(0.0, pace.total_s - pace.virtual_s) * slowdown
            timeout = self.env.timeout(left_s)
            timeout.callbacks.append(partial(self._paced_finish_event, job, job.token, pace.version))

    def network_changed(self) -> None:
        """Links failed, came back or were rerouted: re-price every running job on the network now."""
        if self.network is not None:
            self._repace(self.network.network_changed(), self.now)

    def service_on_network(self, key: Any, service: Service) -> None:
        """A service (a serving replica spanning nodes) starts sending: re-price the jobs its traffic slows."""
        if self.network is not None:
            self._repace(self.network.service_started(key, service), self.now)

    def service_off_network(self, key: Any) -> None:
        """A service stops sending: re-price the jobs it slowed."""
        if self.network is not None:
            self._repace(self.network.service_stopped(key), self.now)

    def network_slowdown(self, job: Job) -> tuple[float, float] | None:
        """A job's mean network slowdown over its run so far (wall over alone-speed time, setup included)
        and the largest it ran at; None if it never ran on the shared network."""
        pace = self._pace.get(job.seq)
        wall, alone, worst = self.slowdowns.get(job.seq, (0.0, 0.0, 1.0))
        if pace is not None:
            now = self.now
            wall += now - job.segment_start_s
            alone += self._elapsed_s(job, now)
            worst = max(worst, pace.worst)
        if pace is None and job.seq not in self.slowdowns:
            return None
        return (wall / alone if alone > 0 else 1.0), worst

    def checkpointing_of(self, job: Job) -> Checkpointing:
        """The job's own checkpointing model if it has one, else the cluster's."""
        own: Checkpointing | None = job.checkpointing
        return own if own is not None else self.checkpointing

    def _worked_s(self, job: Job, now: float) -> float:
        """Useful work a running job has done in its current segment (s)."""
        done = self.checkpointing_of(job).progress_s(self._elapsed_s(job, now) - job.setup_s, job.checkpoint_interval_s)
        return min(done, job.remaining_s)

    def preempt(self, job: Job) -> None:
        """Suspend a running job now and put it back in the queue (it checkpoints: no progress is lost)."""
        now = self.now
        useful = self._worked_s(job, now)
        job.preemptions += 1
        self._stop(job, now, PREEMPTED, useful)
        job.setup_s = self.resume_cost_s
        self._enqueue(job)
        self.sim.log.instant("preempt", now, "scheduler", job=job.job_id)

    def fail(self, accelerator: int) -> None:
        """An accelerator fails now: it goes out of service, and the job using it (if any) is killed and
        requeued, keeping only the work saved by its last checkpoint."""
        now = self.now
        job = self.holder.get(accelerator)
        self.cluster.take_offline(accelerator)
        if job is None:
            return
        worked = self._worked_s(job, now)
        saved = min(
            self.checkpointing_of(job).saved_s(self._elapsed_s(job, now) - job.setup_s, job.checkpoint_interval_s),
            worked,
        )
        job.failures += 1
        job.lost_s += worked - saved
        self._stop(job, now, FAILED, saved)
        job.setup_s = self.checkpointing_of(job).restart_s
        self._enqueue(job)
        self.sim.log.instant("failure", now, "scheduler", job=job.job_id, accelerator=accelerator)
        self.request_dispatch()

    def repair(self, accelerator: int) -> None:
        """A failed accelerator is back in service."""
        held = accelerator in self.holder or accelerator in self.service_held
        self.cluster.bring_online(accelerator, held=held)
        self.request_dispatch()

    # ----------------------------------------------------------------- services
    def hold(self, owner: str, accelerators: list[int]) -> None:
        """A service (an inference replica) takes ``accelerators`` now, ahead of every queued job, as a
        Kubernetes pod of a higher priority class would: jobs running on them are preempted (they checkpoint
        and go back to the queue). ``owner`` names the hold for :meth:`unhold`."""
        if owner in self.service_holds:
            raise ValueError(f"{owner!r} already holds accelerators")
        overlap = self.service_held.intersection(accelerators)
        if overlap:
            raise ValueError(f"accelerators {sorted(overlap)} are already held by a service")
        victims = {id(job): job for a in accelerators if (job := self.holder.get(a)) is not None}
        for job in victims.values():
            self.preempt(job)
            service = owner.split("/", 1)[0]
            self.service_preemptions[service] = self.service_preemptions.get(service, 0) + 1
        self.service_holds[owner] = list(accelerators)
        self.service_held.update(accelerators)
        self._service_taken[owner] = self.cluster.take_these(list(accelerators))  # failed ones are not taken
        self.sim.log.instant("hold", self.now, "scheduler", owner=owner, accelerators=len(accelerators))
        if victims:
            self.request_dispatch()

    def unhold(self, owner: str) -> None:
        """The service ``owner`` gives its accelerators back to the pool (waiting jobs may start)."""
        accelerators = self.service_holds.pop(owner)
        taken = self._service_taken.pop(owner)
        self.service_held.difference_update(accelerators)
        self.cluster.release(taken)  # those that failed while held stay out of service until repaired
        for index in set(accelerators).difference(taken):
            if index not in self.cluster.down:  # failed when taken, repaired while held
                self.cluster.bring_online_free(index)
        self.sim.log.instant("unhold", self.now, "scheduler", owner=owner, accelerators=len(accelerators))
        self.request_dispatch()

    def _stop(self, job: Job, now: float, outcome: str, useful_s: float) -> None:
        job.attained_s += (now - job.segment_start_s) * job.gpus
        job.remaining_s = max(0.0, job.remaining_s - useful_s)
        job.token += 1
        self._end_segment(job, now, outcome, useful_s)

    def _end_segment(self, job: Job, now: float, outcome: str, useful_s: float) -> None:
        pace = self._pace.get(job.seq)
        if pace is not None:
            wall, alone, worst = self.slowdowns.get(job.seq, (0.0, 0.0, 1.0))
            self.slowdowns[job.seq] = (
                wall + now - job.segment_start_s,
                alone + self._elapsed_s(job, now),
                max(worst, pace.worst),
            )
            del self._pace[job.seq]
        del self.running[job.seq]
        self.team_usage[job.user] -= job.gpus
        ends = self.expected_ends[self.cluster.pool_of[job.accelerators[0]]]
        del ends[bisect.bisect_left(ends, (self.expected_end_s(job), job.seq, job.gpus))]
        for accelerator in job.accelerators:
            del self.holder[accelerator]
        self.segments.append(
            JobSegment(job, job.segment_start_s, now, job.accelerators, job.setup_s, outcome, useful_s)
        )
        if self.sim.log.enabled:
            node = self.cluster.nodes[self.cluster.node_of[job.accelerators[0]]].name
            self.sim.log.complete(
                job.job_id,
                job.segment_start_s,
                now - job.segment_start_s,
                node,
                job.workload,
                gpus=job.gpus,
                outcome=outcome,
            )
        if job.cpus_per_accelerator > 0 or job.memory_gb_per_accelerator > 0:
            self.cluster.hold_host(job.accelerators, -job.cpus_per_accelerator, -job.memory_gb_per_accelerator)
        self.cluster.release(job.accelerators)
        if self.network is not None:
            self._repace(self.network.stopped(job), now)
        job.accelerators = []

    def _paced_finish_event(self, job: Job, token: int, version: int, _event: Any) -> None:
        pace = self._pace.get(job.seq)
        if pace is not None and pace.version == version:
            self._finish(job, token)

    def _finish_event(self, job: Job, token: int, _event: Any) -> None:
        pace = self._pace.get(job.seq)
        if pace is None or pace.version == 0:  # else contention moved the completion
            self._finish(job, token)

    def _finish(self, job: Job, token: int) -> None:
        if token != job.token:  # the job was preempted since this completion was scheduled
            return
        now = self.now
        job.end_s = now
        self._stop(job, now, COMPLETED, job.remaining_s)
        self.finished.append(job)
        if self.on_finish is not None:
            self.on_finish(job)
        self.request_dispatch()

    def _review_event(self, job: Job, token: int, _event: Any) -> None:
        if token == job.token:
            self.request_dispatch()
            review = self.policy.review_after_s(job)
            if review is not None:
                self.env.timeout(review).callbacks.append(partial(self._review_event, job, job.token))

    def attained_now_s(self, job: Job) -> float:
        """Accelerator-seconds the job has been given, including its current segment."""
        if job.seq in self.running:
            return job.attained_s + (self.now - job.segment_start_s) * job.gpus
        return job.attained_s

    def expected_end_s(self, job: Job) -> float:
        """When a running job is expected to finish, from its run-time estimate (s)."""
        left = max(0.0, job.estimate_s - (job.duration_s - job.remaining_s))
        overhead = self.checkpointing_of(job).overhead_s(left, job.checkpoint_interval_s)
        return job.segment_start_s + job.setup_s + left + overhead

    # ------------------------------------------------------------------ end
    def close(self, end_s: float) -> None:
        """At the end of the run: record running segments; busy time per accelerator up to ``end_s``."""
        for job in list(self.running.values()):
            self.segments.append(
                JobSegment(
                    job, job.segment_start_s, end_s, job.accelerators, job.setup_s, RUNNING, self._worked_s(job, end_s)
                )
            )
        if not self.segments:
            return
        index = np.fromiter((a for seg in self.segments for a in seg[3]), dtype=np.int64)
        counts = np.fromiter((len(seg[3]) for seg in self.segments), dtype=np.int64, count=len(self.segments))
        ran = np.fromiter((min(seg[2], end_s) - seg[1] for seg in self.segments), float, len(self.segments))
        np.add.at(self.busy_s, index, np.repeat(np.maximum(ran, 0.0), counts))
        np.add.at(self.jobs_run, index, 1)
