"""``dcsim trace convert``: turn a published GPU-cluster trace (Philly, Helios, PAI) into a dcsim trace CSV."""

from __future__ import annotations

import argparse
from typing import Any

from dcsim.catalog import load_catalog
from dcsim.cli.options import add_quiet
from dcsim.errors import UserInputError
from dcsim.progress import Stage
from dcsim.workloads.trace_formats import TRACE_FORMATS, write_dcsim_trace


def register(subparsers: Any) -> None:
    """Add the ``trace`` subcommand and its ``convert`` action."""
    parser = subparsers.add_parser("trace", help="work with job traces (convert published cluster traces)")
    actions = parser.add_subparsers(dest="trace_command", required=True)
    convert = actions.add_parser("convert", help="convert a Philly, Helios or PAI trace to dcsim's CSV schema")
    convert.add_argument("--format", required=True, choices=sorted(TRACE_FORMATS), help="source trace format")
    convert.add_argument("input", help="source trace file (PAI: pai_job_table.csv)")
    convert.add_argument("-o", "--output", required=True, help="dcsim trace CSV to write")
    convert.add_argument(
        "--task-table", help="PAI only: pai_task_table.csv (default: the input's name with job -> task)"
    )
    convert.add_argument(
        "--gpu-type",
        action="append",
        default=[],
        metavar="TYPE=ACCELERATOR",
        help="PAI only: pin jobs on GPU type TYPE to catalog accelerator ACCELERATOR (repeatable)",
    )
    add_quiet(convert)
    convert.set_defaults(handler=handle)


def _gpu_types(pairs: list[str]) -> dict[str, str]:
    """``TYPE=ACCELERATOR`` pairs as a mapping; each accelerator must be a catalog id."""
    known = load_catalog().accelerators
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = (part.strip() for part in pair.partition("="))
        if not sep or not source or not target:
            raise UserInputError.single("--gpu-type", f"must be TYPE=ACCELERATOR (got {pair!r})")
        if target not in known:
            raise UserInputError.single("--gpu-type", f"unknown accelerator {target!r} (see `dcsim catalog`)")
        mapping[source] = target
    return mapping


def handle(args: argparse.Namespace) -> int:
    """Convert, write and report how many jobs were kept and dropped."""
    options: dict[str, Any] = {}
    if args.format == "pai":
        options = {"task_path": args.task_table, "gpu_types": _gpu_types(args.gpu_type)}
    elif args.task_table or args.gpu_type:
        raise UserInputError.single("--task-table/--gpu-type", "apply to --format pai only")
    with Stage("converting the trace"):
        frame = TRACE_FORMATS[args.format].convert(args.input, **options)
        write_dcsim_trace(frame, args.output)
    dropped = frame.attrs.get("dropped", {})
    notes = ", ".join(f"{len(ids)} with {reason}" for reason, ids in dropped.items() if ids)
    print(f"wrote {len(frame)} jobs to {args.output}" + (f" (dropped {notes})" if notes else ""))
    return 0
