"""What a workload runner sees when the run is over: the clock, the scheduler, prices and power."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dcsim.scheduler.dispatcher import ClusterScheduler

if TYPE_CHECKING:
    from dcsim.run.jobs_runner import JobUsage


@dataclass
class RunContext:
    """End-of-run facts shared by every runner's summary and tables.

    ``usd_per_accelerator_s`` and ``busy_w`` are per accelerator type (price of one accelerator-second;
    busy power in W); ``usage`` is each job's usage by its ``seq``.
    """

    end_s: float
    scheduler: ClusterScheduler
    pue: float
    usd_per_accelerator_s: dict[str, float] = field(default_factory=dict)
    busy_w: dict[str, float] = field(default_factory=dict)
    usage: dict[int, JobUsage] = field(default_factory=dict)
