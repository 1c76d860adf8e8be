"""Invariant checks over a run's job table: no over-allocation, gang all-or-nothing, each job once."""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_job_invariants(jobs: pd.DataFrame, capacity: int) -> list[str]:
    """Violations found in a jobs table (empty list when all hold).

    Checks: every job id appears once; a started job started at or after its submission; a completed job
    ran exactly ``duration_s``; at no instant do running jobs hold more than ``capacity`` accelerators.
    """
    problems: list[str] = []
    duplicated = jobs["job_id"][jobs.duplicated(["workload", "job_id"])]
    if len(duplicated):
        problems.append(f"jobs listed more than once: {sorted(duplicated)[:5]}")
    started = jobs[jobs["start_s"].notna()]
    early = started[started["start_s"] < started["submit_s"] - 1e-9]
    if len(early):
        problems.append(f"jobs started before submission: {list(early['job_id'])[:5]}")
    done = jobs[jobs["status"] == "completed"]
    wrong = done[~np.isclose(done["end_s"] - done["start_s"], done["duration_s"], rtol=1e-9, atol=1e-6)]
    if len(wrong):
        problems.append(f"jobs whose run time differs from their duration: {list(wrong['job_id'])[:5]}")
    end = started["end_s"].fillna(np.inf).to_numpy()
    times = np.concatenate([started["start_s"].to_numpy(), end])
    deltas = np.concatenate([started["gpus"].to_numpy(), -started["gpus"].to_numpy()])
    order = np.lexsort((deltas, times))  # at equal times, releases (negative) before allocations
    peak = int(np.max(np.cumsum(deltas[order]), initial=0))
    if peak > capacity:
        problems.append(f"{peak} accelerators held at once, capacity {capacity}")
    return problems
