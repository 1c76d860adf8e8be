"""dcsim: a discrete-event datacenter simulator for machine-learning workloads.

``run_scenario``, ``Result`` and ``load_scenario`` are imported on first use, so that light parts of the
package (the catalog, ``dcsim.compute``, the calibration harness on a GPU machine) need no SimPy or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dcsim._version import __version__

if TYPE_CHECKING:
    from dcsim.run import Result, run_scenario
    from dcsim.scenario import load_scenario
    from dcsim.sweep import sweep

__all__ = ["Result", "__version__", "load_scenario", "run_scenario", "sweep"]

_LAZY = {"Result": "dcsim.run", "run_scenario": "dcsim.run", "load_scenario": "dcsim.scenario"}


def __getattr__(name: str) -> Any:
    if name == "sweep":  # the dcsim.sweep package, callable as its sweep() (see dcsim/sweep/__init__.py)
        return importlib.import_module("dcsim.sweep")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dcsim' has no attribute {name!r}")
