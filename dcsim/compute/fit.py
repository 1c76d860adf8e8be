"""Fit :class:`~dcsim.compute.roofline.RooflineFit` parameters to measured op times (numpy only).

For each pair of exponents on a small grid and each of the four model forms (``combine`` max or sum,
``overlap`` or not), the model is linear in (overhead, compute factor, memory factor) once every point
is assigned to the term that bounds it. The fit alternates
between a weighted least-squares solve (weights 1/t, so the relative error is minimised) and
re-assigning points, from a start where both terms add up. Coefficients stay non-negative (a negative
one is dropped and the rest re-solved). The exponent pair with the smallest mean squared log error,
plus a small penalty on the exponents (a constant efficiency is preferred unless the data say
otherwise), wins. If the overhead alone explains every time (launch-bound small ops), the fit keeps
that overhead and assumes peak FLOP/s and bandwidth beyond the measured range.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from dcsim.compute.roofline import FloatArray, RooflineFit

FLOPS_EXPONENTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
BYTES_EXPONENTS = (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4)
EXPONENT_PENALTY = 0.002
MAX_ITERATIONS = 12
NEGLIGIBLE = 0.01  # a term below 1% of the fastest measured time at the largest size is dropped


def _nonnegative_lstsq(design: FloatArray, target: FloatArray) -> FloatArray:
    """Least squares with coefficients >= 0: solve, drop negative columns, solve again (3 unknowns)."""
    columns = [j for j in range(design.shape[1]) if np.any(design[:, j])]
    for size in range(len(columns), 0, -1):
        best: FloatArray | None = None
        best_cost = math.inf
        for subset in itertools.combinations(columns, size):
            sub = design[:, subset]
            coef, *_ = np.linalg.lstsq(sub, target, rcond=None)
            if np.all(coef >= 0):
                cost = float(np.sum((sub @ coef - target) ** 2))
                if cost < best_cost:
                    best_cost = cost
                    best = np.zeros(design.shape[1])
                    best[list(subset)] = coef
        if best is not None:
            return best
    return np.zeros(design.shape[1])


def _fit_linear(x_c: FloatArray, x_m: FloatArray, t: FloatArray, combine: str, overlap: bool) -> FloatArray:
    """(overhead, compute factor, memory factor) for one model form (see :mod:`roofline`), weights 1/t.

    Starts from the additive form; then alternates between assigning each point to the term that
    bounds it (compute or memory side for ``max``, overhead or device side with ``overlap``) and a
    non-negative weighted least-squares solve of the resulting linear model.
    """
    weight = 1.0 / t
    ones = np.ones_like(t)
    coef = _nonnegative_lstsq(np.column_stack([ones, x_c, x_m]) * weight[:, None], ones)
    state: FloatArray | None = None
    for _ in range(MAX_ITERATIONS):
        t_c, t_m = coef[1] * x_c, coef[2] * x_m
        compute = t_c >= t_m if combine == "max" else np.ones_like(t, dtype=bool)
        memory = ~compute if combine == "max" else compute
        device = np.maximum(t_c, t_m) if combine == "max" else t_c + t_m
        launch = coef[0] >= device if overlap else np.zeros_like(compute)
        new_state = np.concatenate([compute, launch])
        if state is not None and np.array_equal(new_state, state):
            break
        state = new_state
        design = np.column_stack(
            [
                launch if overlap else ones,
                np.where(compute & ~launch, x_c, 0.0),
                np.where(memory & ~launch, x_m, 0.0),
            ]
        ).astype(np.float64)
        coef = _nonnegative_lstsq(design * weight[:, None], ones)
    return coef


def _predict(coef: FloatArray, x_c: FloatArray, x_m: FloatArray, combine: str, overlap: bool) -> FloatArray:
    device = coef[1] * x_c + coef[2] * x_m if combine == "sum" else np.maximum(coef[1] * x_c, coef[2] * x_m)
    return np.maximum(coef[0], device) if overlap else coef[0] + device


def _scaled(values: FloatArray, exponent: float) -> FloatArray:
    """``values * (clip(values) / max) ** -exponent``: the size-dependent efficiency folded in."""
    positive = values[values > 0]
    if positive.size == 0:
        return values
    lo, hi = float(positive.min()), float(positive.max())
    return values * (np.clip(values, lo, hi) / hi) ** -exponent


def fit_roofline(
    flops: FloatArray,
    nbytes: FloatArray,
    seconds: FloatArray,
    peak_flops: float,
    bandwidth: float,
    note: str = "",
) -> RooflineFit:
    """Fit the model to measurements: arrays of FLOPs, bytes and median seconds of one op class.

    ``peak_flops`` (FLOP/s) and ``bandwidth`` (bytes/s) are the device's reference figures; the fitted
    efficiencies are fractions of them. Needs at least 2 points.
    """
    flops = np.asarray(flops, dtype=np.float64)
    nbytes = np.asarray(nbytes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if t.size < 2 or np.any(t <= 0):
        raise ValueError("fit_roofline needs at least 2 positive times")
    best: tuple[float, float, float, str, bool, FloatArray] | None = None
    flops_grid = FLOPS_EXPONENTS if np.any(flops > 0) else (0.0,)
    forms = [(c, o) for c in ("max", "sum") for o in (False, True)]
    for gamma, delta in itertools.product(flops_grid, BYTES_EXPONENTS):
        x_c = _scaled(flops, gamma) / peak_flops
        x_m = _scaled(nbytes, delta) / bandwidth
        for combine, overlap in forms:
            coef = _fit_linear(x_c, x_m, t, combine, overlap)
            for column, x in ((1, x_c), (2, x_m)):  # a term that never matters is no term
                if coef[column] * float(np.max(x)) < NEGLIGIBLE * float(np.min(t)):
                    coef[column] = 0.0
            log_error = np.abs(np.log(np.maximum(_predict(coef, x_c, x_m, combine, overlap), 1e-12) / t))
            score = float(np.mean(log_error**2)) + EXPONENT_PENALTY * (gamma**2 + delta**2) * 10
            if best is None or score < best[0]:
                best = (score, gamma, delta, combine, overlap, coef)
    assert best is not None
    if best[5][1] == 0 and best[5][2] == 0:  # the overhead alone explains the times: peak rates beyond
        best = (0.0, 0.0, 0.0, "max", True, np.array([best[5][0], 1.0, 1.0]))
        note = f"{note}; overhead-bound over the measured range, peak rates assumed beyond it".lstrip("; ")
    _, gamma, delta, combine, overlap, coef = best
    positive_f = flops[flops > 0]
    f_range = (float(positive_f.min()), float(positive_f.max())) if positive_f.size else (1.0, 1.0)
    positive_b = nbytes[nbytes > 0]
    b_range = (float(positive_b.min()), float(positive_b.max())) if positive_b.size else (1.0, 1.0)
    return RooflineFit(
        peak_flops=peak_flops,
        bandwidth=bandwidth,
        overhead_s=float(coef[0]),
        compute_factor=float(coef[1]),
        memory_factor=float(coef[2]),
        combine=combine,
        overlap=overlap,
        flops_exponent=gamma if coef[1] else 0.0,
        bytes_exponent=delta if coef[2] else 0.0,
        flops_range=f_range,
        bytes_range=b_range,
        basis="measured",
        points=int(t.size),
        note=note,
    )
