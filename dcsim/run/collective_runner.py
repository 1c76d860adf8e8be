"""Runs ``kind: collective`` workloads on the datacenter fabric, in the run's SimPy environment, so
that collectives contend with each other (and with any other traffic on the same flow simulator)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pandas as pd
import simpy

from dcsim.engine.simulation import Simulation
from dcsim.network import CollectiveResult, run_collective
from dcsim.run.context import RunContext
from dcsim.run.network_session import NetworkSession
from dcsim.run.runner import Runner, RunServices
from dcsim.scenario.workloads import CollectiveWorkload

__all__ = ["CollectiveRunner", "NetworkSession"]


class CollectiveRunner(Runner[CollectiveWorkload]):
    """One collective: starts at ``arrival_s`` and records its :class:`CollectiveResult`."""

    def __init__(self, spec: CollectiveWorkload, sim: Simulation, network: NetworkSession) -> None:
        self.spec = spec
        self.sim = sim
        self.network = network
        self.ranks = spec.rank_names(network.fabric)
        self.result: CollectiveResult | None = None

    @classmethod
    def build(cls, spec: CollectiveWorkload, run: RunServices) -> CollectiveRunner:
        """The collective on the run's network."""
        return cls(spec, run.sim, run.need_network())

    def start(self) -> None:
        """Schedule the collective; ``done`` is its process."""
        self.done = self.sim.env.process(self._run())

    def _run(self) -> Generator[simpy.Event, Any, None]:
        spec = self.spec
        yield self.sim.env.timeout(spec.arrival_s)
        body = run_collective(
            self.network.flows, spec.op, self.ranks, spec.bytes, spec.algorithm, protocol=spec.protocol
        )
        self.result = yield self.sim.env.process(body)
        if self.sim.log.enabled:
            self.sim.log.complete(
                spec.name,
                spec.arrival_s,
                self.result.time_s,
                "network",
                spec.op,
                bytes=spec.bytes,
                ranks=len(self.ranks),
            )

    def summary(self, context: RunContext) -> dict[str, Any]:
        """The contract's collective figures (time, algbw and busbw in Gb/s) or ``completed: false``."""
        if self.result is None:
            return {"kind": "collective", "completed": False, "op": self.spec.op, "ranks": len(self.ranks)}
        return {"kind": "collective", "completed": True, **self.result.summary()}

    def tables(self, context: RunContext) -> dict[str, pd.DataFrame]:
        """The ``collectives`` table's row (times and bandwidths as floats: NaN where the collective did not
        finish)."""
        result = self.result
        row = pd.DataFrame(
            [
                {
                    "workload": self.spec.name,
                    "op": self.spec.op,
                    "ranks": len(self.ranks),
                    "bytes": self.spec.bytes,
                    "algorithm": result.algorithm if result else self.spec.algorithm,
                    "protocol": result.protocol if result else self.spec.protocol,
                    "channels": result.channels if result else 0,  # 0 (and no protocol): not tuned by NCCL
                    "start_s": self.spec.arrival_s,
                    "time_s": result.time_s if result else None,
                    "algbw_gbps": result.algbw_gbps if result else None,
                    "busbw_gbps": result.busbw_gbps if result else None,
                }
            ]
        )
        return {"collectives": row.astype({"time_s": float, "algbw_gbps": float, "busbw_gbps": float})}
