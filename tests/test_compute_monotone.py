"""Properties of the cost model on every device it can price: a larger op never costs less, no op beats the
datasheet, fp16 and bf16 are priced alike, and a backward GEMM no device measured never beats its forward.

The devices are the catalog's plus every profile found at run time (``calibration/profiles/*.json``), so a
profile added later is checked too."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcsim.catalog import load_catalog
from dcsim.compute import Attention, CostModel, Matmul, default_profile_dirs
from dcsim.compute.ops import GEMV_ROWS, SKINNY_ROWS
from dcsim.compute.predictor import DeviceModel

MODEL = CostModel()
RELATIVE = 1e-12  # float rounding only


def _devices() -> list[str]:
    ids = set(load_catalog().accelerators)
    for folder in default_profile_dirs():
        if folder.is_dir():
            ids.update(path.stem for path in folder.glob("*.json"))
    return sorted(ids)


def _precisions(device_id: str) -> list[str]:
    """The precisions ``device_id`` has a peak for: its catalog entry's, else its profile's (the peaks priors
    are built on)."""
    accelerator = load_catalog().accelerators.get(device_id)
    if accelerator is not None:
        return sorted(accelerator.peak_tflops)
    profile = MODEL.find_profile(device_id)
    assert profile is not None
    return sorted(profile.peak_tflops)


def _gemm_precisions(device_id: str) -> list[str]:
    """:func:`_precisions` plus those its profile has a reference peak for (the host CPU's measured int8)."""
    profile = MODEL.find_profile(device_id)
    return sorted(set(_precisions(device_id)) | set(profile.peak_tflops if profile else ()))


CASES = [(device, precision) for device in _devices() for precision in _precisions(device)]
GEMM_CASES = [(device, precision) for device in _devices() for precision in _gemm_precisions(device)]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: row counts around the class switches (1 | 2..16 | 17..) and far beyond them
ROWS = st.one_of(st.integers(1, 2 * SKINNY_ROWS + 2), st.integers(1, 1 << 15))
#: widths: small, aligned (multiples of 8) and arbitrary (mostly unaligned)
WIDTHS = st.one_of(st.integers(1, 64), st.integers(1, 4096).map(lambda x: 8 * x), st.integers(1, 1 << 16))
GROWTH = st.one_of(st.just(1), st.integers(1, 4096))


def _floors_hold(device: DeviceModel, device_id: str, op, seconds: float) -> None:
    """An accelerator never beats its datasheet: FLOPs at peak FLOP/s, bytes at peak bandwidth."""
    accelerator = load_catalog().accelerators.get(device_id)
    if accelerator is None or accelerator.kind == "cpu":
        return
    assert device.has_floors
    assert seconds >= op.bytes / (accelerator.memory_bandwidth_gb_per_s * 1e9) * (1 - RELATIVE), op
    peak = accelerator.peak_tflops[op.precision] * 1e12
    if op.kind == "matmul_sparse24" and accelerator.sparse_2_4:
        peak *= 2.0
    assert seconds >= op.flops / peak * (1 - RELATIVE), op


@pytest.mark.parametrize(("device_id", "precision"), GEMM_CASES)
@SETTINGS
@given(
    m=ROWS,
    n=WIDTHS,
    k=WIDTHS,
    batch=st.sampled_from([1, 1, 1, 3]),
    phase=st.sampled_from(["fwd", "bwd"]),
    dim=st.sampled_from(["m", "n", "k"]),
    growth=GROWTH,
)
def test_gemm_time_never_falls_as_a_dimension_grows(device_id, precision, m, n, k, batch, phase, dim, growth):
    device = MODEL.device(device_id)
    if precision not in _precisions(device_id):
        batch = 1  # a precision only the profile has a peak for is priced where it was measured: nn.Linear
    op = Matmul(m, n, k, batch=batch, precision=precision, phase=phase)
    larger = dataclasses.replace(op, **{dim: getattr(op, dim) + growth})
    step = dataclasses.replace(op, **{dim: getattr(op, dim) + 1})
    seconds = MODEL.predict(op, device_id)
    for other in (step, larger):
        other_s = MODEL.predict(other, device_id)
        if op.segments > 0 and other.segments == 0 and device.fit_for(op).segment_s:
            # the measured short-row GEMV cost ends where rows reach a page (docs/compute.md): not compared
            continue
        if op.unaligned and not other.unaligned:
            # the measured unaligned penalty ends here (docs/compute.md): compare aligned shapes instead
            op_aligned = dataclasses.replace(op, n=max(8, op.n - op.n % 8), k=max(8, op.k - op.k % 8))
            if op_aligned.n <= other.n and op_aligned.k <= other.k:
                assert MODEL.predict(op_aligned, device_id) <= other_s * (1 + RELATIVE), (op_aligned, other)
        else:
            assert seconds <= other_s * (1 + RELATIVE), (op, other, seconds, other_s)
    _floors_hold(device, device_id, op, seconds)


@pytest.mark.parametrize(("device_id", "precision"), CASES)
@SETTINGS
@given(
    batch=st.integers(1, 256),
    heads=st.integers(1, 128),
    kv_len=st.one_of(st.integers(1, 512), st.integers(1, 1 << 17)),
    head_dim=st.sampled_from([64, 80, 128]),
    causal=st.booleans(),
    dim=st.sampled_from(["batch", "heads", "kv_len"]),
    growth=GROWTH,
)
def test_decode_attention_time_never_falls_as_it_grows(
    device_id, precision, batch, heads, kv_len, head_dim, causal, dim, growth
):
    device = MODEL.device(device_id)
    op = Attention(batch, heads, 1, kv_len, head_dim, causal=causal, precision=precision)
    assert op.kind == "attention_decode"
    larger = dataclasses.replace(op, **{dim: getattr(op, dim) + growth})
    step = dataclasses.replace(op, **{dim: getattr(op, dim) + 1})
    seconds, bigger, next_one = (MODEL.predict(o, device_id) for o in (op, larger, step))
    assert seconds <= next_one * (1 + RELATIVE), (op, seconds, next_one)
    assert seconds <= bigger * (1 + RELATIVE), (op, larger, seconds, bigger)
    _floors_hold(device, device_id, op, seconds)


@pytest.mark.parametrize(("device_id", "precision"), GEMM_CASES)
@SETTINGS
@given(m=ROWS, n=WIDTHS, k=WIDTHS, batch=st.sampled_from([1, 1, 3]))
def test_backward_gemm_never_beats_its_forward_where_it_was_not_measured(device_id, precision, m, n, k, batch):
    """A backward GEMM no device measured is two forward GEMMs (dX and dW): never faster per FLOP than the
    forward of the same shape. No device measures an fp8 backward (no fp8 autograd in PyTorch)."""
    device = MODEL.device(device_id)
    if precision not in _precisions(device_id):
        batch = 1  # as in test_gemm_time_never_falls_as_a_dimension_grows
    forward = Matmul(m, n, k, batch=batch, precision=precision)
    backward = forward.backward()
    if precision == "fp8":
        assert device.backward_from_forward(backward)
    if device.backward_from_forward(backward):
        t_fwd, t_bwd = MODEL.predict(forward, device_id), MODEL.predict(backward, device_id)
        assert t_bwd / backward.flops >= t_fwd / forward.flops * (1 - RELATIVE)
        assert t_bwd == pytest.approx(2.0 * t_fwd, rel=RELATIVE)


@pytest.mark.parametrize("device_id", _devices())
@settings(max_examples=10, deadline=None)
@given(
    shapes=st.lists(st.tuples(ROWS, WIDTHS, WIDTHS, st.sampled_from(["fwd", "bwd"])), min_size=1, max_size=12),
    data=st.data(),
)
def test_predict_many_gives_predict_numbers(device_id, shapes, data):
    precisions = _gemm_precisions(device_id)
    ops = [Matmul(m, n, k, precision=data.draw(st.sampled_from(precisions)), phase=phase) for m, n, k, phase in shapes]
    ops.append(Attention(2, 8, 1, 1000, 64, causal=False, precision=_precisions(device_id)[0]))
    device = MODEL.device(device_id)
    many = device.predict_many(ops)
    assert np.allclose(many, [device.predict(op) for op in ops], rtol=RELATIVE, atol=0.0)


def test_class_switches_on_h100_no_longer_make_more_rows_cheaper():
    """The issue's case: on H100 a bf16 GEMM of 17 rows was priced below the same GEMM of 16 rows (the
    skinny and GEMM classes have separate fits)."""
    for n, k in ((28672, 8192), (4096, 4096), (50257, 768)):
        times = [MODEL.predict(Matmul(m, n, k, precision="bf16"), "h100-sxm") for m in range(1, 40)]
        assert times == sorted(times), (n, k)


def test_half_precisions_borrow_each_other_where_the_peaks_are_equal():
    """A class measured at only one of fp16 and bf16 prices the other where the device's peaks are equal, in
    preference to another row class or a prior."""
    for device_id in _devices():
        device = MODEL.device(device_id)
        peaks = device.accelerator.peak_tflops if device.accelerator else device.profile.peak_tflops
        for precision, twin in (("fp16", "bf16"), ("bf16", "fp16")):
            for m in (GEMV_ROWS, SKINNY_ROWS, 4 * SKINNY_ROWS):
                for phase in ("fwd", "bwd"):
                    op = Matmul(m, 4096, 4096, precision=precision, phase=phase)
                    twin_key = op.fit_key.replace(f"/{precision}", f"/{twin}")
                    if op.fit_key in device.measured or twin_key not in device.measured:
                        continue
                    if precision in peaks and peaks.get(precision) == peaks.get(twin):
                        assert device.fit_for(op) is device.measured[twin_key], (device_id, op.fit_key)


def test_half_precisions_stay_apart_where_the_peaks_differ():
    """With unequal fp16 and bf16 peaks a 16-bit GEMM class the device measured at one precision only is not
    borrowed by the other: the row-class chain (or a prior) prices it."""
    h100 = MODEL.device("h100-sxm")
    rows = {"matmul_gemv": GEMV_ROWS, "matmul_skinny": SKINNY_ROWS, "matmul": 4 * SKINNY_ROWS}
    lonely = [
        (key, twin)
        for key in h100.measured
        for precision, twin in (("fp16", "bf16"), ("bf16", "fp16"))
        if key.split("/")[0] in rows and key.endswith(f"/{precision}")
        if key.replace(f"/{precision}", f"/{twin}") not in h100.measured
    ]
    if not lonely:
        pytest.skip("h100-sxm measured every 16-bit GEMM class at both precisions")
    for key, twin in lonely:
        name, phase, precision = key.split("/")
        op = Matmul(rows[name], 4096, 4096, precision=twin, phase=phase)
        assert h100.fit_for(op) is h100.measured[key]  # equal datasheet peaks: borrowed
        peaks = {**h100.accelerator.peak_tflops, twin: 2 * h100.accelerator.peak_tflops[precision]}
        unequal = DeviceModel(
            "h100-sxm", dataclasses.replace(h100.accelerator, peak_tflops=peaks), h100.profile, None, {}
        )
        assert f"{name}/{phase}/{precision}" not in unequal.fallback_chain(op.fit_key)
        assert unequal.fit_for(op) is not h100.measured[key]


def test_an_unaligned_gemm_keeps_its_measured_penalty():
    """The host CPU measured unaligned GEMMs 20-40% slower and PyTorch runs them unpadded: a 50,257-wide output
    head costs more than a 50,256-wide one and may cost more than a 50,264-wide one (the only place where a
    larger GEMM may cost less); 50,256 costs no more than either."""
    cpu = MODEL.device("host-cpu")
    for m in (1, 8, 128):
        narrow, head, wide = (MODEL.predict(Matmul(m, n, 768), "host-cpu") for n in (50256, 50257, 50264))
        assert narrow <= wide and narrow <= head, m
        if cpu.fit_for(Matmul(m, 50257, 768)).unaligned_factor:
            assert head > narrow, m
