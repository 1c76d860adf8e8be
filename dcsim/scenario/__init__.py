"""Scenario files: YAML -> typed, validated configuration (the contract in docs/scenario.md).

:func:`load_scenario` reads a path or a mapping and returns a :class:`Scenario`; every problem found is
reported at once as a :class:`dcsim.errors.UserInputError` naming each field by its path.
"""

from dcsim.scenario.loader import load_scenario
from dcsim.scenario.schema import Datacenter, NodeType, Outputs, Scenario, SchedulerSpec
from dcsim.scenario.workloads import JobsWorkload, register_workload_kind

__all__ = [
    "Datacenter",
    "JobsWorkload",
    "NodeType",
    "Outputs",
    "Scenario",
    "SchedulerSpec",
    "load_scenario",
    "register_workload_kind",
]
