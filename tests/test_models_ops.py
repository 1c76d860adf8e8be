"""Model descriptions: parameter counts from published figures, FLOPs against formulas, sharding."""

from __future__ import annotations

import pytest

from dcsim.compute import Attention, Conv2d, Matmul
from dcsim.models import ResNetConfig, TransformerConfig, get_model, load_models


def test_zoo_has_the_calibration_models_with_sources():
    models = load_models()
    assert {"gpt2-small", "bert-base", "resnet50"} <= set(models)
    assert all(config.source for config in models.values())
    with pytest.raises(KeyError, match="unknown model 'gpt5'"):
        get_model("gpt5")


def test_parameter_counts_match_published_figures():
    # GPT-2 small as released: 124,439,808 (tied embeddings); BERT-base ~110M without the pooler;
    # torchvision ResNet-50: 25,557,032.
    assert get_model("gpt2-small").param_count() == 124_439_808
    assert get_model("bert-base").param_count() == pytest.approx(110e6, rel=0.01)
    assert get_model("resnet50").param_count() == 25_557_032


def test_narayanan_parameter_formula():
    """P = 12 l h^2 (1 + 13/(12h) + (V + s)/(12 l h)) (Narayanan et al. SC'21, Eq. 2), untied head."""
    cfg = TransformerConfig(
        "gpt", layers=24, hidden=2048, heads=16, ffn_hidden=8192, vocab=51200, max_seq_len=2048, tied_embeddings=True
    )
    layers, h, v, s = 24, 2048, 51200, 2048
    formula = 12 * layers * h * h * (1 + 13 / (12 * h) + (v + s) / (12 * layers * h))
    assert cfg.param_count() == pytest.approx(formula, rel=1e-3)


def test_forward_flops_match_2n_per_token_plus_attention():
    cfg = get_model("gpt2-small")
    batch, seq = 2, 512
    ops = cfg.ops(batch, seq)
    matmul_flops = sum(op.flops * n for op, n in ops.ops("fwd") if isinstance(op, Matmul))
    non_embedding = cfg.param_count() - cfg.vocab * cfg.hidden - cfg.max_seq_len * cfg.hidden
    head = cfg.vocab * cfg.hidden  # tied: the head's matmul runs but holds no parameters of its own
    assert matmul_flops == pytest.approx(2 * batch * seq * (non_embedding + head), rel=0.01)
    attention = sum(op.flops * n for op, n in ops.ops("fwd") if isinstance(op, Attention))
    assert attention == pytest.approx(12 * 4 * batch * 12 * (seq * (seq + 1) / 2) * 64)


def test_backward_is_derived_in_reverse_with_twice_the_matmul_flops():
    ops = get_model("bert-base").ops(1, 128)
    fwd = [op for op, _ in ops.ops("fwd")]
    bwd = [op for op, _ in ops.ops("bwd")]
    assert all(op.phase == "bwd" for op in bwd)
    assert bwd[0].kind == "softmax"  # the loss, the last forward op, is the first backward one
    assert bwd[-1].kind == "add"  # the tied table's two gradients are added at the very end
    assert len(bwd) == len(fwd) + 2  # the loss runs only in training; the accumulation only backward
    mm = [op for op in fwd if isinstance(op, Matmul)]
    assert sum(op.backward().flops for op in mm) == 2 * sum(op.flops for op in mm)
    assert ops.flops("fwd+bwd") > 2.9 * ops.flops("fwd")


def test_tensor_parallel_shards_split_the_work():
    cfg = TransformerConfig(
        "t",
        layers=4,
        hidden=1024,
        heads=16,
        ffn_hidden=4096,
        vocab=32000,
        max_seq_len=2048,
        kv_heads=4,
        norm="rmsnorm",
        activation="swiglu",
        positional="rope",
        bias=False,
    )
    full, shard = cfg.ops(1, 256), cfg.ops(1, 256, tp=4)
    assert shard.flops("fwd") < 0.3 * full.flops("fwd")
    assert cfg.param_count(tp=4) < cfg.param_count()
    names = {layer.name for layer in full.layers}
    assert {"mlp.gate", "attn.core"} <= names and "embed.positions" not in names
    with pytest.raises(ValueError, match=r"tp \(3\) must divide heads \(16\)"):
        cfg.ops(1, 8, tp=3)


def test_invalid_configs_name_the_field():
    with pytest.raises(ValueError, match=r"heads \(7\) must divide hidden \(768\)"):
        TransformerConfig("x", 1, 768, 7, 3072, 100, 16)
    with pytest.raises(ValueError, match="norm must be one of layernorm, rmsnorm"):
        TransformerConfig("x", 1, 768, 12, 3072, 100, 16, norm="batchnorm")
    with pytest.raises(ValueError, match=r"seq_len \(32\) exceeds max_seq_len \(16\)"):
        TransformerConfig("x", 1, 768, 12, 3072, 100, 16).ops(1, 32)
    with pytest.raises(ValueError, match="blocks and widths"):
        ResNetConfig("r", blocks=(1, 2), widths=(64,))


def test_resnet50_forward_flops():
    """About 4.1 GMACs (8.2 GFLOPs) of convolutions per 224-pixel image (He et al. 2016, Table 1)."""
    ops = get_model("resnet50").ops(1, 224)
    conv = sum(op.flops * n for op, n in ops.ops("fwd") if isinstance(op, Conv2d))
    assert conv == pytest.approx(8.18e9, rel=0.02)
    assert get_model("resnet50").ops(4, 224).flops("fwd") == pytest.approx(4 * ops.flops("fwd"), rel=1e-6)


def test_time_and_breakdown_sum_the_same_predictions():
    ops = get_model("gpt2-small").ops(1, 64)
    predict = lambda op: op.flops * 1e-12 + 1e-6  # noqa: E731
    total = ops.time(predict, "fwd+bwd")
    assert sum(ops.breakdown(predict, "fwd+bwd").values()) == pytest.approx(total)
    with pytest.raises(ValueError, match="phase must be one of"):
        ops.time(predict, "backward")
