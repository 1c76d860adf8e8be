"""Summary statistics in the contract's shape."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def quantiles(values: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """``{p50, p90, p99, mean}`` of ``values`` (linear-interpolated percentiles); ``None`` when empty."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    p50, p90, p99 = np.percentile(data, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(data.mean())}
