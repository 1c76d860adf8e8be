"""Mixture-of-experts serving: every expert held in memory, an iteration reads the experts its tokens use."""

from __future__ import annotations

import dataclasses
import math

import pytest

from dcsim.errors import UserInputError
from dcsim.models import get_model
from dcsim.models.inference import active_experts, dense_layers, expected_active_experts, weight_bytes
from dcsim.scenario import load_scenario
from dcsim.serving import IterationCost, replica_memory

MIXTRAL = get_model("mixtral-8x7b")


def test_expected_distinct_experts_formula() -> None:
    assert expected_active_experts(8, 2, 1) == 2.0  # one token uses exactly its k experts
    assert expected_active_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))  # 3.5
    assert expected_active_experts(8, 2, 256) == pytest.approx(8.0)  # a large batch uses them all
    assert expected_active_experts(8, 2, 0) == 0.0
    values = [expected_active_experts(64, 6, t) for t in range(1, 200)]
    assert values == sorted(values) and values[0] == 6.0 and values[-1] < 64
    with pytest.raises(ValueError, match="per_token"):
        expected_active_experts(8, 9, 1)
    assert [active_experts(MIXTRAL, t) for t in (1, 2, 8, 16, 4096)] == [2, 4, 7, 8, 8]


def test_memory_counts_every_expert() -> None:
    # Mistral AI, "Mixtral of experts" (2023-12-11): 46.7B parameters in all, 12.9B used per token
    assert MIXTRAL.param_count() == pytest.approx(46.7e9, rel=0.01)
    assert MIXTRAL.active_param_count() == pytest.approx(12.9e9, rel=0.01)
    memory = replica_memory(MIXTRAL, "fp16", 80 * 2**30, tp=2)
    assert memory.weight_bytes == weight_bytes(MIXTRAL, "fp16", 2) == pytest.approx(46.7e9 * 2 / 2, rel=0.01)
    assert memory.fits and not replica_memory(MIXTRAL, "fp16", 80 * 2**30, tp=1).fits  # 93 GB on one 80 GiB GPU


def expert_rows_and_count(tokens: int) -> tuple[int, int]:
    ops = {layer.name: layer for layer in dense_layers(MIXTRAL, tokens, 1, 2).layers}
    up = ops["moe.expert.up"]
    return up.op.m, up.count  # type: ignore[attr-defined]


def test_iteration_reads_the_experts_its_tokens_use() -> None:
    assert expert_rows_and_count(1) == (1, 2 * MIXTRAL.layers)  # k of E experts, one row each
    assert expert_rows_and_count(2) == (1, 4 * MIXTRAL.layers)  # 3.5 expected, rounded
    assert expert_rows_and_count(4096) == (1024, 8 * MIXTRAL.layers)  # all E, tokens x k / E rows each


def decode_s(cfg: object, batch: int) -> float:
    cost = IterationCost(cfg, "fp16", "h100-sxm", 2, 1, 450e9)  # type: ignore[arg-type]
    return cost.decode_s(batch, batch * 512)


def test_batch_one_decode_between_dense_models_of_total_and_active_parameters() -> None:
    """The same architecture with one dense MLP of 8 experts' width (the total parameters) or of 2 experts'
    width (about the active parameters): a batch-1 decode step reads about k/E of the experts' weights, so it
    lands between the two; a large batch reads them all, so it costs about as much as the dense total."""
    total = dataclasses.replace(MIXTRAL, name="dense-total", experts=1, experts_per_token=1, ffn_hidden=8 * 14336)
    active = dataclasses.replace(MIXTRAL, name="dense-active", experts=1, experts_per_token=1, ffn_hidden=2 * 14336)
    assert total.param_count() == pytest.approx(MIXTRAL.param_count(), rel=0.001)
    assert active.param_count() == pytest.approx(MIXTRAL.active_param_count(), rel=0.001)
    moe, dense_total, dense_active = decode_s(MIXTRAL, 1), decode_s(total, 1), decode_s(active, 1)
    assert dense_active < moe < dense_total
    assert moe < 0.5 * dense_total  # 2 of 8 experts: about a third of the bytes
    # batch 64 uses every expert (64 tokens x 2 of 8): the weight bytes of the dense total model
    assert decode_s(MIXTRAL, 64) > 0.8 * decode_s(total, 64)
    assert math.isfinite(moe)


def inference(model: str, **extra: object) -> dict[str, object]:
    workload = {
        "kind": "inference",
        "name": "moe",
        "model": model,
        "replicas": 1,
        "parallelism": {"tp": 2},
        "traffic": {"arrival": "poisson", "rate_per_s": 1, "duration_s": 5, "prompt_tokens": 128, "output_tokens": 16},
        **extra,
    }
    node = {"name": "h100", "count": 1, "accelerator": "h100-sxm", "intra_node": "nvswitch-h100"}
    return {"name": "moe", "seed": 1, "datacenter": {"nodes": [node]}, "workloads": [workload]}


def test_mixtral_is_served_and_compression_of_its_experts_is_refused() -> None:
    load_scenario(inference("mixtral-8x7b"))
    with pytest.raises(UserInputError) as error:
        load_scenario(inference("mixtral-8x7b", compression={"quantization": {"weights": "int4"}}))
    assert str(error.value).startswith("workloads[0].compression: mixtral-8x7b is a mixture of experts")
