"""``dcsim check FILE``: validate a scenario without running it."""

from __future__ import annotations

import argparse
from typing import Any

from dcsim.scenario import load_scenario


def register(subparsers: Any) -> None:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser("check", help="validate a scenario file without running it")
    parser.add_argument("scenario", help="scenario YAML file")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Validate and report."""
    scenario = load_scenario(args.scenario)
    accelerators = sum(node.accelerators for node in scenario.datacenter.nodes)
    kinds = ", ".join(f"{w.name} [{w.kind}]" for w in scenario.workloads)
    print(f"{args.scenario}: ok ({accelerators} accelerators; workloads: {kinds})")
    return 0
