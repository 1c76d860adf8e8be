"""``dcsim net FILE``: run a scenario's collective workloads (only those) on its datacenter network and
print per-link utilization and collective times; write a link-utilization plot with the run's other plots.
``dcsim run`` runs the same collectives alongside the scenario's other workloads.

``dcsim net FILE --sizes 8:8G`` sweeps each collective over message sizes instead, nccl-tests style: per size
the time, algbw, busbw and the algorithm, protocol and channels NCCL's tuner picks; and plots busbw against
size (``plots/busbw_vs_size.png``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dcsim.errors import UserInputError
from dcsim.network.collectives import CollectiveResult
from dcsim.network.collectives.sweep import parse_sizes, sweep
from dcsim.network.datacenter import DatacenterFabric
from dcsim.network.session import CollectiveSpec, NetworkRun, run_collectives
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric, network_config
from dcsim.scenario.schema import Scenario
from dcsim.scenario.workloads import CollectiveWorkload


def register(subparsers: Any) -> None:
    """Add the ``net`` subcommand."""
    parser = subparsers.add_parser("net", help="run a scenario's collectives on its network; link utilization")
    parser.add_argument("file", help="scenario YAML file")
    parser.add_argument("--json", action="store_true", help="print collective results and link table as JSON")
    parser.add_argument("--top", type=int, default=10, help="busiest links to list (default 10)")
    parser.add_argument("--no-plot", action="store_true", help="do not write plots/link_utilization.png")
    parser.add_argument(
        "--sizes",
        metavar="MIN:MAX[:FACTOR]",
        help="sweep each collective over message sizes, nccl-tests style (e.g. 8:8G; factor 2 by default): "
        "time, algbw, busbw, algorithm, protocol per size; plots/busbw_vs_size.png",
    )
    parser.set_defaults(handler=handle)


def _collectives(scenario: Scenario, fabric: DatacenterFabric) -> list[CollectiveSpec]:
    specs = [
        CollectiveSpec(w.name, w.op, w.bytes, w.rank_names(fabric), w.algorithm, w.arrival_s, w.protocol)
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


def _row(r: CollectiveResult) -> dict[str, Any]:
    return {
        "bytes": int(r.bytes),
        "time_us": r.time_s * 1e6,
        "algbw_gb_per_s": r.algbw_gb_per_s,
        "busbw_gb_per_s": r.busbw_gb_per_s,
        "algorithm": r.algorithm,
        "protocol": r.protocol,
        "channels": r.channels,
    }


def _print_sweep(name: str, spec: CollectiveSpec, results: list[CollectiveResult]) -> None:
    print(f"{name}: {spec.op} over {len(spec.ranks)} ranks (algorithm {spec.algorithm}, protocol {spec.protocol})")
    print(
        f"  {'size (B)':>12} {'time (us)':>12} {'algbw (GB/s)':>13} {'busbw (GB/s)':>13}  algorithm  protocol  channels"
    )
    for r in results:
        print(
            f"  {int(r.bytes):>12} {r.time_s * 1e6:>12.2f} {r.algbw_gb_per_s:>13.2f} {r.busbw_gb_per_s:>13.2f}  "
            f"{r.algorithm:<9}  {r.protocol or '-':<8}  {r.channels or '-'}"
        )


def _sweeps(args: argparse.Namespace, scenario: Scenario, fabric: DatacenterFabric) -> int:
    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as error:
        raise UserInputError.single("--sizes", str(error)) from None
    routing = network_config(scenario.datacenter).routing
    specs = _collectives(scenario, fabric)
    runs = {
        spec.name: sweep(
            fabric.graph, spec.op, spec.ranks, sizes, spec.algorithm, spec.protocol, routing=routing, seed=scenario.seed
        )
        for spec in specs
    }
    plot = None
    if not args.no_plot and scenario.outputs.plots:
        points = {name: [(r.bytes, r.busbw_gb_per_s) for r in results] for name, results in runs.items()}
        from dcsim.network.plot import plot_busbw_sweep  # matplotlib: imported only to draw

        plot = plot_busbw_sweep(points, Path(scenario.output_dir) / "plots" / "busbw_vs_size.png")
    if args.json:
        rows = {name: [_row(r) for r in results] for name, results in runs.items()}
        print(json.dumps({"sweeps": rows, "plot": str(plot) if plot else None}, indent=2))
        return 0
    for spec in specs:
        _print_sweep(spec.name, spec, runs[spec.name])
        print()
    if plot is not None:
        print(f"plot: {plot}")
    return 0


def handle(args: argparse.Namespace) -> int:
    """Run the scenario's collectives on its network (or sweep them over message sizes)."""
    scenario = load_scenario(args.file)
    with scenario.catalog_scope():  # the accelerators the scenario declares (their interconnects)
        fabric = build_fabric(scenario.datacenter, scenario.seed)
        if args.sizes is not None:
            return _sweeps(args, scenario, fabric)
        run = run_collectives(fabric, _collectives(scenario, fabric), scenario.seed)
    plot = None
    if not args.no_plot and scenario.outputs.plots:
        from dcsim.network.plot import plot_link_utilization  # matplotlib: imported only to draw

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
