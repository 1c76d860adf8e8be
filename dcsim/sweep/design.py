"""Designs of experiments: which parameter values a sweep evaluates.

- ``grid``: every combination of the listed values (the last parameter varies fastest).
- ``random``: ``samples`` independent draws, each parameter uniform over its range (or its list of values).
- ``lhs``: Latin hypercube of ``samples`` points: each parameter's range is cut into ``samples`` equal strata and
  every stratum is used exactly once (McKay, Beckman & Conover, Technometrics 21(2), 1979).

A range is ``{"low": a, "high": b}``, optionally with ``"log": true`` (uniform in log space) and ``"integer":
true`` (whole numbers ``a..b`` inclusive; the default when both ends are whole numbers). A list is a set of
discrete choices. Draws come from ``numpy.random.default_rng(design_seed)`` only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcsim.scenario.paths import parse_path

DESIGNS = ("grid", "random", "lhs")


@dataclass(frozen=True)
class Range:
    """A continuous (or integer) range ``[low, high]`` of one parameter."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def value(self, u: float) -> float | int:
        """The value at quantile ``u`` in [0, 1) of this range."""
        if self.integer:
            lo, hi = int(self.low), int(self.high)
            return min(hi, lo + math.floor(u * (hi - lo + 1)))
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


@dataclass(frozen=True)
class Choices:
    """A discrete set of values of one parameter."""

    values: tuple[Any, ...]

    def value(self, u: float) -> Any:
        """The value whose equal-width stratum of [0, 1) holds ``u``."""
        return self.values[min(len(self.values) - 1, int(u * len(self.values)))]


Space = Range | Choices


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_space(path: str, spec: Any) -> Space:
    """One parameter's values: a list (choices) or a ``{low, high[, log, integer]}`` range."""
    parse_path(path)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"low", "high", "log", "integer"}
        if unknown or "low" not in spec or "high" not in spec:
            raise ValueError(f"{path}: a range is {{low: a, high: b}} with optional log and integer")
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            raise ValueError(f"{path}: range ends must be numbers (got low={low!r}, high={high!r})")
        if not high >= low:
            raise ValueError(f"{path}: range needs low <= high (got low={low}, high={high})")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ValueError(f"{path}: a log range needs low > 0 (got {low})")
        integer = bool(spec.get("integer", _is_whole(low) and _is_whole(high)))
        return Range(float(low), float(high), log=log, integer=integer)
    if isinstance(spec, str) or not isinstance(spec, Sequence):
        raise ValueError(f"{path}: give a list of values or a range {{low: a, high: b}} (got {spec!r})")
    if len(spec) == 0:
        raise ValueError(f"{path}: the list of values is empty")
    return Choices(tuple(spec))


def _python(value: Any) -> Any:
    """numpy scalars -> plain Python, so variants serialize to YAML/JSON like hand-written files."""
    return value.item() if isinstance(value, np.generic) else value


def make_design(
    space: Mapping[str, Any] | None, design: str = "grid", samples: int | None = None, design_seed: int = 0
) -> list[dict[str, Any]]:
    """The parameter values of every variant, in evaluation order: a list of ``{path: value}``."""
    if design not in DESIGNS:
        raise ValueError(f"design: must be one of {', '.join(DESIGNS)} (got {design!r})")
    params = {path: parse_space(path, spec) for path, spec in (space or {}).items()}
    if design == "grid":
        if samples is not None:
            raise ValueError("samples: only the random and lhs designs take samples (a grid has every combination)")
        ranges = [path for path, p in params.items() if isinstance(p, Range)]
        if ranges:
            raise ValueError(f"{ranges[0]}: a grid needs a list of values; ranges need design='random' or 'lhs'")
        lists = [p.values for p in params.values() if isinstance(p, Choices)]
        return [dict(zip(params, combo, strict=True)) for combo in itertools.product(*lists)]
    if samples is None or isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: the {design} design needs a whole number of samples >= 1 (got {samples!r})")
    rng = np.random.default_rng(design_seed)
    count = len(params)
    if design == "random":
        quantiles = rng.random((samples, count))
    else:
        quantiles = np.empty((samples, count))
        for column in range(count):
            quantiles[:, column] = (rng.permutation(samples) + rng.random(samples)) / samples
    names = list(params)
    return [
        {name: _python(params[name].value(float(quantiles[row, col]))) for col, name in enumerate(names)}
        for row in range(samples)
    ]
