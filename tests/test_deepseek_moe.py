"""DeepSeek-style MoE: multi-head latent attention, shared and fine-grained routed experts, leading dense
layers, node-limited routing and its expert-parallel all-to-all (DeepSeek-V3 Technical Report, arXiv
2412.19437)."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from dcsim.compute.ops import Matmul
from dcsim.models import TransformerConfig, get_model, model_from_spec
from dcsim.models.inference import dense_layers, kv_bytes_per_token
from dcsim.models.mla import mla_kv_cache_elements_per_token, mla_params_per_layer
from dcsim.parallel.comm import CommModel
from dcsim.parallel.layer_memory import stack_activation_bytes
from dcsim.parallel.layout import RankLayout, sharing_servers
from dcsim.parallel.moe import (
    ep_all_to_all_s,
    ep_layer_times,
    expected_distinct_holders,
    flat_dispatch_bytes,
    node_limited_dispatch_bytes,
)
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.step import TrainingSetup, estimate_step
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

#: DeepSeek-V3's MLA dims (Technical Report section 4.2): hidden 7168, 128 heads, query latent 1536, KV
#: latent 512, per-head no-position dim 128, rotary dim 64, value dim 128.
V3_MLA = (7168, 128, 1536, 512, 128, 64, 128)

#: A small DeepSeek-like model: MLA, 32 routed experts of width 128 (top-4) in 4 groups with at most 2 per
#: token, one shared expert, the first of its 4 layers dense.
TINY = TransformerConfig(
    "tiny-deepseek",
    layers=4,
    hidden=256,
    heads=4,
    ffn_hidden=512,
    vocab=1000,
    max_seq_len=512,
    norm="rmsnorm",
    activation="swiglu",
    positional="rope",
    bias=False,
    attention_kind="mla",
    q_lora_rank=96,
    kv_lora_rank=64,
    qk_nope_head_dim=32,
    qk_rope_head_dim=16,
    v_head_dim=32,
    experts=32,
    experts_per_token=4,
    moe_ffn_hidden=128,
    shared_experts=1,
    first_dense_layers=1,
    expert_groups=4,
    expert_groups_per_token=2,
)


def _v3() -> TransformerConfig:
    cfg = get_model("deepseek-v3")
    assert isinstance(cfg, TransformerConfig)
    return cfg


def test_mla_parameters_follow_the_layer_shapes():
    h, heads, q_rank, kv_rank, nope, rope, v = V3_MLA
    by_hand = (
        h * q_rank + q_rank + q_rank * heads * (nope + rope)  # q_a_proj, q_a_layernorm, q_b_proj
        + h * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v)  # kv_a_proj_with_mqa, norm, kv_b_proj
        + heads * v * h  # o_proj
    )  # fmt: skip
    assert mla_params_per_layer(*V3_MLA) == by_hand == 187_107_328
    cfg = _v3()
    ops = cfg.step_ops(1, 16)
    attention = sum(layer.params * layer.count for layer in ops.layers if layer.name.startswith("attn."))
    norms = 61 * h  # the pre-attention RMSNorm, named attn.norm
    assert attention == 61 * mla_params_per_layer(*V3_MLA) + norms
    # tensor parallelism splits the heads; the down-projections and their norms stay whole on every rank
    sharded = sum(layer.params * layer.count for layer in cfg.step_ops(1, 16, tp=4).layers if "attn." in layer.name)
    replicated = h * q_rank + q_rank + h * (kv_rank + rope) + kv_rank + h
    assert sharded == 61 * (replicated + (mla_params_per_layer(*V3_MLA) + h - replicated) // 4)
    # no query compression (q_lora_rank 0): one hidden -> heads x qk projection
    assert mla_params_per_layer(h, heads, 0, kv_rank, nope, rope, v) == by_hand - (
        h * q_rank + q_rank + q_rank * heads * (nope + rope)
    ) + h * heads * (nope + rope)


def test_mla_kv_cache_is_the_latent_and_the_rotary_key():
    assert mla_kv_cache_elements_per_token(512, 64) == 576
    cfg = _v3()
    per_token = kv_bytes_per_token(cfg, "bf16")
    assert per_token == 61 * 576 * 2  # 70,272 bytes: layers x (512 + 64) x bf16
    assert kv_bytes_per_token(cfg, "bf16", tp=8) == per_token  # every rank holds the whole latent
    # the multi-head cache the same heads would need: 2 x 128 heads x 128 per layer, 57x more
    assert 2 * 128 * 128 / 576 == pytest.approx(56.9, rel=0.01)
    with pytest.raises(ValueError, match="training only"):
        dense_layers(cfg, 16, 1)  # the serving op lists price multi-head attention: refused, not mispriced


def test_deepseek_v3_total_and_active_parameters_match_the_technical_report():
    cfg = _v3()
    assert isinstance(cfg, TransformerConfig)
    assert cfg.param_count() == pytest.approx(671e9, rel=0.01)  # section 4.2: 671B total
    assert cfg.active_param_count() == pytest.approx(37e9, rel=0.03)  # 37B activated per token (37.55B here)
    assert (cfg.moe_layers, cfg.layers - cfg.moe_layers) == (58, 3)
    expert = 3 * 7168 * 2048  # one routed expert: gate, up, down
    assert cfg.param_count() - cfg.param_count(ep=64) == 58 * expert * (256 - 4)  # 4 of 256 held per rank
    assert cfg.param_count() - cfg.active_param_count() == 58 * expert * (256 - 8)


def test_routed_and_shared_expert_work_per_token():
    cfg = _v3()
    tokens = 512
    ops = cfg.step_ops(1, tokens, ep=64)
    layers = {layer.name: layer for layer in ops.layers}
    up, shared, dense = layers["moe.expert.up"], layers["moe.shared.up"], layers["mlp.up"]
    assert isinstance(up.op, Matmul) and isinstance(shared.op, Matmul) and isinstance(dense.op, Matmul)
    assert up.count == 58 * 4 and up.op.m == tokens * 8 * 64 // 256  # 4 experts held, 16 rows each
    assert (up.op.n, up.op.k) == (2 * 2048, 7168)
    assert shared.count == 58 and shared.op.m == tokens and not shared.expert  # every token, every MoE layer
    assert dense.count == 3 and dense.op.n == 2 * 18432  # the first 3 layers' dense MLP
    # forward GEMM FLOPs are 2 x tokens x the matrices one token uses (the embedding table does no matmul)
    full = cfg.step_ops(1, tokens)
    matmul = sum(op.flops * n for op, n in full.ops("fwd") if isinstance(op, Matmul))
    norms = 61 * (2 * 7168 + 1536 + 512) + 7168
    assert matmul == pytest.approx(2 * tokens * (cfg.active_param_count() - 129280 * 7168 - norms), rel=1e-9)
    # shared experts always run: dropping them removes their GEMMs for every token of every MoE layer
    plain = dataclasses.replace(cfg, shared_experts=0)
    dropped = full.flops("fwd") - plain.step_ops(1, tokens).flops("fwd")
    assert dropped == pytest.approx(58 * 2 * tokens * 3 * 7168 * 2048, rel=1e-3)  # + the SiLU, gate and add
    assert cfg.active_param_count() - plain.active_param_count() == 58 * 3 * 7168 * 2048


def _route(rng: np.random.Generator, samples: int, experts: int, holders: int, k: int, groups: int, chosen: int):
    """Distinct holders per token for ``samples`` tokens routed as DeepSeekV3TopkRouter does under uniform
    scores: ``chosen`` of ``groups`` groups, then ``k`` experts among theirs."""
    per_group = experts // groups
    picked_groups = rng.random((samples, groups)).argsort(axis=1)[:, :chosen]
    offsets = np.arange(per_group)
    eligible = (picked_groups[:, :, None] * per_group + offsets).reshape(samples, -1)
    picks = np.take_along_axis(eligible, rng.random(eligible.shape).argsort(axis=1)[:, :k], axis=1)
    owners = picks // (experts // holders)
    return np.array([len(set(row)) for row in owners])


@pytest.mark.parametrize(
    "experts, holders, k, groups, chosen",
    [
        (256, 8, 8, 8, 4),  # DeepSeek-V3 over 8 nodes: one group per node, at most 4 nodes
        (256, 64, 8, 8, 4),  # ... its 64 GPUs (a group spans 8 GPUs)
        (256, 4, 8, 8, 4),  # 4 nodes of 2 groups each
        (256, 8, 8, 1, 0),  # no group limit
    ],
)
def test_expected_distinct_holders_matches_simulated_routing(experts, holders, k, groups, chosen):
    expected = expected_distinct_holders(experts, holders, k, groups, chosen)
    simulated = _route(np.random.default_rng(19), 20000, experts, holders, k, groups, chosen or groups)
    assert expected == pytest.approx(simulated.mean(), rel=0.01)


def test_node_limited_routing_caps_the_inter_node_bytes():
    cfg = _v3()
    layer_bytes = 4096 * 7168 * 2.0  # one sequence of 4K tokens, bf16
    limited = node_limited_dispatch_bytes(cfg, layer_bytes, ep=64, nodes=8)
    free = node_limited_dispatch_bytes(dataclasses.replace(cfg, expert_groups_per_token=0), layer_bytes, 64, 8)
    flat = flat_dispatch_bytes(layer_bytes, 8, ep=64, per_node=8)
    # each token reaches at most 4 of the 8 nodes (its own among them 1 time in 8): 32 experts per node,
    # a chosen node is missed when all 8 picks fall in the other 3 chosen nodes' 96 experts
    reached = 4 * (1 - math.comb(96, 8) / math.comb(128, 8))
    assert reached == pytest.approx(3.63, abs=0.01)
    assert limited.inter_node_bytes == pytest.approx(layer_bytes * reached * 7 / 8, rel=1e-12)
    assert limited.inter_node_bytes <= layer_bytes * 4 * 7 / 8
    unlimited = 8 * (1 - math.comb(224, 8) / math.comb(256, 8))  # any of 8 nodes: 5.3 reached
    assert free.inter_node_bytes == pytest.approx(layer_bytes * unlimited * 7 / 8, rel=1e-12)
    assert flat.inter_node_bytes == layer_bytes * 8 * 56 / 64  # one network copy per remote expert
    assert limited.inter_node_bytes < free.inter_node_bytes < flat.inter_node_bytes


FABRIC: dict[str, Any] = {
    "name": "ep",
    "seed": 1,
    "datacenter": {
        "nodes": [
            {
                "name": "h800",
                "count": 4,
                "accelerator": "h800-sxm",
                "accelerators_per_node": 8,
                "intra_node": "nvswitch-h800",
                "nics": {"count": 8, "gbps": 400},
                "usd_per_hour": 16.0,
            }
        ],
        "network": {"topology": "fat_tree", "link_gbps": 400},
    },
    "workloads": [{"kind": "training", "name": "t", "model": "gpt3-125m", "global_batch_size": 8, "steps": 1}],
}


def _fabric() -> Any:
    return build_fabric(load_scenario(copy.deepcopy(FABRIC)).datacenter, 1)


class _Recorder:
    """A CommModel stand-in that records each query and answers bytes / 1e9 seconds."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, ...]], float]] = []

    def collective_s(self, op: str, groups: Any, nbytes: float) -> float:
        self.calls.append((op, [tuple(g) for g in groups], nbytes))
        return nbytes / 1e9


