"""Compression transforms: what each technique changes (params, bytes, FLOPs, time) and the device rules."""

from __future__ import annotations

import pytest

from dcsim.compression import apply_recipe
from dcsim.compression.transforms import compressible, device_support
from dcsim.compute import predict
from dcsim.compute.ops import Attention, Matmul, SparseMatmul, WeightOnlyMatmul
from dcsim.models import ModelOps, get_model

LLAMA = get_model("llama2-7b")
AWQ = {"quantization": {"weights": "int4", "activations": "fp16", "method": "awq"}}
W8A8 = {"quantization": {"weights": "int8", "activations": "int8", "method": "smoothquant"}}
FP8 = {"quantization": {"weights": "fp8", "activations": "fp8", "method": "fp8"}}


def _time(ops: ModelOps, device: str) -> float:
    return ops.time(lambda op: predict(op, device))


def _pair(recipe, device, batch, seq, model=LLAMA, precision="fp16"):
    """(uncompressed seconds, compressed seconds, compressed ops) of one forward step on ``device``."""
    base = apply_recipe(model, None, precision)
    cm = apply_recipe(model, recipe, precision)
    ops, _ = cm.transform_ops(cm.step_ops(batch, seq), device)
    return _time(base.step_ops(batch, seq), device), _time(ops, device), ops


def _linears(ops: ModelOps):
    return [
        layer.op
        for layer in ops.layers
        if layer.weights and layer.part == "block" and layer.name.endswith(("qkv", "proj", "up", "down"))
    ]


def test_structured_channel_and_layer_pruning_shrink_params_and_flops():
    gpt2 = get_model("gpt2-small")
    base = apply_recipe(gpt2, None)
    channels = apply_recipe(gpt2, {"pruning": {"sparsity": 0.5, "pattern": "structured", "target": "channels"}})
    assert channels.config.ffn_hidden == 1536
    mlp_params = 2 * 768 * 3072 * 12  # up and down matrices of 12 layers
    assert base.param_count() - channels.param_count() == pytest.approx(mlp_params / 2, rel=0.01)
    assert channels.step_ops(1, 128).flops() < base.step_ops(1, 128).flops()
    layers = apply_recipe(gpt2, {"pruning": {"sparsity": 0.25, "pattern": "structured", "target": "layers"}})
    assert layers.config.layers == 9
    dropped = apply_recipe(gpt2, {"layer_dropping": {"layers": 3}})
    assert dropped.param_count() == layers.param_count()
    assert dropped.kv_bytes_per_token_factor == pytest.approx(0.75)


def test_head_pruning_keeps_head_width_and_whole_kv_groups():
    cm = apply_recipe(LLAMA, {"pruning": {"sparsity": 0.25, "pattern": "structured", "target": "heads"}})
    assert cm.kept_heads == 24
    ops = cm.step_ops(1, 64)
    core = next(layer.op for layer in ops.layers if layer.name == "attn.core")
    assert isinstance(core, Attention) and (core.heads, core.kv_heads, core.head_dim) == (24, 24, 128)
    qkv = next(layer.op for layer in ops.layers if layer.name == "attn.qkv")
    assert isinstance(qkv, Matmul) and qkv.n == 3 * 24 * 128
    assert cm.kv_bytes_per_token_factor == pytest.approx(0.75)
    attention_params = 4 * 4096 * 4096 * 32
    assert apply_recipe(LLAMA, None).param_count() - cm.param_count() == pytest.approx(attention_params / 4, rel=0.01)
    gqa = apply_recipe(
        get_model("llama3-8b"), {"pruning": {"sparsity": 0.25, "pattern": "structured", "target": "heads"}}
    )
    assert gqa.kept_heads == 24  # 6 of 8 key-value groups of 4 query heads
    core = next(layer.op for layer in gqa.step_ops(1, 64, tp=2).layers if layer.name == "attn.core")
    assert isinstance(core, Attention) and (core.heads, core.kv_heads) == (12, 3)


def test_weight_only_int4_changes_weight_bytes_not_params():
    base = apply_recipe(LLAMA, None, "fp16")
    cm = apply_recipe(LLAMA, AWQ, "fp16")
    assert cm.param_count() == base.param_count()
    block = sum(layer.params * layer.count for layer in base.step_ops(1, 1).layers if compressible(layer))
    saved = base.weight_bytes() - cm.weight_bytes()
    # block Linears go from 2 bytes to 0.5 byte per weight plus 4 bytes of scale/zero per 128 weights
    assert saved == pytest.approx(block * (2.0 - 0.5 - 4.0 / 128), rel=0.001)
    ops, notes = cm.transform_ops(cm.step_ops(1, 1), "h100-sxm")
    assert all(isinstance(op, WeightOnlyMatmul) for op in _linears(ops))
    assert ops.flops() > base.step_ops(1, 1).flops()  # dequantization work
    assert notes["mlp.up"] == "weight-only int4"
    assert cm.kv_bytes_per_token_factor == 1.0


