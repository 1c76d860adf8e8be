"""Serving replicas that span nodes: pipeline stages on consecutive nodes, each stage's TP group in one node,
inter-node stage boundaries priced on the fabric, placement that never overlaps."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcsim
from dcsim.compute.ops import BYTES_PER_ELEMENT
from dcsim.engine.simulation import Simulation
from dcsim.errors import UserInputError
from dcsim.models import get_model
from dcsim.network.efficiency import link_efficiency
from dcsim.run.inference_runner import InferenceRunner
from dcsim.scenario import load_scenario
from dcsim.scheduler.cluster import Cluster
from dcsim.serving import IterationCost
from dcsim.serving.hostmem import HostMemory, SpannedHostMemory
from dcsim.serving.placement import ReplicaPlacer, nodes_per_replica
from dcsim.serving.stagehop import StageHop


def scenario(count: int = 2, nics: bool = True, **workload: Any) -> dict[str, Any]:
    """Llama-3-405B (fp16, tp 8 x pp 2) on ``count`` DGX H100 with 8 x 400 Gb/s NICs, a leaf-spine network."""
    node: dict[str, Any] = {
        "name": "dgx",
        "count": count,
        "accelerator": "h100-sxm",
        "accelerators_per_node": 8,
        "intra_node": "nvswitch-h100",
        "usd_per_hour": 80.0,
    }
    if nics:
        node["nics"] = {"count": 8, "gbps": 400}
    base: dict[str, Any] = {
        "kind": "inference",
        "name": "big",
        "model": "llama3-405b",
        "replicas": 1,
        "parallelism": {"tp": 8, "pp": 2},
        "batching": {"max_batch_size": 32, "max_batch_tokens": 4096},
        "traffic": {
            "arrival": "poisson",
            "rate_per_s": 0.5,
            "duration_s": 10,
            "prompt_tokens": {"dist": "lognormal", "mean": 256, "sigma": 0.5, "max": 1024},
            "output_tokens": {"dist": "lognormal", "mean": 16, "sigma": 0.5, "max": 64},
        },
    }
    base.update(workload)
    return {
        "name": "multinode",
        "seed": 1,
        "datacenter": {
            "nodes": [node],
            "network": {"topology": "leaf_spine", "link_gbps": 400, "link_latency_us": 1.0},
        },
        "workloads": [base],
    }


def problem(data: dict[str, Any]) -> str:
    with pytest.raises(UserInputError) as error:
        load_scenario(data)
    return str(error.value)


def test_405b_is_refused_on_one_node_and_served_on_two() -> None:
    one = problem(scenario(parallelism={"tp": 8, "pp": 1}))
    assert one.startswith("workloads[0].model: llama3-405b does not fit on h100-sxm with tp=8, pp=1")
    summary = dcsim.run_scenario(scenario()).summary["workloads"]["big"]
    assert summary["requests_completed"] == summary["requests"] > 0
    assert summary["nodes_per_replica"] == 2
    # each GPU holds half the layers of its TP shard: 810 GB / 16, leaving room for a KV cache
    assert summary["kv_capacity_tokens"]["dgx"] > 100_000


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            scenario(model="llama2-7b", parallelism={"tp": 16, "pp": 1}),
            "workloads[0].parallelism.tp: tp (16) exceeds a node's 8 accelerators",
        ),
        (scenario(parallelism={"tp": 8, "pp": 3}), "workloads[0].parallelism.pp: 3 stages of tp 8 need 3 dgx nodes"),
        (scenario(nics=False), "workloads[0].parallelism.pp: a replica of 16 accelerators spans dgx nodes"),
        (scenario(replicas=2), "workloads[0].replicas: 2 replicas of 16 accelerators need more than the 1 places"),
    ],
)
def test_bad_multinode_input_names_the_field(data: dict[str, Any], expected: str) -> None:
    message = problem(data)
    assert message.startswith(expected) and "\n" not in message


def runner_of(data: dict[str, Any]) -> InferenceRunner:
    loaded = load_scenario(data)
    return InferenceRunner(loaded.workloads[0], Simulation(loaded.seed), loaded)


def test_inter_node_hop_is_timed_on_the_fabric() -> None:
    """Each of the 8 ranks sends its share through its own NIC: 400 Gb/s per rank, across the network."""
    runner = runner_of(scenario())
    (hop,) = runner.stage_hops[0]
    assert hop.bytes_per_s == pytest.approx(400e9 / 8)
    assert hop.hop == "network"


@pytest.mark.parametrize("tokens", [1, 64, 4096])
def test_inter_node_boundary_costs_nccls_send_over_the_nic(tokens: int) -> None:
    """The same tp 8 x pp 2 split with its boundary inside a node and across two: each rank's 1/8 of the
    activations is an NCCL send (NCCL 2.30 src/graph/tuning.cc figures: ring base latency plus one hop; LL up
    to 16 KiB, whose wire bytes are twice the payload) over its NIC, or over its NVLink inside a node."""
    runner = runner_of(scenario())
    spanning = runner.replicas[0].cost
    (hop,) = spanning.stage_hops
    cfg = get_model("llama3-405b")
    inside = IterationCost(cfg, "fp16", "h100-sxm", 8, 2, 450e9, interconnect="nvswitch-h100")
    share = tokens * cfg.hidden * BYTES_PER_ELEMENT["fp16"] / 8
    nvlink = 450e9 * link_efficiency("nvswitch-h100")  # as the fabric graph builds the link
    if share <= 16 * 2**10:  # LL
        across, within = (6.6 + 2.7 + 1.0) * 1e-6 + 2 * share / 50e9, (6.6 + 0.6) * 1e-6 + 2 * share / nvlink
    else:
        across, within = (8.4 + 14.0 + 3.0) * 1e-6 + share / 50e9, (8.4 + 3.4) * 1e-6 + share / nvlink
    assert hop.seconds(share) == pytest.approx(across, rel=1e-9)
    expected = across - within
    assert spanning.dense_s(tokens, 1) - inside.dense_s(tokens, 1) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert spanning.comm_s(tokens) > inside.comm_s(tokens)


def test_iteration_cost_checks_its_boundaries() -> None:
    cfg = get_model("llama2-7b")
    hop = StageHop(25e9)
    with pytest.raises(ValueError, match="at most pp - 1"):
        IterationCost(cfg, "fp16", "h100-sxm", 1, 2, None, stage_hops=(hop, hop))
    # one stage per node, tp 1: no intra-node link needed
    cost = IterationCost(cfg, "fp16", "h100-sxm", 1, 2, None, stage_hops=(hop,))
    assert cost.comm_s(100) == pytest.approx(hop.seconds(100 * cfg.hidden * 2))
    assert hop.seconds(100 * cfg.hidden * 2) == pytest.approx(25.4e-6 + 100 * cfg.hidden * 2 / 25e9)


def test_scheduler_holds_exactly_the_replicas_accelerators() -> None:
    """tp 4 x pp 3 on 8-GPU nodes: two stages on the first node, one on the second; the next replica starts
    on the second node's free half and ends on the third."""
    data = scenario(count=3, model="llama2-70b", replicas=2, parallelism={"tp": 4, "pp": 3})
    runner = runner_of(data)
    cluster = Cluster([("dgx", 3, "h100-sxm", 8)])
    first, second = runner.replica_accelerators(cluster)
    assert first == list(range(0, 12)) and second == list(range(12, 24))
    assert [len(hops) for hops in runner.stage_hops] == [1, 1]
    # the first replica's boundary is after its second stage (the last on node 0), the second's after its first
    assert [p.stages_per_node(4, 3) for p in runner.places] == [[2, 1], [1, 2]]


