"""Plan search speed at the scale of Llama 3 405B's pre-training, against the targets of issue 19.

Llama 3 405B (126 layers) trained on 16,384 H100 GPUs with a global batch of 2,048 sequences of 8,192 tokens
(Dubey et al. 2024, "The Llama 3 Herd of Models", Section 3.3.2 and Table 4: TP 8, CP 1, PP 16, DP 128).
The datacenter is N DGX H100 servers (8 GPUs on NVSwitch, eight 400 Gb/s NICs each) on a fat tree: Meta's
2,048 with ``--nodes 2048`` (a 53,405-node graph, routed without per-destination tables: see
:mod:`dcsim.network.routing.regions`); 256 (2,048 GPUs) by default.

1. ``dcsim plan``'s search: every valid plan of TP x PP x CP x DP x EP (EP applies to MoE models only: 1
   here) x micro-batch sizes x ZeRO x recompute x schedule, ranked: target under 60 s.
2. One plan (Meta's layout: tp 8, pp 16, dp = GPUs / 128, microbatch 1, 1F1B) evaluated on a fresh
   communication model (a new controller: no cached collective times and no routing state): target under 1 s.

The fabric (built once per datacenter and cached) and the network controller (its link table, once per
fabric) are timed apart; ``dcsim plan`` pays each once. Times are wall clock and, in brackets, this process's
CPU time (the development machine is shared: wall time grows with others' load, CPU time much less). Run:
python benchmarks/bench_plan.py (``--only search`` or ``--only one`` for one part, ``--nodes N`` for the scale).
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from dcsim.models import get_model
from dcsim.parallel.comm import CommModel
from dcsim.parallel.evaluate import evaluate_plan
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.search import rank_plans
from dcsim.parallel.step import TrainingSetup
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

NODES = 256  # servers by default (Meta's run: 2,048)
TOKENS = 15.6e12  # Llama 3's pre-training tokens (ibid., Section 3.1)


def scenario(nodes: int) -> dict[str, Any]:
    """``nodes`` DGX H100 servers on a fat tree of 400 Gb/s links."""
    return {
        "name": "llama3-405b-16k",
        "seed": 0,
        "datacenter": {
            "nodes": [
                {
                    "name": "dgx-h100",
                    "count": nodes,
                    "accelerator": "h100-sxm",
                    "accelerators_per_node": 8,
                    "intra_node": "nvswitch-h100",
                    "nics": {"count": 8, "gbps": 400},
                    "usd_per_hour": 80.0,
                }
            ],
            "network": {"topology": "fat_tree", "link_gbps": 400},
        },
        "workloads": [{"kind": "jobs", "name": "none", "synthetic": {"count": 1, "rate_per_s": 1, "duration_s": 1}}],
    }


def setup() -> TrainingSetup:
    return TrainingSetup(get_model("llama3-405b"), "h100-sxm", 2048, 8192, "bf16")


def fabric(nodes: int) -> tuple[Any, dict[str, str], float]:
    start = time.perf_counter()
    fab = build_fabric(load_scenario(scenario(nodes)).datacenter, 0)
    server_of = {a: s for s, accs in fab.servers.items() for a in accs}
    return fab, server_of, time.perf_counter() - start


def search(nodes: int) -> None:
    gpus = nodes * 8
    fab, server_of, build_s = fabric(nodes)
    start = time.perf_counter()
    comm = CommModel(fab.graph, "ecmp", 0)
    controller_s = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    ranked = rank_plans(setup(), fab.ranks(gpus), comm, server_of, 8, tokens=TOKENS, usd_per_accelerator_s=10.0 / 3600)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    table = ranked.table
    fitting = table[table["fits_in_memory"]]
    print(
        f"Llama 3 405B on {gpus:,} H100: {len(table)} valid plans ({len(fitting)} fit, priced) ranked in {took:.1f} s "
        f"(CPU {cpu:.1f} s) "
        f"(target < 60 s; fabric of {fab.graph.number_of_nodes():,} nodes {build_s:.1f} s, controller "
        f"{controller_s:.1f} s)"
    )
    if not fitting.empty:
        best = fitting.iloc[0]
        print(
            f"  best: tp {best.tp}, pp {best.pp}, dp {best.dp}, microbatch {best.microbatch_size}, {best.schedule}, "
            f"ZeRO-{best.zero_stage}, recompute {best.recompute}: step {best.step_time_s:.2f} s, MFU {best.mfu:.1%}, "
            f"{best.memory_per_accelerator_gb:.0f} GB"
        )


def one_plan(nodes: int) -> None:
    fab, server_of, build_s = fabric(nodes)
    plan = ParallelPlan(dp=nodes * 8 // 128, tp=8, pp=16, recompute="selective", sequence_parallel=True, zero_stage=1)
    layout = RankLayout(plan, tuple(fab.ranks(plan.world_size)))
    for fidelity in ("fast", "detailed"):
        start = time.perf_counter()
        comm = CommModel(fab.graph, "ecmp", 0)  # fresh: no cached collective times
        controller_s = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        ev = evaluate_plan(setup(), plan, layout, comm, server_of, fidelity)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(
            f"  {fidelity:8s}: one plan (tp 8, pp 16, dp {plan.dp}) evaluated in {took:.3f} s (CPU {cpu:.3f} s; "
            "target < 1 s; "
            f"controller {controller_s:.1f} s, fabric {build_s:.1f} s); step {ev.step_time_s:.2f} s, MFU {ev.mfu:.1%}, "
            f"layers per stage {list(ev.step.layers_per_chunk)}"
        )


PARTS = {"search": search, "one": one_plan}


def main() -> None:
    """Parse the command line, then time the parts asked for (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--only", choices=sorted(PARTS), help="run one part: search (rank every plan) or one")
    parser.add_argument("--nodes", type=int, default=NODES, help=f"DGX H100 servers (default {NODES}; Meta's: 2048)")
    args = parser.parse_args()
    for name, part in PARTS.items():
        if args.only in (None, name):
            gc.collect()  # the previous part's garbage (its controller and caches) is not this part's time
            part(args.nodes)


if __name__ == "__main__":
    main()
