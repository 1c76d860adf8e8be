"""Random distributions as small objects with ``sample(rng, size)``, ``mean`` and ``variance``.

Scenario files write them as mappings: ``{dist: constant, value}``, ``{dist: exponential, mean}``,
``{dist: lognormal, mean, sigma}`` (``mean`` is the mean of the distribution itself, ``sigma`` the standard
deviation of its logarithm), ``{dist: uniform, low, high}``, ``{dist: pareto, alpha, scale}`` (Lomax-free
classic Pareto with minimum ``scale``), ``{dist: gamma, mean, cv}`` and ``{choices: [...], weights: [...]}``.
Any of them takes optional ``min``/``max`` bounds that clip samples; ``mean``/``variance`` are those of the
unclipped distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcsim.errors import short_repr


class Distribution:
    """Base class: subclasses implement ``_draw``, ``mean`` and ``variance``."""

    low: float | None = None
    high: float | None = None

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` samples as a float array, clipped to [min, max] where given."""
        values = self._draw(rng, size)
        if self.low is not None or self.high is not None:
            values = np.clip(values, self.low, self.high)
        return values

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def variance(self) -> float:
        raise NotImplementedError


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


@dataclass
class Constant(Distribution):
    """Always ``value``."""

    value: float

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, float(self.value))

    @property
    def mean(self) -> float:
        return float(self.value)

    @property
    def variance(self) -> float:
        return 0.0


@dataclass
class Exponential(Distribution):
    """Exponential with the given mean."""

    mean_value: float

    def __post_init__(self) -> None:
        _positive("mean", self.mean_value)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean_value, size)

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def variance(self) -> float:
        return self.mean_value**2


@dataclass
class LogNormal(Distribution):
    """Log-normal with distribution mean ``mean_value`` and log-space standard deviation ``sigma``."""

    mean_value: float
    sigma: float

    def __post_init__(self) -> None:
        _positive("mean", self.mean_value)
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        self.mu = math.log(self.mean_value) - self.sigma**2 / 2

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, size)

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def variance(self) -> float:
        return (math.exp(self.sigma**2) - 1) * self.mean_value**2


@dataclass
class Uniform(Distribution):
    """Uniform on [low_value, high_value)."""

    low_value: float
    high_value: float

    def __post_init__(self) -> None:
        if not self.high_value > self.low_value:
            raise ValueError(f"high must be > low, got low={self.low_value}, high={self.high_value}")

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low_value, self.high_value, size)

    @property
    def mean(self) -> float:
        return (self.low_value + self.high_value) / 2

    @property
    def variance(self) -> float:
        return (self.high_value - self.low_value) ** 2 / 12


@dataclass
class Pareto(Distribution):
    """Classic Pareto (type I) with shape ``alpha`` and minimum ``scale``: heavy-tailed job durations."""

    alpha: float
    scale: float

    def __post_init__(self) -> None:
        _positive("alpha", self.alpha)
        _positive("scale", self.scale)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.scale * (1.0 + rng.pareto(self.alpha, size))

    @property
    def mean(self) -> float:
        return math.inf if self.alpha <= 1 else self.alpha * self.scale / (self.alpha - 1)

    @property
    def variance(self) -> float:
        if self.alpha <= 2:
            return math.inf
        return self.scale**2 * self.alpha / ((self.alpha - 1) ** 2 * (self.alpha - 2))


@dataclass
class Gamma(Distribution):
    """Gamma with the given mean and coefficient of variation ``cv`` (cv > 1 is burstier than Poisson)."""

    mean_value: float
    cv: float

    def __post_init__(self) -> None:
        _positive("mean", self.mean_value)
        _positive("cv", self.cv)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean_value / shape, size)

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def variance(self) -> float:
        return (self.cv * self.mean_value) ** 2


@dataclass
class Choice(Distribution):
    """A discrete choice among ``choices`` with relative ``weights`` (equal when omitted)."""

    choices: Sequence[float]
    weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if len(self.choices) == 0:
            raise ValueError("choices must not be empty")
        weights = np.ones(len(self.choices)) if self.weights is None else np.asarray(self.weights, float)
        if len(weights) != len(self.choices):
            raise ValueError(f"weights has {len(weights)} entries but choices has {len(self.choices)}")
        if np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("weights must be >= 0 and not all zero")
        self.probabilities = weights / weights.sum()
        self.values = np.asarray(self.choices, dtype=float)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(self.values, size=size, p=self.probabilities)

    @property
    def mean(self) -> float:
        return float(self.values @ self.probabilities)

    @property
    def variance(self) -> float:
        return float(((self.values - self.mean) ** 2) @ self.probabilities)


