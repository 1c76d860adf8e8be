"""The cluster's network as the running jobs share it: who sends what where, and each job's slowdown.

:class:`SharedNetwork` is what the scheduler consults when a job starts or stops and when the network
changes. Each workload whose jobs communicate registers a *traffic source*: a function of a placed job
that returns its :class:`~dcsim.scheduler.contention.StepTraffic` (bytes per step on each link and its
step time alone), or None for a job that sends nothing between accelerators. Sources cache their traffic
per placement (see :class:`~dcsim.scheduler.traffic.LinkLoads`). The slowdowns come from
:class:`~dcsim.scheduler.contention.LinkShares` (proportional sharing of link capacity).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from dcsim.network import Controller
from dcsim.scheduler.contention import LinkShares, StepTraffic
from dcsim.scheduler.traffic import LinkLoads
from dcsim.workloads.jobs import Job

TrafficSource = Callable[[Job], StepTraffic | None]


class SharedNetwork:
    """Running jobs' step traffic on ``controller``'s network (its routes and link capacities)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.loads = LinkLoads(controller)
        self.shares = LinkShares(controller.links.capacity_bytes_per_s)
        self.sources: dict[str, TrafficSource] = {}
        self._jobs: dict[Hashable, Job] = {}
        self.repricings = 0  # times a start, stop or network change re-priced the running jobs

    def traffic(self, job: Job) -> StepTraffic | None:
        """The job's step traffic on its current accelerators (None: it does not communicate)."""
        source = self.sources.get(job.workload)
        return None if source is None else source(job)

    def started(self, job: Job) -> dict[Hashable, float] | None:
        """A placed job starts: its traffic joins the links. Returns every changed slowdown by job ``seq``
        (the job's own included), or None if the job does not communicate."""
        traffic = self.traffic(job)
        if traffic is None or traffic.links.size == 0:
            return None
        self._jobs[job.seq] = job
        self.repricings += 1
        return self.shares.add(job.seq, traffic)

    def stopped(self, job: Job) -> dict[Hashable, float]:
        """A job stops (completes, fails or is preempted): its traffic leaves; the changed slowdowns."""
        if job.seq not in self._jobs:
            return {}
        del self._jobs[job.seq]
        self.repricings += 1
        return self.shares.remove(job.seq)

    def network_changed(self) -> dict[Hashable, float]:
        """Links failed or came back (the controller's state changed): re-route every running job's
        traffic and return the changed slowdowns."""
        self.repricings += 1
        traffic: dict[Hashable, StepTraffic] = {}
        for seq, job in self._jobs.items():
            step = self.traffic(job)
            if step is not None:
                traffic[seq] = step
        return self.shares.rebuild(traffic)

    def fail_link(self, u: Hashable, v: Hashable) -> dict[Hashable, float]:
        """Take link ``u``-``v`` down and re-price (routes move around it)."""
        self.controller.fail_link(u, v)
        return self.network_changed()

    def restore_link(self, u: Hashable, v: Hashable) -> dict[Hashable, float]:
        """Bring link ``u``-``v`` back and re-price."""
        self.controller.restore_link(u, v)
        return self.network_changed()