def test_node_limited_all_to_all_is_two_collectives_through_the_comm_model():
    fabric = _fabric()
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    ranks = tuple(fabric.ranks(32))
    layer_bytes = 512 * 256 * 2.0
    recorder = _Recorder()
    seconds = ep_all_to_all_s(recorder, TINY, [ranks], server_of, layer_bytes)  # type: ignore[arg-type]
    traffic = node_limited_dispatch_bytes(TINY, layer_bytes, 32, 4)
    (op1, inter, inter_bytes), (op2, intra, intra_bytes) = recorder.calls
    assert op1 == op2 == "all_to_all"
    assert [len(g) for g in inter] == [4] * 8 and all(len({server_of[a] for a in g}) == 4 for g in inter)
    assert [len(g) for g in intra] == [8] * 4 and all(len({server_of[a] for a in g}) == 1 for g in intra)
    assert (inter_bytes, intra_bytes) == (traffic.inter_message_bytes, traffic.intra_message_bytes)
    assert seconds == max(inter_bytes, intra_bytes) / 1e9  # IB and NVLink hops overlap
    # on the flow-level network the two-hop dispatch beats a flat all-to-all of every expert copy
    comm = CommModel(fabric.graph, "ecmp", 0)
    limited = ep_all_to_all_s(comm, TINY, [ranks], server_of, layer_bytes)
    flat = ep_all_to_all_s(comm, dataclasses.replace(TINY, expert_groups_per_token=0), [ranks], server_of, layer_bytes)
    assert flat == comm.collective_s("all_to_all", [ranks], layer_bytes * 4)
    assert 0 < limited < flat


