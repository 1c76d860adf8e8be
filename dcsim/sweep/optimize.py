"""``dcsim.sweep.optimize``: the cheapest (or fastest, or best by any figure) variant that meets constraints.

The search space is a sweep's design; every point is evaluated through :func:`dcsim.sweep.sweep` (so the cache
and executors apply), averaged over seeds, and judged on the means. Variants that fail validation (a plan that
cannot exist: a size that does not fit the pools, a parallel plan that does not divide the model) are pruned
before any simulation and reported with their reason; so are runs that fail.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dcsim.sweep.api import sweep
from dcsim.sweep.stats import mean_ci

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_CONSTRAINT = re.compile(r"^\s*(?P<metric>[^<>=!\s]+)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<bound>\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound`` on a point's mean over seeds, e.g. ``workloads.chat.slo_attainment >= 0.99``."""

    metric: str
    op: str
    bound: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the constraint (NaN never does)."""
        return not math.isnan(value) and _OPERATORS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_constraint(text: str) -> Constraint:
    """``'workloads.x.slo_attainment>=0.99'`` -> :class:`Constraint`; ``true``/``false`` bounds are 1/0."""
    match = _CONSTRAINT.match(text)
    if match is None:
        raise ValueError(f"constraint: expected METRIC>=NUMBER (or <=, >, <, ==, !=), got {text!r}")
    raw = match["bound"].lower()
    try:
        bound = {"true": 1.0, "false": 0.0}.get(raw, None)
        bound = float(raw) if bound is None else bound
    except ValueError:
        raise ValueError(f"constraint: the bound of {text!r} must be a number or true/false") from None
    return Constraint(match["metric"], match["op"], bound)


@dataclass(frozen=True)
class Optimum:
    """The outcome: ``params`` (the swept paths), ``best`` (a row of ``points``, or None if no point is
    feasible) and ``points``, one row per variant with the swept values, ``n`` seeds, metric means, ``feasible``
    and ``reason`` (why not), feasible ones first, best first."""

    objective: str
    sense: str
    params: list[str]
    best: pd.Series | None
    points: pd.DataFrame

    @property
    def feasible(self) -> pd.DataFrame:
        """The variants meeting every constraint, best first."""
        return self.points[self.points["feasible"]]


def _check_metric(metric: str, columns: Sequence[str], role: str) -> None:
    if metric not in columns:
        close = difflib.get_close_matches(metric, list(columns), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{role}: no figure {metric!r} in the results{hint}")


def optimize(
    base: str | Path | Mapping[str, Any],
    grid: Mapping[str, Any] | None = None,
    *,
    minimize: str | None = None,
    maximize: str | None = None,
    constraints: Sequence[str | Constraint] = (),
    **sweep_options: Any,
) -> Optimum:
    """The variant of the sweep space with the lowest ``minimize`` (or highest ``maximize``) mean over seeds
    among those meeting every constraint. ``sweep_options`` go to :func:`dcsim.sweep.sweep` (``seeds``,
    ``design``, ``samples``, ``executor``, ``workers``, ``cache_dir``, ...)."""
    if (minimize is None) == (maximize is None):
        raise ValueError("minimize: give exactly one of minimize and maximize")
    objective = str(minimize or maximize)
    sense = "min" if minimize is not None else "max"
    rules = [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints]
    frame = sweep(base, grid, **sweep_options)
    params = list(frame.attrs["params"])
    ok = frame[frame["error"].isna()]
    if ok.empty:
        raise ValueError(f"grid: every variant failed, e.g. {frame['error'].dropna().iloc[0]}")
    _check_metric(objective, list(ok.columns), "maximize" if sense == "max" else "minimize")
    for rule in rules:
        _check_metric(rule.metric, list(ok.columns), "constraint")
    metrics = list(dict.fromkeys([objective, *(rule.metric for rule in rules)]))
    means = mean_ci(frame, metrics)
    errors = frame.groupby("variant", sort=True)["error"].first()
    points = pd.DataFrame({"variant": sorted(frame["variant"].unique())})
    points = points.merge(frame.drop_duplicates("variant")[["variant", *params]], on="variant")
    points = points.merge(means[["variant", "n", *(f"{m}:mean" for m in metrics)]], on="variant", how="left")
    points = points.rename(columns={f"{m}:mean": m for m in metrics})
    points["n"] = points["n"].fillna(0).astype(int)
    reasons = []
    for values in points.to_dict("records"):
        if values["n"] == 0:
            reasons.append(f"failed: {errors.get(values['variant'])}")
            continue
        broken = [str(rule) for rule in rules if not rule.holds(float(values[rule.metric]))]
        if math.isnan(float(values[objective])):
            broken.insert(0, f"{objective} is not available")
        reasons.append("violates " + ", ".join(broken) if broken else "")
    points["feasible"] = [reason == "" for reason in reasons]
    points["reason"] = reasons
    points = points.sort_values(
        ["feasible", objective], ascending=[False, sense == "min"], kind="stable", na_position="last"
    ).reset_index(drop=True)
    best = points.iloc[0] if bool(points["feasible"].any()) else None
    return Optimum(objective, sense, params, best, points)
