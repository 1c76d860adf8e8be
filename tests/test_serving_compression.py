"""Compression recipes in serving: what they change in an iteration's time, the memory a replica has for its
KV cache, the COST breakdown, and errors that name the recipe's field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import dcsim
from dcsim.errors import UserInputError
from dcsim.models import get_model
from dcsim.scenario import load_scenario
from dcsim.serving import IterationCost, replica_memory
from dcsim.serving.compressed import served_compression

LLAMA = get_model("llama2-7b")
AWQ = {"quantization": {"weights": "int4", "activations": "fp16", "method": "awq"}}


def test_weight_only_int4_speeds_up_decode_not_prefill_on_h100() -> None:
    served = served_compression(LLAMA, AWQ, "fp16")
    assert served is not None
    dense = IterationCost(LLAMA, "fp16", "h100-sxm")
    int4 = IterationCost(LLAMA, "fp16", "h100-sxm", transform=served.transform("h100-sxm"))
    assert int4.dense_s(1, 1) < 0.7 * dense.dense_s(1, 1)  # decode streams a quarter of the weight bytes
    assert int4.dense_s(4096, 8) >= dense.dense_s(4096, 8)  # prefill dequantizes, then runs the fp16 GEMM


def test_compressed_weights_and_kv_leave_more_room_for_the_cache() -> None:
    served = served_compression(LLAMA, {**AWQ, "quantization": {**AWQ["quantization"], "kv_cache": "fp8"}}, "fp16")
    assert served is not None
    plain = replica_memory(LLAMA, "fp16", 80 * 2**30)
    small = replica_memory(
        LLAMA,
        "fp16",
        80 * 2**30,
        weight_factor=served.weight_factor("h100-sxm", "fp16"),
        kv_factor=served.kv_factor("fp16"),
    )
    assert small.weight_bytes == pytest.approx(plain.weight_bytes * served.weight_factor("h100-sxm", "fp16"))
    assert 0.25 < served.weight_factor("h100-sxm", "fp16") < 0.35  # 4-bit values plus group scales
    assert small.kv_bytes_per_token == pytest.approx(plain.kv_bytes_per_token / 2)
    assert small.capacity_blocks > 2 * plain.capacity_blocks


def _scenario() -> dict[str, Any]:
    import yaml

    with open("scenarios/llama2_7b_compression.yaml", encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    raw["outputs"] = {"plots": False}
    return raw


def test_a_bad_recipe_names_its_field() -> None:
    raw = _scenario()
    raw["workloads"][1]["compression"] = {"quantization": {"weights": "int3"}}
    with pytest.raises(UserInputError) as info:
        load_scenario(raw)
    [problem] = [str(p) for p in info.value.problems]
    assert problem.startswith("workloads[1].compression: quantization.weights:")
    # 70% of Llama-2-7B's 32 heads kept is 22: four tensor-parallel shards cannot split them evenly
    raw["workloads"][1]["compression"] = {"pruning": {"sparsity": 0.3, "pattern": "structured", "target": "heads"}}
    raw["workloads"][1]["parallelism"] = {"tp": 4}
    with pytest.raises(UserInputError) as info:
        load_scenario(raw)
    assert any(
        str(p).startswith("workloads[1].parallelism.tp: tp (4) must divide the 22 heads") for p in info.value.problems
    )


def test_production_cost_is_the_compression_term_of_cost() -> None:
    raw = _scenario()
    raw["workloads"] = raw["workloads"][:2]
    raw["workloads"][0]["traffic"]["duration_s"] = raw["workloads"][1]["traffic"]["duration_s"] = 20
    summary = dcsim.run_scenario(copy.deepcopy(raw)).summary
    fp16, awq = summary["workloads"]["fp16"], summary["workloads"]["awq-int4"]
    assert fp16["compression"] is None
    produced = awq["compression"]["production"]["usd"]
    assert produced > 0 and summary["datacenter"]["cost_usd"]["compression"] == pytest.approx(produced)
    assert awq["compression"]["accuracy"]["status"] == "estimate"
    assert awq["compression"]["accuracy"]["published_model"] == "Llama-2-7B"


def test_a_quantized_kv_cache_speeds_up_long_context_decode_not_prefill() -> None:
    served = served_compression(LLAMA, {**AWQ, "quantization": {**AWQ["quantization"], "kv_cache": "int8"}}, "fp16")
    assert served is not None and served.kv_precision == "int8"
    fp16 = IterationCost(LLAMA, "fp16", "h100-sxm")
    int8 = IterationCost(LLAMA, "fp16", "h100-sxm", kv_precision=served.kv_precision)
    # 8 sequences of 4,096 cached tokens: the decode attention reads half the KV bytes
    assert int8.decode_attention_s(8, 4096) < 0.85 * fp16.decode_attention_s(8, 4096)
    assert int8.decode_s(8, 8 * 4096) < fp16.decode_s(8, 8 * 4096)
    assert int8.dense_s(8, 8) == fp16.dense_s(8, 8)  # the GEMMs are not what the KV precision changes
    # prefill attends over the fresh fp16 keys and values: unchanged
    assert int8.prefill_attention_s(2048) == fp16.prefill_attention_s(2048)
    assert int8.iteration_s(0, 0, [(2048, 0)], 1) == fp16.iteration_s(0, 0, [(2048, 0)], 1)


def test_kv_precision_is_a_field_of_the_attention_op_that_round_trips() -> None:
    from dcsim.compute.ops import Attention, op_from_dict

    plain = Attention(8, 32, 1, 4096, 128, False, 32, "fp16")
    quantized = Attention(8, 32, 1, 4096, 128, False, 32, "fp16", kv_precision="fp8")
    assert "kv_precision" not in plain.to_dict()  # dicts written before the field existed read back the same
    assert op_from_dict(plain.to_dict()) == plain and op_from_dict(quantized.to_dict()) == quantized
    assert quantized != plain and hash(quantized) != hash(plain)
    assert quantized.fit_key == plain.fit_key == "attention_decode/fwd/fp16" and quantized.flops == plain.flops
    kv = 8 * 2 * 32 * 4096 * 128  # K and V elements read
    assert plain.bytes - quantized.bytes == pytest.approx(kv * (2 - 1))
    with pytest.raises(ValueError, match="kv_precision"):
        Attention(1, 1, 1, 1, 1, kv_precision="int3")


def test_pruned_heads_shrink_kv_bytes_and_iteration_time() -> None:
    heads = {"pruning": {"sparsity": 0.5, "pattern": "structured", "target": "heads"}}
    served = served_compression(LLAMA, heads, "fp16")
    assert served is not None and served.kept_heads == 16
    assert served.kv_factor("fp16") == 0.5  # 16 of 32 key-value heads kept
    assert served.kv_factor("fp16") == served.model.kv_bytes_per_token_factor
    plain_mem = replica_memory(LLAMA, "fp16", 80 * 2**30)
    pruned_mem = replica_memory(
        LLAMA,
        "fp16",
        80 * 2**30,
        weight_factor=served.weight_factor("h100-sxm", "fp16"),
        kv_factor=served.kv_factor("fp16"),
    )
    assert pruned_mem.kv_bytes_per_token == plain_mem.kv_bytes_per_token / 2
    assert pruned_mem.capacity_blocks > 2 * plain_mem.capacity_blocks  # and the weights are smaller too
    plain = IterationCost(LLAMA, "fp16", "h100-sxm")
    pruned = IterationCost(LLAMA, "fp16", "h100-sxm", kept_heads=served.kept_heads)
    # a 4,096-token prefill is compute-bound: the layers lose the halved QKV and projection GEMMs' FLOPs,
    # 2 d^2 of 4 d^2 + 3 d ffn per token
    d, ffn = LLAMA.hidden, LLAMA.ffn_hidden
    expected = 1 - 2 * d * d / (4 * d * d + 3 * d * ffn)
    assert pruned.dense_s(4096, 1) / plain.dense_s(4096, 1) == pytest.approx(expected, rel=0.05)
    assert 0.4 < pruned.prefill_attention_s(4096) / plain.prefill_attention_s(4096) < 0.7  # half the heads
    assert pruned.decode_s(8, 8 * 4096) < 0.85 * plain.decode_s(8, 8 * 4096)
    assert pruned.iteration_s(0, 0, [(512, 0)], 1) < plain.iteration_s(0, 0, [(512, 0)], 1)


def test_head_pruned_and_kv_quantized_pools_serve_faster() -> None:
    raw = _scenario()
    heads = copy.deepcopy(raw["workloads"][0])
    heads["name"] = "heads-half"
    heads["compression"] = {"pruning": {"sparsity": 0.5, "pattern": "structured", "target": "heads"}}
    raw["workloads"] = [raw["workloads"][0], heads, raw["workloads"][2]]
    for w in raw["workloads"]:
        w["traffic"]["duration_s"] = 15
    pools = dcsim.run_scenario(raw).summary["workloads"]
    fp16, pruned, fp8 = pools["fp16"], pools["heads-half"], pools["fp8-w8a8-kv8"]
    assert pruned["kv_capacity_tokens"]["dgx-h100"] > 2 * fp16["kv_capacity_tokens"]["dgx-h100"]
    assert pruned["tpot_ms"]["p50"] < fp16["tpot_ms"]["p50"] and pruned["ttft_ms"]["p50"] < fp16["ttft_ms"]["p50"]
    assert pruned["compression"]["kv_bytes_factor"] == 0.5
    assert pruned["compression"]["accuracy"]["status"] == "unknown"
    assert fp8["tpot_ms"]["p50"] < fp16["tpot_ms"]["p50"]
