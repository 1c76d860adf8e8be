"""The cluster's network as the running jobs share it: who sends what where, and each job's slowdown.

:class:`SharedNetwork` is what the scheduler consults when a job starts or stops and when the network
changes. Each workload whose jobs communicate registers a *traffic source*: a function of a placed job
that returns its :class:`~dcsim.scheduler.contention.StepTraffic` (bytes per step on each link and its
step time alone), or None for a job that sends nothing between accelerators. Sources cache their traffic
per placement (see :class:`~dcsim.scheduler.traffic.LinkLoads`). The slowdowns come from
:class:`~dcsim.scheduler.contention.LinkShares` (proportional sharing of link capacity).

A *service* (a serving replica that spans nodes) is not a job of the queue: it joins with
:meth:`SharedNetwork.service_started` under its own key, a :class:`Service` giving its traffic (bytes per
second of its run on each link, as a :class:`StepTraffic` whose step is one second) and a callback told its
new slowdown whenever it changes; the changed slowdowns the scheduler gets back are those of jobs only.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from dcsim.network import Controller
from dcsim.scheduler.contention import LinkShares, StepTraffic
from dcsim.scheduler.traffic import LinkLoads
from dcsim.workloads.jobs import Job

TrafficSource = Callable[[Job], StepTraffic | None]


@dataclass(frozen=True)
class Service:
    """A traffic source outside the job queue: ``traffic()`` its traffic on the network's current routes
    (None: nothing between accelerators), ``on_slowdown(s)`` called with each new slowdown ``s`` (>= 1)."""

    traffic: Callable[[], StepTraffic | None]
    on_slowdown: Callable[[float], None]


Entry = Job | Service


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
        self._jobs: dict[Hashable, Entry] = {}  # running jobs and services whose traffic is on the links
        self._alone: dict[Hashable, Entry] = {}  # a running communicating one not on the links yet (alone)
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
        """A placed job starts: its traffic joins the links. Returns every changed slowdown of a job, by job
        ``seq`` (empty if the job does not communicate or runs alone)."""
        if job.workload not in self.sources:
            return {}
        return self._join(job.seq, job)

    def service_started(self, key: Hashable, service: Service) -> dict[Hashable, float]:
        """A service starts under ``key`` (not a job ``seq``): as :meth:`started`."""
        return self._join(key, service)

    def _join(self, key: Hashable, entry: Entry) -> dict[Hashable, float]:
        if not self._jobs and not self._alone:
            self._alone[key] = entry
            return {}
        changed: dict[Hashable, float] = {}
        for other_key, other in list(self._alone.items()):
            del self._alone[other_key]
            changed.update(self._add(other_key, other))
        changed.update(self._add(key, entry))
        self.repricings += 1
        return self._jobs_only(changed)

    def _step(self, entry: Entry) -> StepTraffic | None:
        return entry.traffic() if isinstance(entry, Service) else self.traffic(entry)

    def _add(self, key: Hashable, entry: Entry) -> dict[Hashable, float]:
        traffic = self._step(entry)
        if traffic is None or traffic.links.size == 0:
            return {}
        self._jobs[key] = entry
        return self.shares.add(key, traffic)

    def _jobs_only(self, changed: dict[Hashable, float]) -> dict[Hashable, float]:
        """Tell the services among ``changed`` their new slowdown; the jobs' changes."""
        jobs = {}
        for key, slowdown in changed.items():
            entry = self._jobs.get(key)
            if isinstance(entry, Service):
                entry.on_slowdown(slowdown)
            else:
                jobs[key] = slowdown
        return jobs

    def stopped(self, job: Job) -> dict[Hashable, float]:
        """A job stops (completes, fails or is preempted): its traffic leaves; the changed slowdowns."""
        return self._leave(job.seq)

    def service_stopped(self, key: Hashable) -> dict[Hashable, float]:
        """A service stops: as :meth:`stopped`."""
        return self._leave(key)

    def _leave(self, key: Hashable) -> dict[Hashable, float]:
        if self._alone.pop(key, None) is not None or key not in self._jobs:
            return {}
        del self._jobs[key]
        if key not in self.shares:  # its traffic left the links when routes moved
            return {}
        self.repricings += 1
        return self._jobs_only(self.shares.remove(key))

    def on_links(self, key: Hashable) -> bool:
        """True if the job (by ``seq``) or service (by key) has its traffic on the links now."""
        return key in self._jobs

    def network_changed(self) -> dict[Hashable, float]:
        """Links failed or came back (the controller's state changed): re-route every running job's and
        service's traffic and return the jobs' changed slowdowns."""
        self.repricings += 1
        traffic: dict[Hashable, StepTraffic] = {}
        for key, entry in self._jobs.items():
            step = self._step(entry)
            if step is not None and step.links.size:
                traffic[key] = step
        return self._jobs_only(self.shares.rebuild(traffic))

    def fail_link(self, u: Hashable, v: Hashable) -> dict[Hashable, float]:
        """Take link ``u``-``v`` down and re-price (routes move around it)."""
        self.controller.fail_link(u, v)
        return self.network_changed()

    def restore_link(self, u: Hashable, v: Hashable) -> dict[Hashable, float]:
        """Bring link ``u``-``v`` back and re-price."""
        self.controller.restore_link(u, v)
        return self.network_changed()