def test_fp8_training_dispatches_fp8_tokens_and_combines_in_bf16():
    fabric = _fabric()
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    groups = [tuple(fabric.ranks(32))]
    layer_bytes = 512 * 256 * 2.0
    bf16 = ep_layer_times(_Recorder(), TINY, groups, server_of, layer_bytes, "bf16")  # type: ignore[arg-type]
    fp8 = ep_layer_times(_Recorder(), TINY, groups, server_of, layer_bytes, "fp8")  # type: ignore[arg-type]
    assert bf16.dispatch_s == bf16.combine_s == fp8.combine_s
    assert fp8.dispatch_s == pytest.approx(bf16.dispatch_s * (1 + 4 / 128) / 2)  # 1 byte + an fp32 per 128
    assert (fp8.forward_s, fp8.backward_s) == (fp8.dispatch_s + fp8.combine_s, 2 * fp8.combine_s)


def test_expert_parallel_traffic_is_paid_in_the_moe_layers_only():
    fabric = _fabric()
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    plan = ParallelPlan(dp=32, ep=32, microbatch_size=1)
    layout = RankLayout(plan, tuple(fabric.ranks(32)))
    setup = TrainingSetup(TINY, "h800-sxm", global_batch_size=64, seq_len=512)
    step = estimate_step(setup, plan, layout, CommModel(fabric.graph, "ecmp", 0), server_of)
    one = step.comm_s["ep_all_to_all_s"]
    groups = sharing_servers(layout.ep_groups(0), server_of)
    assert one == ep_all_to_all_s(CommModel(fabric.graph, "ecmp", 0), TINY, groups, server_of, 512 * 256 * 2.0)
    # dispatch + combine in the forward and again in the backward, in the 3 MoE layers of 4, 2 microbatches
    assert step.tp_exposed_s == pytest.approx(2 * 4 * one * TINY.moe_layers)


