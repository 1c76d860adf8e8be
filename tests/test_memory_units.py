"""Accelerator memory as vendors state it (GiB for HBM and DRAM), and serving's KV budget as vLLM sizes it:
``gpu_memory_utilization`` of the total, minus weights, activations and workspace."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dcsim.catalog import load_catalog
from dcsim.cli import main
from dcsim.errors import UserInputError
from dcsim.models import TransformerConfig, get_model
from dcsim.parallel.memory import MemoryBreakdown, fits
from dcsim.scenario import load_scenario
from dcsim.serving.costs import (
    CUBLAS_WORKSPACE_BYTES,
    CUSTOM_ALLREDUCE_BYTES,
    NCCL_CHANNEL_BUFFER_BYTES,
    replica_memory,
    workspace_bytes,
)

GIB = 2**30


def _decoder(name: str) -> TransformerConfig:
    cfg = get_model(name)
    assert isinstance(cfg, TransformerConfig)
    return cfg


LLAMA2_70B = _decoder("llama2-70b")

#: Capacities as the vendors state them (shared/reference/datasheets.md), in GiB.
STATED_GIB = {
    "a100-sxm-80gb": 80,
    "h100-sxm": 80,
    "h200-sxm": 141,
    "v100-sxm-32gb": 32,
    "l4": 24,
    "t4": 16,
    "tpu-v4": 32,
    "tpu-v5e": 16,
    "cpu-generic": 512,
}


@pytest.mark.parametrize(("accelerator_id", "gib"), sorted(STATED_GIB.items()))
def test_catalog_capacities_are_binary_bytes(accelerator_id: str, gib: int) -> None:
    acc = load_catalog().accelerator(accelerator_id)
    assert acc.memory_gib == gib
    assert acc.memory_bytes == gib * GIB
    assert acc.memory_gb == pytest.approx(gib * GIB / 1e9)  # the 10^9-byte alias
    assert "GiB" in acc.source["memory_gib"] or "binary" in acc.source["memory_gib"]


def test_an_80_gb_a100_holds_nvidia_smis_81920_mib() -> None:
    a100 = load_catalog().accelerator("a100-sxm-80gb")
    assert a100.memory_bytes == 81920 * 2**20
    assert a100.memory_gb == pytest.approx(85.9, abs=0.01)


def test_catalog_json_keeps_memory_gb_and_adds_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["catalog", "--json"]) == 0
    h100 = json.loads(capsys.readouterr().out)["accelerators"]["h100-sxm"]
    assert h100["memory_gib"] == 80
    assert h100["memory_bytes"] == 80 * GIB
    assert h100["memory_gb"] == pytest.approx(85.899, abs=1e-3)


def test_training_fits_reads_the_same_bytes() -> None:
    a100 = load_catalog().accelerator("a100-sxm-80gb")
    just_over_80e9 = MemoryBreakdown(0, 81e9, 0.0, 0.0, 0.0, 0.0, 1.0)
    assert fits(just_over_80e9, a100)  # 81e9 bytes fit in 80 GiB = 85.9e9 bytes
    assert not fits(just_over_80e9, 80.0)  # a number is GB (10^9 bytes)
    assert fits(just_over_80e9, a100.memory_gb)  # the alias is the same capacity
    over = MemoryBreakdown(0, a100.memory_bytes + 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    assert not fits(over, a100)
    assert not fits(MemoryBreakdown(0, a100.memory_bytes - 1e9, 0.0, 0.0, 0.0, 0.0, 1.0), a100, reserved_gb=1.5)


def test_llama2_70b_tp2_a100_kv_capacity() -> None:
    """The issue's case: Llama-2-70B fp16, TP 2 on A100 80GB, chunked prefill 512, batch cap 128."""
    a100 = load_catalog().accelerator("a100-sxm-80gb")
    mem = replica_memory(LLAMA2_70B, "fp16", a100.memory_bytes, tp=2, max_batch_tokens=512, max_batch_size=128)
    assert mem.weight_bytes == pytest.approx(69.0e9, rel=0.01)  # 69.0e9 parameters x 2 bytes / 2
    assert mem.kv_bytes_per_token == 80 * 2 * 8 * 128 * 2 / 2  # layers x K,V x kv heads x head dim x bytes / tp
    tokens = mem.capacity_blocks * mem.block_tokens
    assert 40_000 <= tokens <= 50_000
    terms = mem.weight_bytes + mem.activation_bytes + mem.workspace_bytes + mem.kv_bytes
    assert terms == pytest.approx(0.9 * a100.memory_bytes, rel=1e-12)
    assert mem.usable_bytes == pytest.approx(0.9 * 80 * GIB)
    # the catalog read as 80e9 bytes and no workspace left under 18,000 tokens (the 17,800)
    old = replica_memory(LLAMA2_70B, "fp16", 80e9, tp=2, max_batch_tokens=512, max_batch_size=128, workspace=0.0)
    assert old.capacity_blocks * old.block_tokens < 18_000


