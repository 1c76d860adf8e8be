"""Network layer benchmark: wall time and flows re-rated per second on a k=16 fat-tree (1,024 hosts).

1. ring all-reduce over all 1,024 hosts (2,046 steps of 1,024 flows);
2. all-to-all over 256 hosts, direct (65,280 concurrent flows): packed on the first 256 hosts (4 pods,
   ECMP collisions on the pod uplinks) and spread over all pods (every 4th host);
3. 10,000 random flows: uniform random host pairs, log-normal sizes (mean 1 MB, sigma 1), Poisson
   arrivals at 30% (``--load``) of the hosts' aggregate link capacity.

Run: ``python benchmarks/bench_network.py [--skip-packed] [--load 0.3]``. Target: each case under 5 s on the 2-core CI
machine. "flows re-rated" counts, over all re-rates, the flows whose rates were recomputed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import simpy

from dcsim.network import FlowSimulator, build_topology, hosts, run_collective
from dcsim.network.factory import make_flow_simulator

LINK_GBPS = 100.0
TARGET_S = 5.0


def _collective(op: str, ranks: list[str], nbytes: float, algorithm: str) -> Callable[[FlowSimulator], None]:
    def body(sim: FlowSimulator) -> None:
        sim.env.process(run_collective(sim, op, ranks, nbytes, algorithm))
        sim.env.run()

    return body


def _random_flows(names: list[str], count: int, seed: int, load: float = 0.3) -> Callable[[FlowSimulator], None]:
    rng = np.random.default_rng(seed)
    mean_bytes = 1e6
    sizes = rng.lognormal(np.log(mean_bytes) - 0.5, 1.0, count)
    rate_per_s = load * len(names) * LINK_GBPS * 1e9 / 8 / mean_bytes
    arrivals = np.cumsum(rng.exponential(1 / rate_per_s, count))
    pairs = [rng.choice(len(names), 2, replace=False) for _ in range(count)]

    def body(sim: FlowSimulator) -> None:
        def source() -> simpy.events.ProcessGenerator:
            for at, (src, dst), size in zip(arrivals, pairs, sizes, strict=True):
                yield sim.env.timeout(at - sim.env.now)
                sim.start_flow(names[src], names[dst], float(size))

        sim.env.process(source())
        sim.env.run()

    return body


def run_case(label: str, body: Callable[[FlowSimulator], None], routing: str = "ecmp") -> float:
    """Run one case on a fresh k=16 fat-tree simulator and print its figures; returns wall seconds."""
    graph = build_topology("fat_tree", {"k": 16}, LINK_GBPS, 1.0)
    start, cpu = time.perf_counter(), time.process_time()
    sim = make_flow_simulator(simpy.Environment(), graph, routing, seed=0)
    body(sim)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"{label:<46} wall {wall:6.2f} s (cpu {cpu:6.2f} s)  sim {sim.env.now * 1e3:8.3f} ms  "
        f"flows {sim.flows_started:>9,}  water-fillings {sim.rerates:>6,} (local {sim.local_rerates:>6,})  "
        f"incremental {sim.incremental_updates:>6,}  "
        f"flows re-rated {sim.flows_rerated:>10,} ({sim.flows_rerated / wall:>9,.0f}/s)"
        f"{'' if wall < TARGET_S else '  [over the 5 s target]'}"
    )
    return wall


def main() -> None:
    """Run the cases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-packed", action="store_true", help="skip the packed all-to-all cases")
    parser.add_argument("--load", type=float, default=0.3, help="offered load of the random flows (default 0.3)")
    args = parser.parse_args()
    names = [str(h) for h in hosts(build_topology("fat_tree", {"k": 16}))]
    run_case("ring all-reduce, 1,024 hosts, 1 GB", _collective("all_reduce", names, 1e9, "ring"))
    run_case("all-to-all, 256 hosts spread, 1 GB", _collective("all_to_all", names[::4], 1e9, "direct"))
    if not args.skip_packed:
        run_case("all-to-all, 256 hosts packed, 1 GB", _collective("all_to_all", names[:256], 1e9, "direct"))
        run_case(
            "all-to-all, 256 hosts packed, pairwise, 1 GB", _collective("all_to_all", names[:256], 1e9, "pairwise")
        )
    run_case(f"10,000 random flows, {args.load:.0%} load", _random_flows(names, 10_000, seed=1, load=args.load))


if __name__ == "__main__":
    main()
