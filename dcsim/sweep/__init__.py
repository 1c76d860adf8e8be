"""Parameter sweeps: a scenario evaluated over a design of values and seeds, on local processes or Dask.

``sweep(base, grid=..., seeds=...)`` returns a pandas DataFrame with one row per (variant, seed);
``mean_ci(frame)`` gives each point's mean and confidence interval over seeds; ``optimize`` finds the best
variant meeting constraints. See ``docs/sweeps.md``.

Importing this package sets the ``dcsim.sweep`` attribute to the package itself (Python does that for every
subpackage), so the package is made callable: ``dcsim.sweep(...)`` is :func:`sweep` either way.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from dcsim.scenario.paths import get_path, parse_path, set_path
from dcsim.sweep.api import sweep
from dcsim.sweep.cache import ResultCache, default_cache_dir, scenario_key
from dcsim.sweep.design import make_design
from dcsim.sweep.optimize import Constraint, Optimum, optimize, parse_constraint
from dcsim.sweep.stats import mean_ci, student_t_quantile

__all__ = [
    "Constraint",
    "Optimum",
    "ResultCache",
    "default_cache_dir",
    "get_path",
    "make_design",
    "mean_ci",
    "optimize",
    "parse_constraint",
    "parse_path",
    "scenario_key",
    "set_path",
    "student_t_quantile",
    "sweep",
]


class _CallableModule(types.ModuleType):
    """The ``dcsim.sweep`` package, callable as :func:`dcsim.sweep.sweep`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
