"""Serving speed on a long trace: Llama-2-70B, TP 2 on one A100 node, the conversation trace's lengths at
Poisson arrivals of 1 request/s, under the ``vllm`` and ``sarathi`` batching policies.

    python benchmarks/bench_serving_70b.py [--requests 25000 50000 100000] [--policy vllm sarathi]

Each case runs in a fresh ``python -m dcsim run FILE --json`` process with plots off (import, trace reading,
traffic generation, simulation, summary and output files: what a user waits for) and prints requests
simulated per second of wall-clock time and of the child's CPU time (the machine may be shared), and its peak
resident memory. Targets (issue 18): at least 20,000 requests per second of wall time at 100,000 requests,
and peak memory flat in the number of completed requests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Per policy: the batching limits (vLLM 0.6.3 defaults for a 4,096-token model: ``max_num_batched_tokens``
#: max(max_model_len, 2048) = 4,096 without chunked prefill, 512 with it; ``max_num_seqs`` 256).
BATCHING: dict[str, dict[str, Any]] = {
    "vllm": {"policy": "vllm", "max_batch_size": 256, "max_batch_tokens": 4096},
    "sarathi": {"policy": "sarathi", "max_batch_size": 256, "max_batch_tokens": 512},
}


def scenario(policy: str, requests: int, rate_per_s: float = 1.0) -> dict[str, Any]:
    """The conversation trace's lengths at Poisson arrivals of ``rate_per_s`` over ``requests / rate_per_s``
    seconds, on one Llama-2-70B replica (TP 2, A100 80GB) batching per ``policy``."""
    return {
        "name": f"bench-serving-70b-{policy}",
        "seed": 1,
        "datacenter": {
            "nodes": [
                {
                    "name": "dgx-a100",
                    "count": 1,
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": 8,
                    "intra_node": "nvswitch-a100",
                }
            ]
        },
        "workloads": [
            {
                "kind": "inference",
                "name": "chat",
                "model": "llama2-70b",
                "precision": "fp16",
                "replicas": 1,
                "parallelism": {"tp": 2, "pp": 1},
                "batching": BATCHING[policy],
                "traffic": {
                    "arrival": "poisson",
                    "trace": "splitwise_conv",
                    "rate_per_s": rate_per_s,
                    "duration_s": requests / rate_per_s,
                },
                "slo": {"ttft_ms": 2000, "tpot_ms": 100},
            }
        ],
        "outputs": {"plots": False},
    }


def run_once(policy: str, requests: int) -> dict[str, Any]:
    """Run one case in a child process; its figures (wall and CPU seconds, peak RSS, the summary)."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.yaml"
        path.write_text(yaml.safe_dump(scenario(policy, requests)))
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "dcsim", "run", str(path), "--json", "--out", str(Path(tmp) / "out")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=ROOT,
        )
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    summary = json.loads(out.stdout)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_kb": after.ru_maxrss, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--policy", nargs="+", default=list(BATCHING), choices=list(BATCHING))
    args = parser.parse_args()
    for policy in args.policy:
        for requests in args.requests:
            r = run_once(policy, requests)
            w = r["summary"]["workloads"]["chat"]
            n = w["requests"]
            print(
                f"{policy:8s} {n:>8,} requests ({w['requests_completed']:,} completed): "
                f"wall {r['wall_s']:.2f} s, {n / r['wall_s']:,.0f} req/s; CPU {r['cpu_s']:.2f} s, "
                f"{n / r['cpu_s']:,.0f} req/s; peak RSS {r['peak_rss_kb'] / 1024:,.0f} MB "
                f"(TTFT p50 {w['ttft_ms']['p50']:.0f} ms, TPOT p50 {w['tpot_ms']['p50']:.1f} ms)"
            )


if __name__ == "__main__":
    main()
