"""Field types shared by the schema: numbers written as ``3e11``, catalog ids, distributions.

Types are strict: ``true`` is not a number, and a count (``Count``, a whole-number distribution) is never
rounded: ``2.5`` accelerators is an error, while ``4.0`` (or ``4e0``) is read as 4. Numbers are finite.
"""

from __future__ import annotations

import math
import numbers
from typing import Annotated, Any

from pydantic import AfterValidator, AllowInfNan, BeforeValidator, PlainSerializer, Strict
from pydantic_core import PydanticCustomError

from dcsim.catalog import load_catalog
from dcsim.engine.distributions import Choice, Constant, Distribution, make_distribution
from dcsim.errors import short_repr


def _number(value: Any) -> Any:
    """Accept ``3e11`` and ``300e9`` (YAML 1.1 reads them as strings) as numbers; refuse ``true``/``false``."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return value
    if isinstance(value, numbers.Integral) and not isinstance(value, int):  # numpy integers from sweeps
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, int | float):
        return float(value)
    return value


def _whole(value: Any) -> Any:
    """A number that is exactly whole (``4``, ``4.0``, ``"4e0"``) as an ``int``; anything else unchanged."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    number = _number(value)
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        return int(number)
    if isinstance(number, float):
        raise PydanticCustomError("int_from_float", "Input should be a whole number")
    return number


def _accelerator_id(value: Any) -> Any:
    catalog = load_catalog()
    if isinstance(value, str) and value not in catalog.accelerators:
        raise ValueError(
            f"unknown accelerator {short_repr(value)} (see `dcsim catalog`: {', '.join(catalog.accelerators)})"
        )
    return value


def _interconnect_id(value: Any) -> Any:
    catalog = load_catalog()
    if isinstance(value, str) and value not in catalog.interconnects:
        raise ValueError(
            f"unknown interconnect {short_repr(value)} (see `dcsim catalog`: {', '.join(catalog.interconnects)})"
        )
    return value


def _distribution(value: Any) -> Distribution:
    if isinstance(value, Distribution):
        return value
    return make_distribution(_number(value) if isinstance(value, str) else value)


def _whole_values(dist: Distribution) -> Distribution:
    """``dist`` if every value it can take is whole: a constant or the choices of a discrete distribution.
    (Samples of a continuous distribution are rounded to whole numbers where they are used.)"""
    values = [dist.value] if isinstance(dist, Constant) else list(dist.choices) if isinstance(dist, Choice) else []
    fractional = [v for v in values if not float(v).is_integer()]
    if fractional:
        what = "must be a whole number" if isinstance(dist, Constant) else "choices must be whole numbers"
        raise ValueError(f"{what} (got {short_repr(fractional[0])})")
    return dist


#: A finite number; ``3e11`` written as text is read too.
Number = Annotated[float, BeforeValidator(_number), Strict(), AllowInfNan(False)]
#: A whole number (``4`` or ``4.0``, never ``2.5`` or ``true``); bounds come from ``Field(ge=...)``.
Count = Annotated[int, BeforeValidator(_whole), Strict()]
#: A whole number that may be negative (a priority); the same rules as :data:`Count`.
Integer = Count
#: ``true`` or ``false`` only (not ``1``, ``0`` or ``"yes"``).
Flag = Annotated[bool, Strict()]
AcceleratorId = Annotated[str, BeforeValidator(_accelerator_id)]
InterconnectId = Annotated[str, BeforeValidator(_interconnect_id)]
DistributionField = Annotated[Any, BeforeValidator(_distribution), PlainSerializer(lambda d: repr(d))]
#: A distribution of whole quantities (accelerators per job, tokens per request): constants and choices
#: must be whole numbers.
WholeDistributionField = Annotated[
    Any, BeforeValidator(_distribution), AfterValidator(_whole_values), PlainSerializer(lambda d: repr(d))
]