@pytest.mark.parametrize("device", ["h100-sxm", "l4"])
def test_weight_only_int4_decode_faster_via_fewer_bytes(device):
    base_decode, decode, _ = _pair(AWQ, device, batch=8, seq=1)
    assert decode < 0.8 * base_decode


@pytest.mark.parametrize("device", ["h100-sxm", "a100-sxm-80gb", "l4", "host-cpu"])
def test_weight_only_int4_prefill_not_faster(device):
    """From 256 rows on the weights are dequantized first and a dense GEMM runs (vLLM's AWQ heuristic)."""
    precision = "fp32" if device == "host-cpu" else "fp16"
    model = get_model("gpt2-small") if device == "host-cpu" else LLAMA
    base_prefill, prefill, ops = _pair(AWQ, device, 1, 512, model, precision)
    assert all(op.dequantize_first for op in _linears(ops))
    assert prefill >= base_prefill


def test_int8_gemm_speed_only_with_int8_units():
    assert "int8" in device_support("h100-sxm").low_precision
    assert "int8" not in device_support("v100-sxm-32gb").low_precision
    assert "int8" in device_support("host-cpu").low_precision  # measured matmul/fwd/int8 in its profile
    base, fast, ops = _pair(W8A8, "h100-sxm", batch=1, seq=2048)
    assert {op.precision for op in _linears(ops)} == {"int8"} and all(type(op) is Matmul for op in _linears(ops))
    assert fast < 0.8 * base
    base, slow, ops = _pair(W8A8, "v100-sxm-32gb", batch=1, seq=2048)
    assert all(isinstance(op, WeightOnlyMatmul) and op.weight_precision == "int8" for op in _linears(ops))
    assert slow >= base  # no int8 units: the GEMM runs in fp16 with dequantization on top
    cm = apply_recipe(LLAMA, W8A8)
    _, notes = cm.transform_ops(cm.step_ops(1, 16), "v100-sxm-32gb")
    assert notes["mlp.down"] == "no int8 units: weight-only int8 with dequantization"


def test_fp8_needs_fp8_units():
    _, _, ops = _pair(FP8, "h100-sxm", batch=1, seq=512)
    assert {op.precision for op in _linears(ops)} == {"fp8"}
    _, _, ops = _pair(FP8, "a100-sxm-80gb", batch=1, seq=512)
    assert all(isinstance(op, WeightOnlyMatmul) and op.weight_precision == "fp8" for op in _linears(ops))


def test_2_4_sparse_gemms_only_on_sparse_tensor_core_hardware():
    recipe = {"pruning": {"sparsity": 0.5, "pattern": "2:4"}}
    base, same, ops = _pair(recipe, "v100-sxm-32gb", batch=1, seq=512)
    assert same == base and not any(op.sparse_2_4 for op in _linears(ops))
    cm = apply_recipe(LLAMA, recipe)
    assert cm.weight_bytes("v100-sxm-32gb") == apply_recipe(LLAMA, None).weight_bytes()
    assert cm.weight_bytes("h100-sxm") < 0.65 * apply_recipe(LLAMA, None).weight_bytes()
    # on the H100 the runtime takes the 2:4 kernel exactly where the (measured) cost model says it wins
    for batch, seq in ((1, 1), (1, 2048), (16, 4096)):
        plain = apply_recipe(LLAMA, None).step_ops(batch, seq)
        ops, _ = cm.transform_ops(cm.step_ops(batch, seq), "h100-sxm")
        for dense, new in zip(_linears(plain), _linears(ops), strict=True):
            sparse = Matmul(dense.m, dense.n, dense.k, precision=dense.precision, sparse_2_4=True)
            wins = predict(sparse, "h100-sxm") < predict(dense, "h100-sxm")
            assert new.sparse_2_4 == wins
        assert _time(ops, "h100-sxm") <= _time(plain, "h100-sxm")


def test_unstructured_sparsity_saves_memory_only_in_a_sparse_format():
    gpt2 = get_model("gpt2-small")
    dense_zeros = apply_recipe(gpt2, {"pruning": {"sparsity": 0.9}}, "fp32")
    base = apply_recipe(gpt2, None, "fp32")
    assert dense_zeros.weight_bytes() == base.weight_bytes()
    base_s, zeros_s, _ = _pair({"pruning": {"sparsity": 0.9}}, "host-cpu", 1, 128, gpt2, "fp32")
    assert zeros_s == base_s
    half = apply_recipe(gpt2, {"pruning": {"sparsity": 0.5, "format": "csr"}}, "fp32")
    assert half.weight_bytes() > base.weight_bytes()  # 50%: values (4 B) + int64 indices (8 B) > 4 B dense
    most = apply_recipe(gpt2, {"pruning": {"sparsity": 0.95, "format": "csr"}}, "fp32")
    assert most.weight_bytes() < 0.5 * base.weight_bytes()