def test_activation_memory_of_a_deepseek_stack_term_by_term():
    s, b, e, h = 512, 2, 2.0, 256
    sb = s * b
    none = stack_activation_bytes(TINY, s, b, dropout=False, bytes_per_element=e, recompute="selective")
    replicated = 4 * e * sb * h
    latent = e * sb * (2 * 96 + 2 * 64 + 16)  # q_a and q_a_norm outputs, kv_a output and its norm's output
    heads = e * sb * 4 * (2 * (32 + 16) + 2 * 32)  # Q, K (nope + rope), V, output-projection input
    dense = 3 * e * sb * 512
    routed = e * sb * (32 + 4 * h) + 3 * e * sb * 4 * 128  # router scores, permuted inputs, expert MLPs
    shared = 3 * e * sb * 128
    layer = replicated + latent + heads
    assert none == pytest.approx((layer + dense) + 3 * (layer + routed + shared))
    # tensor parallelism splits the heads and the MLPs but not the latent path
    tp2 = stack_activation_bytes(TINY, s, b, 2, dropout=False, bytes_per_element=e, recompute="selective")
    kept_whole = e * sb * (32 + 4 * h)  # router scores and permuted inputs: not split by tensor parallelism
    split = (routed - kept_whole + shared) / 2
    assert tp2 == pytest.approx(4 * (replicated + latent + heads / 2) + dense / 2 + 3 * (kept_whole + split))
    assert stack_activation_bytes(TINY, s, b, recompute="full", bytes_per_element=e) == 4 * e * sb * h
    scores = stack_activation_bytes(TINY, s, b, dropout=False, bytes_per_element=e) - none
    assert scores == pytest.approx(4 * e * 4 * s * s * b)  # kept softmax outputs without recompute
    fused = stack_activation_bytes(TINY, s, b, dropout=False, bytes_per_element=e, keep_scores=False)
    assert fused == pytest.approx(none)  # a fused attention kernel keeps no score matrix