def test_gpu_memory_utilization_moves_the_kv_budget_alone() -> None:
    a100 = load_catalog().accelerator("a100-sxm-80gb")
    args: dict[str, Any] = {"tp": 2, "max_batch_tokens": 512, "max_batch_size": 128}
    base = replica_memory(LLAMA2_70B, "fp16", a100.memory_bytes, **args)
    more = replica_memory(LLAMA2_70B, "fp16", a100.memory_bytes, gpu_memory_utilization=0.95, **args)
    assert more.weight_bytes == base.weight_bytes and more.activation_bytes == base.activation_bytes
    assert more.kv_bytes - base.kv_bytes == pytest.approx(0.05 * a100.memory_bytes)
    too_little = replica_memory(LLAMA2_70B, "fp16", a100.memory_bytes, gpu_memory_utilization=0.8, **args)
    assert not too_little.fits and too_little.kv_bytes == 0.0  # 68.7 GB usable < 69 GB of weights
    with pytest.raises(ValueError, match=r"gpu_memory_utilization must be in \(0, 1\]"):
        replica_memory(LLAMA2_70B, "fp16", a100.memory_bytes, gpu_memory_utilization=1.2, **args)


def test_workspace_terms() -> None:
    assert workspace_bytes(1, 1) == CUBLAS_WORKSPACE_BYTES
    nccl = 2 * 32 * NCCL_CHANNEL_BUFFER_BYTES
    assert NCCL_CHANNEL_BUFFER_BYTES == 4 * 2**20 + 4_915_200 + 524_288
    assert workspace_bytes(1, 2) == CUBLAS_WORKSPACE_BYTES + nccl  # pipeline stages: NCCL, no custom all-reduce
    assert workspace_bytes(2, 1) == CUBLAS_WORKSPACE_BYTES + nccl + CUSTOM_ALLREDUCE_BYTES
    assert workspace_bytes(8, 1) == workspace_bytes(2, 1)  # per GPU, whatever the group size
    assert 0.6e9 < workspace_bytes(2, 1) < 0.7e9


def _scenario(**workload: Any) -> dict[str, Any]:
    return {
        "name": "llama2-70b-tp2-a100",
        "seed": 16,
        "datacenter": {
            "nodes": [
                {
                    "name": "dgx-a100",
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
                "model": "llama2-70b",
                "precision": "fp16",
                "replicas": 1,
                "parallelism": {"tp": 2, "pp": 1},
                "batching": {"policy": "chunked", "max_batch_size": 128, "max_batch_tokens": 512},
                "traffic": {
                    "arrival": "poisson",
                    "rate_per_s": 1.0,
                    "duration_s": 20,
                    "prompt_tokens": {"dist": "lognormal", "mean": 512, "sigma": 0.8, "max": 3072},
                    "output_tokens": {"dist": "lognormal", "mean": 128, "sigma": 0.8, "max": 1024},
                },
                **workload,
            }
        ],
    }


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "most"])
def test_bad_gpu_memory_utilization_is_one_line(bad: Any) -> None:
    with pytest.raises(UserInputError) as info:
        load_scenario(_scenario(gpu_memory_utilization=bad))
    [line] = [str(p) for p in info.value.problems]
    assert line.startswith("workloads[0].gpu_memory_utilization: ")
    assert "\n" not in line


def test_bad_gpu_memory_utilization_exits_2(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_scenario(gpu_memory_utilization=1.5)))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: workloads[0].gpu_memory_utilization: must be <= 1.0 (got 1.5)"]


def test_too_low_gpu_memory_utilization_names_model_with_the_terms() -> None:
    with pytest.raises(UserInputError) as info:
        load_scenario(_scenario(gpu_memory_utilization=0.8))
    [line] = [str(p) for p in info.value.problems]
    assert line.startswith("workloads[0].model: llama2-70b does not fit on a100-sxm-80gb with tp=2, pp=1")
    assert "gpu_memory_utilization 0.8" in line


def test_summary_shows_where_memory_went() -> None:
    from dcsim.run import run_scenario

    scenario = _scenario()
    scenario["workloads"][0]["traffic"]["duration_s"] = 5
    result = run_scenario(load_scenario(copy.deepcopy(scenario)))
    chat = result.summary["workloads"]["chat"]
    memory = chat["accelerator_memory"]["dgx-a100"]
    assert memory["accelerator_gb"] == pytest.approx(85.899, abs=1e-3)
    assert memory["gpu_memory_utilization"] == 0.9
    terms = memory["weights_gb"] + memory["activations_gb"] + memory["workspace_gb"] + memory["kv_gb"]
    assert terms == pytest.approx(memory["usable_gb"]) and memory["usable_gb"] == pytest.approx(0.9 * 85.899, abs=1e-3)
    assert memory["kv_tokens"] == chat["kv_capacity_tokens"]["dgx-a100"]
    assert 40_000 <= memory["kv_tokens"] <= 50_000
