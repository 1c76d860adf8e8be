"""Benchmark: cross-job network contention (``dcsim/scheduler/contention.py``).

1. Re-pricing: ``--jobs`` (1,000) running data-parallel jobs on a 4,096-GPU fabric (512 DGX-like servers,
   8 NICs each, a 4:1 oversubscribed leaf-spine), placed on random accelerators so most rings cross the
   spines. Times one job leaving and coming back, again and again: each is one re-pricing. Prints
   re-pricings per second (target >= 200) and the cost of computing one job's link loads.
2. A 30-day trace of that cluster: synthetic jobs with ``network_traffic`` (contention on) and
   accelerator and node failures, through ``dcsim.run_scenario``. Prints its wall time (target < 120 s).

Run: ``python benchmarks/bench_contention.py`` (``--small`` for a quick look: fewer cycles, 3 days).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import dcsim
from dcsim.network import Controller
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric
from dcsim.scheduler.contention import LinkShares
from dcsim.scheduler.traffic import LinkLoads, ring_transfers

SERVERS = 512
PER_SERVER = 8


def cluster(days: float, seed: int = 0) -> dict:
    """The 4,096-GPU cluster with a 30-day (``days``) stream of communicating jobs and failures."""
    mean_s, mean_gpus, utilization = 4 * 3600.0, 12.0, 0.85
    rate = utilization * SERVERS * PER_SERVER / (mean_s * mean_gpus)
    return {
        "name": "bench-contention",
        "seed": seed,
        "datacenter": {
            "nodes": [
                {
                    "name": "dgx",
                    "count": SERVERS,
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": PER_SERVER,
                    "intra_node": "nvswitch-a100",
                    "nics": {"count": 8, "gbps": 200},
                    "nodes_per_rack": 4,
                }
            ],
            "network": {
                "topology": "leaf_spine",
                "params": {"leaves": 128, "spines": 16, "hosts_per_leaf": 32, "oversubscription": 4},
                "link_gbps": 200,
            },
        },
        "scheduler": {"policy": "fifo", "placement": "spread"},
        "failures": {"accelerator_mtbf_h": 50_000, "node_mtbf_h": 20_000, "repair_s": 4 * 3600},
        "workloads": [
            {
                "kind": "jobs",
                "name": "train",
                "synthetic": {
                    "count": int(rate * days * 86400),
                    "rate_per_s": rate,
                    "gpus": {"choices": [1, 2, 4, 8, 16, 32, 64], "weights": [0.3, 0.15, 0.15, 0.2, 0.1, 0.06, 0.04]},
                    "duration_s": {"dist": "lognormal", "mean": mean_s, "sigma": 1.0},
                },
                "network_traffic": {"step_s": 0.5, "allreduce_gb": 2.6},
            }
        ],
        "outputs": {"plots": False},
    }


def repricing(jobs: int, cycles: int, seed: int = 0) -> None:
    scenario = load_scenario(cluster(1.0))
    fabric = build_fabric(scenario.datacenter, scenario.seed)
    names = [
        name for server in sorted(fabric.servers, key=lambda s: int(s.split("-")[1])) for name in fabric.servers[server]
    ]
    loads = LinkLoads(Controller(fabric.graph, "ecmp", seed))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    sizes = rng.choice([2, 4, 8], size=jobs, p=[0.5, 0.3, 0.2])
    traffic = []
    start = time.perf_counter()
    taken = 0
    for size in sizes.tolist():
        group = sorted(order[taken : taken + size].tolist())
        taken += size
        transfers: dict[tuple[str, str], float] = {}
        ring_transfers(transfers, "all_reduce", [names[i] for i in group], float(rng.uniform(0.5e9, 5e9)))
        traffic.append(loads.step_traffic(transfers, float(rng.uniform(0.3, 2.0))))
    loads_s = time.perf_counter() - start
    shares = LinkShares(loads.capacity_bytes_per_s)
    for key, step in enumerate(traffic):
        shares.add(key, step)
    rho = shares.overload()
    picks = rng.integers(0, jobs, size=cycles).tolist()
    start = time.perf_counter()
    for key in picks:
        shares.remove(key)
        shares.add(key, traffic[key])
    elapsed = time.perf_counter() - start
    slowdowns = np.array(list(shares.slowdown.values()))
    print(
        f"re-pricing: {jobs} running jobs ({taken} GPUs) on {len(names)} GPUs, "
        f"{loads.capacity_bytes_per_s.size} directed links; links overloaded: {(rho > 1).sum()}, "
        f"jobs slowed: {(slowdowns > 1).sum()} (max {slowdowns.max():.2f})"
    )
    print(f"  link loads of one job (routing, cold): {loads_s / jobs * 1e3:.2f} ms")
    print(f"  {2 * cycles / elapsed:,.0f} re-pricings per second (target >= 200)")


def trace(days: float) -> None:
    spec = cluster(days)
    start = time.perf_counter()
    result = dcsim.run_scenario(spec)
    elapsed = time.perf_counter() - start
    summary = result.summary["workloads"]["train"]
    slowdown = summary["network_slowdown"]
    print(
        f"{days:g}-day trace, {SERVERS * PER_SERVER} GPUs: {summary['jobs_submitted']:,} jobs, "
        f"{summary['failures']} job failures, network_slowdown mean {slowdown['mean']:.3f} p99 {slowdown['p99']:.3f}"
    )
    print(f"  {elapsed:.1f} s wall (target < 120 s for 30 days)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--small", action="store_true", help="100 cycles and a 3-day trace")
    args = parser.parse_args()
    if args.small:
        args.cycles, args.days = 100, 3.0
    repricing(args.jobs, args.cycles)
    trace(args.days)


if __name__ == "__main__":
    main()
