"""The smallest and largest values a scenario distribution can draw (its support, after min/max clipping)."""

from __future__ import annotations

import math

from dcsim.engine.distributions import Choice, Constant, Distribution, Pareto, Uniform


def lowest(dist: Distribution) -> float:
    """The smallest value ``dist`` can draw (0 for the unbounded positive distributions without ``min``)."""
    if isinstance(dist, Choice):
        low = float(min(dist.values))
    elif isinstance(dist, Constant):
        low = float(dist.value)
    elif isinstance(dist, Uniform):
        low = float(dist.low_value)
    elif isinstance(dist, Pareto):
        low = float(dist.scale)
    else:
        low = 0.0
    if dist.low is not None:
        low = max(low, dist.low)
    if dist.high is not None:
        low = min(low, dist.high)
    return low


def highest(dist: Distribution) -> float:
    """The largest value ``dist`` can draw (``inf`` for an unbounded distribution without ``max``)."""
    if isinstance(dist, Choice):
        high = float(max(dist.values))
    elif isinstance(dist, Constant):
        high = float(dist.value)
    elif isinstance(dist, Uniform):
        high = float(dist.high_value)
    else:
        high = math.inf
    if dist.high is not None:
        high = min(high, dist.high)
    if dist.low is not None:
        high = max(high, dist.low)
    return high


def upper(dist: Distribution) -> float:
    """The largest value ``dist`` draws in practice: its support's top where bounded, else its mean (an
    unbounded tail is drawn rarely); 0 for a tail without a mean (Pareto with alpha <= 1)."""
    top = highest(dist)
    if math.isfinite(top):
        return top
    mean = dist.mean
    return mean if math.isfinite(mean) else 0.0