def test_configuration_errors_name_the_field():
    base: dict[str, Any] = dict(
        name="x", layers=2, hidden=64, heads=4, ffn_hidden=128, vocab=100, max_seq_len=64, positional="rope"
    )
    with pytest.raises(ValueError, match="kv_lora_rank must be >= 1 for attention_kind mla"):
        TransformerConfig(**base, attention_kind="mla", qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
    with pytest.raises(ValueError, match="need attention_kind: mla"):
        TransformerConfig(**base, kv_lora_rank=32)
    with pytest.raises(ValueError, match="attention_kind must be one of mha, mla"):
        TransformerConfig(**base, attention_kind="latent")
    with pytest.raises(ValueError, match=r"shared_experts needs a mixture of experts"):
        TransformerConfig(**base, shared_experts=1)
    with pytest.raises(ValueError, match=r"first_dense_layers \(2\) must be below layers \(2\)"):
        TransformerConfig(**base, experts=8, experts_per_token=2, first_dense_layers=2)
    with pytest.raises(ValueError, match=r"expert_groups \(3\) must divide experts \(8\)"):
        TransformerConfig(**base, experts=8, experts_per_token=2, expert_groups=3)
    with pytest.raises(ValueError, match="exceeds the experts of expert_groups_per_token"):
        TransformerConfig(**base, experts=8, experts_per_token=4, expert_groups=4, expert_groups_per_token=1)
    inline = model_from_spec(
        {
            "family": "decoder",
            **{k: v for k, v in base.items() if k not in ("name", "max_seq_len")},
            "seq_len": 64,
            "attention_kind": "mla",
            "kv_lora_rank": 32,
            "qk_nope_head_dim": 16,
            "qk_rope_head_dim": 8,
            "v_head_dim": 16,
        }
    )
    assert isinstance(inline, TransformerConfig) and inline.attention_kind == "mla" and inline.param_count() > 0


def test_h800_is_an_h100_with_its_nvlink_cut_to_400_gb_per_s():
    from dcsim.catalog import load_catalog
    from dcsim.network.efficiency import link_efficiency

    catalog = load_catalog()
    h800, h100 = catalog.accelerator("h800-sxm"), catalog.accelerator("h100-sxm")
    for precision in ("bf16", "fp8"):
        assert h800.peak_flops(precision) == h100.peak_flops(precision)
    assert h800.memory_bytes == h100.memory_bytes and h800.memory_bandwidth_gb_per_s == 3350
    nvlink = catalog.interconnects[h800.interconnect]
    assert nvlink.bandwidth_gb_per_s == 200  # 400 GB/s both directions
    assert nvlink.bandwidth_gb_per_s * link_efficiency(h800.interconnect) == pytest.approx(160)  # the report's


def test_model_flops_count_mla_attention_at_its_head_widths():
    from dcsim.parallel.flops import model_flops_per_token

    cfg = _v3()
    # QK^T over 128 heads x 192 and AV over 128 heads x 128: the mean width 128 x 160, not hidden 7168
    attention = 12 * 61 * 128 * (192 + 128) // 2 * 4096
    assert model_flops_per_token(cfg, 4096) == 6 * cfg.active_param_count() + attention
