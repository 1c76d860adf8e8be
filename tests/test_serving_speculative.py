"""Speculative decoding: the expected-tokens formula, draft and verify pricing, the replica's advance by the
tokens kept per step, the draft's memory, the summary fields and the input errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import dcsim
from dcsim.cli import main
from dcsim.models import get_model
from dcsim.models.inference import kv_bytes_per_token, weight_bytes
from dcsim.models.transformer import TransformerConfig
from dcsim.serving import IterationCost
from dcsim.serving.costs import replica_memory
from dcsim.serving.speculative import Speculation, SpeculativeCost, tokens_per_step, with_draft_memory

#: JackFram/llama-68m (Hugging Face config.json: 2 layers, hidden 768, 12 heads, intermediate 3072, vocab
#: 32000, 2048 positions), the Llama draft vLLM's speculative-decoding tests use.
LLAMA_68M: dict[str, Any] = {
    "family": "decoder",
    "layers": 2,
    "hidden": 768,
    "heads": 12,
    "ffn_hidden": 3072,
    "vocab": 32000,
    "seq_len": 2048,
    "norm": "rmsnorm",
    "activation": "swiglu",
    "positional": "rope",
    "bias": False,
}


def llama2(size: str) -> TransformerConfig:
    cfg = get_model(f"llama2-{size}")
    assert isinstance(cfg, TransformerConfig)
    return cfg


DRAFT = TransformerConfig(
    name="68m",
    family="decoder",
    layers=2,
    hidden=768,
    heads=12,
    ffn_hidden=3072,
    vocab=32000,
    max_seq_len=2048,
    norm="rmsnorm",
    activation="swiglu",
    positional="rope",
    bias=False,
)


def scenario(traffic: dict[str, Any], speculative: dict[str, Any] | None = None, **workload: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kind": "inference",
        "name": "chat",
        "model": "llama2-7b",
        "replicas": 1,
        "traffic": traffic,
        **workload,
    }
    if speculative is not None:
        spec["speculative"] = speculative
    return {
        "name": "speculative",
        "seed": 4,
        "datacenter": {
            "nodes": [
                {
                    "name": "a100",
                    "count": 1,
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": 8,
                    "intra_node": "nvswitch-a100",
                    "usd_per_hour": 32.0,
                }
            ]
        },
        "workloads": [spec],
    }


def one_request(tmp_path: Path, prompt: int, output: int) -> dict[str, Any]:
    path = tmp_path / "one.csv"
    path.write_text(f"arrival_s,prompt_tokens,output_tokens\n0.0,{prompt},{output}\n")
    return {"arrival": "trace", "trace": str(path)}


def run(spec: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    result = dcsim.run_scenario(spec)
    return result.summary["workloads"]["chat"], result.tables["requests"]


# ---------------------------------------------------------------------------------------------- the formula
def test_expected_tokens_per_step_is_leviathan_eq_1() -> None:
    assert tokens_per_step(4, 0.0) == 1.0
    assert tokens_per_step(4, 1.0) == 5.0
    assert tokens_per_step(1, 0.5) == pytest.approx(1.5)
    assert tokens_per_step(3, 0.8) == pytest.approx((1 - 0.8**4) / 0.2)
    # against the i.i.d. process itself: keep draft tokens until the first rejection, plus the target's token
    rng = np.random.default_rng(0)
    for k, p in ((2, 0.6), (5, 0.9), (8, 0.3)):
        accepted = rng.random((200_000, k)) < p
        kept = np.where(accepted.all(axis=1), k, accepted.argmin(axis=1)) + 1
        assert kept.mean() == pytest.approx(tokens_per_step(k, p), rel=0.01)


def test_acceptance_rate_and_token_acceptance_describe_the_same_step() -> None:
    by_p = Speculation.from_acceptance(DRAFT, 4, token_acceptance=0.7)
    by_rate = Speculation.from_acceptance(DRAFT, 4, acceptance_rate=by_p.acceptance_rate)
    assert by_rate.per_step == pytest.approx(by_p.per_step)
    assert Speculation.from_acceptance(DRAFT, 4, acceptance_rate=0.5).per_step == 3.0
    assert by_p.system_efficiency == pytest.approx(by_p.per_step / 5)
    with pytest.raises(ValueError, match="exactly one"):
        Speculation.from_acceptance(DRAFT, 4)


# ---------------------------------------------------------------------------------------------- the prices
def costs(p: float, k: int = 4) -> tuple[IterationCost, SpeculativeCost]:
    target = IterationCost(llama2("7b"), "fp16", "a100-sxm-80gb")
    draft = IterationCost(DRAFT, "fp16", "a100-sxm-80gb")
    return target, SpeculativeCost(target, draft, Speculation.from_acceptance(DRAFT, k, token_acceptance=p))


@pytest.mark.parametrize("batch", [1, 8, 64])
def test_acceptance_zero_prices_every_token_above_plain_decoding(batch: int) -> None:
    target, spec = costs(0.0)
    total_kv = batch * 600.0
    draft_s, verify_s, step_s = spec.step_s(batch, total_kv)
    assert draft_s > 0 and verify_s > 0 and step_s == pytest.approx(draft_s + verify_s)
    assert spec.decode_s(batch, total_kv) == step_s > target.decode_s(batch, total_kv)


def test_verifying_k_plus_1_tokens_costs_about_one_memory_bound_decode() -> None:
    target, spec = costs(0.8)
    decode = target.dense_s(1, 1) + target.decode_attention_s(1, 512)  # accelerator time of one decode
    # memory-bound: the weights are read once for the k + 1 tokens, as for one (the attention kernels differ:
    # FlashAttention over k + 1 queries against the decode kernel's one)
    assert target.dense_s(1, 1) < spec.verify_pass_s(1, 512) < 1.5 * decode
    assert spec.verify_pass_s(64, 512) > spec.verify_pass_s(1, 512)


def test_draft_weights_and_kv_cache_take_the_targets_memory_as_vllm_splits_it() -> None:
    target = llama2("7b")
    mem = replica_memory(target, "fp16", 80 * 2**30)
    out = with_draft_memory(mem, DRAFT, "fp16")
    kv_left = mem.kv_bytes - weight_bytes(DRAFT, "fp16")
    # vLLM's split_num_cache_blocks_evenly: the target's blocks x its block bytes / both models' block bytes
    target_blocks = kv_left / (mem.kv_bytes_per_token * 16)
    share = kv_bytes_per_token(target, "fp16") / (
        kv_bytes_per_token(target, "fp16") + kv_bytes_per_token(DRAFT, "fp16")
    )
    assert out.capacity_blocks == int(kv_left // ((mem.kv_bytes_per_token + kv_bytes_per_token(DRAFT, "fp16")) * 16))
    assert out.capacity_blocks == pytest.approx(target_blocks * share, abs=1)
    assert out.weight_bytes == mem.weight_bytes + weight_bytes(DRAFT, "fp16")


# ---------------------------------------------------------------------------------------------- replicas
def test_acceptance_one_keeps_k_plus_1_tokens_per_verify_step(tmp_path: Path) -> None:
    k, steps = 4, 3
    traffic = one_request(tmp_path, prompt=64, output=1 + steps * (k + 1))  # first token from the prefill
    spec = {"draft_model": LLAMA_68M, "tokens": k, "token_acceptance": 1.0}
    summary, requests = run(scenario(traffic, spec))
    entry = summary["speculative"]
    assert entry["accepted_tokens_per_step"] == k + 1
    assert entry["verify_steps"] == pytest.approx(steps)  # 15 decode tokens in 3 verify steps
    decoding_s = float(requests["end_s"].iloc[0] - requests["ttft_ms"].iloc[0] / 1e3)
    step_s = entry["draft_s_per_step"] + entry["verify_s_per_step"]
    assert decoding_s == pytest.approx(steps * step_s)
    assert summary["tpot_ms"]["p50"] == pytest.approx(step_s / (k + 1) * 1e3)
    plain, _ = run(scenario(traffic))
    assert summary["tpot_ms"]["p50"] < plain["tpot_ms"]["p50"]
    assert "speculative" not in plain


def test_acceptance_zero_is_slower_than_no_speculation(tmp_path: Path) -> None:
    traffic = {"arrival": "poisson", "trace": "splitwise_code", "rate_per_s": 2.0, "duration_s": 15}
    plain, _ = run(scenario(traffic))
    spec, _ = run(scenario(traffic, {"draft_model": LLAMA_68M, "tokens": 4, "token_acceptance": 0.0}))
    assert spec["requests_completed"] == plain["requests_completed"] > 0
    assert spec["tpot_ms"]["mean"] > plain["tpot_ms"]["mean"]
    assert spec["e2e_ms"]["mean"] > plain["e2e_ms"]["mean"]
    assert spec["speculative"]["accepted_tokens_per_step"] == 1.0
    good, _ = run(scenario(traffic, {"draft_model": LLAMA_68M, "tokens": 4, "token_acceptance": 0.8}))
    assert good["tpot_ms"]["mean"] < plain["tpot_ms"]["mean"]


def test_summary_reports_the_speculation(tmp_path: Path) -> None:
    traffic = {"arrival": "poisson", "trace": "splitwise_conv", "rate_per_s": 2.0, "duration_s": 10}
    summary, _ = run(
        scenario(traffic, {"draft_model": "llama2-7b", "tokens": 3, "acceptance_rate": 0.6}, model="llama2-13b")
    )
    entry = summary["speculative"]
    assert entry["draft_model"] == "llama2-7b" and entry["tokens"] == 3
    assert entry["accepted_tokens_per_step"] == pytest.approx(1 + 0.6 * 3)
    assert entry["acceptance_rate"] == pytest.approx(0.6)
    assert entry["system_efficiency"] == pytest.approx(2.8 / 4)
    assert entry["verify_steps"] > 0 and entry["draft_s_per_step"] > 0 and entry["verify_s_per_step"] > 0
    # a 7B draft beside the 13B target takes KV capacity away
    plain, _ = run(scenario(traffic, model="llama2-13b"))
    assert summary["kv_capacity_tokens"]["a100"] < plain["kv_capacity_tokens"]["a100"]
    assert summary["accelerator_memory"]["a100"]["weights_gb"] > plain["accelerator_memory"]["a100"]["weights_gb"]


# ---------------------------------------------------------------------------------------------- errors
BASE_TRAFFIC = {"arrival": "poisson", "rate_per_s": 1, "duration_s": 5, "prompt_tokens": 100, "output_tokens": 20}


@pytest.mark.parametrize(
    ("speculative", "workload", "expected"),
    [
        (
            {"draft_model": "llama3-8b", "tokens": 4, "token_acceptance": 0.7},
            {},
            "workloads[0]: speculative.draft_model: llama3-8b's vocabulary (128256) differs from llama2-7b's",
        ),
        (
            {"draft_model": LLAMA_68M, "tokens": 4, "token_acceptance": 0.7, "acceptance_rate": 0.5},
            {},
            "workloads[0].speculative: give exactly one of token_acceptance",
        ),
        ({"draft_model": "bert-base", "tokens": 4, "token_acceptance": 0.7}, {}, "a draft model is a decoder"),
        ({"draft_model": LLAMA_68M, "tokens": 0, "token_acceptance": 0.7}, {}, "speculative.tokens: must be >= 1"),
        (
            {"draft_model": LLAMA_68M, "tokens": 4, "token_acceptance": 1.2},
            {},
            "speculative.token_acceptance: must be <= 1",
        ),
        (
            {"draft_model": LLAMA_68M, "tokens": 4, "token_acceptance": 0.7},
            {"batching": {"chunked_prefill": True}},
            "batching.chunked_prefill: vLLM 0.6.3 refuses speculative decoding with chunked prefill",
        ),
    ],
)
def test_bad_speculation_is_one_line_naming_the_field(
    tmp_path: Path, capsys: Any, speculative: dict[str, Any], workload: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario(BASE_TRAFFIC, speculative, **workload)))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_a_draft_that_leaves_no_kv_cache_is_named(tmp_path: Path, capsys: Any) -> None:
    spec = scenario(
        BASE_TRAFFIC, {"draft_model": "llama2-7b", "tokens": 4, "token_acceptance": 0.7}, model="llama2-70b"
    )
    spec["workloads"][0]["parallelism"] = {"tp": 2}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-plots"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "workloads[0].speculative.draft_model: llama2-7b's weights" in err[0], err


def test_check_sees_the_drafts_memory(tmp_path):
    """``dcsim check`` plans replicas with the draft's weights and KV cache beside the model's, as the run
    does: a 7B draft beside Llama-2-70B at tp 2 on an A100 leaves no KV cache, one line naming the draft."""
    spec = yaml.safe_load((Path(__file__).parents[1] / "scenarios" / "llama2_70b_speculative.yaml").read_text())
    index = next(i for i, w in enumerate(spec["workloads"]) if w.get("speculative"))
    spec["workloads"][index]["parallelism"] = {"tp": 2}
    for workload in spec["workloads"]:
        traffic = workload.get("traffic", {})
        if isinstance(traffic.get("trace"), str) and "/" in traffic["trace"]:
            traffic["trace"] = str(Path(__file__).parents[1] / "scenarios" / traffic["trace"])
    path = tmp_path / "draft.yaml"
    path.write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "dcsim", "check", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: workloads[{index}].speculative.draft_model: llama2-7b's weights (6.7 GB per accelerator) beside "
        "llama2-70b's leave no KV cache on a100-sxm-80gb"
    ]
