"""Shared pieces of the trace converters: field parsing with located errors, and the dcsim-schema frame.

Every converter turns the rows of a published trace into :class:`Record` values (absolute times in
seconds) and hands them to :func:`build_frame`, which drops jobs dcsim cannot replay, makes submission
times relative and sorts. Errors are :class:`~dcsim.errors.UserInputError` with one problem whose path
names the file and the row (``FILE line N.column`` for CSV, ``FILE job[i].field`` for JSON).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dcsim.errors import UserInputError
from dcsim.workloads.jobs import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MISSING = frozenset({"", "none", "null", "nan", "nat"})  # spellings of "no value" in the published traces
NO_GPUS = "no GPUs"
NO_RUN_TIME = "no run time"
SCHEMA = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)


@dataclass(frozen=True)
class Record:
    """One job of a source trace: ``submit`` in absolute seconds, ``duration_s`` None if it never ran."""

    job_id: str
    submit: float
    gpus: int
    duration_s: float | None
    where: str
    user: str = ""
    accelerator: str = ""


def fail(where: str, message: str) -> UserInputError:
    """A one-problem input error at ``where`` (``FILE line N.field``)."""
    return UserInputError.single(where, message)


def existing_file(path: str | Path) -> Path:
    """``path`` as a Path; a one-line error if it is not a readable file."""
    source = Path(path)
    if not source.is_file():
        raise fail(str(path), "trace file not found")
    return source


def is_missing(raw: object) -> bool:
    """True for an empty cell or a null spelling (``None``, ``NaN``, ``null``) of the published traces."""
    return raw is None or (isinstance(raw, str) and raw.strip().lower() in MISSING)


def parse_time(raw: object, where: str) -> float | None:
    """A ``YYYY-MM-DD HH:MM:SS`` wall-clock time as seconds (read as UTC); None if missing."""
    if is_missing(raw):
        return None
    if not isinstance(raw, str):
        raise fail(where, f"must be a time YYYY-MM-DD HH:MM:SS (got {raw!r})")
    try:
        moment = datetime.strptime(raw.strip(), TIME_FORMAT)
    except ValueError:
        raise fail(where, f"must be a time YYYY-MM-DD HH:MM:SS (got {raw!r})") from None
    return moment.replace(tzinfo=timezone.utc).timestamp()


def parse_number(raw: object, where: str, whole: bool = False) -> float | None:
    """A finite number >= 0 (a whole one if ``whole``), from a cell or JSON value; None if missing."""
    if is_missing(raw):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise fail(where, f"must be a number (got {raw!r})") from None
    if not math.isfinite(value) or value < 0:
        raise fail(where, f"must be a number >= 0 (got {raw!r})")
    if whole and not value.is_integer():
        raise fail(where, f"must be a whole number (got {raw!r})")
    return value


def interval_s(start: float | None, end: float | None, where: str) -> float | None:
    """``end - start`` in seconds, None if either is missing; an error if the end precedes the start."""
    if start is None or end is None:
        return None
    if end < start:
        raise fail(where, "end time precedes start time")
    return end - start


def drop_reason(record: Record) -> str | None:
    """Why dcsim cannot replay ``record`` (it never ran, or ran without GPUs), or None if it can."""
    if record.duration_s is None or record.duration_s <= 0:
        return NO_RUN_TIME
    if record.gpus < 1:
        return NO_GPUS
    return None


def build_frame(records: list[Record], source: Path, id_field: str) -> pd.DataFrame:
    """The dcsim-schema frame of the replayable ``records``, sorted by submission (ties in file order).

    ``submit_s`` is seconds after the earliest submission among the kept jobs, so the trace starts at 0.
    ``frame.attrs["dropped"]`` maps each drop reason to the ids of the jobs dropped for it; ``id_field``
    names the source's job-id field in the error for a duplicate id.
    """
    seen: set[str] = set()
    for record in records:
        if record.job_id in seen:
            raise fail(f"{record.where}.{id_field}", f"duplicate job id {record.job_id!r}")
        seen.add(record.job_id)
    dropped: dict[str, list[str]] = {NO_RUN_TIME: [], NO_GPUS: []}
    kept: list[Record] = []
    for record in records:
        reason = drop_reason(record)
        if reason is None:
            kept.append(record)
        else:
            dropped[reason].append(record.job_id)
    if not kept:
        raise fail(source.name, "no job in the trace used GPUs for a positive time")
    kept.sort(key=lambda r: r.submit)  # stable: ties keep file order
    origin = kept[0].submit
    columns: dict[str, list[object]] = {
        "job_id": [r.job_id for r in kept],
        "submit_s": [r.submit - origin for r in kept],
        "gpus": [r.gpus for r in kept],
        "duration_s": [r.duration_s for r in kept],
        "user": [r.user for r in kept],
    }
    if any(r.accelerator for r in kept):
        columns["accelerator"] = [r.accelerator for r in kept]
    frame = pd.DataFrame(columns)
    frame = frame.astype({"submit_s": "float64", "gpus": "int64", "duration_s": "float64"})
    frame.attrs["dropped"] = dropped
    return frame
