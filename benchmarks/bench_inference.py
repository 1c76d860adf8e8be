"""Serving speed: 1,000,000 Llama-2-7B requests on 16 A100 replicas with continuous batching.

    python benchmarks/bench_inference.py [--requests 1000000] [--replicas 16] [--rate 150]

Runs the scenario through ``dcsim.run_scenario`` (traffic generation, simulation, summary and the
per-request table) and prints requests simulated per second of wall-clock time and of this process's CPU
time (the machine may be shared), and the peak resident memory with its share per request. The target is
at least 50,000 requests per second, with memory growing only by the per-request records.
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

import dcsim


def scenario(requests: int, replicas: int, rate: float) -> dict[str, Any]:
    """Poisson chat traffic (log-normal prompts of mean 512 and outputs of mean 128 tokens) at ``rate``
    requests per second for as long as ``requests`` take to arrive, on ``replicas`` A100 replicas."""
    return {
        "name": "bench-inference",
        "seed": 1,
        "datacenter": {
            "nodes": [
                {
                    "name": "dgx-a100",
                    "count": -(-replicas // 8),
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": 8,
                    "intra_node": "nvswitch-a100",
                    "usd_per_hour": 32.0,
                }
            ]
        },
        "workloads": [
            {
                "kind": "inference",
                "name": "chat",
                "model": "llama2-7b",
                "precision": "fp16",
                "replicas": replicas,
                "batching": {"policy": "continuous", "max_batch_size": 256, "max_batch_tokens": 8192},
                "routing": "least_loaded",
                "traffic": {
                    "arrival": "poisson",
                    "rate_per_s": rate,
                    "duration_s": requests / rate,
                    "prompt_tokens": {"dist": "lognormal", "mean": 512, "sigma": 0.8, "max": 4096},
                    "output_tokens": {"dist": "lognormal", "mean": 128, "sigma": 0.8, "max": 1024},
                },
                "slo": {"ttft_ms": 500, "tpot_ms": 50},
            }
        ],
        "outputs": {"plots": False},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument(
        "--rate", type=float, default=150.0, help="requests per second (below the capacity of 16 A100s)"
    )
    args = parser.parse_args()
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    result = dcsim.run_scenario(scenario(args.requests, args.replicas, args.rate))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    w = result.summary["workloads"]["chat"]
    n = w["requests"]
    print(
        f"{n:,} requests on {args.replicas} replicas ({w['requests_completed']:,} completed), "
        f"{result.summary['simulated_time_s']:,.0f} s simulated"
    )
    print(
        f"  TTFT p50 {w['ttft_ms']['p50']:.0f} ms, TPOT p50 {w['tpot_ms']['p50']:.1f} ms, "
        f"mean batch {w['mean_batch_size']:.1f}, {w['throughput_tokens_per_s']:,.0f} tokens/s"
    )
    print(
        f"  wall {wall:.1f} s: {n / wall:,.0f} requests/s; CPU {cpu:.1f} s: {n / cpu:,.0f} requests/s (target 50,000)"
    )
    print(
        f"  peak RSS {peak_kb / 1024:,.0f} MB ({(peak_kb - before_kb) * 1024 / n:,.0f} bytes per request above start)"
    )


if __name__ == "__main__":
    main()
