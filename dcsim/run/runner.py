"""The runner protocol every workload kind implements, and the run's services a runner is built from.

A workload kind is a spec class (:class:`dcsim.scenario.workloads.WorkloadSpec`) and a :class:`Runner`
subclass, registered once with :func:`dcsim.scenario.workloads.register_workload_kind`. :mod:`dcsim.run.world`
knows no kind: for every workload it resolves the kind's runner class, builds it with :meth:`Runner.build`
from the run's :class:`RunServices`, starts it, waits for every runner's ``done``, and merges the runners'
:meth:`Runner.summary` and :meth:`Runner.tables` into the run's result (tables of one name from several
workloads are concatenated, in workload order).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pandas as pd
import simpy

from dcsim.engine.simulation import Simulation
from dcsim.registry import load_class
from dcsim.run.context import RunContext
from dcsim.run.network_session import NetworkSession
from dcsim.scenario.schema import Scenario
from dcsim.scheduler.dispatcher import ClusterScheduler

if TYPE_CHECKING:
    import numpy as np

    from dcsim.scenario.workloads import WorkloadSpec
    from dcsim.scheduler.cluster import Cluster

T = TypeVar("T")
S = TypeVar("S", bound="WorkloadSpec")


class RunServices:
    """What one run offers the runners it builds: the simulation, the scenario, the cluster scheduler, the
    run's network (built on first use, shared by every workload that sends flows) and other objects shared by
    the workloads of a run (:meth:`shared`)."""

    def __init__(self, sim: Simulation, scenario: Scenario, scheduler: ClusterScheduler) -> None:
        self.sim = sim
        self.scenario = scenario
        self.scheduler = scheduler
        #: The run's network once a runner asked for it (:meth:`need_network`), else None.
        self.network: NetworkSession | None = None
        self._shared: dict[Any, Any] = {}
        self._job_finished: dict[str, Callable[[], None]] = {}

    def need_network(self) -> NetworkSession:
        """The run's network (fabric, controller, flow simulator on the run's clock), built on the first call."""
        if self.network is None:
            self.network = NetworkSession(self.sim, self.scenario)
        return self.network

    def shared(self, key: Any, make: Callable[[], T]) -> T:
        """The run's one object under ``key``, made by ``make()`` on the first call (e.g. the replica placer
        every inference workload of the run draws accelerators from)."""
        if key not in self._shared:
            self._shared[key] = make()
        value: T = self._shared[key]
        return value

    def on_job_finished(self, workload: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever the cluster scheduler finishes a job of ``workload`` (by name)."""
        self._job_finished[workload] = callback

    def job_finished_hook(self) -> Callable[[Any], None]:
        """The scheduler's ``on_finish``: routes a finished job to its workload's callback."""
        callbacks = self._job_finished

        def finished(job: Any) -> None:
            callbacks[job.workload]()

        return finished


class Runner(ABC, Generic[S]):
    """One workload of a run. The protocol :mod:`dcsim.run.world` uses: :meth:`build`, :meth:`start`,
    ``done`` (a SimPy event that fires when the workload's work is over), :meth:`summary` and :meth:`tables`;
    the other methods are optional hooks with neutral defaults. ``S`` is the kind's spec class."""

    spec: S
    done: simpy.Event
    #: $ of producing a compressed model (COST's compression term), set by :meth:`summary` where it applies.
    compression_usd: float = 0.0
    #: The part of ``compression_usd`` already counted in the run's compute cost (a distillation run's
    #: accelerator time), moved from compute to compression.
    compression_from_compute_usd: float = 0.0

    @classmethod
    @abstractmethod
    def build(cls, spec: Any, run: RunServices) -> Runner[Any]:
        """The runner of workload ``spec`` in the run ``run`` (may register scheduler hooks, ask for the run's
        network or shared objects)."""

    @abstractmethod
    def start(self) -> None:
        """Start the workload's processes at simulated time 0."""

    @abstractmethod
    def summary(self, context: RunContext) -> dict[str, Any]:
        """The workload's entry in ``summary.json``'s ``workloads`` (JSON-ready; a ``kind`` key first)."""

    @abstractmethod
    def tables(self, context: RunContext) -> dict[str, pd.DataFrame]:
        """The workload's rows of the run's tables, by table name (called after :meth:`summary`)."""

    def horizon_s(self) -> float | None:
        """Simulated time (s) by which the workload's work is expected to have arrived, for progress bars
        (None: nothing to say)."""
        return None

    def jobs_progress(self) -> tuple[int, int] | None:
        """(jobs finished, jobs) for a progress bar counting jobs; None when the workload does not count."""
        return None

    def add_busy_time(self, busy_s: np.ndarray, cluster: Cluster, end_s: float) -> None:
        """Add accelerator busy time (s, to ``end_s``) the cluster scheduler did not see to ``busy_s`` (per
        cluster accelerator index); nothing by default."""
        return None

    @classmethod
    def compare_summaries(cls, workloads: dict[str, dict[str, Any]], runners: list[Any]) -> None:
        """Fill figures that compare workloads of this kind, after every runner's summary (``workloads``: the
        summaries by workload name; ``runners``: this class's runners in workload order); nothing by default."""
        return None


def runner_class(spec: WorkloadSpec) -> type[Runner[Any]]:
    """The runner class registered with ``spec``'s kind (ValueError if there is none)."""
    reference = type(spec).runner
    if isinstance(reference, str):
        cls: type[Runner[Any]] = load_class(reference, Runner, f"workload kind {spec.kind!r} runner")  # type: ignore[type-abstract]
        return cls
    if isinstance(reference, type) and issubclass(reference, Runner):
        return reference
    raise ValueError(f"workload kind {spec.kind!r} has no Runner class (got {reference!r})")
