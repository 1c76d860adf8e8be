"""Context parallelism: rank layout, ring-attention ops and traffic, memory divided by cp, plan checks, search
and the scenario field."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.cli import main
from dcsim.compute import predict_many
from dcsim.compute.ops import Attention
from dcsim.errors import UserInputError
from dcsim.models import TransformerConfig, get_model
from dcsim.parallel import ParallelPlan, training_memory
from dcsim.parallel.comm import CommModel
from dcsim.parallel.context_parallel import RING_SUFFIX, context_parallel_ops, ring_exposure
from dcsim.parallel.layout import RankLayout, sharing_servers
from dcsim.parallel.search import candidate_plans
from dcsim.parallel.step import TrainingSetup, check_plan, estimate_step
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

# A Llama-like decoder small enough to price quickly: GQA (4 KV heads of 16), SwiGLU, RoPE, long context.
LONG = TransformerConfig(
    "long-ctx",
    layers=8,
    hidden=2048,
    heads=16,
    ffn_hidden=5632,
    vocab=32000,
    max_seq_len=16384,
    kv_heads=4,
    norm="rmsnorm",
    activation="swiglu",
    positional="rope",
    bias=False,
)
DGX: dict[str, Any] = {
    "name": "cp",
    "seed": 1,
    "datacenter": {
        "nodes": [
            {
                "name": "dgx",
                "count": 4,
                "accelerator": "h100-sxm",
                "accelerators_per_node": 8,
                "intra_node": "nvswitch-h100",
                "nics": {"count": 8, "gbps": 400},
            }
        ],
        "network": {"topology": "fat_tree", "link_gbps": 400},
    },
    "workloads": [
        {
            "kind": "training",
            "name": "llama",
            "model": "llama2-7b",
            "parallelism": {"dp": 2, "tp": 8, "cp": 2},
            "global_batch_size": 8,
            "seq_len": 4096,
            "steps": 10,
        }
    ],
    "outputs": {"plots": False},
}


@settings(max_examples=40, deadline=None)
@given(
    dp=st.sampled_from([1, 2, 3]),
    tp=st.sampled_from([1, 2, 4]),
    cp=st.sampled_from([1, 2, 4]),
    pp=st.sampled_from([1, 2]),
)
def test_ranks_cover_the_world_once_and_groups_are_consistent(dp, tp, cp, pp):
    plan = ParallelPlan(dp=dp, tp=tp, pp=pp, cp=cp)
    assert plan.world_size == dp * tp * cp * pp
    ranks = [plan.rank(d, s, t, c) for d in range(dp) for s in range(pp) for t in range(tp) for c in range(cp)]
    assert sorted(ranks) == list(range(plan.world_size))
    layout = RankLayout(plan, tuple(f"g{i}" for i in range(plan.world_size)))
    rings = layout.cp_groups(0)
    assert len(rings) == dp * tp and all(len(g) == cp for g in rings)
    assert all(int(g[1][1:]) - int(g[0][1:]) == tp for g in rings if cp > 1)  # CP next to TP (tp-cp-dp-pp)
    reduce = layout.dp_groups([0])
    assert len(reduce) == tp and all(len(g) == dp * cp for g in reduce)  # gradients reduce over dp * cp
    assert len(layout.tp_groups(0)) == dp * cp
    stage0 = {n for g in layout.tp_groups(0) for n in g}
    assert stage0 == {n for g in rings for n in g} == {n for g in reduce for n in g}
    assert len(stage0) == dp * tp * cp


def test_ring_attention_ops_split_the_causal_pairs_evenly():
    """Each rank computes 1/cp of the causal query-key pairs (Megatron's load balancing), and every other op
    runs on s/cp tokens."""
    s, cp = 8192, 4
    whole = context_parallel_ops(LONG, 1, s, 2, "bf16")
    split = context_parallel_ops(LONG, 1, s, 2, "bf16", cp=cp)

    def pairs(ops):
        return sum(layer.op.pairs * layer.count for layer in ops.layers if isinstance(layer.op, Attention))

    assert pairs(split) == pytest.approx(pairs(whole) / cp, rel=2 * cp / s)
    ring = [layer for layer in split.layers if layer.name.endswith(RING_SUFFIX)]
    assert len(ring) == 1 and ring[0].count == LONG.layers * (cp - 1) and not ring[0].op.causal
    others = [(layer.name, layer.op.flops) for layer in split.layers if not isinstance(layer.op, Attention)]
    assert others == [
        (layer.name, layer.op.flops)
        for layer in context_parallel_ops(LONG, 1, s // cp, 2, "bf16").layers
        if not isinstance(layer.op, Attention)
    ]


def test_cp2_halves_activation_memory_and_shards_zero_over_dp_times_cp():
    llama = get_model("llama3-70b")
    base = ParallelPlan(dp=4, tp=8, pp=4, zero_stage=1, sequence_parallel=True)
    for attention in ("flash",):
        one = training_memory(llama, base, seq_len=8192, global_batch_size=64, attention=attention)
        two = training_memory(
            llama,
            ParallelPlan(dp=2, tp=8, pp=4, zero_stage=1, sequence_parallel=True, cp=2),
            seq_len=8192,
            global_batch_size=64,
            attention=attention,
        )
        assert two.activations_bytes == pytest.approx(one.activations_bytes / 2, rel=1e-12)
        assert two.activations_per_microbatch_bytes == pytest.approx(one.activations_per_microbatch_bytes / 2)
        # dp 4 x cp 1 and dp 2 x cp 2 shard the optimizer state over the same 4 ranks
        assert two.model_state_bytes == pytest.approx(one.model_state_bytes, rel=1e-12)
    with pytest.raises(ValueError, match="cp is modelled for decoder/encoder transformer layers only"):
        training_memory(get_model("resnet50"), ParallelPlan(cp=2), seq_len=224)


def _fabric() -> Any:
    return build_fabric(load_scenario(copy.deepcopy(DGX)).datacenter, 1)


def _estimate(plan: ParallelPlan, setup: TrainingSetup, comm: Any = None) -> Any:
    fabric = _fabric()
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    layout = RankLayout(plan, tuple(fabric.ranks(plan.world_size)))
    return estimate_step(setup, plan, layout, comm or CommModel(fabric.graph, "ecmp", 0), server_of)


def test_cp2_adds_the_ring_traffic_and_halves_the_compute():
    """Llama-3-70B, 8K tokens, cp = 2 on DGX H100: each rank computes about half of the step (the calibrated
    kernels run a little less efficiently on half the tokens), and the ring's KV hop (2 x b x s/cp x
    kv_heads/tp x head_dim x 2 bytes, every rank to its neighbour at once) is timed on the network: across
    the two nodes, since CP ranks sit tp apart."""
    setup = TrainingSetup(get_model("llama3-70b"), "h100-sxm", 16, 8192)
    one = _estimate(ParallelPlan(dp=2, tp=8), setup)
    two = _estimate(ParallelPlan(dp=2, tp=8, cp=2), setup)
    assert "cp_ring_hop_s" not in one.comm_s
    assert 0.5 < two.compute_s / one.compute_s < 0.6
    fabric = _fabric()
    plan = ParallelPlan(dp=2, tp=8, cp=2)
    layout = RankLayout(plan, tuple(fabric.ranks(plan.world_size)))
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    kv_bytes = 2 * 1 * (8192 // 2) * (8 // 8) * 128 * 2
    rings = sharing_servers(layout.cp_groups(0), server_of)
    expected = CommModel(fabric.graph, "ecmp", 0).collective_s("send_recv", rings, kv_bytes)
    assert two.comm_s["cp_ring_hop_s"] == pytest.approx(expected) and expected > 0
    assert sum(two.breakdown().values()) == pytest.approx(two.step_time_s)
    # the activations sent between TP ranks halve too: each all-reduce carries s/cp tokens
    assert two.comm_s["tp_collective_s"] < one.comm_s["tp_collective_s"]


@dataclass
class _SlowRing:
    """A communication model whose every query takes ``seconds`` (a ring on a very slow network)."""

    seconds: float

    def collective_s(self, op: str, groups: Any, nbytes: float, algorithm: str = "auto") -> float:
        return self.seconds * (2 if nbytes > 2**21 else 1)  # the backward hop carries twice the bytes


def test_hops_show_only_where_they_outlast_the_attention_step():
    plan = ParallelPlan(tp=2, cp=4)
    layout = RankLayout(plan, tuple(f"g{i}" for i in range(8)))
    first, later = (
        layer.op
        for layer in context_parallel_ops(LONG, 1, 8192, 2, "bf16", cp=4).layers
        if isinstance(layer.op, Attention)
    )
    f0, f1, b0, b1 = (float(t) for t in predict_many([first, later, first.backward(), later.backward()], "h100-sxm"))
    hidden = ring_exposure(LONG, plan, 8192, "bf16", "h100-sxm", 2.0, layout, _SlowRing(1e-9), {})
    assert hidden.fwd_exposed_s == hidden.bwd_exposed_s == 0.0
    slow = ring_exposure(LONG, plan, 8192, "bf16", "h100-sxm", 2.0, layout, _SlowRing(1.0), {})
    kv_bytes = 2 * (8192 // 4) * 2 * 128 * 2  # 2 MiB: the backward hop (4 MiB) takes 2 s here
    assert kv_bytes == 2**21
    assert slow.fwd_exposed_s == pytest.approx((1 - f0) + 2 * (1 - f1))
    assert slow.bwd_exposed_s == pytest.approx((2 - b0) + 2 * (2 - b1))
    recompute = ring_exposure(
        LONG, ParallelPlan(tp=2, cp=4, recompute="selective"), 8192, "bf16", "h100-sxm", 2.0, layout, _SlowRing(1.0), {}
    )
    assert recompute.bwd_exposed_s == pytest.approx(slow.bwd_exposed_s + slow.fwd_exposed_s)


def test_invalid_cp_names_the_field():
    setup = TrainingSetup(LONG, "h100-sxm", 16, 8192)
    assert check_plan(setup, ParallelPlan(dp=2, cp=4)) == []
    odd = TrainingSetup(LONG, "h100-sxm", 16, 8100)
    assert check_plan(odd, ParallelPlan(cp=32)) == [
        (
            "parallelism.cp",
            "2 * cp (64) must divide seq_len (8100): a causal model's sequence is cut into 2 * cp chunks "
            "(load balancing)",
        )
    ]
    eager = TrainingSetup(LONG, "h100-sxm", 16, 8192, attention="eager")
    assert [f for f, _ in check_plan(eager, ParallelPlan(cp=2))] == ["parallelism.cp"]
    resnet = TrainingSetup(get_model("resnet50"), "h100-sxm", 16, 224)
    assert [f for f, _ in check_plan(resnet, ParallelPlan(cp=2))] == ["parallelism.cp"]


def _problems(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(UserInputError) as info:
        load_scenario(spec)
    return [str(p) for p in info.value.problems]


def test_scenario_cp_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    good = load_scenario(copy.deepcopy(DGX)).workloads[0].parallelism.plan()
    assert good.cp == 2 and good.world_size == 32
    bad = copy.deepcopy(DGX)
    bad["workloads"][0]["parallelism"] = {"dp": 2, "tp": 8, "cp": 4}
    assert _problems(bad) == [
        "workloads[0].parallelism.cp: dp * tp * cp * pp = 64 accelerators, but the h100-sxm nodes have 32"
    ]
    bad["workloads"][0]["parallelism"] = {"dp": 1, "tp": 8, "cp": 4}
    bad["workloads"][0]["seq_len"] = 4100
    assert _problems(bad) == [
        "workloads[0].parallelism.cp: 2 * cp (8) must divide seq_len (4100): a causal model's sequence is cut "
        "into 2 * cp chunks (load balancing)"
    ]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if "parallelism.cp" in line]) == 1
    assert not any("Traceback" in line for line in err)


def test_training_with_cp_runs_and_reports_it():
    import dcsim

    summary = dcsim.run_scenario(copy.deepcopy(DGX)).summary["workloads"]["llama"]
    assert summary["plan"]["cp"] == 2 and summary["accelerators"] == 32
    assert summary["status"] == "completed"


def test_plan_search_includes_cp_for_long_sequences_only():
    long = TrainingSetup(LONG, "h100-sxm", 32, 8192)
    plans = list(candidate_plans(long, 32, 8))
    assert {p.cp for p in plans} == {1, 2, 4, 8}  # s/cp >= 1024 tokens
    assert all(p.world_size == 32 for p in plans)
    short = TrainingSetup(LONG, "h100-sxm", 32, 1024)
    assert {p.cp for p in candidate_plans(short, 32, 8)} == {1}
    eager = TrainingSetup(LONG, "h100-sxm", 32, 8192, attention="eager")
    assert {p.cp for p in candidate_plans(eager, 32, 8)} == {1}