@dataclass(frozen=True)
class FakeNode:
    name: str
    count: int
    accelerators_per_node: int


@settings(max_examples=150, deadline=None)
@given(
    per_node=st.sampled_from([1, 2, 4, 8, 16]),
    count=st.integers(1, 6),
    workloads=st.lists(
        st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(1, 6), st.integers(1, 4)), min_size=1, max_size=4
    ),
)
def test_placement_never_overlaps_and_keeps_stages_whole(
    per_node: int, count: int, workloads: list[tuple[int, int, int]]
) -> None:
    node = FakeNode("n", count, per_node)
    placer = ReplicaPlacer([node])
    taken: set[tuple[int, int]] = set()
    for tp, pp, replicas in workloads:
        places = placer.take([node], tp, pp, replicas)
        if tp > per_node:
            assert places == []
            continue
        for place in places:
            slots = place.slots(tp * pp)
            assert len(slots) == len(set(slots)) == tp * pp
            assert all(0 <= n < count and 0 <= a < per_node for n, a in slots)
            assert not taken & set(slots)  # never two replicas on one accelerator
            taken |= set(slots)
            nodes = place.node_indices
            assert nodes == list(range(nodes[0], nodes[0] + len(nodes)))  # consecutive nodes
            assert len(nodes) == nodes_per_replica(node, tp, pp)  # the fewest a node's size allows
            for stage in range(pp):  # each stage's tp group inside one node
                assert len({n for n, _ in slots[stage * tp : (stage + 1) * tp]}) == 1
    free = sum(placer.free["n"])
    assert free == count * per_node - len(taken)


def test_spanned_host_memory_splits_every_byte_by_share() -> None:
    a, b = HostMemory(100.0), HostMemory(30.0)
    spanned = SpannedHostMemory([(a, 0.5), (b, 0.5)])
    assert spanned.free == pytest.approx(60.0)
    assert spanned.reserve(40.0) and (a.used, b.used) == (20.0, 20.0)
    assert not spanned.reserve(40.0) and (a.used, b.used) == (20.0, 20.0)  # all or nothing
    spanned.release(40.0)
    assert (a.used, b.used) == (0.0, 0.0) and spanned.peak == 20.0


def test_spanning_replica_with_swap_and_offload_conserves() -> None:
    """Swap preemption and KV offload on a replica across nodes: each node's host memory takes its half."""
    data = scenario(
        batching={"max_batch_size": 32, "max_batch_tokens": 4096, "preemption": "swap", "swap_interconnect": "pcie5"},
        offload={"kv_fraction": 0.5, "link": "pcie5"},
    )
    data["datacenter"]["nodes"][0]["memory_gb"] = 2048
    result = dcsim.run_scenario(copy.deepcopy(data))
    w = result.summary["workloads"]["big"]
    assert w["requests_completed"] == w["requests"]
    assert 0 < w["host_memory_peak_gb"] <= 2048
