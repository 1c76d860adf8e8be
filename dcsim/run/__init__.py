"""Build the world from a scenario, run it, and return a :class:`Result` (DataFrames + summary)."""

from dcsim.run.result import Result
from dcsim.run.runner import Runner, RunServices
from dcsim.run.world import run_scenario

__all__ = ["Result", "RunServices", "Runner", "run_scenario"]
