"""Host memory in serving: a node's memory_gb bounds swapped-out KV caches and offloaded weights and KV,
shared by the replicas on it; KV-cache offload grows the capacity and slows decode."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import yaml

import dcsim
from dcsim.cli import main
from dcsim.errors import UserInputError
from dcsim.models import TransformerConfig, get_model
from dcsim.models.inference import kv_bytes_per_token
from dcsim.scenario import load_scenario
from dcsim.serving import IterationCost, replica_memory
from dcsim.serving.hostmem import HostMemory, offloaded_kv

LLAMA = get_model("llama2-7b")
assert isinstance(LLAMA, TransformerConfig)
KV = kv_bytes_per_token(LLAMA, "fp16")  # 512 KiB per token
PCIE4 = 31.5e9  # catalog pcie4, bytes/s


def _scenario(memory_gb: float | None = None, replicas: int = 1, **workload: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "name": "l4x8",
        "count": 1,
        "accelerator": "l4",
        "accelerators_per_node": 8,
        "intra_node": "pcie4",
        "usd_per_hour": 8.0,
    }
    if memory_gb is not None:
        node["memory_gb"] = memory_gb
    spec: dict[str, Any] = {
        "kind": "inference",
        "name": "chat",
        "model": "llama2-7b",
        "replicas": replicas,
        "traffic": {
            "arrival": "poisson",
            "rate_per_s": 0.5,
            "duration_s": 20,
            "prompt_tokens": {"dist": "constant", "value": 1024},
            "output_tokens": {"dist": "constant", "value": 128},
        },
    }
    spec.update(workload)
    return {"name": "host-memory", "seed": 3, "datacenter": {"nodes": [node]}, "workloads": [spec]}


def _chat(data: dict[str, Any]) -> dict[str, Any]:
    return dcsim.run_scenario(data).summary["workloads"]["chat"]


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(UserInputError) as error:
        dcsim.run_scenario(data)
    return str(error.value)


def test_host_memory_reserves_what_fits() -> None:
    host = HostMemory(10.0)
    assert host.reserve(6.0) and not host.reserve(5.0) and host.used == 6.0
    host.release(6.0)
    assert host.reserve(10.0) and host.peak == 10.0 and host.free == 0.0
    assert HostMemory().free == math.inf
    with pytest.raises(ValueError, match="released more"):
        host.release(11.0)


# ---------------------------------------------------------------------------------------------- swapping
def _swap(memory_gb: float | None, traffic: dict[str, Any]) -> dict[str, Any]:
    # ``traffic`` overflows one L4's ~14k-token KV cache, so sequences are preempted; each swapped-out sequence
    # takes ~0.8-1.1 GB of host memory (512 KiB per token)
    batching = {"max_batch_size": 256, "preemption": "swap", "swap_interconnect": "pcie4"}
    return _chat(_scenario(memory_gb, traffic=traffic, batching=batching))


def test_swaps_that_do_not_fit_in_host_memory_fall_back_to_recompute(kv_overflow_traffic: dict[str, Any]) -> None:
    free, tight, tiny = (_swap(memory, copy.deepcopy(kv_overflow_traffic)) for memory in (None, 1.5, 0.5))
    for w in (free, tight, tiny):
        assert w["requests_completed"] == w["requests"] > 0
        assert w["preemptions"] > 0
    assert free["swap_fallbacks"] == 0
    # 1.5 GB holds one swapped-out sequence at a time: the others are recomputed
    assert 0 < tight["swap_fallbacks"] < tight["preemptions"]
    assert 0 < tight["swapped_tokens"] < free["swapped_tokens"]
    assert 0 < tight["host_memory_peak_gb"] <= 1.5 < free["host_memory_peak_gb"]
    # no sequence fits in 0.5 GB: every preemption recomputes, as with preemption: recompute
    assert tiny["swap_fallbacks"] == tiny["preemptions"] and tiny["swapped_tokens"] == 0
    assert tiny["host_memory_peak_gb"] == 0.0


# ---------------------------------------------------------------------------------------------- offloads
def test_weight_offload_that_does_not_fit_host_memory_is_refused_at_load_time(tmp_path: Any, capsys: Any) -> None:
    # 60% of Llama-2-70B's 138 GB of fp16 weights is 82.8 GB per replica
    offload = {"weights_fraction": 0.6, "link": "pcie4"}
    data = _scenario(64, model="llama2-70b", offload=offload)
    data["datacenter"]["nodes"][0].update(accelerator="a100-sxm-80gb", intra_node="nvswitch-a100")
    with pytest.raises(UserInputError) as error:
        load_scenario(data)
    message = str(error.value)
    assert message.startswith("workloads[0].offload.weights_fraction: 1 replicas on a l4x8 node offload 82.8 GB")
    assert "\n" not in message
    path = tmp_path / "offload.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check", str(path)]) == 2
    assert "offload.weights_fraction" in capsys.readouterr().err
    data["datacenter"]["nodes"][0]["memory_gb"] = 512
    load_scenario(data)


def test_replicas_on_a_node_share_its_host_memory() -> None:
    # two workloads each offloading 0.6 x 13.5 GB = 8.1 GB per replica on one 20 GB node: each fits alone
    # (load-time check), together the second workload's second replica does not (at run start)
    offload = {"weights_fraction": 0.6, "link": "pcie4"}
    data = _scenario(20, replicas=1, offload=offload)
    alone = _chat(copy.deepcopy(data))
    assert alone["host_memory_peak_gb"] == pytest.approx(0.6 * 2 * LLAMA.param_count() / 1e9, rel=0.01)
    second = copy.deepcopy(data["workloads"][0])
    second.update(name="other", replicas=2)
    data["workloads"].append(second)
    load_scenario(data)
    message = _error(data)
    assert message.startswith("workloads[1].offload.weights_fraction: 8.1 GB of offloaded weights per replica")
    assert "l4x8-0" in message and "\n" not in message


def test_kv_offload_grows_the_capacity_by_the_host_blocks() -> None:
    memory = replica_memory(LLAMA, "fp16", 24 * 2**30)
    blocks, host = offloaded_kv(memory, 0.5, 1)
    assert blocks == pytest.approx(2 * memory.capacity_blocks, abs=1)
    assert host == pytest.approx(blocks * 16 * KV * 0.5)
    assert offloaded_kv(memory, 0.0, 1) == (memory.capacity_blocks, 0.0)
    base = _chat(_scenario(None))
    half = _chat(_scenario(None, offload={"kv_fraction": 0.5, "link": "pcie4"}))
    assert half["kv_capacity_tokens"]["l4x8"] == pytest.approx(2 * base["kv_capacity_tokens"]["l4x8"], abs=16)
    assert half["host_memory_peak_gb"] == pytest.approx(host / 1e9)
    assert half["requests_completed"] == half["requests"] == base["requests"]


def test_kv_offload_reads_the_offloaded_part_over_the_host_link_every_step() -> None:
    cost = IterationCost(LLAMA, "fp16", "l4")
    compute = cost.decode_s(16, 16 * 4096)
    offloaded = IterationCost(LLAMA, "fp16", "l4")
    offloaded.kv_offload_s_per_token = 0.5 * KV / PCIE4
    link = 0.5 * 16 * 4096 * KV / PCIE4  # 545 ms: half of 32 GiB of context over PCIe 4
    assert link > compute  # reading the whole cache from the L4's 300 GB/s memory takes ~0.1 s
    assert offloaded.decode_s(16, 16 * 4096) == pytest.approx(link)
    assert offloaded.decode_s(1, 64) == pytest.approx(cost.decode_s(1, 64))  # short contexts: compute-bound
    # prefill chunks read their past and write their new tokens' offloaded part
    chunk = offloaded.iteration_s(0, 0, [(4096, 4096)], 1)
    assert chunk >= 0.5 * 8192 * KV / PCIE4
    # in a run (3,072-token prompts), decode slows as more of the cache lives on the host
    p50 = []
    for f in (0, 0.5, 0.75):
        data = _scenario(None, **({"offload": {"kv_fraction": f, "link": "pcie4"}} if f else {}))
        data["workloads"][0]["traffic"]["prompt_tokens"]["value"] = 3072
        p50.append(_chat(data)["tpot_ms"]["p50"])
    assert p50[0] < p50[1] < p50[2]
    assert p50[2] > 2 * p50[0]


def test_kv_offload_that_does_not_fit_host_memory_names_kv_fraction() -> None:
    # 0.9 of every block in host memory: ~10x the L4's KV memory (~7 GB), ~65 GB on the host per replica
    data = _scenario(32, offload={"kv_fraction": 0.9, "link": "pcie4"})
    with pytest.raises(UserInputError) as error:
        load_scenario(data)
    assert str(error.value).startswith("workloads[0].offload.kv_fraction: 1 replicas on a l4x8 node offload 0.0 GB")


def test_offload_needs_something_offloaded() -> None:
    with pytest.raises(UserInputError, match="offload: give weights_fraction"):
        load_scenario(_scenario(None, offload={"link": "pcie4"}))
