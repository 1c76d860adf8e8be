"""Batching policies from a scenario: every registered name and alias, engine field names, ``module:Class``,
and one-line errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

import dcsim
from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario
from dcsim.serving import Replica
from dcsim.serving.batching import BATCH_POLICIES, Orca


class CountingOrca(Orca):
    """A user's policy, loaded as ``module:Class``: Orca, counting its iteration boundaries."""

    boundaries = 0

    def plan(self, replica: Replica, now: float) -> None:
        CountingOrca.boundaries += 1
        super().plan(replica, now)


def scenario(**batching: Any) -> dict[str, Any]:
    return {
        "name": "batching-test",
        "seed": 5,
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
                "batching": batching,
                "traffic": {
                    "arrival": "poisson",
                    "rate_per_s": 6,
                    "duration_s": 20,
                    "prompt_tokens": {"dist": "lognormal", "mean": 1024, "sigma": 0.5, "max": 4096},
                    "output_tokens": {"dist": "lognormal", "mean": 128, "sigma": 0.5, "max": 512},
                },
            }
        ],
        "outputs": {"plots": False},
    }


def summary(**batching: Any) -> dict[str, Any]:
    return dcsim.run_scenario(scenario(**batching)).summary["workloads"]["chat"]


@pytest.mark.parametrize("name", [*BATCH_POLICIES.names(), "continuous", "chunked"])
def test_every_policy_runs_from_a_scenario(name: str) -> None:
    w = summary(policy=name)
    assert w["requests_completed"] == w["requests"] > 0


def test_aliases_and_engine_field_names_give_the_same_run() -> None:
    assert summary(policy="continuous") == summary(policy="orca")
    sarathi = summary(policy="sarathi", max_batch_tokens=512)
    assert summary(policy="chunked", max_batch_tokens=512) == sarathi
    assert summary(policy="orca", chunked_prefill=True, max_batch_tokens=512) == sarathi
    assert summary(policy="vllm", chunked_prefill=True, max_num_batched_tokens=512) == sarathi
    assert summary(policy="trtllm", max_num_tokens=4096, max_num_seqs=64) == summary(
        policy="trtllm", max_batch_tokens=4096, max_batch_size=64
    )


def test_policies_differ_where_the_engines_do() -> None:
    vllm, sarathi = summary(policy="vllm"), summary(policy="sarathi", max_batch_tokens=512)
    # prefill-first: vLLM's new requests wait less for their first token, its decodes wait for prefills
    assert vllm["ttft_ms"]["p50"] < sarathi["ttft_ms"]["p50"]
    assert vllm["tpot_ms"]["p90"] > sarathi["tpot_ms"]["p90"]


def test_module_class_policy_loads() -> None:
    assert summary(policy=f"{__name__}:CountingOrca") == summary(policy="orca")
    assert CountingOrca.boundaries > 100


def problems(**batching: Any) -> str:
    with pytest.raises(UserInputError) as error:
        load_scenario(scenario(**batching))
    return str(error.value)


@pytest.mark.parametrize(
    ("batching", "expected"),
    [
        ({"policy": "greedy"}, "workloads[0].batching.policy: unknown batching policy 'greedy'"),
        ({"policy": "os:path"}, "workloads[0].batching.policy: 'os:path' is not a BatchPolicy subclass"),
        ({"max_num_seqs": 0}, "workloads[0].batching.max_num_seqs"),
        ({"max_batch_size": 8, "max_num_seqs": 8}, "max_batch_size and max_num_seqs are one field"),
        ({"policy": "orca", "watermark": 0.1}, "watermark is vllm's"),
        ({"policy": "vllm", "watermark": 1.5}, "workloads[0].batching.watermark"),
        ({"policy": "static", "chunked_prefill": True}, "chunked_prefill needs an iteration-level policy"),
    ],
)
def test_bad_batching_names_the_field(batching: dict[str, Any], expected: str) -> None:
    assert expected in problems(**batching)
