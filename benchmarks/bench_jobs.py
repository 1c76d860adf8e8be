"""Benchmark: 100,000 jobs on a 1,000-accelerator cluster, against a bare SimPy M/M/c model.

Both simulate the same M/M/c system (one-accelerator jobs, Poisson arrivals, exponential durations,
utilization 0.9) with the same job count, side by side in this process. Prints jobs per second for each
and their ratio (target: dcsim at least 0.3 of bare SimPy). Run: ``python benchmarks/bench_jobs.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

import dcsim


def scenario(jobs: int, accelerators: int, utilization: float, seed: int) -> dict:
    """An M/M/c scenario: ``accelerators`` in nodes of 8, mean job duration 1 h."""
    mean_s = 3600.0
    return {
        "name": "bench-jobs",
        "seed": seed,
        "datacenter": {
            "nodes": [
                {
                    "name": "node",
                    "count": accelerators // 8,
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": 8,
                    "usd_per_hour": 10.0,
                }
            ],
        },
        "workloads": [
            {
                "kind": "jobs",
                "name": "mmc",
                "synthetic": {
                    "count": jobs,
                    "rate_per_s": utilization * accelerators / mean_s,
                    "gpus": 1,
                    "duration_s": {"dist": "exponential", "mean": mean_s},
                },
            }
        ],
        "outputs": {"plots": False},
    }


def bare_simpy(jobs: int, servers: int, utilization: float, seed: int) -> float:
    """Mean wait of the same M/M/c in plain SimPy (a Resource, one process per job, timeouts)."""
    rng = np.random.default_rng(seed)
    mean_s = 3600.0
    gaps = rng.exponential(mean_s / (utilization * servers), jobs)
    durations = rng.exponential(mean_s, jobs)
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=servers)
    waits: list[float] = []

    def job(duration: float):  # type: ignore[no-untyped-def]
        arrived = env.now
        with resource.request() as request:
            yield request
            waits.append(env.now - arrived)
            yield env.timeout(duration)

    def source():  # type: ignore[no-untyped-def]
        for gap, duration in zip(gaps, durations, strict=True):
            yield env.timeout(gap)
            env.process(job(duration))

    env.process(source())
    env.run()
    return float(np.mean(waits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--accelerators", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spec = scenario(args.jobs, args.accelerators, 0.9, seed=1)
    dcsim_times, simpy_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = dcsim.run_scenario(spec)
        dcsim_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        bare_wait = bare_simpy(args.jobs, args.accelerators, 0.9, seed=1)
        simpy_times.append(time.perf_counter() - start)
    dcsim_rate = args.jobs / min(dcsim_times)
    simpy_rate = args.jobs / min(simpy_times)
    summary = result.summary["workloads"]["mmc"]
    print(f"jobs={args.jobs} accelerators={args.accelerators} utilization=0.9 (best of {args.repeats})")
    print(
        f"dcsim (run_scenario: build, simulate, tables, summary): {dcsim_rate:,.0f} jobs/s "
        f"({min(dcsim_times):.2f} s); mean wait {summary['wait_s']['mean']:.1f} s"
    )
    print(
        f"bare SimPy M/M/c (Resource + timeouts):                {simpy_rate:,.0f} jobs/s "
        f"({min(simpy_times):.2f} s); mean wait {bare_wait:.1f} s"
    )
    print(f"ratio dcsim / bare SimPy: {dcsim_rate / simpy_rate:.2f} (target >= 0.3)")


if __name__ == "__main__":
    main()
