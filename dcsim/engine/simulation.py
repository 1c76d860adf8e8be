"""One run's world clock, random streams and id counters.

Ordering of events at the same instant: SimPy pops its heap by ``(time, priority, insertion counter)``,
so events scheduled for the same time and priority run in the order they were scheduled. dcsim's
components build on that: an arrival or a completion at time t only marks the scheduler dirty and
schedules one zero-delay *dispatch* event; that event was inserted after every event already due at t,
so all completions and arrivals at t are applied first, and then one scheduling pass runs.
"""

from __future__ import annotations

import zlib
from collections import defaultdict

import numpy as np
import simpy

from dcsim.engine.eventlog import EventLog


class Simulation:
    """A run's SimPy environment, RNG streams (one child stream per named component) and id counters.

    ``seed`` is the scenario's seed; ``stream(name)`` returns the same generator sequence for the same
    (seed, name) in any process, independent of which other streams exist or were drawn from.
    """

    def __init__(self, seed: int, *, trace: bool = False) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed
        self.env = simpy.Environment()
        self.log = EventLog(enabled=trace)
        self._counters: defaultdict[str, int] = defaultdict(int)
        self._streams: dict[str, np.random.Generator] = {}

    @property
    def now(self) -> float:
        """Simulated time in seconds."""
        return float(self.env.now)

    def stream(self, name: str) -> np.random.Generator:
        """The random generator of component ``name`` (created on first use, then reused)."""
        if name not in self._streams:
            key = zlib.crc32(name.encode("utf-8"))
            self._streams[name] = np.random.default_rng(np.random.SeedSequence([self.seed, key]))
        return self._streams[name]

    def next_id(self, kind: str) -> int:
        """The next integer id for entities of ``kind`` in this run (0, 1, 2, ...)."""
        value = self._counters[kind]
        self._counters[kind] = value + 1
        return value