def test_csr_runs_only_where_a_measured_sparse_kernel_wins():
    recipe = {"pruning": {"sparsity": 0.98, "format": "csr"}}
    assert device_support("h100-sxm").csr_precisions == frozenset()
    assert device_support("host-cpu").csr_precisions == {"fp32"}
    cm = apply_recipe(get_model("gpt2-small"), recipe, "fp32")
    ops, notes = cm.transform_ops(cm.step_ops(1, 128), "h100-sxm")
    assert not any(isinstance(layer.op, SparseMatmul) for layer in ops.layers)
    assert notes["mlp.up"] == "CSR storage, no measured sparse kernel: dense kernel"
    for seq in (1, 128):
        plain = apply_recipe(get_model("gpt2-small"), None, "fp32").step_ops(1, seq)
        ops, _ = cm.transform_ops(cm.step_ops(1, seq), "host-cpu")
        for dense, new in zip(_linears(plain), _linears(ops), strict=True):
            sparse = SparseMatmul(dense.m, dense.n, dense.k, 0.02)
            assert isinstance(new, SparseMatmul) == (predict(sparse, "host-cpu") < predict(dense, "host-cpu"))


def test_kv_cache_quantization_halves_kv_bytes_per_token():
    assert (
        apply_recipe(LLAMA, {"quantization": {"weights": "int8", "kv_cache": "int8"}}).kv_bytes_per_token_factor == 0.5
    )
    assert (
        apply_recipe(LLAMA, {"quantization": {"weights": "fp8", "kv_cache": "fp8"}}, "bf16").kv_bytes_per_token_factor
        == 0.5
    )
    assert (
        apply_recipe(LLAMA, {"quantization": {"weights": "int8", "kv_cache": "int8"}}, "fp32").kv_bytes_per_token_factor
        == 0.25
    )


def test_combined_recipe_distils_then_prunes_then_quantizes():
    recipe = {
        "distillation": {"student": "gpt3-1.3b"},
        "pruning": {"sparsity": 0.5, "pattern": "2:4"},
        "quantization": {"weights": "int8", "activations": "int8", "method": "smoothquant", "kv_cache": "int8"},
    }
    cm = apply_recipe(get_model("gpt3-6.7b"), recipe)
    assert cm.config.name == "gpt3-1.3b"
    ops, notes = cm.transform_ops(cm.step_ops(16, 2048), "h100-sxm")
    linears = _linears(ops)
    assert {op.precision for op in linears} == {"int8"}  # quantization applied after sparsity
    assert all(note.endswith("int8 GEMM") for name, note in notes.items() if name.startswith(("attn", "mlp")))
    assert cm.kv_bytes_per_token_factor == pytest.approx(0.5 * 24 * 2048 / (32 * 4096))


def test_new_ops_are_priced_on_every_device():
    from dcsim.catalog import load_catalog

    wq = WeightOnlyMatmul(16, 4096, 4096, "int4", 128, "fp16")
    assert wq.kind == "matmul" and wq.fit_key == Matmul(16, 4096, 4096, precision="fp16").fit_key
    assert WeightOnlyMatmul(64, 4096, 4096).fit_key == Matmul(64, 4096, 4096, precision="fp16").fit_key
    assert wq.bytes < Matmul(16, 4096, 4096, precision="fp16").bytes
    prefill = WeightOnlyMatmul(512, 4096, 4096, "int4", 128, "fp16")
    assert prefill.bytes > Matmul(512, 4096, 4096, precision="fp16").bytes  # dequantized copy written and read
    for device, acc in load_catalog().accelerators.items():
        precision = next(p for p in ("fp16", "bf16", "fp32") if p in acc.peak_tflops)
        assert predict(WeightOnlyMatmul(16, 4096, 4096, "int4", 128, precision), device) > 0
        assert predict(SparseMatmul(16, 4096, 4096, 0.1, precision), device) > 0
    sparse = SparseMatmul(64, 3072, 768, 0.1)
    assert sparse.fit_key == "matmul_csr/fwd/fp32"
    assert sparse.flops == pytest.approx(2 * 64 * 3072 * 768 * 0.1, rel=1e-3)
    with pytest.raises(ValueError, match="density"):
        SparseMatmul(1, 8, 8, 0.0)
    with pytest.raises(ValueError, match="weight_precision"):
        WeightOnlyMatmul(1, 8, 8, "int2")


def test_the_docs_example_runs_and_says_what_it_shows():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "compression.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    scope: dict[str, object] = {}
    exec(compile(block, "compression.md:example", "exec"), scope)
    cm = scope["cm"]
    assert round(cm.weight_bytes("h100-sxm") / 1e9, 2) == 3.97  # type: ignore[attr-defined]
    assert scope["notes"]["mlp.up"] == "weight-only int4"  # type: ignore[index]
    assert cm.accuracy.point.compressed == 5.60  # type: ignore[attr-defined]
