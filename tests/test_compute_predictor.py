"""Predictions from a small shipped profile and from datasheet priors (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dcsim.compute import (
    Attention,
    CostModel,
    Matmul,
    Normalization,
    Pointwise,
    load_profile,
    predict,
    prediction_basis,
)

FIXTURES = Path(__file__).parent / "data" / "compute"
DEVICE = "fixture-cpu"  # tests/data/compute/fixture-cpu.json: a subset of a real host-cpu profile


@pytest.fixture(scope="module")
def model() -> CostModel:
    return CostModel([FIXTURES])


def test_fixture_profile_loads(model):
    profile = load_profile(FIXTURES / f"{DEVICE}.json")
    assert profile.device_id == DEVICE and profile.backend == "cpu" and profile.threads == 1
    assert {"matmul/fwd/fp32", "add/fwd/fp32"} <= {p.op.fit_key for p in profile.points}
    assert model.prediction_basis(DEVICE) == "measured"


def test_measured_and_prior_labelling(model):
    assert model.prediction_basis("a100-sxm-80gb") == "prior"
    assert model.prediction_basis("tpu-v4") == "prior"
    device = model.device(DEVICE)
    assert device.fit_for(Matmul(64, 64, 64)).basis == "measured"
    # a precision the profile never measured falls back to a prior, labelled as such
    assert device.fit_for(Matmul(64, 64, 64, precision="bf16")).basis == "prior"


def test_predictions_grow_with_size(model):
    for device in (DEVICE, "a100-sxm-80gb", "h100-sxm"):
        gemms = [model.predict(Matmul(s, s, s), device) for s in (16, 64, 256, 1024, 4096)]
        assert all(a < b for a, b in zip(gemms, gemms[1:], strict=False)), device
        adds = [model.predict(Pointwise("add", n), device) for n in (1 << 10, 1 << 16, 1 << 22, 1 << 26)]
        assert all(a < b for a, b in zip(adds, adds[1:], strict=False)), device


def test_memory_bound_and_compute_bound_regimes():
    model = CostModel([FIXTURES])
    h100 = model.device("h100-sxm")
    for op in (
        Attention(8, 32, 1, 8192, 128, causal=False, precision="bf16"),  # decode: one query, big KV cache
        Matmul(1, 8192, 8192, precision="bf16"),  # batch-1 GEMV: the weights dominate
    ):
        fit = h100.fit_for(op)
        t_c, t_m = fit.terms(np.array([op.flops]), np.array([op.bytes]))
        assert t_m[0] > t_c[0], op
    big = Matmul(8192, 8192, 8192, precision="bf16")
    t_c, t_m = h100.fit_for(big).terms(np.array([big.flops]), np.array([big.bytes]))
    assert t_c[0] > t_m[0]


def test_prior_is_near_datasheet_roofline_for_large_ops():
    model = CostModel([Path("/nonexistent")])
    op = Matmul(8192, 8192, 8192, precision="bf16")
    seconds = model.predict(op, "a100-sxm-80gb")
    ideal = op.flops / 312e12
    assert ideal < seconds < ideal / 0.4
    assert model.device("a100-sxm-80gb").fit_for(op).note.startswith("gpu datasheet prior")


def test_priors_transfer_measured_curves_from_a_reference_gpu(tmp_path):
    shipped = Path(__file__).parents[1] / "calibration" / "profiles" / "h100-sxm.json"
    if not shipped.exists():
        pytest.skip("no measured H100 profile shipped")
    (tmp_path / shipped.name).symlink_to(shipped)  # the H100 profile alone: the A100 has none here
    model = CostModel([tmp_path])
    fit = model.device("a100-sxm-80gb").fit_for(Matmul(4096, 4096, 4096, precision="bf16"))
    assert fit.basis == "prior" and "h100-sxm" in fit.note
    assert fit.peak_flops == 312e12


def test_predict_many_matches_predict(model):
    ops = [Matmul(m, 768, 768) for m in (1, 8, 64, 512)] + [Normalization("layernorm", 128, 768)]
    ops += [Pointwise("gelu", 4096), Matmul(32, 32, 32)]
    many = model.predict_many(ops, DEVICE)
    assert np.allclose(many, [model.predict(op, DEVICE) for op in ops])


def test_unsupported_precision_and_unknown_device(model):
    with pytest.raises(ValueError, match=r"v100-sxm-32gb has no bf16 units"):
        model.predict(Matmul(8, 8, 8, precision="bf16"), "v100-sxm-32gb")
    with pytest.raises(KeyError, match="unknown device 'nope'"):
        model.predict(Matmul(8, 8, 8), "nope")


def test_module_level_api_uses_the_shipped_profiles():
    assert prediction_basis("a100-sxm-80gb") == "measured"  # imported Vidur profiles (calibration/profiles)
    assert prediction_basis("h200-sxm") == "prior"
    assert predict(Matmul(128, 768, 768), "a100-sxm-80gb") > 0


def test_accelerators_never_stream_faster_than_their_memory():
    """The roofline's memory floor: on an accelerator no op beats its bytes at the datasheet bandwidth, so
    a GEMM's time never falls as its row count grows across the skinny/GEMM class boundary (decode at
    batch 17-128 on H100 was priced at up to 19 TB/s before the floor); CPUs keep their measured fits."""
    from dcsim.catalog import load_catalog

    for device in ("h100-sxm", "a100-sxm-80gb"):
        bandwidth = load_catalog().accelerators[device].memory_bandwidth_gb_per_s * 1e9
        ops = [Matmul(m, 28672, 8192, precision="bf16") for m in (1, 8, 16, 17, 32, 64, 128, 256, 512)]
        times = [predict(op, device) for op in ops]
        assert all(t >= op.bytes / bandwidth * (1 - 1e-12) for t, op in zip(times, ops, strict=True))
        assert times == sorted(times)
        many = CostModel().device(device).predict_many(ops)
        assert np.allclose(many, times, rtol=1e-12)
    cpu = CostModel().device("host-cpu")
    assert cpu.floor_bytes_per_s == 0.0


@pytest.mark.parametrize("device", ["a100-sxm-80gb", "h100-sxm", "h200-sxm", "l4"])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_sharing_kv_heads_never_slows_decode_attention(device, precision):
    """Decode attention is memory-bound: 64 query heads sharing 8 KV heads (Llama-2-70B) read the same KV
    cache as 8 query heads on 8 KV heads, and must cost about as much (the query and output are 1/kv_len of
    the bytes), not the 8x a compute term fitted on multi-head shapes gave it."""
    for batch, kv_len in ((1, 512), (16, 1024), (64, 2048), (128, 4096)):
        grouped = Attention(batch, 64, 1, kv_len, 128, False, 8, precision)
        multi = Attention(batch, 8, 1, kv_len, 128, False, 8, precision)
        mqa = Attention(batch, 64, 1, kv_len, 128, False, 1, precision)
        assert predict(grouped, device) <= 1.1 * predict(multi, device)
        assert predict(mqa, device) <= predict(grouped, device)


@pytest.mark.parametrize("device_id", ["host-cpu", "h100-sxm", "a100-sxm-80gb"])
def test_predict_many_prices_each_class_as_alone(device_id):
    """predict_many prices each op class in one pass (a call of one class skips the grouping): a mixed call gives
    each op the floats a call of its class alone gives (row bounds, floors, page faults and backward GEMMs priced
    from the forward included)."""
    precision = "bf16"
    ops = [Matmul(m, 50257 if m == 7 else 4096, 1024, precision=precision) for m in (1, 7, 16, 17, 300)]
    ops += [Attention(2, 16, q, q + 100, 64, True, 4, precision) for q in (1, 50, 51, 400)]
    ops += [Pointwise("gelu", 1 << 20, precision), Normalization("rmsnorm", 64, 4096, precision)]
    ops += [op.backward() for op in ops[:3]]
    if device_id == "h100-sxm":
        ops += [Matmul(64, 4096, 4096, precision="fp8"), Matmul(64, 4096, 4096, precision="fp8").backward()]
    device = CostModel().device(device_id)
    many = device.predict_many(ops)
    keys = [op.fit_key for op in ops]
    for key in set(keys):
        indices = [i for i, k in enumerate(keys) if k == key]
        alone = device.predict_many([ops[i] for i in indices])
        assert many[indices].tobytes() == alone.tobytes(), key
    assert np.allclose(many, [device.predict(op) for op in ops], rtol=1e-9)
