"""Fit :class:`~dcsim.compute.roofline.RooflineFit` parameters to measured op times (numpy only).

For each pair of exponents on a small grid and each of the four model forms (``combine`` max or sum,
``overlap`` or not), the model is linear in (overhead, compute factor, memory factor) once every point
is assigned to the term that bounds it. The fit alternates between a weighted least-squares solve
(weights 1/t, so the relative error is minimised) and re-assigning points, from a start where both
terms add up; a few reweighting rounds then make it a least-absolute-relative-error fit, robust to a
few pathological shapes. Coefficients stay non-negative (the best feasible solution over the column
subsets). The exponent pair with the smallest mean absolute log error, plus a small penalty on the
exponents (a constant efficiency is preferred unless the data say otherwise), wins. Classes with
allocations above the CPU allocator's mmap threshold get a fourth, additive term: seconds per fresh
byte (page faults); classes that measured both aligned and unaligned ops (``Op.unaligned``) an extra
compute factor for the unaligned ones; classes whose ops have segments (``Op.segments``: rows or
channels a kernel loops over) a cost per segment. With the winning form and exponents, an extra
seconds-per-byte term for the bytes beyond a cache size is tried at a few sizes and kept where it
lowers the error by more than ``CACHE_GAIN``. If the overhead alone explains every time (launch-bound
small ops), the fit keeps that overhead and assumes peak FLOP/s and bandwidth beyond the measured range.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from dcsim.compute.roofline import FloatArray, RooflineFit

FLOPS_EXPONENTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
BYTES_EXPONENTS = (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2)
EXPONENT_PENALTY = 0.002
MAX_ITERATIONS = 8
ROBUST_ROUNDS = 3
ROBUST_FLOOR = 0.02
NEGLIGIBLE = 0.01  # a term below 1% of the fastest measured time at the largest size is dropped


def _subsets(columns: int) -> list[list[int]]:
    """Column subsets tried by the non-negative solve, largest first."""
    return [list(c) for size in range(columns, 0, -1) for c in itertools.combinations(range(columns), size)]


def _batched_nnls(design: FloatArray, target: FloatArray) -> FloatArray:
    """Non-negative least squares ``design @ c ~ target`` for a batch of (n x k) designs, shape
    (G, n, k), and targets (G, n); k is 3 or 4.

    With so few unknowns the exact active-set answer is the best feasible solution over the column
    subsets; each subset is solved for the whole batch at once (normal equations on norm-scaled
    columns, a tiny ridge for empty columns). Returns (G, k) coefficients.
    """
    groups, _, columns = design.shape
    best = np.zeros((groups, columns))
    best_cost = np.full(groups, np.inf)
    norms = np.sqrt(np.einsum("gni,gni->gi", design, design)) + 1e-300
    scaled = design / norms[:, None, :]
    gram = np.einsum("gni,gnj->gij", scaled, scaled)
    rhs = np.einsum("gni,gn->gi", scaled, target)
    for cols in _subsets(columns):
        sub_gram = gram[:, cols][:, :, cols] + 1e-12 * np.eye(len(cols))
        coef_s = np.linalg.solve(sub_gram, rhs[:, cols][..., None])[..., 0]
        coef = np.zeros((groups, columns))
        coef[:, cols] = coef_s / norms[:, cols]
        residual = np.einsum("gni,gi->gn", design, coef) - target
        cost = np.einsum("gn,gn->g", residual, residual)
        better = np.all(coef >= 0, axis=1) & (cost < best_cost - 1e-15)
        best[better] = coef[better]
        best_cost[better] = cost[better]
    return best


#: (compute seconds at peak (G, n), memory seconds at full bandwidth (G, n), fresh bytes (n,), unaligned
#: flags (n,), segments (n,), seconds at full bandwidth of the bytes beyond a cache size (n,)); the last
#: four are None where a class has no such term
Features = tuple[FloatArray, FloatArray, FloatArray | None, FloatArray | None, FloatArray | None, FloatArray | None]
#: positions of the coefficients: overhead, compute, memory, fault, unaligned, segment, beyond cache
COEFFICIENTS = 7
#: cache sizes tried for the beyond-cache term (bytes), and the score it must gain to be kept
CACHE_SIZES = tuple(float(1 << bits) for bits in range(21, 27))
CACHE_GAIN = 0.01


def _fit_form(x: Features, t: FloatArray, row_weight: FloatArray, combine: str, overlap: bool) -> FloatArray:
    """(overhead, compute factor, memory factor, fault factor, unaligned factor, seconds per segment)
    for one model form (see :mod:`roofline`) for a batch of exponent choices (``x``: see
    :data:`Features`); row weights (G, n).

    Starts from the additive form; then alternates between assigning each point to the term that
    bounds it (compute or memory side for ``max``, overhead or device side with ``overlap``) and a
    non-negative weighted least-squares solve of the resulting linear model. The unaligned factor
    is a second compute column (the compute seconds of the unaligned points only); fresh bytes and
    segments are additive columns.
    """
    x_c, x_m, fresh, unaligned, segments, beyond = x
    weight = row_weight[:, :, None]
    target = row_weight * t
    ones = np.ones_like(x_c)
    x_u = x_c * unaligned if unaligned is not None else None
    additive = [np.broadcast_to(v, x_c.shape) for v in (fresh, segments, beyond) if v is not None]
    first = [ones, x_c, x_m, *additive] + ([x_u] if x_u is not None else [])
    coef = _expand(_batched_nnls(np.stack(first, axis=2) * weight, target), x)
    state: FloatArray | None = None
    for _ in range(MAX_ITERATIONS):
        t_c = coef[:, 1:2] * x_c + (coef[:, 4:5] * x_u if x_u is not None else 0.0)
        t_m = coef[:, 2:3] * x_m
        compute = t_c >= t_m if combine == "max" else np.ones_like(x_c, dtype=bool)
        memory = ~compute if combine == "max" else compute
        device = np.maximum(t_c, t_m) if combine == "max" else t_c + t_m
        launch = coef[:, 0:1] >= device if overlap else np.zeros_like(compute)
        new_state = np.concatenate([compute, launch], axis=1)
        if state is not None and np.array_equal(new_state, state):
            break
        state = new_state
        columns = [
            launch.astype(np.float64) if overlap else ones,
            np.where(compute & ~launch, x_c, 0.0),
            np.where(memory & ~launch, x_m, 0.0),
            *additive,
        ]
        if x_u is not None:
            columns.append(np.where(compute & ~launch, x_u, 0.0))
        coef = _expand(_batched_nnls(np.stack(columns, axis=2) * weight, target), x)
    return coef


def _expand(coef: FloatArray, x: Features) -> FloatArray:
    """Solver coefficients (overhead, compute, memory[, fault][, segment][, unaligned]) as the full
    :data:`COEFFICIENTS` (see :func:`_fit_form`)."""
    out = np.zeros((coef.shape[0], COEFFICIENTS))
    out[:, :3] = coef[:, :3]
    column = 3
    for index, feature in ((3, x[2]), (5, x[4]), (6, x[5]), (4, x[3])):
        if feature is not None:
            out[:, index] = coef[:, column]
            column += 1
    return out


def _predict(coef: FloatArray, x: Features, combine: str, overlap: bool) -> FloatArray:
    x_c, x_m, fresh, unaligned, segments, beyond = x
    t_c = coef[:, 1:2] * x_c
    if unaligned is not None:
        t_c = t_c + coef[:, 4:5] * x_c * unaligned
    t_m = coef[:, 2:3] * x_m
    device = t_c + t_m if combine == "sum" else np.maximum(t_c, t_m)
    out = np.maximum(coef[:, 0:1], device) if overlap else coef[:, 0:1] + device
    if fresh is not None:
        out = out + coef[:, 3:4] * fresh
    if segments is not None:
        out = out + coef[:, 5:6] * segments
    if beyond is not None:
        out = out + coef[:, 6:7] * beyond
    return out


def _robust_fit(x: Features, t: FloatArray, combine: str, overlap: bool) -> tuple[FloatArray, FloatArray]:
    """Coefficients (G, COEFFICIENTS) and mean absolute log error (G,) of one form: weights 1/t
    minimise the relative error; a few reweighting rounds (1/sqrt|r|) turn the squared error into an
    absolute one, so a few pathological shapes cannot drag the fit."""
    row_weight = np.broadcast_to(1.0 / t, x[0].shape)
    for _ in range(ROBUST_ROUNDS + 1):
        coef = _fit_form(x, t, row_weight, combine, overlap)
        # a term that never matters is no term
        coef[:, 1] *= coef[:, 1] * x[0].max(axis=1) >= NEGLIGIBLE * t.min()
        coef[:, 4] *= coef[:, 1] > 0
        coef[:, 2] *= coef[:, 2] * x[1].max(axis=1) >= NEGLIGIBLE * t.min()
        predicted = np.maximum(_predict(coef, x, combine, overlap), 1e-15)
        residual = np.abs(predicted / t - 1.0)
        row_weight = 1.0 / t / np.sqrt(np.maximum(residual, ROBUST_FLOOR))
    return coef, np.mean(np.abs(np.log(predicted / t)), axis=1)


def _scaled(values: FloatArray, exponent: float) -> FloatArray:
    """``values * (clip(values) / max) ** -exponent``: the size-dependent efficiency folded in."""
    positive = values[values > 0]
    if positive.size == 0:
        return values
    lo, hi = float(positive.min()), float(positive.max())
    return values * (np.clip(values, lo, hi) / hi) ** -exponent


def _range(values: FloatArray) -> tuple[float, float]:
    positive = values[values > 0]
    return (float(positive.min()), float(positive.max())) if positive.size else (1.0, 1.0)


def fit_roofline(
    flops: FloatArray,
    nbytes: FloatArray,
    seconds: FloatArray,
    peak_flops: float,
    bandwidth: float,
    note: str = "",
    fresh_bytes: FloatArray | None = None,
    fault_threshold_bytes: float = math.inf,
    unaligned: FloatArray | None = None,
    segments: FloatArray | None = None,
) -> RooflineFit:
    """Fit the model to measurements: arrays of FLOPs, bytes and median seconds of one op class.

    ``peak_flops`` (FLOP/s) and ``bandwidth`` (bytes/s) are the device's reference figures; the fitted
    efficiencies are fractions of them. ``fresh_bytes`` (per point: bytes of allocations above
    ``fault_threshold_bytes``, which fault in new pages on each call on CPUs) adds a fitted
    seconds-per-byte term where any point has some; ``unaligned`` (per point, 0 or 1: see
    ``Op.unaligned``) adds an extra compute factor for those points where the class has some of each;
    ``segments`` (per point: ``Op.segments``) a fitted cost per segment where the class has some.
    Needs at least 2 points.
    """
    flops = np.asarray(flops, dtype=np.float64)
    nbytes = np.asarray(nbytes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if t.size < 2 or np.any(t <= 0):
        raise ValueError("fit_roofline needs at least 2 positive times")
    fresh = None
    if fresh_bytes is not None and np.any(np.asarray(fresh_bytes) > 0):
        fresh = np.asarray(fresh_bytes, dtype=np.float64)
    flags = None
    if unaligned is not None and 0 < np.count_nonzero(unaligned) < t.size:
        flags = np.asarray(unaligned, dtype=np.float64)
    rows = None
    if segments is not None and np.any(np.asarray(segments) > 0):
        rows = np.asarray(segments, dtype=np.float64)
    best: tuple[float, float, float, str, bool, FloatArray] | None = None
    flops_grid = FLOPS_EXPONENTS if np.any(flops > 0) else (0.0,)
    pairs = list(itertools.product(flops_grid, BYTES_EXPONENTS))
    x = (
        np.stack([_scaled(flops, gamma) / peak_flops for gamma, _ in pairs]),
        np.stack([_scaled(nbytes, delta) / bandwidth for _, delta in pairs]),
        fresh,
        flags,
        rows,
        None,
    )
    penalty = EXPONENT_PENALTY * 10 * np.array([g * g + d * d for g, d in pairs])
    for combine in ("max", "sum"):
        for overlap in (False, True):
            coef, error = _robust_fit(x, t, combine, overlap)
            score = error + penalty
            index = int(np.argmin(score))
            if best is None or score[index] < best[0]:
                gamma, delta = pairs[index]
                best = (float(score[index]), gamma, delta, combine, overlap, coef[index].copy())
    assert best is not None
    score_best, gamma, delta, combine, overlap, coef = best
    # working sets beyond a cache run at a lower bandwidth: with the chosen form and compute exponent,
    # try an extra seconds-per-byte term for the bytes beyond each cache size that splits the measured
    # sizes (the bytes exponent refitted with it)
    cache = math.inf
    if coef[2] > 0:
        deltas = [d for d in BYTES_EXPONENTS]
        single = (
            np.broadcast_to(_scaled(flops, gamma) / peak_flops, (len(deltas), t.size)),
            np.stack([_scaled(nbytes, d) / bandwidth for d in deltas]),
            fresh,
            flags,
            rows,
        )
        penalties = EXPONENT_PENALTY * 10 * np.array([gamma * gamma + d * d for d in deltas])
        for size in CACHE_SIZES:
            if min(np.count_nonzero(nbytes > size), np.count_nonzero(nbytes <= size)) < 3:
                continue
            trial, error = _robust_fit((*single, np.maximum(nbytes - size, 0.0) / bandwidth), t, combine, overlap)
            score = error + penalties + CACHE_GAIN
            score[trial[:, 6] <= 0] = np.inf
            index = int(np.argmin(score))
            if score[index] < score_best:
                score_best, cache, coef, delta = float(score[index]), size, trial[index], deltas[index]
    if coef[1] == 0 and coef[2] == 0:  # the overhead alone explains the times: peak rates beyond
        gamma, delta, combine, overlap = 0.0, 0.0, "max", True
        coef = np.array([coef[0], 1.0, 1.0, coef[3], 0.0, coef[5], 0.0])
        cache = math.inf
        note = f"{note}; overhead-bound over the measured range, peak rates assumed beyond it".lstrip("; ")
    return RooflineFit(
        peak_flops=peak_flops,
        bandwidth=bandwidth,
        overhead_s=float(coef[0]),
        compute_factor=float(coef[1]),
        memory_factor=float(coef[2]),
        flops_exponent=gamma if coef[1] else 0.0,
        bytes_exponent=delta if coef[2] else 0.0,
        flops_range=_range(flops),
        bytes_range=_range(nbytes),
        combine=combine,
        overlap=overlap,
        fault_s_per_byte=float(coef[3]),
        fault_threshold_bytes=fault_threshold_bytes if coef[3] else math.inf,
        unaligned_factor=float(coef[4]),
        segment_s=float(coef[5]),
        cache_bytes=cache if coef[6] else math.inf,
        beyond_cache_factor=float(coef[6]),
        basis="measured",
        points=int(t.size),
        note=note,
    )
