"""Physical bounds of dcsim's figures, and confidence intervals clipped to them.

A Student's t interval over a few seeds can reach past what a figure can be (a utilization of 1.4, a negative
completion time). The report clips each interval to its figure's bounds, told by the figure's name:
fractions (utilization, goodput, MFU, SLO attainment...) lie in [0, 1]; durations, money, energy, sizes,
rates and counts are >= 0, unless the name says the figure is a difference (savings, delta...).
"""

from __future__ import annotations

import math

import pandas as pd

from dcsim.formatting import quantity_of

#: Words in a figure's name that make it a difference, which may be negative.
SIGNED_WORDS = ("savings", "delta", "diff", "change", "gain", "margin", "error", "bias", "offset", "slack")
#: Words of counts and amounts that are never negative, besides the quantities with units.
NONNEGATIVE_WORDS = (
    "jobs",
    "requests",
    "tokens",
    "preemptions",
    "failures",
    "restarts",
    "accelerators",
    "replicas",
    "steps",
    "events",
    "nodes",
    "ranks",
    "batch",
    "count",
    "hours",
)


def physical_bounds(name: str) -> tuple[float, float]:
    """(lowest, highest) value the figure ``name`` (a dotted summary path or sweep column) can take."""
    lowered = name.lower()
    if any(word in lowered for word in SIGNED_WORDS):
        return -math.inf, math.inf
    quantity = quantity_of(name)
    if quantity == "fraction":
        return 0.0, 1.0
    if quantity != "number" or any(word in lowered for word in NONNEGATIVE_WORDS):
        return 0.0, math.inf
    return -math.inf, math.inf


def clip_intervals(points: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """``points`` (from :func:`dcsim.sweep.stats.mean_ci`) with each metric's ``:ci_low`` and ``:ci_high``
    clipped to its :func:`physical_bounds` (a copy; NaN stays NaN)."""
    clipped = points.copy()
    for metric in metrics:
        low, high = physical_bounds(metric)
        for column in (f"{metric}:ci_low", f"{metric}:ci_high"):
            if column in clipped.columns:
                clipped[column] = clipped[column].clip(lower=low, upper=high)
    return clipped
