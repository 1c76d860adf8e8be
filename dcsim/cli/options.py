"""Options shared by several subcommands."""

from __future__ import annotations

import argparse


def add_quiet(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """``-q/--quiet`` (and ``aliases``), stored as ``quiet``: no progress bar. Bars are drawn on stderr, and
    only when stderr is a terminal."""
    parser.add_argument(
        "-q",
        "--quiet",
        *aliases,
        dest="quiet",
        action="store_true",
        help="no progress bar (one is drawn on stderr only when stderr is a terminal)",
    )
