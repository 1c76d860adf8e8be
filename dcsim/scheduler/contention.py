"""Cross-job network contention: running jobs that share links slow each other's steps.

Each running job that communicates declares its *step traffic*: the bytes one of its steps puts on each
directed link (from its placement and routes, see :mod:`dcsim.scheduler.traffic`) and its step time alone
``step_s`` (priced with its own traffic only). The model spreads a job's step traffic evenly over its step,
so alone it asks link ``l`` for ``bytes_l / step_s`` bytes/s. Link capacity is then shared in proportion to
these demands (proportional sharing): a link whose jobs together ask for ``rho`` times its capacity gives
each of them ``1 / rho`` of its demand, and a job runs as fast as its most overloaded link lets it::

    rho_l        = sum_j demand_jl / capacity_l
    slowdown_j   = max(1, max over the links l of j of rho_l)     (step time shared / alone)

A job running at ``1 / slowdown_j`` of its alone speed asks ``demand_jl / slowdown_j <= demand_jl / rho_l``
of each of its links, so no link ever carries more than its capacity; a job alone, or on links no one else
uses, keeps slowdown 1 (its demand is capped at its busiest link's capacity: its own traffic is already in
its alone step time). The allocation is not work-conserving: capacity a job leaves unused because another
link slows it is not handed to the others, so it errs on the side of more slowdown than a max-min fair
share would give.

Assumptions and limits (also in ``docs/network.md``):

- traffic is spread over the step: two jobs whose bursts (a gradient all-reduce at the end of the
  backward, say) would collide are priced by their average rates, so short-lived collisions cost nothing
  until the links' average load exceeds their capacity (a lower bound for bursty, phase-aligned jobs);
- contention stretches the whole step uniformly, compute included (a job's step is as slow as its slowest
  share of the network, not ``compute + slower comm``), and the run's set-up and checkpoint time too;
- only link bandwidth is shared: latency, switch buffers and congestion control are not modelled.

Re-pricing is incremental: adding or removing one job changes the load of its own links only, and only
jobs on those links whose slowdown can change (a link that is or was overloaded) are re-priced.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

#: Relative change of a slowdown below which it counts as unchanged (floating-point noise of load sums).
SAME_SLOWDOWN = 1e-12


@dataclass(frozen=True)
class StepTraffic:
    """One job's traffic per step: ``bytes_per_step[i]`` bytes on directed link ``links[i]`` (distinct
    ids), and its step time alone ``step_s`` (seconds)."""

    links: np.ndarray
    bytes_per_step: np.ndarray
    step_s: float


class LinkShares:
    """Running jobs' step traffic on links of ``capacity_bytes_per_s`` (one entry per directed link), and
    each job's slowdown under proportional sharing (see the module docstring)."""

    def __init__(self, capacity_bytes_per_s: np.ndarray) -> None:
        self.capacity = np.asarray(capacity_bytes_per_s, dtype=float)
        self.load = np.zeros(self.capacity.size)  # bytes/s the running jobs ask for at their alone speed
        self._links: dict[Hashable, np.ndarray] = {}
        self._demand: dict[Hashable, np.ndarray] = {}
        self._on_link: dict[int, dict[Hashable, None]] = {}  # link -> its jobs (ordered: deterministic)
        self.slowdown: dict[Hashable, float] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._links

    def __len__(self) -> int:
        return len(self._links)

    def demand(self, key: Hashable) -> tuple[np.ndarray, np.ndarray]:
        """A job's links and its demand on each at its alone speed (bytes/s)."""
        return self._links[key], self._demand[key]

    def overload(self) -> np.ndarray:
        """``rho`` per link: demand at alone speed over capacity."""
        return self.load / self.capacity

    def carried_bytes_per_s(self) -> np.ndarray:
        """Bytes/s each link carries with every job at its shared speed (never above capacity)."""
        carried = np.zeros(self.capacity.size)
        for key, links in self._links.items():
            carried[links] += self._demand[key] / self.slowdown[key]
        return carried

    def add(self, key: Hashable, traffic: StepTraffic) -> dict[Hashable, float]:
        """A job starts with ``traffic``; returns the new slowdown of every job it changed (itself included)."""
        if key in self._links:
            raise ValueError(f"job {key!r} is already on the network")
        links = np.asarray(traffic.links, dtype=np.int64)
        nbytes = np.asarray(traffic.bytes_per_step, dtype=float)
        # alone, a step moves its bytes in at least the time its busiest link needs for them
        step_s = max(float(traffic.step_s), float((nbytes / self.capacity[links]).max(initial=0.0)))
        demand = nbytes / step_s if step_s > 0 else np.zeros(links.size)
        keep = demand > 0
        links, demand = links[keep], demand[keep]
        self._links[key] = links
        self._demand[key] = demand
        self.slowdown[key] = 1.0
        old = self.load[links] / self.capacity[links]
        self.load[links] += demand
        for link in links.tolist():
            self._on_link.setdefault(link, {})[key] = None
        changed = self._reprice(links, old)
        changed.setdefault(key, self.slowdown[key])
        return changed

    def remove(self, key: Hashable) -> dict[Hashable, float]:
        """A job stops; returns the new slowdown of every remaining job whose slowdown changed."""
        links = self._links.pop(key)
        demand = self._demand.pop(key)
        del self.slowdown[key]
        old = self.load[links] / self.capacity[links]
        self.load[links] -= demand
        for link in links.tolist():
            jobs = self._on_link[link]
            del jobs[key]
            if not jobs:
                del self._on_link[link]
                self.load[link] = 0.0  # no residue of floating-point sums on an idle link
        self.load[links] = np.maximum(self.load[links], 0.0)
        return self._reprice(links, old)

    def _reprice(self, links: np.ndarray, old_rho: np.ndarray) -> dict[Hashable, float]:
        """New slowdowns of the jobs on ``links`` (whose overload was ``old_rho``) that changed."""
        rho = self.load / self.capacity
        new_rho = rho[links]
        touched = links[np.maximum(old_rho, new_rho) > 1.0]  # below 1 before and after: no one's bound
        if touched.size == 0:
            return {}
        jobs: dict[Hashable, None] = {}
        on_link = self._on_link
        for link in touched.tolist():
            jobs.update(on_link.get(link, {}))
        if not jobs:
            return {}
        keys = list(jobs)
        arrays = [self._links[k] for k in keys]
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        flat = np.concatenate(arrays)
        starts = np.cumsum(lengths) - lengths
        worst = np.maximum(np.maximum.reduceat(rho[flat], starts), 1.0)
        changed: dict[Hashable, float] = {}
        slowdown = self.slowdown
        for key, value in zip(keys, worst.tolist(), strict=True):
            if abs(value - slowdown[key]) > SAME_SLOWDOWN * value:
                slowdown[key] = value
                changed[key] = value
        return changed

    def rebuild(self, traffic: dict[Hashable, StepTraffic]) -> dict[Hashable, float]:
        """Replace every job's traffic at once (the network changed: a link failed or came back, routes
        moved) and return the new slowdown of every job whose slowdown changed."""
        before = dict(self.slowdown)
        self.load[:] = 0.0
        self._links.clear()
        self._demand.clear()
        self._on_link.clear()
        self.slowdown.clear()
        for key, step in traffic.items():
            self.add(key, step)
        return {
            key: value
            for key, value in self.slowdown.items()
            if abs(value - before.get(key, 1.0)) > SAME_SLOWDOWN * value
        }
