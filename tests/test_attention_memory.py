"""Attention implementation (flash | eager): activation memory per accelerator against Korthikanti et al.'s
published formulas, the device default, and the scenario field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dcsim.catalog import load_catalog
from dcsim.errors import UserInputError
from dcsim.models import TransformerConfig, get_model
from dcsim.parallel import ParallelPlan, fits, training_memory
from dcsim.parallel.attention import default_attention, supports_flash_attention
from dcsim.parallel.memory import LSE_BYTES, transformer_layer_activation_bytes
from dcsim.parallel.step import TrainingSetup
from dcsim.scenario import load_scenario

GB = 1e9
# GPT-3 175B (Brown et al. 2020, Table 2.1), the paper's running example: 96 layers, h 12288, 96 heads.
GPT3 = TransformerConfig("gpt3-175b-inline", 96, 12288, 96, 4 * 12288, 51200, 2048, tied_embeddings=True)


@pytest.mark.parametrize("sp", [False, True])
@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
@pytest.mark.parametrize("attention", ["eager", "flash"])
def test_memory_per_accelerator_matches_korthikanti_table_2(attention, recompute, sp):
    """Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", Table 2:
    activation bytes per layer sbh(10 + 24/t + 5as/(ht)) with tensor parallelism, sbh/t(34 + 5as/h) with
    sequence parallelism, the 5as/h term dropped by selective recompute, 2sbh (/t with SP) with full recompute;
    Section 4.2.3: 1F1B's first stage holds pp microbatches of L/pp layers (L layers' worth) plus, Section 4.3,
    the embedding dropout mask sbh per microbatch (/t with SP). The table counts unfused attention; with
    FlashAttention the 5as/h term is replaced by the fp32 log-sum-exp, 4asb/t bytes (none of it under
    selective recompute)."""
    s, b, h, a, t, pp, layers = 2048, 1, 12288, 96, 8, 8, 96
    sbh = s * b * h
    split = t if sp else 1
    scores = {"eager": sbh * 5 * a * s / (h * t), "flash": LSE_BYTES * a * s * b / t}[attention]
    per_layer = {
        "none": sbh * (10 / split + 24 / t) + scores,
        "selective": sbh * (10 / split + 24 / t),
        "full": 2 * sbh / split,
    }[recompute]
    plan = ParallelPlan(dp=16, tp=t, pp=pp, zero_stage=1, recompute=recompute, sequence_parallel=sp)
    memory = training_memory(GPT3, plan, seq_len=s, global_batch_size=1536, stage=0, attention=attention)
    assert memory.activations_bytes == pytest.approx(per_layer * layers + sbh * pp / split, rel=1e-12)


def test_flash_attention_memory_has_no_s_squared_term():
    """Doubling the sequence doubles a layer's FlashAttention activations exactly (every term is linear in s);
    eager attention's scores grow fourfold."""
    for tp, sp in ((1, False), (4, False), (4, True)):
        for s in (512, 2048, 8192):
            flash = [
                transformer_layer_activation_bytes(n, 2, 4096, 32, tp, sequence_parallel=sp, attention="flash")
                for n in (s, 2 * s)
            ]
            assert flash[1] == pytest.approx(2 * flash[0], rel=1e-12)
            eager = [
                transformer_layer_activation_bytes(n, 2, 4096, 32, tp, sequence_parallel=sp, attention="eager")
                for n in (s, 2 * s)
            ]
            # the scores' 5as^2b/t: doubling s adds 5a(2s)^2b/t - 2 * 5as^2b/t = 10as^2b/t over linear growth
            assert eager[1] - 2 * eager[0] == pytest.approx(10 * 32 * s * s * 2 / tp, rel=1e-12)
    llama = get_model("llama2-7b")
    plan = ParallelPlan(dp=8, zero_stage=3, microbatch_size=2)
    short, long = (
        training_memory(llama, plan, seq_len=n, global_batch_size=16).activations_bytes for n in (2048, 4096)
    )
    assert long == pytest.approx(2 * short, rel=1e-12)


def test_7b_at_microbatch_6_fits_an_h100_with_flash_attention_not_eager():
    """Issue 19's example: Llama-2-7B, micro-batch 6, sequence 2048. Eager accounting keeps ~186 GB of
    activations (the s^2 scores are 80 of the 114 sbh per layer); FlashAttention keeps ~57 GB, and with
    FSDP over 8 GPUs (13.6 GB of model state) the step fits an 80 GiB H100, as it does in practice."""
    llama = get_model("llama2-7b")
    h100 = load_catalog().accelerator("h100-sxm")
    plan = ParallelPlan(dp=8, zero_stage=3, microbatch_size=6)
    eager = training_memory(llama, plan, seq_len=2048, global_batch_size=48, attention="eager")
    flash = training_memory(llama, plan, seq_len=2048, global_batch_size=48, attention="flash")
    assert 180 < eager.activations_bytes / GB < 190
    assert 50 < flash.activations_bytes / GB < 60
    assert eager.model_state_bytes == flash.model_state_bytes
    assert not fits(eager, h100)
    assert fits(flash, h100)


def test_flash_is_the_default_on_ampere_or_later_gpus():
    catalog = load_catalog()
    assert [supports_flash_attention(catalog.accelerator(a)) for a in ("a100-sxm-80gb", "h100-sxm", "l4")] == [True] * 3
    assert [default_attention(a) for a in ("v100-sxm-32gb", "t4", "tpu-v4", "host-cpu")] == ["eager"] * 4
    model = get_model("gpt2-small")
    assert TrainingSetup(model, "h100-sxm", 8, 1024).attention == "flash"
    assert TrainingSetup(model, "v100-sxm-32gb", 8, 1024).attention == "eager"
    assert TrainingSetup(model, "h100-sxm", 8, 1024, attention="eager").attention == "eager"
    with pytest.raises(ValueError, match="attention must be one of flash, eager"):
        TrainingSetup(model, "h100-sxm", 8, 1024, attention="fused")


def _scenario(accelerator: str, **workload: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "attention",
        "datacenter": {
            "nodes": [{"name": "n", "count": 1, "accelerator": accelerator, "accelerators_per_node": 8}],
        },
        "workloads": [
            {
                "kind": "training",
                "name": "llama",
                "model": "llama2-7b",
                "parallelism": {"dp": 8, "fsdp": True, "microbatch_size": 6},
                "global_batch_size": 48,
                "seq_len": 2048,
                "steps": 10,
                **workload,
            }
        ],
    }
    return copy.deepcopy(spec)


def test_scenario_attention_field():
    setup = load_scenario(_scenario("h100-sxm")).workloads[0].setup("h100-sxm")
    assert setup.attention == "flash"
    eager = load_scenario(_scenario("h100-sxm", attention="eager")).workloads[0].setup("h100-sxm")
    assert eager.attention == "eager"
    with pytest.raises(UserInputError) as info:
        load_scenario(_scenario("v100-sxm-32gb", attention="flash", precision="fp16"))
    [line] = [str(p) for p in info.value.problems]
    assert line.startswith("workloads[0].attention: flash needs an Ampere-or-later GPU")
    with pytest.raises(UserInputError) as info:
        load_scenario(_scenario("h100-sxm", attention="fused"))
    assert [str(p).split(":")[0] for p in info.value.problems] == ["workloads[0].attention"]
