"""Parameter checking shared by the topology builders (exact messages naming the parameter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcsim.network.graph import TopologyError


def check_params(kind: str, params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Raise :class:`TopologyError` naming any parameter ``kind`` does not take."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TopologyError(f"{kind}: unknown parameter(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def positive_int(kind: str, params: Mapping[str, Any], name: str, default: int | None = None, minimum: int = 1) -> int:
    """``params[name]`` as an int >= ``minimum`` (``default`` when absent; required when it is None)."""
    value = params.get(name, default)
    if value is None:
        raise TopologyError(f"{kind}: parameter {name} is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value < minimum:
        raise TopologyError(f"{kind}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_float(kind: str, params: Mapping[str, Any], name: str, default: float) -> float:
    """``params[name]`` as a float > 0 (``default`` when absent)."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise TopologyError(f"{kind}: {name} must be a number > 0, got {value!r}")
    return float(value)
