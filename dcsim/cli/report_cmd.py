"""``dcsim report PATH``: one self-contained HTML page of a run's output folder or a sweep's results file."""

from __future__ import annotations

import argparse
from typing import Any

from dcsim.errors import UserInputError


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser("report", help="write an HTML report of a run folder or sweep results")
    parser.add_argument("results", help="output folder of dcsim run, or a dcsim sweep .csv/.parquet file")
    parser.add_argument("--out", help="HTML file (default: FOLDER/report.html, or RESULTS.html beside the file)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Build and write the report."""
    from dcsim.report import write_report

    try:
        written = write_report(args.results, args.out)
    except OSError as error:
        raise UserInputError.single("--out", f"cannot write the report: {error}") from None
    print(f"report written to {written}")
    return 0
