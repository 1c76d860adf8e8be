"""Training plan evaluation speed on this machine, against two targets.

1. One plan of a 1T-parameter GPT (Narayanan et al. 2021, Table 1: 128 layers, hidden 25,600, 160 heads,
   batch 3,072 of 2,048 tokens) on 3,072 A100 GPUs (384 DGX nodes on a fat-tree) with tp=8, pp=64, dp=6:
   target under 1 s. Printed for both fidelity levels; the fabric (built once per datacenter and cached)
   is timed separately.
2. Enumerate and rank every valid plan of GPT-3 175B on 1,024 GPUs (128 DGX A100): target under 60 s.

Run: python benchmarks/bench_training.py (both parts; ``--only 1t`` or ``--only 175b`` for one)
"""

from __future__ import annotations

import argparse
import time

from dcsim.models import TransformerConfig, get_model
from dcsim.parallel.comm import CommModel
from dcsim.parallel.evaluate import evaluate_plan
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.search import rank_plans
from dcsim.parallel.step import TrainingSetup
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric


def datacenter(nodes: int) -> dict[str, object]:
    return {
        "name": "bench",
        "seed": 0,
        "datacenter": {
            "nodes": [
                {
                    "name": "dgx",
                    "count": nodes,
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": 8,
                    "intra_node": "nvswitch-a100",
                    "nics": {"count": 8, "gbps": 200},
                    "usd_per_hour": 32.0,
                }
            ],
            "network": {"topology": "fat_tree", "link_gbps": 200},
        },
        "workloads": [{"kind": "jobs", "name": "none", "synthetic": {"count": 1, "rate_per_s": 1, "duration_s": 1}}],
    }


def fabric_for(nodes: int) -> tuple[object, dict[str, str], float]:
    start = time.perf_counter()
    scenario = load_scenario(datacenter(nodes))
    fabric = build_fabric(scenario.datacenter, 0)
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    return fabric, server_of, time.perf_counter() - start


def one_trillion() -> None:
    fabric, server_of, build_s = fabric_for(384)
    model = TransformerConfig("gpt-1t", 128, 25600, 160, 4 * 25600, 51200, 2048)
    setup = TrainingSetup(model, "a100-sxm-80gb", 3072, 2048, "bf16")
    plan = ParallelPlan(
        dp=6, tp=8, pp=64, microbatch_size=1, recompute="selective", sequence_parallel=True, zero_stage=1
    )
    layout = RankLayout(plan, tuple(fabric.ranks(plan.world_size)))
    print(
        f"1T GPT on 3,072 A100 (tp 8, pp 64, dp 6): fabric of {fabric.graph.number_of_nodes():,} nodes "
        f"built in {build_s:.2f} s"
    )
    for fidelity in ("fast", "detailed"):
        comm = CommModel(fabric.graph, "ecmp", 0)  # fresh: no cached collective times
        start = time.perf_counter()
        ev = evaluate_plan(setup, plan, layout, comm, server_of, fidelity)
        took = time.perf_counter() - start
        print(
            f"  {fidelity:8s}: evaluated in {took:.3f} s (target < 1 s); step {ev.step_time_s:.2f} s, "
            f"MFU {ev.mfu:.1%}, {ev.memory.total_bytes / 1e9:.1f} GB per GPU, {ev.step.microbatches} microbatches"
        )


def rank_175b() -> None:
    fabric, server_of, build_s = fabric_for(128)
    setup = TrainingSetup(get_model("gpt3-175b"), "a100-sxm-80gb", 1536, 2048, "bf16")
    comm = CommModel(fabric.graph, "ecmp", 0)
    start = time.perf_counter()
    ranked = rank_plans(setup, fabric.ranks(1024), comm, server_of, 8, tokens=300e9, usd_per_accelerator_s=4.0 / 3600)
    took = time.perf_counter() - start
    table = ranked.table
    best = table.iloc[0]
    print(
        f"GPT-3 175B on 1,024 A100: {len(table)} valid plans ({int(table['fits_in_memory'].sum())} fit) "
        f"ranked in {took:.1f} s (target < 60 s; fabric {build_s:.2f} s)"
    )
    print(
        f"  best: dp {best.dp}, tp {best.tp}, pp {best.pp}, microbatch {best.microbatch_size}, {best.schedule}, "
        f"ZeRO-{best.zero_stage}, recompute {best.recompute}: {best.time_to_train_s / 86400:.1f} days, "
        f"MFU {best.mfu:.1%}"
    )


PARTS = {"1t": one_trillion, "175b": rank_175b}


def main() -> None:
    """Parse the command line, then time the parts asked for (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--only",
        choices=sorted(PARTS),
        help="run one part: 1t (one plan of a 1T GPT on 3,072 A100) or 175b (rank every GPT-3 175B plan)",
    )
    args = parser.parse_args()
    for name, part in PARTS.items():
        if args.only in (None, name):
            part()


if __name__ == "__main__":
    main()
