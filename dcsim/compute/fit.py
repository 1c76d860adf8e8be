"""Fit :class:`~dcsim.compute.roofline.RooflineFit` parameters to measured op times (numpy only).

For each pair of exponents on a small grid, the model is linear in (overhead, compute factor, memory
factor) once every point is assigned to the side of the roofline that bounds it. The fit alternates
between a weighted least-squares solve (weights 1/t, so the relative error is minimised) and
re-assigning points, from a start where both terms add up. Coefficients stay non-negative (a negative
one is dropped and the rest re-solved). The exponent pair with the smallest mean squared log error,
plus a small penalty on the exponents (a constant efficiency is preferred unless the data say
otherwise), wins.
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


def _fit_linear(x_c: FloatArray, x_m: FloatArray, t: FloatArray) -> FloatArray:
    """(overhead, compute factor, memory factor) for t ~ t0 + max(u x_c, v x_m), weights 1/t."""
    weight = 1.0 / t
    ones = np.ones_like(t)
    coef = _nonnegative_lstsq(np.column_stack([ones, x_c, x_m]) * weight[:, None], ones)
    compute_bound: FloatArray | None = None
    for _ in range(MAX_ITERATIONS):
        bound = coef[1] * x_c >= coef[2] * x_m
        if compute_bound is not None and np.array_equal(bound, compute_bound):
            break
        compute_bound = bound
        design = np.column_stack([ones, np.where(bound, x_c, 0.0), np.where(bound, 0.0, x_m)])
        coef = _nonnegative_lstsq(design * weight[:, None], ones)
    return coef


def _predict(coef: FloatArray, x_c: FloatArray, x_m: FloatArray) -> FloatArray:
    return coef[0] + np.maximum(coef[1] * x_c, coef[2] * x_m)


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
    best: tuple[float, float, float, FloatArray] | None = None
    flops_grid = FLOPS_EXPONENTS if np.any(flops > 0) else (0.0,)
    for gamma, delta in itertools.product(flops_grid, BYTES_EXPONENTS):
        x_c = _scaled(flops, gamma) / peak_flops
        x_m = _scaled(nbytes, delta) / bandwidth
        coef = _fit_linear(x_c, x_m, t)
        if coef[1] == 0 and coef[2] == 0:
            continue
        error = float(np.mean(np.log(_predict(coef, x_c, x_m) / t) ** 2))
        score = error + EXPONENT_PENALTY * (gamma**2 + delta**2) * 10
        if best is None or score < best[0]:
            best = (score, gamma, delta, coef)
    if best is None:
        raise ValueError("fit_roofline found no usable fit (all times explained by overhead alone?)")
    _, gamma, delta, coef = best
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
        flops_exponent=gamma if coef[1] else 0.0,
        bytes_exponent=delta if coef[2] else 0.0,
        flops_range=f_range,
        bytes_range=b_range,
        basis="measured",
        points=int(t.size),
        note=note,
    )
