"""``dcsim net FILE``: run a scenario's collective workloads on its datacenter network and print per-link
utilization and collective times; write a link-utilization plot with the run's other plots.

Reads the ``datacenter`` section with the scenario schema and the ``kind: collective`` workloads itself
(other kinds are skipped), so it works before ``dcsim run`` runs collectives.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dcsim.errors import Problem, UserInputError
from dcsim.network import NetworkConfig, NodeGroup, TopologyError, build_datacenter_fabric, resolve_policy
from dcsim.network.collectives import ALGORITHMS, OPS
from dcsim.network.datacenter import DatacenterFabric
from dcsim.network.plot import plot_link_utilization
from dcsim.network.session import CollectiveSpec, NetworkRun, run_collectives
from dcsim.scenario.problems import problems_from
from dcsim.scenario.schema import Datacenter

COLLECTIVE_FIELDS = ("kind", "name", "op", "bytes", "ranks", "hosts", "algorithm", "arrival_s")


def register(subparsers: Any) -> None:
    """Add the ``net`` subcommand."""
    parser = subparsers.add_parser("net", help="run a scenario's collectives on its network; link utilization")
    parser.add_argument("file", help="scenario YAML file")
    parser.add_argument("--json", action="store_true", help="print collective results and link table as JSON")
    parser.add_argument("--top", type=int, default=10, help="busiest links to list (default 10)")
    parser.add_argument("--no-plot", action="store_true", help="do not write plots/link_utilization.png")
    parser.set_defaults(handler=handle)


def _read(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise UserInputError.single(str(path), "scenario file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserInputError.single(str(path), f"not a valid YAML file ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, Mapping):
        raise UserInputError.single(str(path), "a scenario must be a mapping of sections")
    return raw


def _datacenter(raw: Mapping[str, Any]) -> Datacenter:
    if "datacenter" not in raw:
        raise UserInputError.single("datacenter", "required field is missing")
    try:
        return Datacenter.model_validate(raw["datacenter"])
    except ValidationError as error:
        raise UserInputError(problems_from(error, "datacenter", Datacenter)) from None


def _fabric(dc: Datacenter, seed: int) -> DatacenterFabric:
    net = dc.network
    groups = [
        NodeGroup(
            n.name,
            n.count,
            n.accelerators_per_node,
            n.accelerator,
            n.intra_node,
            n.nics.count if n.nics else 1,
            n.nics.gbps if n.nics else None,
        )
        for n in dc.nodes
    ]
    config = (
        NetworkConfig()
        if net is None
        else NetworkConfig(net.topology, net.params or None, net.link_gbps, net.link_latency_us, net.routing)
    )
    try:
        resolve_policy(config.routing)
    except ValueError as error:
        raise UserInputError.single("datacenter.network.routing", str(error)) from None
    try:
        return build_datacenter_fabric(groups, config, seed)
    except (TopologyError, KeyError) as error:
        raise UserInputError.single("datacenter.network", str(error).strip("'\"")) from None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and not isinstance(value, bool) else None


def _collective(
    raw: Mapping[str, Any], path: str, fabric: DatacenterFabric
) -> tuple[CollectiveSpec | None, list[Problem]]:
    problems = [
        Problem(f"{path}.{key}", f"unknown field (allowed: {', '.join(COLLECTIVE_FIELDS)})")
        for key in raw
        if key not in COLLECTIVE_FIELDS
    ]
    name, op, algorithm = raw.get("name"), raw.get("op"), raw.get("algorithm", "auto")
    size, arrival = _number(raw.get("bytes")), _number(raw.get("arrival_s", 0))
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{path}.name", "required: a non-empty name"))
    if op not in OPS:
        problems.append(Problem(f"{path}.op", f"must be one of {', '.join(OPS)} (got {op!r})"))
    elif algorithm != "auto" and algorithm not in ALGORITHMS[op]:
        problems.append(Problem(f"{path}.algorithm", f"{op} has auto, {', '.join(ALGORITHMS[op])} (got {algorithm!r})"))
    if size is None or size < 0:
        problems.append(Problem(f"{path}.bytes", f"must be a number of bytes >= 0 (got {raw.get('bytes')!r})"))
    if arrival is None or arrival < 0:
        problems.append(Problem(f"{path}.arrival_s", f"must be a number >= 0 (got {raw.get('arrival_s')!r})"))
    ranks: list[str] = []
    try:
        if "hosts" in raw:
            if not isinstance(raw["hosts"], list):
                raise ValueError("must be a list of server or accelerator names")
            ranks = fabric.expand(raw["hosts"])
            if "ranks" in raw and raw["ranks"] != len(ranks):
                raise ValueError(f"names {len(ranks)} accelerators but ranks is {raw['ranks']}")
        elif isinstance(raw.get("ranks"), int) and not isinstance(raw.get("ranks"), bool) and raw["ranks"] >= 2:
            ranks = fabric.ranks(raw["ranks"])
        else:
            raise ValueError(f"ranks must be a whole number >= 2, or give hosts (got {raw.get('ranks')!r})")
        if len(ranks) < 2:
            raise ValueError("a collective needs at least 2 ranks")
    except ValueError as error:
        problems.append(Problem(f"{path}.{'hosts' if 'hosts' in raw else 'ranks'}", str(error)))
    if problems:
        return None, problems
    return CollectiveSpec(str(name), str(op), float(size or 0), ranks, str(algorithm), float(arrival or 0)), []


def _collectives(raw: Mapping[str, Any], fabric: DatacenterFabric) -> list[CollectiveSpec]:
    workloads = raw.get("workloads")
    if not isinstance(workloads, list):
        raise UserInputError.single("workloads", "must be a list of workloads")
    specs, problems = [], []
    for index, item in enumerate(workloads):
        if isinstance(item, Mapping) and item.get("kind") == "collective":
            spec, found = _collective(item, f"workloads[{index}]", fabric)
            problems += found
            if spec is not None:
                specs.append(spec)
    if problems:
        raise UserInputError(problems)
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
        print(f"    {row['src']} -> {row['dst']} [{row['tier']}]: {row['mean_utilization']:.3f}, {row['bytes'] / 1e9:.4g} GB")


def handle(args: argparse.Namespace) -> int:
    """Run the scenario's collectives on its network."""
    path = Path(args.file)
    raw = _read(path)
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UserInputError.single("seed", f"must be a whole number >= 0 (got {seed!r})")
    fabric = _fabric(_datacenter(raw), seed)
    run = run_collectives(fabric, _collectives(raw, fabric), seed)
    outputs: Mapping[str, Any] = raw["outputs"] if isinstance(raw.get("outputs"), Mapping) else {}
    plot = None
    if not args.no_plot and outputs.get("plots", True):
        folder = Path(outputs.get("dir") or f"results/{raw.get('name', path.stem)}")
        plot = plot_link_utilization(run.usage, folder / "plots" / "link_utilization.png")
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
