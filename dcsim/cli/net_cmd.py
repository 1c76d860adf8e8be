"""``dcsim net FILE``: run a scenario's collective workloads (only those) on its datacenter network and
print per-link utilization and collective times; write a link-utilization plot with the run's other plots.
``dcsim run`` runs the same collectives alongside the scenario's other workloads."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dcsim.errors import UserInputError
from dcsim.network.datacenter import DatacenterFabric
from dcsim.network.plot import plot_link_utilization
from dcsim.network.session import CollectiveSpec, NetworkRun, run_collectives
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric
from dcsim.scenario.schema import Scenario
from dcsim.scenario.workloads import CollectiveWorkload


def register(subparsers: Any) -> None:
    """Add the ``net`` subcommand."""
    parser = subparsers.add_parser("net", help="run a scenario's collectives on its network; link utilization")
    parser.add_argument("file", help="scenario YAML file")
    parser.add_argument("--json", action="store_true", help="print collective results and link table as JSON")
    parser.add_argument("--top", type=int, default=10, help="busiest links to list (default 10)")
    parser.add_argument("--no-plot", action="store_true", help="do not write plots/link_utilization.png")
    parser.set_defaults(handler=handle)


def _collectives(scenario: Scenario, fabric: DatacenterFabric) -> list[CollectiveSpec]:
    specs = [
        CollectiveSpec(w.name, w.op, w.bytes, w.rank_names(fabric), w.algorithm, w.arrival_s)
        for w in scenario.workloads
        if isinstance(w, CollectiveWorkload)
    ]
    if not specs:
        raise UserInputError.single("workloads", "no workload of kind collective to run")
    return specs


def _print(run: NetworkRun, top: int) -> None:
    print("Collectives")
    for name, r in run.results.items():
        print(
            f"  {name}: {r.op} ({r.algorithm}) over {r.ranks} ranks, {r.bytes:.4g} bytes: {r.time_s * 1e3:.4g} ms, "
            f"algbw {r.algbw_gbps:.4g} Gb/s ({r.algbw_gb_per_s:.4g} GB/s), "
            f"busbw {r.busbw_gbps:.4g} Gb/s ({r.busbw_gb_per_s:.4g} GB/s)"
        )
    table = run.usage.table()
    used = table[table["bytes"] > 0]
    print(
        f"\nLinks: {len(used)} of {len(table)} directed links carried traffic "
        f"({run.rerates} re-rates, {run.flows_rerated} flows re-rated, {run.flows_started} flows)"
    )
    print("  by tier: mean utilization (mean / max over links), peak utilization")
    for tier, rows in used.groupby("tier", sort=True):
        print(
            f"    {tier:<12} {rows['mean_utilization'].mean():.3f} / {rows['mean_utilization'].max():.3f}, "
            f"peak {rows['peak_utilization'].max():.3f}"
        )
    print(f"  busiest {min(top, len(used))} links (mean utilization over the run, GB carried):")
    busiest = used.sort_values("mean_utilization", ascending=False).head(top)
    for row in busiest.to_dict(orient="records"):
        link = f"{row['src']} -> {row['dst']} [{row['tier']}]"
        print(f"    {link}: {row['mean_utilization']:.3f}, {row['bytes'] / 1e9:.4g} GB")


def handle(args: argparse.Namespace) -> int:
    """Run the scenario's collectives on its network."""
    scenario = load_scenario(args.file)
    with scenario.catalog_scope():  # the accelerators the scenario declares (their interconnects)
        fabric = build_fabric(scenario.datacenter, scenario.seed)
        run = run_collectives(fabric, _collectives(scenario, fabric), scenario.seed)
    plot = None
    if not args.no_plot and scenario.outputs.plots:
        plot = plot_link_utilization(run.usage, Path(scenario.output_dir) / "plots" / "link_utilization.png")
    if args.json:
        table = run.usage.table()
        print(
            json.dumps(
                {
                    "collectives": {name: r.summary() for name, r in run.results.items()},
                    "links": table[table["bytes"] > 0].astype({"src": str, "dst": str}).to_dict(orient="records"),
                    "plot": str(plot) if plot else None,
                },
                indent=2,
            )
        )
        return 0
    _print(run, args.top)
    if plot is not None:
        print(f"\nplot: {plot}")
    return 0