_FIELDS: dict[str, tuple[type[Distribution], dict[str, str]]] = {
    "constant": (Constant, {"value": "value"}),
    "exponential": (Exponential, {"mean": "mean_value"}),
    "lognormal": (LogNormal, {"mean": "mean_value", "sigma": "sigma"}),
    "uniform": (Uniform, {"low": "low_value", "high": "high_value"}),
    "pareto": (Pareto, {"alpha": "alpha", "scale": "scale"}),
    "gamma": (Gamma, {"mean": "mean_value", "cv": "cv"}),
}


def _finite(name: str, value: Any) -> float:
    """``value`` as a finite float, or ValueError naming ``name``: numbers and numeric text, not booleans."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | np.number):
        raise ValueError(f"{name} must be a number, got {short_repr(value)}")
    try:
        number = float(value.replace("_", "") if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise ValueError(f"{name} must be a number, got {short_repr(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {short_repr(value)}")
    return number


def _numbers(name: str, values: Any) -> list[float]:
    """``values`` as a list of finite floats, or ValueError naming ``name`` (and the entry's index)."""
    if not isinstance(values, list | tuple):
        raise ValueError(f"{name} must be a list of numbers, got {short_repr(values)}")
    return [_finite(f"{name}[{index}]", value) for index, value in enumerate(values)]


def _choice(spec: dict[str, Any]) -> Choice:
    unknown = set(spec) - {"choices", "weights", "dist"}
    if unknown or spec.get("dist", "choice") != "choice":
        raise ValueError(
            f"a choice distribution takes only choices and weights, got {short_repr(sorted(map(str, spec)))}"
        )
    choices = _numbers("choices", spec["choices"])
    weights = spec.get("weights")
    if weights is None:
        return Choice(choices)
    numbers = _numbers("weights", weights)
    if not math.isfinite(sum(numbers)):
        raise ValueError("weights must sum to a finite number")
    return Choice(choices, numbers)


def make_distribution(spec: Any) -> Distribution:
    """Build a distribution from a scenario value: a number (constant) or a mapping (see module doc).

    Every parameter must be a finite number (booleans are not numbers). Raises ValueError with a message
    naming the offending key; any value a user can write gives a ValueError, never another exception.
    """
    if isinstance(spec, bool):
        raise ValueError("must be a number or a distribution mapping, got a boolean")
    if isinstance(spec, int | float):
        return Constant(_finite("the value", spec))
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"must be a number or a distribution mapping like {{dist: exponential, mean: 60}}, got {short_repr(spec)}"
        )
    spec = dict(spec)
    bounds = {key: spec.pop(key) for key in ("min", "max") if key in spec}
    if "choices" in spec:
        dist: Distribution = _choice(spec)
    else:
        kind = spec.pop("dist", None)
        if not isinstance(kind, str) or kind not in _FIELDS:
            raise ValueError(
                f"dist must be one of {', '.join(sorted(_FIELDS))} (or give choices), got {short_repr(kind)}"
            )
        cls, names = _FIELDS[kind]
        keys = [str(key) for key in spec]
        missing = sorted(set(names) - set(keys))
        extra = sorted(set(keys) - set(names))
        if missing:
            raise ValueError(f"{kind} distribution needs {', '.join(missing)}")
        if extra:
            raise ValueError(
                f"{kind} distribution has unknown keys {', '.join(key[:40] for key in extra)} "
                f"(it takes {', '.join(names)}, min, max)"
            )
        dist = cls(**{names[key]: _finite(key, value) for key, value in spec.items()})
    for key, value in bounds.items():
        setattr(dist, "low" if key == "min" else "high", _finite(key, value))
    if dist.low is not None and dist.high is not None and dist.low > dist.high:
        raise ValueError(f"min ({dist.low}) must be <= max ({dist.high})")
    return dist
