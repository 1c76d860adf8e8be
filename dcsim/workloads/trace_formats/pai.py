"""Alibaba PAI traces (https://github.com/alibaba/clusterdata, ``cluster-trace-gpu-v2020``).

Two header-less CSV files (a first row that starts with ``job_name`` is read as a header and skipped):

- ``pai_job_table.csv``: ``job_name,inst_id,user,status,start_time,end_time``; ``start_time`` is when the
  job was submitted (Unix seconds).
- ``pai_task_table.csv``: ``job_name,task_name,inst_num,status,start_time,end_time,plan_cpu,plan_mem,
  plan_gpu,gpu_type``; ``plan_gpu`` is the GPU share of one instance in percent (100 = one GPU, empty =
  none) and the times are when the task's instances ran (Unix seconds, empty if they did not).

Given the job table, the task table is ``task_path`` or, by default, the file next to it whose name has
``job`` replaced by ``task`` (``pai_job_table.csv`` -> ``pai_task_table.csv``). Mapping:

- ``gpus``: the sum over the job's tasks of ``ceil(inst_num * plan_gpu / 100)``.
- ``duration_s``: the latest task ``end_time`` minus the earliest task ``start_time`` (tasks lacking
  either time are ignored).
- ``submit_s``: the job's ``start_time`` in seconds after the earliest kept job's.
- ``user``: ``user``. ``accelerator``: only with ``gpu_types`` (source type -> catalog id, e.g.
  ``{"T4": "t4"}``), when every GPU task of the job has one mapped type; otherwise empty (any pool).

Terminated and Failed jobs are kept with their run time; jobs with no GPUs (CPU-only, or no task rows)
and jobs that never ran or never finished (Running, Waiting) are dropped. Task rows of jobs absent from
the job table are ignored.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dcsim.workloads.trace_formats._common import Record, build_frame, existing_file, fail, parse_number

JOB_COLUMNS = ("job_name", "inst_id", "user", "status", "start_time", "end_time")
TASK_COLUMNS = (
    "job_name",
    "task_name",
    "inst_num",
    "status",
    "start_time",
    "end_time",
    "plan_cpu",
    "plan_mem",
    "plan_gpu",
    "gpu_type",
)


@dataclass
class _Tasks:
    """What a job's tasks add up to: GPUs, run interval (s) and the GPU types they asked for."""

    gpus: int = 0
    start: float | None = None
    end: float | None = None
    gpu_types: set[str] = field(default_factory=set)


def task_table_for(job_path: Path) -> Path:
    """The default task table of a job table: same folder, ``job`` replaced by ``task`` in the name."""
    if "job" not in job_path.name:
        raise fail(str(job_path), "cannot find the PAI task table (no 'job' in the name); pass it explicitly")
    return job_path.with_name(job_path.name.replace("job", "task", 1))


def _rows(source: Path, columns: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """``(where, row)`` per data row of a header-less CSV; errors name ``FILE line N``."""
    reader = None
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            for cells in reader:
                where = f"{source.name} line {reader.line_num}"
                if not cells or (reader.line_num == 1 and cells[0].strip() == columns[0]):
                    continue
                if len(cells) < len(columns):
                    expected = ",".join(columns)
                    raise fail(where, f"expected {len(columns)} columns {expected} (got {len(cells)})")
                yield where, dict(zip(columns, (c.strip() for c in cells), strict=False))
    except UnicodeDecodeError:
        raise fail(source.name, "is not UTF-8 text") from None
    except csv.Error as error:
        line = reader.line_num if reader is not None else 1
        raise fail(f"{source.name} line {line}", f"not valid CSV ({error})") from None


def _add_task(tasks: _Tasks, row: dict[str, str], where: str) -> None:
    """Add one task row's GPUs, run interval and GPU type to its job's totals."""
    inst_num = parse_number(row["inst_num"], f"{where}.inst_num", whole=True)
    plan_gpu = parse_number(row["plan_gpu"], f"{where}.plan_gpu") or 0.0
    gpus = math.ceil(round((inst_num or 0.0) * plan_gpu / 100, 9))
    tasks.gpus += gpus
    if gpus and row["gpu_type"]:
        tasks.gpu_types.add(row["gpu_type"])
    start = parse_number(row["start_time"], f"{where}.start_time")
    end = parse_number(row["end_time"], f"{where}.end_time")
    if start is None or end is None:
        return
    if end < start:
        raise fail(f"{where}.end_time", "end time precedes start time")
    tasks.start = start if tasks.start is None else min(tasks.start, start)
    tasks.end = end if tasks.end is None else max(tasks.end, end)


def _accelerator(tasks: _Tasks, gpu_types: Mapping[str, str]) -> str:
    """The catalog id of the job's single mapped GPU type, or "" (no constraint)."""
    ids = {gpu_types.get(t, "") for t in tasks.gpu_types}
    return ids.pop() if len(ids) == 1 else ""


def convert_pai(
    path: str | Path, task_path: str | Path | None = None, gpu_types: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Convert PAI ``pai_job_table.csv`` (+ its task table) into a dcsim job-trace frame (seconds, GPUs)."""
    source = existing_file(path)
    task_source = existing_file(task_path if task_path is not None else task_table_for(source))
    jobs: list[tuple[str, dict[str, str]]] = []
    by_name: dict[str, _Tasks] = {}
    for where, row in _rows(source, JOB_COLUMNS):
        if not row["job_name"]:
            raise fail(f"{where}.job_name", "must not be empty")
        jobs.append((where, row))
        by_name[row["job_name"]] = _Tasks()
    for where, row in _rows(task_source, TASK_COLUMNS):
        if row["job_name"] in by_name:
            _add_task(by_name[row["job_name"]], row, where)
    records = []
    for where, row in jobs:
        submit = parse_number(row["start_time"], f"{where}.start_time")
        if submit is None:
            raise fail(f"{where}.start_time", "is missing (the job's submission time)")
        tasks = by_name[row["job_name"]]
        duration_s = None if tasks.start is None or tasks.end is None else tasks.end - tasks.start
        accelerator = _accelerator(tasks, gpu_types or {})
        records.append(Record(row["job_name"], submit, tasks.gpus, duration_s, where, row["user"], accelerator))
    return build_frame(records, source, "job_name")
