"""The cluster scheduler as a SimPy component: queue, gang allocation, dispatch passes, completions.

Gang semantics: a job gets all the accelerators it asks for at once, or waits. Same-instant order (see
:mod:`dcsim.engine.simulation`): arrivals and completions at time t only mark the scheduler dirty; one
dispatch pass runs after all of them, trying waiting jobs in the policy's order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from dcsim.engine.simulation import Simulation
from dcsim.scheduler.cluster import Cluster
from dcsim.scheduler.placement import Placement
from dcsim.scheduler.policies import SchedulingPolicy
from dcsim.workloads.jobs import Job


class ClusterScheduler:
    """Runs jobs on a :class:`Cluster` under a policy and a placement, recording what happened.

    ``timeline`` holds one ``(time_s, busy_accelerators, queued_jobs)`` row per dispatch pass;
    ``finished`` the completed jobs; after :meth:`close`, ``busy_s[a]`` is the busy time of accelerator
    ``a`` (seconds) and ``jobs_run[a]`` the jobs it ran.
    """

    def __init__(
        self,
        sim: Simulation,
        cluster: Cluster,
        policy: SchedulingPolicy,
        placement: Placement,
        on_finish: Callable[[Job], None] | None = None,
    ) -> None:
        self.sim = sim
        self.env = sim.env
        self.cluster = cluster
        self.policy = policy
        self.placement = placement
        self.on_finish = on_finish
        self.queue: list[tuple[Any, int, Job]] = []
        self.running: dict[int, Job] = {}
        self.finished: list[Job] = []
        self.busy_s = np.zeros(cluster.size)
        self.jobs_run = np.zeros(cluster.size, dtype=np.int64)
        self.timeline: list[tuple[float, int, int]] = [(0.0, 0, 0)]
        self.submitted = 0
        self._dispatch_pending = False

    def submit(self, job: Job) -> None:
        """A job arrives now; it will be considered in this instant's dispatch pass."""
        job.seq = self.submitted
        self.submitted += 1
        heapq.heappush(self.queue, (self.policy.key(job), job.seq, job))
        self.sim.log.instant("submit", self.env.now, "scheduler", job=job.job_id, gpus=job.gpus)
        self._request_dispatch()

    def _request_dispatch(self) -> None:
        if not self._dispatch_pending:
            self._dispatch_pending = True
            event = self.env.event()
            event.callbacks.append(self._dispatch)
            event.succeed()

    def _dispatch(self, _event: Any = None) -> None:
        self._dispatch_pending = False
        queue = self.queue
        if self.policy.blocking:
            while queue and self._try_start(queue[0][2]):
                heapq.heappop(queue)
        else:
            kept = [entry for entry in sorted(queue) if not self._try_start(entry[2])]
            heapq.heapify(kept)
            self.queue = kept
        now = float(self.env.now)
        self.timeline.append((now, self.cluster.busy, len(self.queue)))
        self.sim.log.counter("cluster", now, "scheduler", busy=self.cluster.busy, queued=len(self.queue))

    def _try_start(self, job: Job) -> bool:
        pool = self.cluster.pool_for(job.gpus, job.accelerator)
        if pool is None:
            return False
        job.accelerators = self.placement.choose(self.cluster, pool, job.gpus)
        job.start_s = float(self.env.now)
        self.running[job.seq] = job
        timeout = self.env.timeout(job.duration_s)
        timeout.callbacks.append(partial(self._finish_event, job))
        return True

    def _finish_event(self, job: Job, _event: Any) -> None:
        self._finish(job)

    def _finish(self, job: Job) -> None:
        job.end_s = float(self.env.now)
        del self.running[job.seq]
        self.cluster.release(job.accelerators)
        self.finished.append(job)
        if self.sim.log.enabled:
            node = self.cluster.nodes[self.cluster.node_of[job.accelerators[0]]].name
            self.sim.log.complete(
                job.job_id,
                job.start_s,
                job.duration_s,
                node,
                job.workload,
                gpus=job.gpus,
                wait_s=job.start_s - job.submit_s,
            )
        if self.on_finish is not None:
            self.on_finish(job)
        self._request_dispatch()

    def close(self, end_s: float) -> None:
        """At the end of the run: busy time per accelerator (jobs still running count up to ``end_s``)."""
        jobs = self.finished + list(self.running.values())
        if not jobs:
            return
        index = np.fromiter((a for job in jobs for a in job.accelerators), dtype=np.int64)
        gpus = np.fromiter((len(job.accelerators) for job in jobs), dtype=np.int64, count=len(jobs))
        ran = np.fromiter((min(job.start_s + job.duration_s, end_s) - job.start_s for job in jobs), float, len(jobs))
        np.add.at(self.busy_s, index, np.repeat(np.maximum(ran, 0.0), gpus))
        np.add.at(self.jobs_run, index, 1)

    def waiting(self) -> list[Job]:
        """Jobs still in the queue, in policy order."""
        return [entry[2] for entry in sorted(self.queue)]
