"""Converters from published GPU-cluster traces to dcsim's job-trace CSV schema, and a writer for it.

The schema is that of :func:`dcsim.workloads.jobs.read_job_trace`: ``job_id,submit_s,gpus,duration_s``
and optional ``model,user,priority,accelerator`` (seconds; whole GPUs). Each converter takes the source
file and returns a :class:`pandas.DataFrame` in that schema, sorted by ``submit_s`` (0 = the earliest kept
job), with ``frame.attrs["dropped"]`` mapping a reason (``"no GPUs"``, ``"no run time"``) to the ids of
the jobs it left out. Malformed input raises :class:`~dcsim.errors.UserInputError` naming the file and
row. Field mappings are in each module's docstring and in ``docs/traces.md``.

A format is a :class:`TraceFormat` subclass registered in :data:`TRACE_FORMATS` (a
:class:`dcsim.registry.Registry`) with ``@register_trace_format("name")``; ``TRACE_FORMATS["helios"].convert``
is the converter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from dcsim.errors import UserInputError
from dcsim.registry import Registry
from dcsim.workloads.trace_formats._common import SCHEMA
from dcsim.workloads.trace_formats.helios import convert_helios
from dcsim.workloads.trace_formats.pai import convert_pai
from dcsim.workloads.trace_formats.philly import convert_philly

__all__ = [
    "TRACE_FORMATS",
    "HeliosFormat",
    "PaiFormat",
    "PhillyFormat",
    "TraceFormat",
    "convert_helios",
    "convert_pai",
    "convert_philly",
    "register_trace_format",
    "write_dcsim_trace",
]


class TraceFormat:
    """A supported source format: ``convert(path, **options)`` returns the source file's jobs as a frame in
    dcsim's schema; ``reads`` names the file it reads and ``source`` where the format is published."""

    name: ClassVar[str] = ""
    reads: ClassVar[str] = ""
    source: ClassVar[str] = ""

    @staticmethod
    def convert(path: str | Path, **options: Any) -> pd.DataFrame:
        """The jobs of the trace at ``path`` in dcsim's schema (``options``: the format's own)."""
        raise NotImplementedError


TRACE_FORMATS: Registry[TraceFormat] = Registry("trace format", TraceFormat)


def register_trace_format(name: str, *aliases: str) -> Callable[[type[TraceFormat]], type[TraceFormat]]:
    """Class decorator: add a format under ``name`` (and ``aliases``) and set its ``name``; a ValueError if the
    name is taken."""

    def add(cls: type[TraceFormat]) -> type[TraceFormat]:
        TRACE_FORMATS.add(name, cls, aliases)
        cls.name = name
        return cls

    return add


@register_trace_format("philly")
class PhillyFormat(TraceFormat):
    """Microsoft's Philly trace (:func:`convert_philly`)."""

    reads = "cluster_job_log (JSON)"
    source = "https://github.com/msr-fiddle/philly-traces"

    @staticmethod
    def convert(path: str | Path, **options: Any) -> pd.DataFrame:
        return convert_philly(path, **options)


@register_trace_format("helios")
class HeliosFormat(TraceFormat):
    """SenseTime's Helios trace (:func:`convert_helios`)."""

    reads = "cluster_log.csv"
    source = "https://github.com/S-Lab-System-Group/HeliosData"

    @staticmethod
    def convert(path: str | Path, **options: Any) -> pd.DataFrame:
        return convert_helios(path, **options)


@register_trace_format("pai")
class PaiFormat(TraceFormat):
    """Alibaba's PAI GPU trace of 2020 (:func:`convert_pai`; options ``task_path`` and ``gpu_types``)."""

    reads = "pai_job_table.csv (+ pai_task_table.csv beside it)"
    source = "https://github.com/alibaba/clusterdata/tree/master/cluster-trace-gpu-v2020"

    @staticmethod
    def convert(path: str | Path, **options: Any) -> pd.DataFrame:
        return convert_pai(path, **options)


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
