"""Model FLOPs conventions against each other, against published figures and against the op lists."""

from __future__ import annotations

import pytest

from dcsim.compute import Attention
from dcsim.models import TransformerConfig, get_model
from dcsim.parallel import (
    attention_flops_per_token,
    megatron_flops_per_iteration,
    megatron_model_flops,
    model_flops_per_sample,
    model_flops_per_token,
    training_flops,
)

DAY_S = 86400.0


def gpt3(layers: int, hidden: int, heads: int, vocab: int = 50257) -> TransformerConfig:
    """A GPT-3 size (Brown et al. 2020, Table 2.1): d_ff = 4 d_model, context 2048, tied embeddings."""
    return TransformerConfig(
        f"gpt3-{layers}x{hidden}",
        layers=layers,
        hidden=hidden,
        heads=heads,
        ffn_hidden=4 * hidden,
        vocab=vocab,
        max_seq_len=2048,
        tied_embeddings=True,
    )


SIZES = {"1.3b": (24, 2048, 16), "6.7b": (32, 4096, 32), "13b": (40, 5120, 40), "175b": (96, 12288, 96)}


def test_six_n_d_matches_gpt3_training_compute():
    """Brown et al. 2020, Table D.1: GPT-3 175B trained on 300B tokens took 3.14e23 FLOPs."""
    assert training_flops(175e9, 300e9) == pytest.approx(3.14e23, rel=0.01)
    with pytest.raises(ValueError, match="tokens must be positive"):
        training_flops(1e9, 0)


def test_megatron_eq3_end_to_end_training_times():
    """Narayanan et al. 2021, Section 5.1: GPT-3 175B on 300B tokens with 1024 A100s at 140 TFLOP/s per GPU
    takes about 34 days; the 1T model on 450B tokens with 3072 GPUs at 163 TFLOP/s about 84 days (their
    Eq. 4, 8*T*P/(n*X), approximates Eq. 3 per token)."""
    cases = [((96, 12288, 1536, 175e9), 300e9, 1024, 140e12, 34), ((128, 25600, 3072, 1e12), 450e9, 3072, 163e12, 84)]
    for (layers, hidden, batch, params), tokens, gpus, flops_per_gpu, days in cases:
        per_iteration = megatron_flops_per_iteration(batch, 2048, layers, hidden, 51200, recompute=True)
        per_token = per_iteration / (batch * 2048)
        assert per_token == pytest.approx(8 * params, rel=0.05)
        assert per_token * tokens / (gpus * flops_per_gpu) / DAY_S == pytest.approx(days, rel=0.05)


def test_recompute_adds_exactly_one_forward_pass_of_the_layers():
    b, s, layers, h, v = 8, 2048, 96, 12288, 51200
    with_recompute = megatron_flops_per_iteration(b, s, layers, h, v, recompute=True)
    without = megatron_flops_per_iteration(b, s, layers, h, v, recompute=False)
    assert with_recompute - without == pytest.approx(24 * b * s * layers * h * h * (1 + s / (6 * h)))
    # ... which is the forward FLOPs of the op list's layers (matmuls, attention over all s x s pairs).
    model = gpt3(*SIZES["175b"], vocab=v)
    ops = model.ops(1, s)
    layer_fwd = 0.0
    for layer, op in ops.steps("fwd"):
        if layer.part != "block":
            continue
        if isinstance(op, Attention):  # count every pair, as Eq. 3 does (the op list's causal op counts half)
            layer_fwd += 4.0 * op.batch * op.heads * s * s * op.head_dim * layer.count
        else:
            layer_fwd += op.flops * layer.count
    assert (with_recompute - without) / b == pytest.approx(layer_fwd, rel=0.01)


@pytest.mark.parametrize("size", ["13b", "175b"])
def test_conventions_agree_with_the_op_list_within_a_few_percent(size):
    model = gpt3(*SIZES[size])
    s = 2048
    op_list = model.ops(1, s).flops("fwd+bwd")
    convention = model_flops_per_token(model, s) * s
    megatron = megatron_model_flops(model, 1, s, recompute=False)
    assert op_list == pytest.approx(convention, rel=0.03)
    assert op_list == pytest.approx(megatron, rel=0.03)
    assert convention == pytest.approx(megatron, rel=0.005)


@pytest.mark.parametrize("size", list(SIZES))
def test_the_gap_to_the_op_list_is_causal_attention(size):
    """The convention counts all s x s query-key pairs, 3x forward; the op list's causal flash attention
    computes s(s+1)/2 pairs and 3.5x forward (the backward recomputes the scores). With that one term
    swapped the two agree within 1% at every GPT-3 size."""
    model = gpt3(*SIZES[size])
    s = 2048
    ops = model.ops(1, s)
    op_attention = sum(op.flops * n for op, n in ops.ops("fwd+bwd") if isinstance(op, Attention))
    convention = model_flops_per_token(model, s) * s
    convention_attention = attention_flops_per_token(model.layers, model.hidden, s) * s
    assert ops.flops("fwd+bwd") == pytest.approx(convention - convention_attention + op_attention, rel=0.01)


def test_moe_counts_active_parameters_only():
    mixtral = get_model("mixtral-8x7b")
    assert isinstance(mixtral, TransformerConfig)
    if getattr(mixtral, "experts", 1) < 2:
        pytest.skip("the zoo has no mixture-of-experts model")
    per_token = model_flops_per_token(mixtral, 4096)
    attention = attention_flops_per_token(mixtral.layers, mixtral.hidden, 4096)
    assert per_token == pytest.approx(6 * mixtral.active_param_count() + attention)
    assert per_token < 6 * mixtral.param_count()


def test_per_sample_flops_for_language_and_vision_models():
    gpt2 = get_model("gpt2-small")
    assert model_flops_per_sample(gpt2, 1024) == pytest.approx(model_flops_per_token(gpt2, 1024) * 1024)
    resnet = get_model("resnet50")
    # He et al. 2016, Table 1: 3.8e9 multiply-adds forward per 224 px image for ResNet-50 (v1); v1.5 moves
    # the stride to the 3x3 convolution, which costs a little more. Training is about 3 x 2 x that.
    assert model_flops_per_sample(resnet, 224) == pytest.approx(resnet.ops(1, 224).flops("fwd+bwd"))
    assert 3 * 2 * 3.8e9 <= model_flops_per_sample(resnet) <= 1.15 * 3 * 2 * 3.8e9
    with pytest.raises(ValueError, match="not a language-model transformer"):
        model_flops_per_token(resnet, 224)
