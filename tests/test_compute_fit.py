"""The fit recovers known efficiencies from synthetic measurements (no timing involved)."""

from __future__ import annotations

import numpy as np
import pytest

from dcsim.compute import RooflineFit, fit_roofline

PEAK = 100e12
BANDWIDTH = 2e12


def _truth(**changes) -> RooflineFit:
    values = dict(
        peak_flops=PEAK,
        bandwidth=BANDWIDTH,
        overhead_s=8e-6,
        compute_factor=1 / 0.6,
        memory_factor=1 / 0.8,
        flops_exponent=0.0,
        bytes_exponent=0.0,
    )
    values.update(changes)
    return RooflineFit(**values)


def _shapes(count: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    flops = 10 ** rng.uniform(6, 13, count)
    intensity = 10 ** rng.uniform(-0.5, 3.5, count)  # FLOPs per byte: memory- and compute-bound points
    return flops, flops / intensity


@pytest.mark.parametrize("overlap", [False, True])
def test_fit_recovers_constant_efficiencies(overlap):
    truth = _truth(overlap=overlap)
    flops, nbytes = _shapes()
    rng = np.random.default_rng(1)
    seconds = truth.times(flops, nbytes) * rng.uniform(0.99, 1.01, flops.size)
    fit = fit_roofline(flops, nbytes, seconds, PEAK, BANDWIDTH)
    assert fit.basis == "measured" and fit.points == flops.size
    assert fit.overlap is overlap and fit.combine == "max"
    assert fit.compute_efficiency == pytest.approx(0.6, rel=0.03)
    assert fit.memory_efficiency == pytest.approx(0.8, rel=0.03)
    assert fit.overhead_s == pytest.approx(8e-6, rel=0.1)
    assert np.allclose(fit.times(flops, nbytes), seconds, rtol=0.03)


def test_fit_recovers_size_dependent_compute_efficiency():
    flops, nbytes = _shapes(80)
    truth = _truth(flops_exponent=0.2, flops_range=(flops.min(), flops.max()))
    seconds = truth.times(flops, nbytes)
    fit = fit_roofline(flops, nbytes, seconds, PEAK, BANDWIDTH)
    assert fit.flops_exponent == pytest.approx(0.2)
    assert fit.compute_efficiency == pytest.approx(0.6, rel=0.03)
    assert np.allclose(fit.times(flops, nbytes), seconds, rtol=0.02)


def test_additive_form_is_chosen_when_phases_do_not_overlap():
    flops, nbytes = _shapes()
    truth = _truth(combine="sum")
    seconds = truth.times(flops, nbytes)
    fit = fit_roofline(flops, nbytes, seconds, PEAK, BANDWIDTH)
    assert fit.combine == "sum"
    assert np.allclose(fit.times(flops, nbytes), seconds, rtol=0.02)


def test_memory_only_class_has_no_compute_term():
    nbytes = np.logspace(4, 9, 12)
    seconds = 5e-6 + nbytes / (0.7 * BANDWIDTH)
    fit = fit_roofline(np.zeros_like(nbytes), nbytes, seconds, PEAK, BANDWIDTH)
    assert fit.compute_factor == 0
    assert fit.memory_efficiency == pytest.approx(0.7, rel=0.02)


def test_overhead_bound_data_keeps_the_overhead_and_assumes_peak_beyond():
    flops = np.array([1e3, 1e4, 1e5])
    seconds = np.full(3, 1e-5)
    fit = fit_roofline(flops, flops, seconds, PEAK, BANDWIDTH)
    assert fit.time(1e4, 1e4) == pytest.approx(1e-5, rel=0.01)
    assert fit.time(1e15, 1e4) >= 1e15 / PEAK


def test_fit_needs_two_positive_times():
    with pytest.raises(ValueError, match="at least 2 positive times"):
        fit_roofline(np.array([1.0]), np.array([1.0]), np.array([1.0]), PEAK, BANDWIDTH)


def test_efficiency_is_held_flat_outside_the_measured_range():
    fit = _truth(flops_exponent=0.3, memory_factor=0.0, overhead_s=0.0, flops_range=(1e6, 1e9))
    # above the range: constant efficiency, so time scales linearly with FLOPs
    assert fit.time(1e11, 0) / fit.time(1e10, 0) == pytest.approx(10.0)
    # below the range: efficiency frozen at its value at 1e6
    assert fit.time(1e4, 0) / fit.time(1e5, 0) == pytest.approx(0.1)


def test_vectorised_and_scalar_agree():
    fit = _truth(flops_exponent=0.1, bytes_exponent=-0.1, flops_range=(1e6, 1e12), bytes_range=(1e4, 1e9))
    flops, nbytes = _shapes(20)
    assert np.allclose(fit.times(flops, nbytes), [fit.time(f, b) for f, b in zip(flops, nbytes, strict=True)])


def test_invalid_fit_parameters_are_rejected():
    with pytest.raises(ValueError, match="combine must be 'max' or 'sum'"):
        _truth(combine="min")
    with pytest.raises(ValueError, match="needs a compute or a memory term"):
        _truth(compute_factor=0.0, memory_factor=0.0)


def test_fit_recovers_the_unaligned_penalty_and_the_segment_cost():
    """Unaligned ops pay an extra compute factor; every segment a fixed cost: both are recovered, and
    the fitted model round-trips through its dict."""
    truth = _truth(unaligned_factor=0.5, segment_s=2e-7)
    flops, nbytes = _shapes(80)
    rng = np.random.default_rng(3)
    unaligned = (rng.uniform(size=flops.size) < 0.3).astype(float)
    segments = np.round(10 ** rng.uniform(1, 4, flops.size))
    seconds = truth.times(flops, nbytes, 0.0, unaligned, segments)
    fit = fit_roofline(flops, nbytes, seconds, PEAK, BANDWIDTH, unaligned=unaligned, segments=segments)
    assert fit.unaligned_factor == pytest.approx(0.5 * fit.compute_factor / (1 / 0.6), rel=0.1)
    assert fit.segment_s == pytest.approx(2e-7, rel=0.1)
    predicted = fit.times(flops, nbytes, 0.0, unaligned, segments)
    assert np.allclose(predicted, seconds, rtol=0.03)
    assert fit.time(flops[0], nbytes[0], 0.0, bool(unaligned[0]), segments[0]) == pytest.approx(predicted[0])
    assert RooflineFit.from_dict(fit.to_dict()) == fit


def test_fit_finds_a_bandwidth_step_beyond_a_cache():
    """Bytes beyond 8 MiB at a third of the bandwidth: the fit adds a beyond-cache term there (the
    exponents, chosen first, may take part of the step)."""
    nbytes = np.geomspace(1e5, 1e9, 40)
    seconds = 2e-6 + nbytes / 1e11 + np.maximum(nbytes - (8 << 20), 0.0) * 2 / 1e11
    fit = fit_roofline(np.zeros_like(nbytes), nbytes, seconds, PEAK, 1e11)
    assert fit.cache_bytes == 8 << 20 and fit.beyond_cache_factor > 0
    assert np.allclose(fit.times(np.zeros_like(nbytes), nbytes), seconds, rtol=0.03)
    assert RooflineFit.from_dict(fit.to_dict()) == fit


def _whole_formula(fit, flops, nbytes, fresh, unaligned, segments):
    """The roofline written out in full, every term computed (``times`` skips the ones that add 0 or scale by 1)."""
    t_c, t_m = fit.terms(flops, nbytes, unaligned)
    device = t_c + t_m if fit.combine == "sum" else np.maximum(t_c, t_m)
    faults = np.asarray(fresh, dtype=np.float64) * fit.fault_s_per_byte
    if fit.segment_s:
        faults = faults + np.asarray(segments, dtype=np.float64) * fit.segment_s
    if fit.beyond_cache_factor:
        faults = faults + np.maximum(nbytes - fit.cache_bytes, 0.0) * fit.beyond_cache_factor / fit.bandwidth
    total = np.maximum(device, fit.overhead_s) + faults if fit.overlap else fit.overhead_s + device + faults
    if fit.max_compute_efficiency:
        return np.maximum(total, flops / (fit.peak_flops * fit.max_compute_efficiency))
    return total


@pytest.mark.parametrize("combine", ["max", "sum"])
@pytest.mark.parametrize("overlap", [False, True])
def test_times_fast_path_gives_the_same_floats(combine, overlap):
    """``times`` skips terms that add exactly 0 or scale by exactly 1; the floats are those of the whole formula
    (with scalar or array fresh bytes)."""
    rng = np.random.default_rng(11)
    flops, nbytes = _shapes(200)
    flops[:5] = 0.0  # ops without arithmetic (copies)
    unaligned = (rng.uniform(size=flops.size) < 0.3).astype(np.float64)
    segments = rng.uniform(0, 1e6, flops.size)
    variants = [
        {},
        {"compute_factor": 0.0},
        {"memory_factor": 0.0},
        {"flops_exponent": 0.2, "bytes_exponent": -0.1, "flops_range": (1e8, 1e12), "bytes_range": (1e5, 1e9)},
        {"unaligned_factor": 0.4, "segment_s": 3e-12, "max_compute_efficiency": 0.7},
        {"compute_factor": 1.0, "max_compute_efficiency": 0.55, "overhead_s": 0.0},
        {"cache_bytes": 2**24, "beyond_cache_factor": 0.5, "fault_s_per_byte": 1e-10, "fault_threshold_bytes": 1e6},
        {"memory_factor": 0.0, "flops_exponent": 0.3, "flops_range": (1e7, 1e11), "segment_s": 1e-9},
    ]
    for changes in variants:
        fit = _truth(combine=combine, overlap=overlap, **changes)
        for fresh in (0.0, 4096.0):
            for extra in ((None, 0.0), (unaligned, segments)):
                fast = fit.times(flops, nbytes, fresh, *extra)
                full = _whole_formula(fit, flops, nbytes, np.asarray(fresh), *extra)
                assert fast.tobytes() == full.tobytes(), changes
                per_op = fit.times(flops, nbytes, np.full(flops.size, fresh), *extra)
                assert (
                    per_op.tobytes() == _whole_formula(fit, flops, nbytes, np.full(flops.size, fresh), *extra).tobytes()
                )
        for one_flops, one_bytes in ((flops, nbytes[7]), (flops[7], nbytes)):  # a scalar broadcasts as in the formula
            broadcast = fit.times(one_flops, one_bytes, 0.0, None, 0.0)
            whole = _whole_formula(fit, np.asarray(one_flops), np.asarray(one_bytes), 0.0, None, 0.0)
            assert broadcast.shape == (flops.size,) and broadcast.tobytes() == whole.tobytes(), changes
