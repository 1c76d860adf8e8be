"""``kind: inference`` scenarios: the summary contract, determinism, tables and input errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import dcsim
from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario


def scenario(**workload: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "inference",
        "name": "chat",
        "model": "llama2-7b",
        "replicas": 2,
        "traffic": {
            "arrival": "poisson",
            "rate_per_s": 4,
            "duration_s": 20,
            "prompt_tokens": {"dist": "lognormal", "mean": 256, "sigma": 0.5, "max": 2048},
            "output_tokens": {"dist": "lognormal", "mean": 64, "sigma": 0.5, "max": 512},
        },
        "slo": {"ttft_ms": 500, "tpot_ms": 50},
    }
    base.update(workload)
    return {
        "name": "serving-test",
        "seed": 3,
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
            ],
            "storage": {"read_gbps": 100},
        },
        "workloads": [base],
    }


CONTRACT = ("requests_completed", "throughput_tokens_per_s", "input_tokens_per_s", "slo_attainment", "cost_usd")


def test_summary_has_the_contract_fields() -> None:
    result = dcsim.run_scenario(scenario())
    w = result.summary["workloads"]["chat"]
    for key in (*CONTRACT, "usd_per_million_tokens", "energy_kwh"):
        assert key in w
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert set(w[key]) == {"p50", "p90", "p99", "mean"}
        assert w[key]["p50"] <= w[key]["p90"] <= w[key]["p99"]
    requests = result.tables["requests"]
    assert w["requests_completed"] == len(requests) == w["requests"]
    window = requests["end_s"].max() - requests["arrival_s"].min()
    assert w["throughput_tokens_per_s"] == pytest.approx(requests["output_tokens"].sum() / window)
    assert w["input_tokens_per_s"] == pytest.approx(requests["prompt_tokens"].sum() / window)
    # 2 replicas of one A100 each, paid for the whole run at $32/h per 8-GPU node
    assert w["cost_usd"] == pytest.approx(2 * 4.0 / 3600 * result.summary["simulated_time_s"])
    assert w["usd_per_million_tokens"] == pytest.approx(w["cost_usd"] / requests["output_tokens"].sum() * 1e6)
    assert 0 < w["slo_attainment"] <= 1 and w["energy_kwh"] > 0
    replicas = result.tables["replicas"]
    assert list(replicas["replica"]) == [0, 1] and (replicas["utilization"] <= 1).all()
    assert replicas["busy_s"].sum() == pytest.approx(result.accelerators["busy_s"].sum())
    timeline = result.tables["replica_timeline"]
    assert set(timeline["replica"]) == {0, 1}
    assert (timeline["kv_occupancy"] <= 1).all() and (timeline["batch_size"] >= 0).all()


def test_same_seed_same_summary_and_other_seed_differs() -> None:
    a = dcsim.run_scenario(scenario()).summary_json()
    b = dcsim.run_scenario(scenario()).summary_json()
    assert a == b
    other = scenario()
    other["seed"] = 4
    assert dcsim.run_scenario(other).summary_json() != a


def test_policies_and_routers_run() -> None:
    for batching in ({"policy": "static", "max_batch_size": 8}, {"chunked_prefill": True, "max_batch_tokens": 512}):
        for routing in ("round_robin", "power_of_two", "random"):
            w = dcsim.run_scenario(scenario(batching=batching, routing=routing)).summary["workloads"]["chat"]
            assert w["requests_completed"] == w["requests"]


def test_static_batching_is_slower_than_continuous() -> None:
    cont = dcsim.run_scenario(scenario(replicas=1)).summary["workloads"]["chat"]
    static = dcsim.run_scenario(scenario(replicas=1, batching={"policy": "static"})).summary["workloads"]["chat"]
    assert static["e2e_ms"]["mean"] > cont["e2e_ms"]["mean"]


def test_trace_replay(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0.5,100,10\n0.0,200,20\n1.0,300,30\n")
    data = scenario(traffic={"arrival": "trace", "trace": str(trace)})
    result = dcsim.run_scenario(data)
    requests = result.tables["requests"]
    assert list(requests["prompt_tokens"]) == [200, 100, 300]  # sorted by arrival
    assert result.summary["workloads"]["chat"]["requests_completed"] == 3


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(UserInputError) as error:
        load_scenario(data)
    return str(error.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"parallelism": {"tp": 3}}, "workloads[0].parallelism.tp: tp (3) must divide heads (32)"),
        ({"compression": {"quantization": {"weights": "int3"}}}, "workloads[0].compression: quantization.weights"),
        ({"replicas": 9}, "workloads[0].replicas: 9 replicas"),
        ({"routing": "nearest"}, "workloads[0].routing"),
        ({"model": "resnet50"}, "workloads[0].model: 'resnet50' is not a decoder or encoder transformer"),
        ({"model": "mixtral-8x7b", "compression": {"quantization": {"weights": "int4"}}}, "mixture of experts"),
        ({"batching": {"preemption": "swap"}}, "workloads[0].batching: preemption: swap needs swap_interconnect"),
        ({"disaggregation": {"prefill_replicas": 2}}, "disaggregation.prefill_replicas (2) must leave decode"),
        ({"model": "llama2-70b"}, "workloads[0].model: llama2-70b does not fit"),
        ({"batching": {"policy": "greedy"}}, "workloads[0].batching.policy"),
        ({"autoscale": {"min": 1, "max": 2, "target_utilization": 0.7}}, "exactly one of replicas and autoscale"),
        ({"parallelism": {"tp": 16}}, "workloads[0].parallelism.tp: tp (16) exceeds a node's 8 accelerators"),
        ({"parallelism": {"tp": 8, "pp": 2}}, "workloads[0].parallelism.pp: 2 stages of tp 8 need 2 a100 nodes"),
    ],
)
def test_bad_input_names_the_field(change: dict[str, Any], expected: str) -> None:
    assert expected in problems(scenario(**change))


def test_traffic_errors_name_the_field() -> None:
    data = scenario()
    del data["workloads"][0]["traffic"]["rate_per_s"]
    assert "workloads[0].traffic" in problems(data) and "rate_per_s" in problems(data)
    data = scenario(traffic={"arrival": "trace", "trace": "missing.csv"})
    assert "workloads[0].traffic.trace" in problems(data)


def test_autoscale_needs_a_cold_start() -> None:
    data = copy.deepcopy(scenario(replicas=None, autoscale={"min": 1, "max": 2, "target_utilization": 0.7}))
    del data["workloads"][0]["replicas"]
    data["datacenter"]["storage"] = {}
    assert "workloads[0].autoscale.cold_start_s" in problems(data)


def test_results_are_json_ready() -> None:
    summary = dcsim.run_scenario(scenario()).summary
    json.dumps(summary, allow_nan=False)


def test_swap_preemption_copies_instead_of_recomputing(kv_overflow_traffic: dict[str, Any]) -> None:
    def run(preemption: str) -> dict[str, Any]:
        batching: dict[str, Any] = {"max_batch_size": 256, "preemption": preemption}
        if preemption == "swap":
            batching["swap_interconnect"] = "pcie4"
        data = scenario(replicas=1, traffic=copy.deepcopy(kv_overflow_traffic), batching=batching)
        data["datacenter"]["nodes"][0].update(accelerator="l4", intra_node="pcie4")  # 24 GB: a small KV cache
        return dcsim.run_scenario(data).summary["workloads"]["chat"]

    recompute, swap = run("recompute"), run("swap")
    assert recompute["requests_completed"] == recompute["requests"] and swap["requests_completed"] == swap["requests"]
    assert recompute["preemptions"] > 0 and swap["preemptions"] > 0
    assert recompute["swapped_tokens"] == 0 and swap["swapped_tokens"] > 0
    # copying 0.5 MiB per token over PCIe 4 (31.5 GB/s) is cheaper than prefilling 1,500+ tokens again on an L4
    assert swap["e2e_ms"]["mean"] < recompute["e2e_ms"]["mean"]


def test_shared_traffic_stream_gives_identical_requests() -> None:
    data = scenario()
    data["workloads"][0]["traffic"]["stream"] = "shared"
    second = copy.deepcopy(data["workloads"][0])
    second.update(name="other", replicas=1, routing="round_robin")
    third = copy.deepcopy(second)
    del third["traffic"]["stream"]
    third["name"] = "own"
    data["workloads"] += [second, third]
    requests = dcsim.run_scenario(data).tables["requests"]
    chat, other, own = (requests[requests["workload"] == n].reset_index(drop=True) for n in ("chat", "other", "own"))
    for column in ("arrival_s", "prompt_tokens", "output_tokens"):
        assert chat[column].equals(other[column])
    assert len(own) != len(chat) or not own["arrival_s"].equals(chat["arrival_s"])


def test_inference_workloads_do_not_share_accelerators() -> None:
    data = scenario(replicas=6)
    second = copy.deepcopy(data["workloads"][0])
    second.update(name="other", replicas=4)
    data["workloads"].append(second)
    assert problems(data) == (
        "workloads[1].replicas: only 2 of 4 replicas fit on the accelerators left by the inference workloads "
        "before this one"
    )


def test_weight_offload_fits_a_larger_model_at_the_host_link_speed() -> None:
    traffic = {
        "arrival": "poisson",
        "rate_per_s": 0.5,
        "duration_s": 20,
        "prompt_tokens": {"dist": "constant", "value": 256},
        "output_tokens": {"dist": "constant", "value": 8},
    }
    assert "workloads[0].model: llama2-70b does not fit" in problems(scenario(model="llama2-70b", replicas=1))
    offload = {"weights_fraction": 0.6, "link": "pcie4"}
    w = dcsim.run_scenario(scenario(model="llama2-70b", replicas=1, offload=offload, traffic=traffic))
    chat = w.summary["workloads"]["chat"]
    assert chat["requests_completed"] == chat["requests"] > 0
    # 60% of 138 GB of fp16 weights cross PCIe 4 (31.5 GB/s) every iteration: >= 2.6 s per token
    streamed_s = 0.6 * 68.98e9 * 2 / 31.5e9
    assert chat["tpot_ms"]["p50"] == pytest.approx(streamed_s * 1e3, rel=0.01)
