"""Prefix caching from a scenario: ``traffic.prefix`` groups, trace columns, ``batching.prefix_caching``, the
``prefix_cache`` summary, and one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dcsim
from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario
from dcsim.serving.traffic import read_trace


def scenario(batching: dict[str, Any] | None = None, **traffic: Any) -> dict[str, Any]:
    return {
        "name": "prefix-test",
        "seed": 3,
        "datacenter": {
            "nodes": [
                {
                    "name": "a100",
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
                "model": "llama2-7b",
                "replicas": 1,
                "batching": batching or {"policy": "vllm"},
                "traffic": {
                    "arrival": "poisson",
                    "rate_per_s": 4,
                    "duration_s": 15,
                    "prompt_tokens": {"dist": "lognormal", "mean": 256, "sigma": 0.5, "max": 2048},
                    "output_tokens": {"dist": "lognormal", "mean": 64, "sigma": 0.5, "max": 256},
                    **traffic,
                },
            }
        ],
        "outputs": {"plots": False},
    }


def summary(batching: dict[str, Any] | None = None, **traffic: Any) -> dict[str, Any]:
    return dcsim.run_scenario(scenario(batching, **traffic)).summary["workloads"]["chat"]


PREFIX = {"groups": 2, "tokens": 1024, "share": 0.8}


@pytest.mark.parametrize("policy", ["vllm", "sarathi"])
def test_shared_system_prompts_are_reused(policy: str) -> None:
    off = summary({"policy": policy}, prefix=PREFIX)
    on = summary({"policy": policy, "prefix_caching": True}, prefix=PREFIX)
    assert "prefix_cache" not in off
    cache = on["prefix_cache"]
    assert on["requests_completed"] == off["requests_completed"] == on["requests"]
    # the same requests: a 1024-token prefix on about 80% of them, reused after each group's first prefill
    assert on["requests"] == off["requests"]
    assert 0.5 < cache["hit_rate"] < 1.0
    assert cache["prefill_tokens_saved"] > 0.6 * 1024 * 0.8 * on["requests"]
    assert on["ttft_ms"]["p50"] < off["ttft_ms"]["p50"]


def test_the_prefix_is_prepended_to_the_prompts() -> None:
    plain, prefixed = summary(), summary(prefix={"groups": 1, "tokens": 100, "share": 1.0})
    assert prefixed["input_tokens_per_s"] > plain["input_tokens_per_s"]


def test_prefix_caching_without_shared_prefixes_saves_nothing() -> None:
    on, off = summary({"policy": "vllm", "prefix_caching": True}), summary()
    assert on["prefix_cache"]["prefill_tokens_saved"] == 0
    assert on["ttft_ms"] == off["ttft_ms"]


def test_trace_prefix_columns(tmp_path: Path) -> None:
    path = tmp_path / "conv.csv"
    path.write_text(
        "arrival_s,prompt_tokens,output_tokens,prefix_id,prefix_tokens\n"
        "0.0,40,10,conv-1,50\n"
        "0.5,30,5,,0\n"
        "9.0,70,10,conv-1,80\n"
        "1.0,40,10,sys,32\n"
    )
    traffic = read_trace(path)
    assert traffic.prefix_group is not None and traffic.prefix_tokens is not None
    assert list(traffic.prefix_group) == [0, -1, 1, 0]  # labels numbered in file order, rows by arrival
    assert list(traffic.prefix_tokens) == [50, 0, 32, 80]
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,prompt_tokens,output_tokens,prefix_id,prefix_tokens\n0.0,40,10,a,60\n")
    with pytest.raises(UserInputError, match=r"line 2.*prefix_tokens"):
        read_trace(bad)
    half = tmp_path / "half.csv"
    half.write_text("arrival_s,prompt_tokens,output_tokens,prefix_id\n0.0,40,10,a\n")
    with pytest.raises(UserInputError, match="prefix_id and prefix_tokens go together"):
        read_trace(half)


def test_a_conversation_trace_is_served_with_its_turns_reused(tmp_path: Path) -> None:
    rows = ["arrival_s,prompt_tokens,output_tokens,prefix_id,prefix_tokens"]
    rng = np.random.default_rng(0)
    for conv in range(10):  # 4 turns each: prompt = the previous context + a 60-token message
        context, t = 0, conv * 0.3
        for _ in range(4):
            prompt, output = context + 60, int(rng.integers(20, 80))
            rows.append(f"{t:.3f},{prompt},{output},c{conv},{prompt + output}")
            context, t = prompt + output, t + 5.0
    path = tmp_path / "conv.csv"
    path.write_text("\n".join(rows) + "\n")
    spec = scenario({"policy": "vllm", "prefix_caching": True})
    spec["workloads"][0]["traffic"] = {"arrival": "trace", "trace": str(path)}
    w = dcsim.run_scenario(spec).summary["workloads"]["chat"]
    assert w["requests_completed"] == 40
    assert w["prefix_cache"]["saved_share"] > 0.5


@pytest.mark.parametrize(
    ("batching", "traffic", "expected"),
    [
        ({"policy": "static", "prefix_caching": True}, {}, "batching: prefix_caching needs an iteration-level"),
        (
            {"prefix_caching": True, "preemption": "swap", "swap_interconnect": "pcie4"},
            {},
            "prefix_caching is modelled with preemption: recompute only",
        ),
        ({"prefix_caching": "maybe"}, {}, "workloads[0].batching.prefix_caching"),
        ({}, {"prefix": {"groups": 0, "tokens": 10}}, "workloads[0].traffic.prefix.groups"),
        ({}, {"prefix": {"groups": 2, "tokens": 10, "share": 1.5}}, "workloads[0].traffic.prefix.share"),
        ({}, {"prefix": {"groups": 2}}, "workloads[0].traffic.prefix.tokens"),
        ({}, {"prefix": {"groups": 2, "tokens": 8, "size": 3}}, "workloads[0].traffic.prefix.size"),
    ],
)
def test_bad_prefix_fields_name_the_field(batching: dict[str, Any], traffic: dict[str, Any], expected: str) -> None:
    with pytest.raises(UserInputError) as error:
        load_scenario(scenario(batching or None, **traffic))
    assert expected in str(error.value)


def test_a_trace_with_prefix_columns_and_a_prefix_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens,prefix_id,prefix_tokens\n0.0,40,10,a,20\n")
    spec = scenario()
    spec["workloads"][0]["traffic"] = {"arrival": "trace", "trace": str(path), "prefix": PREFIX}
    with pytest.raises(UserInputError) as error:
        load_scenario(spec)
    assert "workloads[0].traffic.prefix: the trace has prefix_id and prefix_tokens columns" in str(error.value)
