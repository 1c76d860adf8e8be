"""Field types shared by the schema: numbers written as ``3e11``, catalog ids, distributions."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from dcsim.catalog import load_catalog
from dcsim.engine.distributions import Distribution, make_distribution


def _number(value: Any) -> Any:
    """Accept ``3e11`` and ``300e9`` (YAML 1.1 reads them as strings) as numbers."""
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return value
    return value


def _whole(value: Any) -> Any:
    value = _number(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _accelerator_id(value: Any) -> Any:
    catalog = load_catalog()
    if isinstance(value, str) and value not in catalog.accelerators:
        raise ValueError(f"unknown accelerator {value!r} (see `dcsim catalog`: {', '.join(catalog.accelerators)})")
    return value


def _interconnect_id(value: Any) -> Any:
    catalog = load_catalog()
    if isinstance(value, str) and value not in catalog.interconnects:
        raise ValueError(f"unknown interconnect {value!r} (see `dcsim catalog`: {', '.join(catalog.interconnects)})")
    return value


def _distribution(value: Any) -> Distribution:
    if isinstance(value, Distribution):
        return value
    return make_distribution(_number(value))


Number = Annotated[float, BeforeValidator(_number)]
Count = Annotated[int, BeforeValidator(_whole)]
AcceleratorId = Annotated[str, BeforeValidator(_accelerator_id)]
InterconnectId = Annotated[str, BeforeValidator(_interconnect_id)]
DistributionField = Annotated[Any, BeforeValidator(_distribution), PlainSerializer(lambda d: repr(d))]
