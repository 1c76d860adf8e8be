"""Accelerator and node failures: a Poisson process from MTBFs, or an explicit schedule, with repairs.

Each accelerator fails at rate 1/``accelerator_mtbf_s`` and each node (all its accelerators at once) at
rate 1/``node_mtbf_s``; the cluster's failures are the superposition, drawn from the run's ``failures``
stream. A failed accelerator is out of service for a repair time, then returns. The job it was running is
killed and requeued by the scheduler (see :meth:`ClusterScheduler.fail`).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from functools import partial
from typing import Any

import numpy as np
import simpy

from dcsim.engine.distributions import Distribution
from dcsim.errors import Problem, UserInputError
from dcsim.scheduler.dispatcher import ClusterScheduler

#: Failures one run may simulate: each kills a job and reschedules the queue (~0.1 ms), so ~200 s of run.
#: ``check`` refuses scenarios expected to need half as many (:mod:`dcsim.scenario.feasibility`); a run
#: that gets here anyway (a training job, whose length check cannot know) stops with a diagnosis.
MAX_FAILURE_EVENTS = 2_000_000


class FailureStorm(UserInputError):
    """A run stopped because failures come faster than its work finishes (one problem, at ``failures``).

    Its ``args`` are the message alone, so SimPy, which re-raises a process's exception as
    ``type(error)(*error.args)``, rebuilds it whole."""

    def __init__(self, message: str) -> None:
        super().__init__([Problem("failures", message)])
        self.args = (message,)


class FailureInjector:
    """Drives failures and repairs of a scheduler's cluster until ``done`` fires (or forever)."""

    def __init__(
        self,
        scheduler: ClusterScheduler,
        rng: np.random.Generator,
        repair_s: Distribution,
        accelerator_mtbf_s: float | None = None,
        node_mtbf_s: float | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.env = scheduler.env
        self.rng = rng
        self.repair_s = repair_s
        cluster = scheduler.cluster
        self.accelerator_rate = cluster.size / accelerator_mtbf_s if accelerator_mtbf_s else 0.0
        self.node_rate = len(cluster.nodes) / node_mtbf_s if node_mtbf_s else 0.0
        self.events: list[tuple[float, str, list[int]]] = []

    def start(self, done: simpy.Event | None = None) -> None:
        """Start drawing failures; stop once ``done`` has fired."""
        if self.accelerator_rate + self.node_rate > 0:
            self.env.process(self._poisson(done))

    def _poisson(self, done: simpy.Event | None) -> Generator[simpy.Event, Any, None]:
        total = self.accelerator_rate + self.node_rate
        cluster = self.scheduler.cluster
        drawn = 0
        while True:
            timeout = self.env.timeout(float(self.rng.exponential(1.0 / total)))
            yield timeout if done is None else self.env.any_of([timeout, done])
            if done is not None and done.triggered:
                return
            drawn += 1
            if done is not None and drawn > MAX_FAILURE_EVENTS:
                raise FailureStorm(
                    f"run stopped at {float(self.env.now):.3g} s of simulated time after {MAX_FAILURE_EVENTS:,} "
                    "failures with work still left: failures come faster than the jobs finish (give a longer "
                    "accelerator_mtbf_h or node_mtbf_h, checkpoints, or duration_s)",
                )
            if self.rng.random() * total < self.accelerator_rate:
                self.fail("accelerator", [int(self.rng.integers(cluster.size))])
            else:
                self.fail("node", list(cluster.nodes[int(self.rng.integers(len(cluster.nodes)))].accelerators))

    def fail(self, what: str, accelerators: Sequence[int], repair_s: float | None = None) -> None:
        """Fail ``accelerators`` now (already failed ones are skipped) and schedule their repair."""
        targets = [a for a in accelerators if a not in self.scheduler.cluster.down]
        if not targets:
            return
        self.events.append((float(self.env.now), what, targets))
        duration = float(self.repair_s.sample(self.rng, 1)[0]) if repair_s is None else repair_s
        for accelerator in targets:
            self.scheduler.fail(accelerator)
        self.env.timeout(max(0.0, duration)).callbacks.append(partial(self._repair, targets))

    def _repair(self, accelerators: list[int], _event: simpy.Event) -> None:
        for accelerator in accelerators:
            self.scheduler.repair(accelerator)

    def schedule(self, failures: Sequence[tuple[float, int, float]]) -> None:
        """Explicit failures: ``(time_s, accelerator, repair_s)`` each (for tests and what-if studies)."""

        def run() -> Generator[simpy.Event, Any, None]:
            for time_s, accelerator, repair_s in sorted(failures):
                yield self.env.timeout(max(0.0, time_s - float(self.env.now)))
                self.fail("accelerator", [accelerator], repair_s)

        self.env.process(run())
