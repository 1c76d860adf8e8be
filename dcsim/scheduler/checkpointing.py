"""The work model of a running job with periodic checkpoints, and the Young/Daly interval.

A run segment starts with ``setup_s`` (restart, restore), then alternates ``interval_s`` of useful work
and ``cost_s`` of writing a checkpoint; no checkpoint is written after the last chunk. A failure loses the
work since the last completed checkpoint; a preemption checkpoints first, so it loses nothing (its cost is
paid as set-up when the job resumes).

Young/Daly: the interval that minimises expected waste is about sqrt(2 * cost * MTBF) (Young, CACM 1974;
Daly, FGCS 2006), with MTBF the mean time between failures of the job, i.e. the per-accelerator MTBF
divided by the job's accelerators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Checkpointing:
    """Periodic checkpoints: ``interval_s`` (``None``: never; ``"auto"``: Young/Daly per job),
    ``cost_s`` per checkpoint, ``restart_s`` after a failure, and the per-accelerator MTBF (s) for auto."""

    interval_s: float | str | None
    cost_s: float
    restart_s: float
    accelerator_mtbf_s: float | None = None

    def interval_for(self, gpus: int) -> float | None:
        """The checkpoint interval (s of useful work) of a job on ``gpus`` accelerators."""
        if self.interval_s == "auto":
            if self.accelerator_mtbf_s is None or self.cost_s <= 0:
                return None
            return young_daly_interval_s(self.cost_s, self.accelerator_mtbf_s / gpus)
        return None if self.interval_s is None else float(self.interval_s)

    def overhead_s(self, work_s: float, interval_s: float | None) -> float:
        """Checkpoint time spent while doing ``work_s`` of useful work."""
        if interval_s is None or work_s <= 0:
            return 0.0
        return self.cost_s * max(0, math.ceil(work_s / interval_s - 1e-12) - 1)

    def progress_s(self, elapsed_s: float, interval_s: float | None) -> float:
        """Useful work done ``elapsed_s`` after the set-up ended."""
        if elapsed_s <= 0:
            return 0.0
        if interval_s is None:
            return elapsed_s
        period = interval_s + self.cost_s
        chunks = math.floor(elapsed_s / period)
        return chunks * interval_s + min(elapsed_s - chunks * period, interval_s)

    def saved_s(self, elapsed_s: float, interval_s: float | None) -> float:
        """Useful work that survives a failure ``elapsed_s`` after the set-up ended (completed checkpoints)."""
        if interval_s is None or elapsed_s <= 0:
            return 0.0
        return math.floor(elapsed_s / (interval_s + self.cost_s)) * interval_s


NO_CHECKPOINTS = Checkpointing(None, 0.0, 0.0)


def young_daly_interval_s(checkpoint_cost_s: float, mtbf_s: float) -> float:
    """Young's first-order optimal checkpoint interval sqrt(2 * cost * MTBF), in seconds."""
    if checkpoint_cost_s <= 0 or mtbf_s <= 0:
        raise ValueError(f"checkpoint cost and MTBF must be > 0, got {checkpoint_cost_s} and {mtbf_s}")
    return math.sqrt(2.0 * checkpoint_cost_s * mtbf_s)
