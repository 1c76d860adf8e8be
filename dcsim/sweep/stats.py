"""Per-point mean and confidence interval over seeds (Student's t), without SciPy.

The t distribution's CDF for integer degrees of freedom is the closed form of Abramowitz & Stegun,
*Handbook of Mathematical Functions* (1964), 26.7.3 (odd) and 26.7.4 (even); quantiles invert it by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd


def student_t_cdf(t: float, dof: int) -> float:
    """P(T <= t) for Student's t with ``dof`` >= 1 degrees of freedom."""
    if dof < 1:
        raise ValueError(f"dof: must be >= 1 (got {dof})")
    theta = math.atan(abs(t) / math.sqrt(dof))
    cos2 = math.cos(theta) ** 2
    if dof % 2 == 1:
        series, term = 0.0, math.cos(theta)
        for j in range(1, (dof - 1) // 2 + 1):
            series += term
            term *= (2 * j) / (2 * j + 1) * cos2
        a = 2 / math.pi * (theta + math.sin(theta) * series)
    else:
        series, term = 0.0, 1.0
        for j in range(1, dof // 2 + 1):
            series += term
            term *= (2 * j - 1) / (2 * j) * cos2
        a = math.sin(theta) * series
    return 0.5 + math.copysign(a, t) / 2


def student_t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`student_t_cdf`, to 1e-12 relative)."""
    if not 0 < p < 1:
        raise ValueError(f"p: must be in (0, 1) (got {p})")
    if p < 0.5:
        return -student_t_quantile(1 - p, dof)
    low, high = 0.0, 1.0
    while student_t_cdf(high, dof) < p:
        high *= 2
    while high - low > 1e-12 * high:
        mid = (low + high) / 2
        low, high = (mid, high) if student_t_cdf(mid, dof) < p else (low, mid)
    return (low + high) / 2


def mean_ci(
    frame: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    by: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per sweep point: the swept values, ``n`` (seeds without error) and for each metric
    ``METRIC:mean``, ``METRIC:ci_low`` and ``METRIC:ci_high`` (Student's t interval of the mean over seeds;
    NaN with fewer than two seeds).

    ``frame`` is a :func:`dcsim.sweep` result; ``by`` defaults to ``variant`` plus the swept columns and
    ``metrics`` to every numeric figure.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1) (got {confidence})")
    params = list(frame.attrs.get("params", _params_from_order(frame)))
    keys = list(by) if by is not None else ["variant", *params]
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise ValueError(f"by: no column {missing[0]!r} in the sweep results")
    skip = {"variant", "seed", "error", *params, *keys}
    if metrics is None:
        metrics = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]
    for metric in metrics:
        if metric not in frame.columns:
            raise ValueError(f"metrics: no column {metric!r} in the sweep results")
    ok = frame[frame["error"].isna()] if "error" in frame.columns else frame
    rows = []
    for values, group in ok.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        row["n"] = len(group)
        for metric in metrics:
            data = pd.to_numeric(group[metric], errors="coerce").dropna().to_numpy(dtype=float)
            mean = float(np.mean(data)) if len(data) else math.nan
            half = math.nan
            if len(data) >= 2:
                sem = float(np.std(data, ddof=1)) / math.sqrt(len(data))
                half = student_t_quantile(0.5 + confidence / 2, len(data) - 1) * sem
            row[f"{metric}:mean"], row[f"{metric}:ci_low"], row[f"{metric}:ci_high"] = mean, mean - half, mean + half
        rows.append(row)
    return pd.DataFrame(rows)


def _params_from_order(frame: pd.DataFrame) -> list[str]:
    """Swept columns of a results file: those between ``seed`` and ``error`` (the column order sweep writes)."""
    columns = list(frame.columns)
    if "seed" in columns and "error" in columns and columns.index("seed") < columns.index("error"):
        return columns[columns.index("seed") + 1 : columns.index("error")]
    return []
