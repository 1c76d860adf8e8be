"""Encoder serving (BERT-style classification / embedding): one bidirectional forward pass per request, batched,
no generated tokens and no KV cache kept; decode-only settings are refused naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import dcsim
from dcsim.compute import predict
from dcsim.errors import UserInputError
from dcsim.models import get_model
from dcsim.models.inference import decode_attention, dense_layers, kv_bytes_per_token, prefill_attention
from dcsim.scenario import load_scenario
from dcsim.serving import IterationCost, replica_memory

BERT = get_model("bert-base")


def scenario(**changes: Any) -> dict[str, Any]:
    workload: dict[str, Any] = {
        "kind": "inference",
        "name": "classify",
        "model": "bert-base",
        "precision": "fp16",
        "replicas": 1,
        "batching": {"policy": "continuous", "max_batch_size": 64, "max_batch_tokens": 8192},
        "traffic": {
            "arrival": "poisson",
            "rate_per_s": 800,
            "duration_s": 5,
            "prompt_tokens": {"dist": "lognormal", "mean": 128, "sigma": 0.4, "max": 512},
        },
        "slo": {"ttft_ms": 50},
    }
    workload.update(changes)
    return {
        "name": "encoder",
        "seed": 3,
        "datacenter": {
            "nodes": [{"name": "l4", "count": 1, "accelerator": "l4", "accelerators_per_node": 8, "nics": None}]
        },
        "workloads": [workload],
        "outputs": {"plots": False},
    }


def test_encoder_ops_are_one_bidirectional_pass_with_a_pooler_and_no_cache() -> None:
    names = [layer.name for layer in dense_layers(BERT, 256, 2).layers]
    assert "attn.kv_write" not in names and "head.logits" not in names
    assert names[-2:] == ["head.pooler", "head.pooler.act"]  # over the 2 sequences, not the 256 tokens
    assert {"embed.token_types", "embed.norm"} <= set(names)  # BERT's segment embedding and post-norm
    pooler = dense_layers(BERT, 256, 2).layers[-2].op
    assert (pooler.m, pooler.n, pooler.k) == (2, 768, 768)
    op, count = prefill_attention(BERT, 128)
    assert not op.causal and count == 12
    assert kv_bytes_per_token(BERT, "fp16") == 0.0
    with pytest.raises(ValueError, match="no decode step"):
        decode_attention(BERT, 128)
    with pytest.raises(ValueError, match="past must be 0"):
        prefill_attention(BERT, 64, past=64)


def test_a_batch_of_encoder_requests_is_one_iteration_cheaper_than_one_each() -> None:
    cost = IterationCost(BERT, "fp16", "h100-sxm")
    one = cost.iteration_s(0, 0, [(128, 0)], 1)
    eight = cost.iteration_s(0, 0, [(128, 0)] * 8, 8)
    assert one < eight < 4 * one  # batching amortizes the per-op fixed costs
    # the batch's attention is one kernel whose query-key pairs are the sum over its inputs
    mixed = cost.encoder_attention_s([100, 200])  # rms length 159 (158.1 rounded up)
    op, count = prefill_attention(BERT, 159, batch=2)
    assert mixed == pytest.approx(predict(op, "h100-sxm") * count)
    assert op.flops == pytest.approx(4 * 12 * (100**2 + 200**2) * 64, rel=0.02)  # length rounded up
    assert cost.encoder_attention_s([128] * 8) < 8 * cost.prefill_attention_s(128)


def test_encoder_memory_holds_weights_and_activations_but_no_kv_cache() -> None:
    mem = replica_memory(BERT, "fp16", 24 * 2**30, max_batch_tokens=8192, max_batch_size=64)
    assert mem.kv_bytes == mem.kv_bytes_per_token == 0.0 and mem.fits
    assert mem.capacity_blocks * mem.block_tokens >= 8192  # the blocks never bind before max_batch_tokens
    assert not replica_memory(BERT, "fp16", 0.2e9).fits  # 220 MB of weights do not fit in 180 MB


def test_encoder_requests_complete_in_one_pass_and_cost_is_per_input_token() -> None:
    result = dcsim.run_scenario(scenario())
    w = result.summary["workloads"]["classify"]
    requests = result.tables["requests"]
    assert w["requests_completed"] == w["requests"] == len(requests) > 3000
    assert (requests["generated_tokens"] == 0).all() and (requests["output_tokens"] == 0).all()
    assert (requests["ttft_ms"] == requests["e2e_ms"]).all() and requests["tpot_ms"].isna().all()
    assert w["tokens_counted"] == "input" and w["tpot_ms"]["p50"] is None
    inputs = float(requests["prompt_tokens"].sum())
    assert w["throughput_tokens_per_s"] == w["input_tokens_per_s"] > 0
    assert w["usd_per_million_tokens"] == pytest.approx(w["cost_usd"] / inputs * 1e6)
    assert w["kv_capacity_tokens"] == {"l4": 0} and w["kv_peak_occupancy"] == 0.0
    assert w["mean_batch_size"] > 1.0  # several requests share an iteration at this load
    # static batching also batches them, and every batch ends after its one iteration
    static = dcsim.run_scenario(scenario(batching={"policy": "static", "max_batch_size": 64}))
    s = static.summary["workloads"]["classify"]
    assert s["requests_completed"] == s["requests"] and s["mean_batch_size"] > 1.0


def test_an_encoder_trace_serves_prompts_only(tmp_path) -> None:
    trace = tmp_path / "requests.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0.0,100,10\n0.0,200,20\n1.0,64,5\n")
    data = scenario(traffic={"arrival": "trace", "trace": str(trace)})
    result = dcsim.run_scenario(data)
    requests = result.tables["requests"]
    assert list(requests["output_tokens"]) == [0, 0, 0] and (requests["status"] == "completed").all()
    assert requests["ttft_ms"].iloc[0] == requests["ttft_ms"].iloc[1]  # the first two share one iteration


def test_a_distilled_encoder_student_is_served() -> None:
    student = {"family": "encoder", "layers": 6, "hidden": 768, "heads": 12, "ffn_hidden": 3072, "vocab": 30522}
    data = scenario(compression={"distillation": {"student": {**student, "seq_len": 512}}})
    fast = dcsim.run_scenario(copy.deepcopy(data)).summary["workloads"]["classify"]
    slow = dcsim.run_scenario(scenario()).summary["workloads"]["classify"]
    assert fast["ttft_ms"]["p50"] < 0.7 * slow["ttft_ms"]["p50"]
    assert fast["compression"]["accuracy"]["point"] == "distilbert-glue"
    decoder_student = {**student, "family": "decoder", "seq_len": 512}
    with pytest.raises(UserInputError, match="student: must be a transformer of family encoder"):
        load_scenario(scenario(compression={"distillation": {"student": decoder_student}}))


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(UserInputError) as error:
        load_scenario(data)
    return str(error.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slo": {"ttft_ms": 50, "tpot_ms": 20}}, "workloads[0].slo.tpot_ms: bert-base is an encoder"),
        ({"batching": {"policy": "chunked"}}, "workloads[0].batching.policy: bert-base is an encoder"),
        ({"batching": {"chunked_prefill": True}}, "workloads[0].batching.chunked_prefill: bert-base is an encoder"),
        (
            {"batching": {"preemption": "swap", "swap_interconnect": "pcie4"}},
            "workloads[0].batching.preemption: bert-base is an encoder",
        ),
        ({"replicas": 2, "disaggregation": {"prefill_replicas": 1}}, "workloads[0].disaggregation: bert-base"),
        ({"offload": {"kv_fraction": 0.5, "link": "pcie4"}}, "workloads[0].offload.kv_fraction: bert-base"),
        (
            {"compression": {"quantization": {"weights": "int8", "activations": "int8", "kv_cache": "int8"}}},
            "workloads[0].compression: quantization.kv_cache: bert-base is an encoder",
        ),
    ],
)
def test_decoder_only_settings_are_refused_for_an_encoder(change: dict[str, Any], field: str) -> None:
    message = problems(scenario(**change))
    assert field in message and len(message.splitlines()) == 1


def test_output_tokens_belong_to_decoders_only() -> None:
    data = scenario()
    data["workloads"][0]["traffic"]["output_tokens"] = {"dist": "constant", "value": 1}
    assert "workloads[0].traffic.output_tokens: bert-base is an encoder" in problems(data)
    data = scenario(model="gpt2-small")
    assert "workloads[0].traffic.output_tokens: poisson arrivals of a decoder need it" in problems(data)


def test_run_prints_latency_and_input_tokens_for_an_encoder(tmp_path, capsys) -> None:
    """``dcsim run``'s text for an encoder pool: one latency line and input tokens, no TPOT or "generated"."""
    import yaml

    from dcsim.cli import main

    data = scenario()
    data["outputs"]["dir"] = str(tmp_path / "out")
    path = tmp_path / "encoder.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "    latency: p50 " in text and " input tokens/s; $" in text and "per million input tokens" in text
    assert "TPOT" not in text and "generated tokens/s" not in text
