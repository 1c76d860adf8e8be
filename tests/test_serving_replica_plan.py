"""Serving's replica plan (:mod:`dcsim.scenario.replica_plan`) is the one computation of replica memory, KV
capacity and offloads that ``check`` (load time) and the runner (run time) both use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dcsim.engine.simulation import Simulation
from dcsim.run import inference_runner
from dcsim.scenario import load_scenario, replica_plan
from dcsim.scenario.inference_spec import InferenceWorkload
from dcsim.scenario.replica_plan import ReplicaPlan

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

L4_NODE = {
    "name": "l4x8",
    "count": 1,
    "accelerator": "l4",
    "accelerators_per_node": 8,
    "intra_node": "pcie4",
    "usd_per_hour": 8.0,
    "memory_gb": 512,
}


def _offload_scenario() -> dict[str, Any]:
    """Two Llama-2-7B replicas on L4s keeping half of every KV block and a fifth of the weights in host memory."""
    return {
        "name": "offload-plan",
        "seed": 3,
        "datacenter": {"nodes": [L4_NODE]},
        "workloads": [
            {
                "kind": "inference",
                "name": "chat",
                "model": "llama2-7b",
                "replicas": 2,
                "offload": {"kv_fraction": 0.5, "weights_fraction": 0.2, "link": "pcie4"},
                "traffic": {
                    "arrival": "poisson",
                    "rate_per_s": 0.5,
                    "duration_s": 5,
                    "prompt_tokens": {"dist": "constant", "value": 512},
                    "output_tokens": {"dist": "constant", "value": 64},
                },
            }
        ],
    }


@pytest.mark.parametrize(
    "source",
    [
        "llama2_7b_chat_a100.yaml",
        "mixed_a100_l4.yaml",
        "llama2_7b_compression.yaml",
        "bert_base_compression.yaml",
        "offload",
    ],
)
def test_check_and_run_build_the_same_plan(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``check`` and the runner each call :func:`plan_replicas` once per workload, and their plans agree on
    every node type the runner places replicas on (memory, KV capacity, offloads)."""
    calls: list[tuple[str, ReplicaPlan]] = []
    real = replica_plan.plan_replicas

    def spy(spec: InferenceWorkload, *args: Any) -> ReplicaPlan:
        plan = real(spec, *args)
        calls.append((spec.name, plan))
        return plan

    monkeypatch.setattr(replica_plan, "plan_replicas", spy)
    monkeypatch.setattr(inference_runner, "plan_replicas", spy)
    scenario = load_scenario(_offload_scenario() if source == "offload" else SCENARIOS / source)
    specs = [w for w in scenario.workloads if isinstance(w, InferenceWorkload)]
    checked = dict(calls)
    assert sorted(checked) == sorted(s.name for s in specs) and len(calls) == len(specs)
    placer = inference_runner.SharedReplicaPlacer(scenario)
    for spec in specs:
        runner = inference_runner.InferenceRunner(spec, Simulation(scenario.seed), scenario, placer)
        assert calls[-1] == (spec.name, runner.plan)  # the runner's plan is the function's
        assert runner.plan.nodes, spec.name
        for name, planned in runner.plan.nodes.items():
            assert planned == checked[spec.name].nodes[name]
            assert runner.memory[name] == planned.memory
            for replica, place in zip(runner.replicas, runner.places, strict=True):
                if place.node.name == name:
                    assert replica.kv.capacity * planned.memory.block_tokens == planned.kv_tokens
    assert len(calls) == 2 * len(specs)


def test_kv_offload_in_the_plan_grows_the_capacity_check_judges_requests_by() -> None:
    """The KV capacity after offload is computed once: the plan's, used for the runner's caches and by
    ``check``'s rule that the smallest request must fit a replica's KV cache."""
    data = _offload_scenario()
    scenario = load_scenario(data)
    spec = scenario.workloads[0]
    assert isinstance(spec, InferenceWorkload)
    nodes = spec.host_nodes(scenario)
    plan = replica_plan.plan_replicas(spec, nodes, spec.architecture(), spec.served())
    planned = plan.nodes["l4x8"]
    dense = replica_plan.accelerator_memory(spec, nodes[0], planned.accelerator, spec.architecture(), None)
    assert planned.kv_tokens == pytest.approx(2 * dense.capacity_blocks * dense.block_tokens, abs=16)
    assert planned.offload_kv_bytes > 0 and planned.offload_weight_bytes > 0 and planned.offload_s > 0
    assert plan.kv_tokens_by_accelerator() == {"l4": planned.kv_tokens}
    # a request just above the dense capacity is served with the offload, refused without it
    tokens = dense.capacity_blocks * dense.block_tokens + 64
    data["workloads"][0]["traffic"]["prompt_tokens"] = {"dist": "constant", "value": tokens}
    load_scenario(data)
    data["workloads"][0]["offload"] = {"weights_fraction": 0.2, "link": "pcie4"}
    with pytest.raises(Exception, match=r"workloads\[0\]\.traffic\.prompt_tokens: the smallest request"):
        load_scenario(data)
