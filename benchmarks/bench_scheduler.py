"""Benchmark: 100,000 trace jobs on a 4,096-GPU cluster under EASY backfill with topology-aware placement.

The trace is written to a temporary CSV (sizes 1-64 GPUs, lognormal durations, Poisson arrivals at an
offered load of about 0.9) and replayed through `dcsim.run_scenario`, so parsing, scheduling, tables and
summary are all timed. Prints jobs simulated per second (target: at least 5,000).
Run: ``python benchmarks/bench_scheduler.py [--jobs N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import dcsim


def write_trace(path: Path, jobs: int, gpus_total: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 4, 8, 16, 32, 64], size=jobs, p=[0.3, 0.15, 0.15, 0.2, 0.1, 0.06, 0.04])
    durations = rng.lognormal(np.log(3600) - 0.5, 1.0, jobs)
    rate = 0.9 * gpus_total / (sizes.mean() * durations.mean())
    submits = np.cumsum(rng.exponential(1 / rate, jobs))
    frame = pd.DataFrame(
        {
            "job_id": [f"j{i}" for i in range(jobs)],
            "submit_s": submits,
            "gpus": sizes,
            "duration_s": durations,
            "user": rng.choice(["a", "b", "c", "d"], jobs),
        }
    )
    frame.to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--policy", default="backfill")
    parser.add_argument("--placement", default="topology_aware")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.csv"
        write_trace(trace, args.jobs, 4096, seed=1)
        scenario = {
            "name": "bench-scheduler",
            "seed": 1,
            "datacenter": {
                "nodes": [
                    {
                        "name": "dgx",
                        "count": 512,
                        "accelerator": "h100-sxm",
                        "accelerators_per_node": 8,
                        "nodes_per_rack": 16,
                        "usd_per_hour": 30.0,
                    }
                ]
            },
            "workloads": [{"kind": "jobs", "name": "trace", "trace": str(trace)}],
            "scheduler": {"policy": args.policy, "placement": args.placement},
            "outputs": {"plots": False},
        }
        start = time.perf_counter()
        cpu = time.process_time()
        result = dcsim.run_scenario(scenario)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
    work = result.summary["workloads"]["trace"]
    print(f"{args.jobs:,} jobs on 4,096 GPUs (512 nodes, 32 racks), {args.policy} + {args.placement}")
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s: {args.jobs / wall:,.0f} jobs/s (target >= 5,000)")
    print(
        f"utilization {result.summary['datacenter']['accelerator_utilization']:.3f}, "
        f"mean wait {work['wait_s']['mean'] / 3600:.2f} h, completed {work['jobs_completed']:,}"
    )


if __name__ == "__main__":
    main()
