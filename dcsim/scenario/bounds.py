"""The smallest and largest values a scenario distribution can draw (its support, after min/max clipping)."""

from __future__ import annotations

import math

from dcsim.engine.distributions import Choice, Constant, Distribution, Pareto, Uniform


def support(dist: Distribution) -> tuple[float, float]:
    """(smallest, largest) value ``dist`` can draw, after its ``min``/``max`` clipping: 0 for the bottom of an
    unbounded positive distribution without ``min``, ``inf`` for the top of an unbounded one without ``max``."""
    if isinstance(dist, Choice):
        low, high = float(min(dist.values)), float(max(dist.values))
    elif isinstance(dist, Constant):
        low = high = float(dist.value)
    elif isinstance(dist, Uniform):
        low, high = float(dist.low_value), float(dist.high_value)
    elif isinstance(dist, Pareto):
        low, high = float(dist.scale), math.inf
    else:
        low, high = 0.0, math.inf
    if dist.low is not None:
        low = max(low, dist.low)
    if dist.high is not None:
        low, high = min(low, dist.high), min(high, dist.high)
    if dist.low is not None:
        high = max(high, dist.low)
    return low, high


def lowest(dist: Distribution) -> float:
    """The smallest value ``dist`` can draw (see :func:`support`)."""
    return support(dist)[0]


def highest(dist: Distribution) -> float:
    """The largest value ``dist`` can draw (see :func:`support`)."""
    return support(dist)[1]


def upper(dist: Distribution) -> float:
    """The largest value ``dist`` draws in practice: its support's top where bounded, else its mean (an
    unbounded tail is drawn rarely); 0 for a tail without a mean (Pareto with alpha <= 1)."""
    top = highest(dist)
    if math.isfinite(top):
        return top
    mean = dist.mean
    return mean if math.isfinite(mean) else 0.0
