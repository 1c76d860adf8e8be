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
    plain = replica_memory(LLAMA, "fp16", 80)
    small = replica_memory(
        LLAMA, "fp16", 80, weight_factor=served.weight_factor("h100-sxm", "fp16"), kv_factor=served.kv_factor("fp16")
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
    raw["workloads"][1]["compression"] = {"pruning": {"sparsity": 0.25, "pattern": "structured", "target": "heads"}}
    with pytest.raises(UserInputError) as info:
        load_scenario(raw)
    assert "heads is not modelled for serving" in str(info.value.problems[0])


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
