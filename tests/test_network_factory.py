"""Controllers and flow simulators are built in one place, :mod:`dcsim.network.factory`."""

from __future__ import annotations

import re
from pathlib import Path

import simpy

from dcsim.network import build_topology
from dcsim.network.factory import make_controller, make_flow_simulator


def test_controllers_and_flow_simulators_are_built_in_one_module() -> None:
    """``Controller(`` and ``FlowSimulator(`` are called only in dcsim/network/factory.py."""
    root = Path(__file__).resolve().parent.parent / "dcsim"
    call = re.compile(r"(?<!\w)(Controller|FlowSimulator)\(")
    found = set()
    for path in root.rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if call.search(line) and not line.lstrip().startswith("class "):
                found.add(path.relative_to(root).as_posix())
    assert found == {"network/factory.py"}


def test_a_simulator_reuses_a_controller_or_builds_its_own() -> None:
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 2, "hosts_per_leaf": 2})
    controller = make_controller(graph, "least_loaded", seed=3, policy_params={"k": 2})
    shared = make_flow_simulator(simpy.Environment(), controller)
    assert shared.controller is controller
    own = make_flow_simulator(simpy.Environment(), graph, "adaptive", seed=5, incremental=False)
    assert own.controller is not controller
    assert (own.controller.policy.name, own.controller.seed, own.incremental) == ("adaptive", 5, False)
