"""The limits a validated scenario must keep before anything sized by it is built (see docs/scenario.md,
"Limits check enforces"): finite numbers and 64-bit whole numbers (:mod:`dcsim.scenario.finite`), a run that
fits in memory (:mod:`dcsim.scenario.estimate`) and a run that can finish (:mod:`dcsim.scenario.feasibility`)."""

from __future__ import annotations

from dcsim.errors import UserInputError
from dcsim.scenario.estimate import size_problems
from dcsim.scenario.feasibility import feasibility_problems
from dcsim.scenario.finite import nonfinite_problems, oversized_whole_problems
from dcsim.scenario.problems import unique
from dcsim.scenario.schema import Scenario


def check_limits(scenario: Scenario) -> None:
    """Raise :class:`UserInputError` with every limit the scenario breaks (non-finite numbers first, alone:
    sizes computed from them mean nothing)."""
    problems = nonfinite_problems(scenario)
    if not problems:
        problems = size_problems(scenario) + feasibility_problems(scenario)
        named = {problem.path for problem in problems}  # a size said in full is not repeated as a bound
        problems += [problem for problem in oversized_whole_problems(scenario) if problem.path not in named]
    if problems:
        raise UserInputError(unique(problems))
