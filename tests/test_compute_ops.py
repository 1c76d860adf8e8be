"""Op FLOP and byte formulas, validation messages and serialisation."""

from __future__ import annotations

import pytest

from dcsim.compute import (
    Attention,
    Conv2d,
    Embedding,
    Matmul,
    Normalization,
    Pointwise,
    Pool2d,
    op_from_dict,
)


def test_matmul_flops_and_bytes():
    op = Matmul(128, 3072, 768, precision="bf16")
    assert op.flops == 2 * 128 * 3072 * 768
    assert op.bytes == (128 * 768 + 768 * 3072 + 128 * 3072) * 2
    assert op.backward().flops == 2 * op.flops
    assert op.kind == "matmul" and op.fit_key == "matmul/fwd/bf16"
    assert Matmul(16, 16, 16, batch=4).kind == "bmm"
    assert Matmul(16, 16, 16, sparse_2_4=True).kind == "matmul_sparse24"


def test_attention_causal_pairs_and_decode_bytes():
    full = Attention(1, 12, 128, 128, 64, causal=False)
    causal = Attention(1, 12, 128, 128, 64, causal=True)
    assert full.pairs == 128 * 128
    assert causal.pairs == 128 * 129 / 2
    assert causal.backward().flops == pytest.approx(2.5 * causal.flops)
    decode = Attention(4, 32, 1, 4096, 128, causal=False, precision="fp16")
    assert decode.bytes == 4 * (2 * 32 * 1 + 2 * 32 * 4096) * 128 * 2
    gqa = Attention(4, 32, 1, 4096, 128, causal=False, kv_heads=8, precision="fp16")
    assert gqa.bytes < decode.bytes


def test_conv_output_size_and_flops():
    stem = Conv2d(1, 3, 64, 224, 224, 7, stride=2, padding=3)
    assert (stem.out_height, stem.out_width) == (112, 112)
    assert stem.flops == 2 * 64 * 112 * 112 * 3 * 49
    assert stem.weight_count == 64 * 3 * 49


def test_memory_ops_move_bytes():
    assert Pointwise("add", 1000).bytes == 3 * 1000 * 4
    assert Pointwise("gelu", 1000, "bf16").bytes == 2 * 1000 * 2
    assert Normalization("layernorm", 10, 768).backward().bytes == 3 * 10 * 768 * 4
    table = Embedding(128, 50257, 768)
    assert table.flops == 0
    assert table.backward().bytes > 50257 * 768 * 4
    assert Pool2d("avgpool", 1, 2048, 7, 7, 7).outputs == 2048


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Matmul(0, 1, 1), r"Matmul.m must be a positive integer, not 0"),
        (lambda: Matmul(1, 1, 1, precision="fp12"), r"unknown precision 'fp12'"),
        (lambda: Matmul(1, 1, 1, phase="both"), r"phase must be 'fwd' or 'bwd', not 'both'"),
        (lambda: Attention(1, 12, 1, 8, 64, kv_heads=5), r"kv_heads \(5\) must divide heads \(12\)"),
        (lambda: Attention(1, 12, 0, 8, 64), r"Attention.q_len must be a positive integer, not 0"),
        (lambda: Attention(1, 12, 4, 8.0, 64), r"Attention.kv_len must be a positive integer, not 8.0"),  # type: ignore[arg-type]
        (lambda: Attention(1, -2, 4, 8, 64), r"Attention.heads must be a positive integer, not -2"),
        (lambda: Pointwise("tanh", 4), r"unknown pointwise kind 'tanh'"),
        (lambda: Normalization("groupnorm", 1, 4), r"unknown normalization kind 'groupnorm'"),
        (lambda: Conv2d(1, 3, 8, 4, 4, 7), r"Conv2d kernel larger than the padded input"),
    ],
)
def test_invalid_ops_name_the_problem(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_attention_sizes_and_checks_as_written():
    """Attention's hot paths (a quick check of positive ints, the pairs inlined in ``flops``) give what the
    formulas give; a bool still passes as an int, as ``_check_positive`` lets it."""
    for q, kv, causal in ((1, 9, False), (5, 5, True), (7, 3, True), (16, 300, True), (16, 300, False)):
        op = Attention(2, 8, q, kv, 64, causal, 2, "bf16")
        q_eff = min(q, kv)
        pairs = q_eff * (kv - q_eff) + q_eff * (q_eff + 1) / 2.0 if causal else float(q * kv)
        assert op.pairs == pairs
        assert op.flops == 4.0 * 2 * 8 * pairs * 64
        assert op.segments == (2 * 8 * q_eff * (q_eff + 1) / 2.0 if causal and q != 1 else 0.0)
        assert op.bytes == 2 * (2 * 8 * q + 2 * 2 * kv) * 64 * 2.0
    assert Attention(True, 2, 3, 4, 8).batch is True


def test_ops_round_trip_through_dicts():
    ops = [
        Matmul(3, 4, 5, batch=2, precision="fp16", phase="bwd"),
        Attention(1, 2, 3, 4, 8, kv_heads=1),
        Conv2d(1, 3, 8, 32, 32, 3, padding=1),
        Pointwise("silu", 10),
        Normalization("rmsnorm", 2, 8),
        Embedding(4, 10, 8),
        Pool2d("maxpool", 1, 4, 8, 8, 3, 2, 1),
    ]
    for op in ops:
        assert op_from_dict(op.to_dict()) == op
    with pytest.raises(ValueError, match="unknown op 'Nope'"):
        op_from_dict({"op": "Nope"})


def test_allocations_are_the_outputs_or_the_gradients():
    assert Matmul(128, 3072, 768).allocations == (128 * 3072 * 4,)
    assert Matmul(128, 3072, 768).backward().allocations == (128 * 768 * 4, 768 * 3072 * 4)
    assert Embedding(16, 1000, 8).backward().allocations == (1000 * 8 * 4,)
    assert Attention(1, 2, 8, 16, 4).backward().allocations == (2 * 8 * 4 * 4, 2 * 16 * 4 * 4, 2 * 16 * 4 * 4)
