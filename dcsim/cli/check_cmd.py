"""``dcsim check FILE``: validate a scenario without running it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario

EXIT_INVALID = 2


def register(subparsers: Any) -> None:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="validate a scenario file without running it",
        description="Validate a scenario. Exit status 0 if it is valid, 2 with one line per problem if not. "
        'With --json, print {"ok": ..., "problems": [{"path": ..., "message": ...}], ...} on stdout instead.',
    )
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument(
        "--json", action="store_true", help="print the verdict as a JSON object on stdout (same exit status)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Validate and report."""
    if args.json:
        return _handle_json(args.scenario)
    scenario = load_scenario(args.scenario)
    accelerators = sum(node.accelerators for node in scenario.datacenter.nodes)
    kinds = ", ".join(f"{w.name} [{w.kind}]" for w in scenario.workloads)
    print(f"{args.scenario}: ok ({accelerators} accelerators; workloads: {kinds})")
    return 0


def _handle_json(path: str) -> int:
    """``{"scenario", "ok", "problems", "accelerators", "workloads"}`` on stdout; 0 if valid, else 2."""
    verdict: dict[str, Any] = {"scenario": path}
    try:
        scenario = load_scenario(path)
    except UserInputError as error:
        verdict |= {"ok": False, "problems": [{"path": p.path, "message": p.message} for p in error.problems]}
        print(json.dumps(verdict, indent=2))
        return EXIT_INVALID
    verdict |= {
        "ok": True,
        "problems": [],
        "accelerators": sum(node.accelerators for node in scenario.datacenter.nodes),
        "workloads": [{"name": w.name, "kind": w.kind} for w in scenario.workloads],
    }
    print(json.dumps(verdict, indent=2))
    return 0
