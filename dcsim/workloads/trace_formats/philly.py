"""Microsoft Philly traces (https://github.com/msr-fiddle/philly-traces), file ``cluster_job_log``.

The log is a JSON list of jobs ``{"jobid", "user", "vc", "status", "submitted_time", "attempts"}``; each
attempt has ``start_time``, ``end_time`` (``YYYY-MM-DD HH:MM:SS``, ``None`` if missing) and ``detail``, a
list of ``{"ip", "gpus": [...]}`` (one entry per machine). Mapping:

- ``gpus``: GPUs listed in the last attempt's ``detail``, summed over its machines (the last attempt
  that lists any, should a final attempt list none).
- ``duration_s``: the sum over attempts of ``end_time - start_time`` (seconds), i.e. the GPU time the
  job held including failed retries; attempts missing either time (running when the trace ended) count 0.
- ``submit_s``: ``submitted_time`` in seconds after the earliest kept job's.
- ``user``: ``user``. ``vc`` and ``status`` are not carried: Pass, Killed and Failed jobs are all kept
  with the run time they used. Jobs with no GPUs or no completed run time are dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dcsim.workloads.trace_formats._common import (
    Record,
    build_frame,
    existing_file,
    fail,
    interval_s,
    parse_time,
)


def _load(source: Path) -> list[Any]:
    """The parsed JSON list; one-line errors for unreadable or non-list content."""
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise fail(source.name, "is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise fail(f"{source.name} line {error.lineno}", f"not valid JSON ({error.msg})") from None
    if not isinstance(data, list):
        raise fail(source.name, "must be a JSON list of jobs (the Philly cluster_job_log)")
    return data


def _gpu_count(attempt: dict[str, Any], where: str) -> int:
    """GPUs listed in one attempt's ``detail`` (summed over machines)."""
    detail = attempt.get("detail", [])
    if not isinstance(detail, list):
        raise fail(f"{where}.detail", "must be a list of {ip, gpus}")
    total = 0
    for k, machine in enumerate(detail):
        gpus = machine.get("gpus") if isinstance(machine, dict) else None
        if not isinstance(gpus, list):
            raise fail(f"{where}.detail[{k}].gpus", "must be a list of GPU names")
        total += len(gpus)
    return total


def _run_time_s(attempts: list[Any], where: str) -> float | None:
    """Sum of the attempts' ``end_time - start_time`` (s); None if no attempt has both times."""
    total: float | None = None
    for k, attempt in enumerate(attempts):
        at = f"{where}.attempts[{k}]"
        if not isinstance(attempt, dict):
            raise fail(at, "must be an object with start_time, end_time and detail")
        start = parse_time(attempt.get("start_time"), f"{at}.start_time")
        end = parse_time(attempt.get("end_time"), f"{at}.end_time")
        span = interval_s(start, end, at)
        if span is not None:
            total = (total or 0.0) + span
    return total


def _record(job: Any, where: str) -> Record:
    """One Philly job as a :class:`Record`."""
    if not isinstance(job, dict):
        raise fail(where, "must be an object with jobid, submitted_time and attempts")
    job_id = job.get("jobid")
    if not isinstance(job_id, str) or not job_id.strip():
        raise fail(f"{where}.jobid", "must be a non-empty string")
    submit = parse_time(job.get("submitted_time"), f"{where}.submitted_time")
    if submit is None:
        raise fail(f"{where}.submitted_time", "is missing")
    attempts = job.get("attempts") or []
    if not isinstance(attempts, list):
        raise fail(f"{where}.attempts", "must be a list")
    run_time_s = _run_time_s(attempts, where)  # checks every attempt is an object
    counts = [_gpu_count(a, f"{where}.attempts[{k}]") for k, a in enumerate(attempts)]
    gpus = next((n for n in reversed(counts) if n), 0)  # the last attempt that was given GPUs
    user = str(job.get("user") or "").strip()
    return Record(job_id.strip(), submit, gpus, run_time_s, where, user=user)


def convert_philly(path: str | Path) -> pd.DataFrame:
    """Convert a Philly ``cluster_job_log`` (JSON) into a dcsim job-trace frame (seconds, GPU counts)."""
    source = existing_file(path)
    jobs = _load(source)
    records = [_record(job, f"{source.name} job[{i}]") for i, job in enumerate(jobs)]
    return build_frame(records, source, "jobid")
