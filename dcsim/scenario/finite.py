"""Non-finite numbers (``.inf``, ``.nan``) and whole numbers past 64 bits anywhere in a validated scenario,
one problem per field.

YAML reads ``.inf`` and ``.nan`` as floats and a range such as ``>= 0`` lets infinity through, so a price,
a rate or a distribution's mean could reach the run as ``inf`` and come out of it as a summary that JSON
cannot hold. Every number a scenario gives must be finite; this walks the validated sections (including
free-form mappings such as ``datacenter.network.params`` and distribution parameters) and names each
offending field by its path. Whole numbers are bounded by :data:`MAX_WHOLE` (a signed 64-bit integer, what
numpy arrays hold; ``count: 1e400`` would overflow every float computed from it); the ``seed`` is exempt.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from dcsim.engine.distributions import Distribution
from dcsim.errors import Problem
from dcsim.scenario.problems import field_path

#: The largest whole number a field may hold (2**63 - 1, about 9.2e18).
MAX_WHOLE = 2**63 - 1


def nonfinite_problems(section: BaseModel, prefix: str = "") -> list[Problem]:
    """One problem per field of ``section`` (recursively) that holds ``inf``, ``-inf`` or ``nan``."""
    return [
        Problem(field_path(loc, prefix), f"must be a finite number (got {value!r})")
        for loc, value in _numbers(section, ())
        if isinstance(value, float) and not math.isfinite(value)
    ]


def oversized_whole_problems(section: BaseModel, prefix: str = "") -> list[Problem]:
    """One problem per whole number of ``section`` (recursively, the top-level ``seed`` aside) past
    :data:`MAX_WHOLE` in size."""
    return [
        Problem(field_path(loc, prefix), f"must be at most {MAX_WHOLE:.3g} in size (got {_digits(value)})")
        for loc, value in _numbers(section, ())
        if isinstance(value, int) and abs(value) > MAX_WHOLE and loc != ("seed",)
    ]


def _digits(value: int) -> str:
    return f"{value:.3g}" if abs(value) < 10**300 else f"~1e+{len(str(abs(value))) - 1}"


def _numbers(value: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], float]]:
    """(location, number) for every int and float reachable from ``value``."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _numbers(getattr(value, name), (*loc, name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, (*loc, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _numbers(item, (*loc, index))
    elif isinstance(value, Distribution):
        yield from _distribution_numbers(value, loc)


# Distribution attributes as a scenario names them ({dist: uniform, low, high}, min/max bounds).
_DISTRIBUTION_KEYS = {"mean_value": "mean", "low_value": "low", "high_value": "high", "low": "min", "high": "max"}


def _distribution_numbers(dist: Distribution, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], float]]:
    for name, item in vars(dist).items():
        if name in ("probabilities", "values"):  # derived from choices and weights, which are walked
            continue
        yield from _numbers(item, (*loc, _DISTRIBUTION_KEYS.get(name, name)))
