"""``dcsim policies FILE``: run a scenario under several scheduling policies and compare them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dcsim.cli.options import add_quiet
from dcsim.run.compare import compare_policies, plot_policies


def register(subparsers: Any) -> None:
    """Add the ``policies`` subcommand."""
    parser = subparsers.add_parser("policies", help="compare scheduling policies on one scenario")
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument(
        "--policies",
        default="fifo,sjf,backfill,las,priority,drf",
        help="comma-separated policy names or module:Class (default: all built-in)",
    )
    parser.add_argument("--preemption", action="store_true", help="enable preemption for every policy")
    parser.add_argument("--out", help="folder for policies.csv and plots (default: outputs.dir/policies)")
    add_quiet(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run, print the comparison table, write it and the plots."""
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    overrides = {"preemption": True} if args.preemption else {}
    table, results = compare_policies(args.scenario, policies, **overrides)
    first = next(iter(results.values()))
    out = Path(args.out or Path(first.scenario.output_dir) / "policies")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "policies.csv", index=False)
    plots = plot_policies(results, out / "plots")
    shown = table.assign(
        jct_mean_h=table["jct_mean_s"] / 3600,
        jct_p90_h=table["jct_p90_s"] / 3600,
        wait_mean_h=table["wait_mean_s"] / 3600,
        makespan_h=table["makespan_s"] / 3600,
    )[["policy", "workload", "jct_mean_h", "jct_p90_h", "wait_mean_h", "makespan_h", "utilization", "preemptions"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\ntable: {out / 'policies.csv'}; plots: {', '.join(str(p) for p in plots)}")
    return 0
