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
    """Running jobs' step traffic on a network (its routes and link capacities): ``controller`` is the
    network's :class:`~dcsim.network.Controller`, or a function that builds it on first use.

    A communicating job that starts while no other one runs is only noted: alone it is not slowed, so its
    traffic is computed (and the controller built) once a second communicating job starts. A run with one
    training job never routes anything."""

    def __init__(self, controller: Controller | Callable[[], Controller]) -> None:
        self._controller = controller if isinstance(controller, Controller) else None
        self._build = None if isinstance(controller, Controller) else controller
        self._loads: LinkLoads | None = None
        self._shares: LinkShares | None = None
        self.sources: dict[str, TrafficSource] = {}
        self._jobs: dict[Hashable, Job] = {}  # running jobs whose traffic is on the links
        self._alone: dict[Hashable, Job] = {}  # a running communicating job not on the links yet (alone)
        self.repricings = 0  # times a start, stop or network change re-priced the running jobs

    @property
    def controller(self) -> Controller:
        """The network's controller (built now if it was not)."""
        if self._controller is None:
            assert self._build is not None
            self._controller = self._build()
        return self._controller

    @property
    def loads(self) -> LinkLoads:
        """Routes transfers on the controller's network."""
        if self._loads is None:
            self._loads = LinkLoads(self.controller)
        return self._loads

    @property
    def shares(self) -> LinkShares:
        """The running jobs' demands and slowdowns."""
        if self._shares is None:
            self._shares = LinkShares(self.controller.links.capacity_bytes_per_s)
        return self._shares

    def traffic(self, job: Job) -> StepTraffic | None:
        """The job's step traffic on its current accelerators (None: it does not communicate)."""
        source = self.sources.get(job.workload)
        return None if source is None else source(job)

    def started(self, job: Job) -> dict[Hashable, float]:
        """A placed job starts: its traffic joins the links. Returns every changed slowdown by job ``seq``
        (empty if the job does not communicate or runs alone)."""
        if job.workload not in self.sources:
            return {}
        if not self._jobs and not self._alone:
            self._alone[job.seq] = job
            return {}
        changed: dict[Hashable, float] = {}
        for seq, other in list(self._alone.items()):
            del self._alone[seq]
            changed.update(self._add(other))
        changed.update(self._add(job))
        self.repricings += 1
        return changed

    def _add(self, job: Job) -> dict[Hashable, float]:
        traffic = self.traffic(job)
        if traffic is None or traffic.links.size == 0:
            return {}
        self._jobs[job.seq] = job
        return self.shares.add(job.seq, traffic)

    def stopped(self, job: Job) -> dict[Hashable, float]:
        """A job stops (completes, fails or is preempted): its traffic leaves; the changed slowdowns."""
        if self._alone.pop(job.seq, None) is not None or job.seq not in self._jobs:
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
            if step is not None and step.links.size:
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
