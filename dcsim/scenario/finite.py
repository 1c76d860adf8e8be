"""Non-finite numbers (``.inf``, ``.nan``) anywhere in a validated scenario, one problem per field.

YAML reads ``.inf`` and ``.nan`` as floats and a range such as ``>= 0`` lets infinity through, so a price,
a rate or a distribution's mean could reach the run as ``inf`` and come out of it as a summary that JSON
cannot hold. Every number a scenario gives must be finite; this walks the validated sections (including
free-form mappings such as ``datacenter.network.params`` and distribution parameters) and names each
offending field by its path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from dcsim.engine.distributions import Distribution
from dcsim.errors import Problem
from dcsim.scenario.problems import field_path


def nonfinite_problems(section: BaseModel, prefix: str = "") -> list[Problem]:
    """One problem per field of ``section`` (recursively) that holds ``inf``, ``-inf`` or ``nan``."""
    return [
        Problem(field_path(loc, prefix), f"must be a finite number (got {value!r})")
        for loc, value in _numbers(section, ())
        if not math.isfinite(value)
    ]


def _numbers(value: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], float]]:
    """(location, float) for every float reachable from ``value``."""
    if isinstance(value, bool):
        return
    if isinstance(value, float):
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
