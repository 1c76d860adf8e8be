"""``dcsim catalog``: list the hardware catalog with every figure and, with --sources, its source."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dcsim.catalog import Accelerator, Interconnect, load_catalog


def register(subparsers: Any) -> None:
    """Add the ``catalog`` subcommand."""
    parser = subparsers.add_parser("catalog", help="list accelerators and interconnects in the catalog")
    parser.add_argument("--sources", action="store_true", help="print the source of every figure")
    parser.add_argument("--json", action="store_true", help="print the catalog as JSON")
    parser.set_defaults(handler=handle)


def _fmt(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:g} {unit}"


def _accelerator_lines(acc: Accelerator, sources: bool) -> list[str]:
    peaks = ", ".join(f"{p} {v:g}" for p, v in acc.peak_tflops.items())
    lines = [
        f"{acc.id}  ({acc.name}, {acc.kind})",
        f"    peak TFLOP/s (dense): {peaks}{'  [2:4 sparse x2]' if acc.sparse_2_4 else ''}",
        f"    memory {acc.memory_gib:g} GiB ({acc.memory_gb:.1f} GB) at {_fmt(acc.memory_bandwidth_gb_per_s, 'GB/s')}; "
        f"interconnect {acc.interconnect}",
        f"    power idle {_fmt(acc.idle_w, 'W')}, max {_fmt(acc.max_w, 'W')}; price {_fmt(acc.usd_per_hour, 'USD/h')}",
    ]
    if acc.based_on is not None:
        lines.append(f"    based on {acc.based_on}: its cost-model curves, rescaled to these peaks and bandwidth")
    if sources:
        lines += [f"      source {k}: {v}" for k, v in acc.source.items()]
    return lines


def _interconnect_lines(link: Interconnect, sources: bool) -> list[str]:
    lines = [
        f"{link.id}  ({link.name})",
        f"    {link.topology}, {link.bandwidth_gb_per_s:g} GB/s per accelerator per direction, "
        f"{link.links_per_accelerator} links, {link.latency_us:g} us",
    ]
    if sources:
        lines += [f"      source {k}: {v}" for k, v in link.source.items()]
    return lines


def handle(args: argparse.Namespace) -> int:
    """Print the catalog."""
    catalog = load_catalog()
    if args.json:
        data = {
            "accelerators": {k: _as_dict(v) for k, v in catalog.accelerators.items()},
            "interconnects": {k: _as_dict(v) for k, v in catalog.interconnects.items()},
        }
        print(json.dumps(data, indent=2))
        return 0
    print("Accelerators")
    for acc in catalog.accelerators.values():
        print("\n".join(_accelerator_lines(acc, args.sources)))
    print("\nIntra-node interconnects")
    for link in catalog.interconnects.values():
        print("\n".join(_interconnect_lines(link, args.sources)))
    if not args.sources:
        print("\n(run `dcsim catalog --sources` for the source of every figure)")
    return 0


def _as_dict(entry: Accelerator | Interconnect) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(entry).items():
        out[key] = dict(value) if key in ("peak_tflops", "source") else value
        if key == "memory_gib" and isinstance(entry, Accelerator):  # the capacity in bytes and in 10^9 bytes
            out["memory_bytes"] = entry.memory_bytes
            out["memory_gb"] = entry.memory_gb
    return out
