"""Converters from published GPU-cluster traces to dcsim's job-trace CSV schema, and a writer for it.

The schema is that of :func:`dcsim.workloads.jobs.read_job_trace`: ``job_id,submit_s,gpus,duration_s``
and optional ``model,user,priority,accelerator`` (seconds; whole GPUs). Each converter takes the source
file and returns a :class:`pandas.DataFrame` in that schema, sorted by ``submit_s`` (0 = the earliest kept
job), with ``frame.attrs["dropped"]`` mapping a reason (``"no GPUs"``, ``"no run time"``) to the ids of
the jobs it left out. Malformed input raises :class:`~dcsim.errors.UserInputError` naming the file and
row. Field mappings are in each module's docstring and in ``docs/traces.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dcsim.errors import UserInputError
from dcsim.workloads.trace_formats._common import SCHEMA
from dcsim.workloads.trace_formats.helios import convert_helios
from dcsim.workloads.trace_formats.pai import convert_pai
from dcsim.workloads.trace_formats.philly import convert_philly

__all__ = [
    "TRACE_FORMATS",
    "TraceFormat",
    "convert_helios",
    "convert_pai",
    "convert_philly",
    "register_trace_format",
    "write_dcsim_trace",
]


@dataclass(frozen=True)
class TraceFormat:
    """A supported source format: its name, converter, what file it reads and where it is published."""

    name: str
    convert: Callable[..., pd.DataFrame]
    reads: str
    source: str


TRACE_FORMATS: dict[str, TraceFormat] = {}


def register_trace_format(fmt: TraceFormat) -> TraceFormat:
    """Add ``fmt`` to :data:`TRACE_FORMATS`; a ValueError if its name is taken."""
    if fmt.name in TRACE_FORMATS:
        raise ValueError(f"trace format {fmt.name!r} is already registered")
    TRACE_FORMATS[fmt.name] = fmt
    return fmt


register_trace_format(
    TraceFormat("philly", convert_philly, "cluster_job_log (JSON)", "https://github.com/msr-fiddle/philly-traces")
)
register_trace_format(
    TraceFormat("helios", convert_helios, "cluster_log.csv", "https://github.com/S-Lab-System-Group/HeliosData")
)
register_trace_format(
    TraceFormat(
        "pai",
        convert_pai,
        "pai_job_table.csv (+ pai_task_table.csv beside it)",
        "https://github.com/alibaba/clusterdata/tree/master/cluster-trace-gpu-v2020",
    )
)


def write_dcsim_trace(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as a dcsim job-trace CSV (schema columns it has, in schema order; seconds as %.15g)."""
    missing = [c for c in SCHEMA[:4] if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks dcsim trace columns {', '.join(missing)}")
    columns = [c for c in SCHEMA if c in frame.columns]
    try:
        frame.to_csv(path, columns=columns, index=False, float_format="%.15g", lineterminator="\n")
    except OSError as error:
        raise UserInputError.single(str(path), f"cannot write the trace ({error.strerror or error})") from None
