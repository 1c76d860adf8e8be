"""A whole workload kind in one file, as a plugin author writes one: a spec class, a runner class and one
registration (used by tests/test_workload_kinds.py).

``kind: metronome`` ticks ``ticks`` times, every ``interval_s`` seconds of simulated time from ``arrival_s``;
its summary counts the ticks and its ``metronome_ticks`` table has one row per tick.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

import pandas as pd
import simpy
from pydantic import Field

from dcsim.run.context import RunContext
from dcsim.run.runner import Runner, RunServices
from dcsim.scenario.workloads import WorkloadSpec, register_workload_kind


class MetronomeRunner(Runner["MetronomeWorkload"]):
    """Ticks on the run's clock; ``done`` fires after the last tick."""

    def __init__(self, spec: MetronomeWorkload, env: simpy.Environment) -> None:
        self.spec = spec
        self.env = env
        self.done = env.event()
        self.ticks_s: list[float] = []

    @classmethod
    def build(cls, spec: MetronomeWorkload, run: RunServices) -> MetronomeRunner:
        return cls(spec, run.sim.env)

    def start(self) -> None:
        self.env.process(self._tick())

    def _tick(self) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.spec.arrival_s)
        for _ in range(self.spec.ticks):
            yield self.env.timeout(self.spec.interval_s)
            self.ticks_s.append(self.env.now)
        self.done.succeed()

    def horizon_s(self) -> float:
        return self.spec.arrival_s + self.spec.ticks * self.spec.interval_s

    def summary(self, context: RunContext) -> dict[str, Any]:
        return {"kind": "metronome", "ticks": len(self.ticks_s), "last_tick_s": max(self.ticks_s, default=None)}

    def tables(self, context: RunContext) -> dict[str, pd.DataFrame]:
        return {"metronome_ticks": pd.DataFrame({"workload": self.spec.name, "time_s": self.ticks_s})}


@register_workload_kind("metronome", runner=MetronomeRunner)
class MetronomeWorkload(WorkloadSpec):
    """``ticks`` ticks, ``interval_s`` seconds apart, from ``arrival_s``."""

    kind: Literal["metronome"] = "metronome"
    ticks: int = Field(ge=1)
    interval_s: float = Field(gt=0)
    arrival_s: float = Field(default=0.0, ge=0)
