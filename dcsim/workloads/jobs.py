"""Cluster jobs: a gang of ``gpus`` accelerators held for ``duration_s`` seconds.

Traces are CSV files with the header ``job_id,submit_s,gpus,duration_s`` and optional columns ``model``,
``user`` (the team, for fair-share policies and quotas), ``priority`` (larger runs first under ``priority``),
``accelerator`` (a catalog id the job must run on) and ``estimate_s`` (the user's run-time estimate, used
by ``sjf`` and ``backfill``; the true duration when absent), ``cpus`` and ``memory_gb`` (host CPU cores and
memory the job requests in all, spread evenly over its accelerators' nodes). Rows may come in any order; jobs
are submitted by ``submit_s`` (ties in file order).
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from dcsim.errors import Problem, UserInputError

REQUIRED_COLUMNS = ("job_id", "submit_s", "gpus", "duration_s")
OPTIONAL_COLUMNS = ("model", "user", "priority", "accelerator", "estimate_s", "cpus", "memory_gb")


class Job:
    """One gang job: ``duration_s`` seconds of work on ``gpus`` accelerators, and its run state.

    ``start_s`` is its first start, ``end_s`` its completion. While it runs, ``accelerators`` are its
    accelerators, ``segment_start_s`` when the current run segment began and ``setup_s`` the overhead at
    the start of that segment (checkpoint restore, restart). ``remaining_s`` is work still to do;
    ``attained_s`` the accelerator-seconds it has been given so far (least-attained-service policies);
    ``token`` changes whenever it starts or stops, so stale completion events are ignored.
    ``node_selector`` (labels a node must have) and ``tolerations`` (taints it may ignore) restrict where it
    runs, as in Kubernetes; ``cpus_per_accelerator`` and ``memory_gb_per_accelerator`` are its host CPU
    cores and memory (GB) requested with each accelerator, taken on that accelerator's node.
    ``checkpointing`` (a :class:`~dcsim.scheduler.checkpointing.Checkpointing`) replaces the cluster's for
    this job (a training job's checkpoint size follows from its model). ``failures``
    counts the times a failure killed it and ``lost_s`` the useful work those failures discarded (s).
    """

    __slots__ = (
        "accelerator",
        "accelerators",
        "attained_s",
        "checkpoint_interval_s",
        "checkpointing",
        "cpus_per_accelerator",
        "duration_s",
        "end_s",
        "estimate_s",
        "failures",
        "gpus",
        "index",
        "job_id",
        "lost_s",
        "memory_gb_per_accelerator",
        "model",
        "node_selector",
        "preemptions",
        "priority",
        "remaining_s",
        "segment_start_s",
        "seq",
        "setup_s",
        "start_s",
        "submit_s",
        "token",
        "tolerations",
        "user",
        "workload",
    )

    def __init__(
        self,
        index: int,
        job_id: str,
        submit_s: float,
        gpus: int,
        duration_s: float,
        workload: str,
        accelerator: str | None = None,
        user: str = "",
        model: str = "",
        priority: int = 0,
        estimate_s: float | None = None,
    ) -> None:
        self.index = index
        self.job_id = job_id
        self.submit_s = submit_s
        self.gpus = gpus
        self.duration_s = duration_s
        self.workload = workload
        self.accelerator = accelerator
        self.user = user
        self.model = model
        self.priority = priority
        self.start_s = math.nan
        self.end_s = math.nan
        self.accelerators: list[int] = []
        self.estimate_s = duration_s if estimate_s is None else estimate_s
        self.remaining_s = duration_s
        self.attained_s = 0.0
        self.segment_start_s = math.nan
        self.setup_s = 0.0
        self.preemptions = 0
        self.failures = 0
        self.lost_s = 0.0
        self.checkpoint_interval_s: float | None = None
        self.checkpointing: Any = None  # a Checkpointing of its own (a model-backed job), else the cluster's
        self.cpus_per_accelerator = 0.0  # host requests with each accelerator (Kubernetes pod requests)
        self.memory_gb_per_accelerator = 0.0
        self.token = 0
        self.node_selector: dict[str, str] = {}
        self.tolerations: frozenset[str] = frozenset()
        self.seq = index  # submission sequence number, set by the scheduler

    def __repr__(self) -> str:
        return f"Job({self.job_id!r}, submit_s={self.submit_s}, gpus={self.gpus}, duration_s={self.duration_s})"


def synthetic_jobs(
    workload: str,
    count: int,
    interarrival_s: np.ndarray,
    gpus: np.ndarray,
    durations_s: np.ndarray,
    start_s: float = 0.0,
    accelerator: str | None = None,
) -> list[Job]:
    """Jobs from sampled inter-arrival times, sizes and durations (arrays of length ``count``)."""
    submits = start_s + np.cumsum(interarrival_s)
    return [
        Job(
            i,
            f"{workload}-{i}",
            float(submits[i]),
            int(gpus[i]),
            float(durations_s[i]),
            workload,
            accelerator,
        )
        for i in range(count)
    ]


def _field(row: dict[str, Any], name: str, where: str, whole: bool, minimum: float) -> Any:
    """Parse one numeric CSV cell; a clear error naming ``FILE line N.name`` otherwise."""
    raw = (row.get(name) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise UserInputError.single(f"{where}.{name}", f"must be a number (got {raw!r})") from None
    if not math.isfinite(value) or value < minimum:
        raise UserInputError.single(f"{where}.{name}", f"must be >= {minimum:g} (got {raw!r})")
    if whole:
        if not value.is_integer():
            raise UserInputError.single(f"{where}.{name}", f"must be a whole number (got {raw!r})")
        return int(value)
    return value


def _optional(row: dict[str, Any], name: str, where: str) -> float:
    """An optional non-negative number (0 when the cell or the column is empty)."""
    raw = (row.get(name) or "").strip()
    return _field({name: raw}, name, where, False, 0.0) if raw else 0.0


def read_job_trace(path: str | Path, workload: str) -> list[Job]:
    """Read a job trace CSV; errors name ``FILE line N.column``. Returns jobs sorted by submit time.

    The parsed rows are cached per (file, modification time, size), so validating a scenario and then
    running it parses a large trace once; every call returns fresh :class:`Job` objects."""
    source = Path(path)
    if not source.is_file():
        raise UserInputError.single(str(path), "trace file not found")
    stat = source.stat()
    rows = _parse_trace(str(source.resolve()), stat.st_mtime_ns, stat.st_size)
    jobs = []
    for index, (
        job_id,
        submit_s,
        gpus,
        duration_s,
        accelerator,
        user,
        model,
        priority,
        estimate_s,
        cpus,
        mem,
    ) in enumerate(rows):
        job = Job(index, job_id, submit_s, gpus, duration_s, workload, accelerator, user, model, priority, estimate_s)
        job.cpus_per_accelerator = cpus / gpus
        job.memory_gb_per_accelerator = mem / gpus
        jobs.append(job)
    return jobs


TraceRow = tuple[str, float, int, float, str | None, str, str, int, float | None, float, float]


@functools.lru_cache(maxsize=4)
def _parse_trace(path: str, _mtime_ns: int, _size: int) -> tuple[TraceRow, ...]:
    source = Path(path)
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise UserInputError.single(
                    f"{source.name}",
                    f"trace header lacks columns {', '.join(missing)} "
                    f"(expected {','.join(REQUIRED_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}])",
                )
            rows: list[TraceRow] = []
            seen: set[str] = set()
            for line, raw in enumerate(reader, start=2):
                row = {(k or "").strip(): v for k, v in raw.items()}
                where = f"{source.name} line {line}"
                job_id = (row.get("job_id") or "").strip()
                if not job_id:
                    raise UserInputError.single(f"{where}.job_id", "must not be empty")
                if job_id in seen:
                    raise UserInputError.single(f"{where}.job_id", f"duplicate job id {job_id!r}")
                seen.add(job_id)
                priority = (row.get("priority") or "0").strip() or "0"
                estimate = (row.get("estimate_s") or "").strip()
                rows.append(
                    (
                        job_id,
                        _field(row, "submit_s", where, False, 0.0),
                        _field(row, "gpus", where, True, 1),
                        _field(row, "duration_s", where, False, 0.0),
                        (row.get("accelerator") or "").strip() or None,
                        (row.get("user") or "").strip(),
                        (row.get("model") or "").strip(),
                        _field({"priority": priority}, "priority", where, True, -(2**31)),
                        _field({"estimate_s": estimate}, "estimate_s", where, False, 0.0) if estimate else None,
                        _optional(row, "cpus", where),
                        _optional(row, "memory_gb", where),
                    )
                )
    except UnicodeDecodeError:
        raise UserInputError.single(source.name, "not a UTF-8 text file") from None
    except csv.Error as error:
        raise UserInputError.single(source.name, f"not a readable CSV file ({error})") from None
    if not rows:
        raise UserInputError([Problem(source.name, "trace has no jobs")])
    order = sorted(range(len(rows)), key=lambda i: (rows[i][1], i))
    return tuple(rows[i] for i in order)
