"""dcsim: a discrete-event datacenter simulator for machine-learning workloads."""

from dcsim._version import __version__
from dcsim.run import Result, run_scenario
from dcsim.scenario import load_scenario

__all__ = ["Result", "__version__", "load_scenario", "run_scenario"]
