"""SenseTime Helios traces (https://github.com/S-Lab-System-Group/HeliosData), ``cluster_log.csv``.

A CSV with a header ``job_id,user,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,
duration,queue`` (times ``YYYY-MM-DD HH:MM:SS``, ``duration`` in seconds). Mapping:

- ``gpus``: ``gpu_num``.
- ``duration_s``: ``duration``; where that cell is empty, ``end_time - start_time``.
- ``submit_s``: ``submit_time`` in seconds after the earliest kept job's.
- ``user``: ``user``. ``state`` (COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL) is not carried: every
  job is kept with the run time it used; CPU-only jobs (``gpu_num`` 0) and jobs that never ran (duration 0
  or no times) are dropped. ``cpu_num``, ``node_num`` and ``queue`` are not carried.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from dcsim.workloads.trace_formats._common import (
    Record,
    build_frame,
    existing_file,
    fail,
    interval_s,
    parse_number,
    parse_time,
)

REQUIRED = ("job_id", "gpu_num", "submit_time")


def _duration_s(row: dict[str, str], where: str) -> float | None:
    """``duration`` if given, else ``end_time - start_time`` (seconds); None if neither is known."""
    duration = parse_number(row.get("duration"), f"{where}.duration")
    if duration is not None:
        return duration
    start = parse_time(row.get("start_time"), f"{where}.start_time")
    end = parse_time(row.get("end_time"), f"{where}.end_time")
    return interval_s(start, end, f"{where}.end_time")


def _record(row: dict[str, str], where: str) -> Record:
    """One Helios row as a :class:`Record`."""
    job_id = (row.get("job_id") or "").strip()
    if not job_id:
        raise fail(f"{where}.job_id", "must not be empty")
    submit = parse_time(row.get("submit_time"), f"{where}.submit_time")
    if submit is None:
        raise fail(f"{where}.submit_time", "is missing")
    gpus = parse_number(row.get("gpu_num"), f"{where}.gpu_num", whole=True)
    user = (row.get("user") or "").strip()
    return Record(job_id, submit, int(gpus or 0), _duration_s(row, where), where, user=user)


def convert_helios(path: str | Path) -> pd.DataFrame:
    """Convert a Helios ``cluster_log.csv`` into a dcsim job-trace frame (seconds, GPU counts)."""
    source = existing_file(path)
    records: list[Record] = []
    reader: csv.DictReader[str] | None = None
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in header]
            if missing or not ("duration" in header or {"start_time", "end_time"} <= set(header)):
                need = ", ".join(missing) or "duration (or start_time and end_time)"
                raise fail(f"{source.name} line 1", f"Helios header lacks columns {need}")
            for row in reader:
                line = reader.line_num
                clean = {(k or "").strip(): v for k, v in row.items() if isinstance(v, str)}
                records.append(_record(clean, f"{source.name} line {line}"))
    except UnicodeDecodeError:
        raise fail(source.name, "is not UTF-8 text") from None
    except csv.Error as error:
        line = reader.line_num if reader is not None else 1
        raise fail(f"{source.name} line {line}", f"not valid CSV ({error})") from None
    return build_frame(records, source, "job_id")
