"""The SDN controller's routing policies and their registry."""

from __future__ import annotations

import pathlib

import pytest
import simpy

from dcsim.network import Controller, FlowSimulator, RoutingPolicy, build_topology, register_routing_policy
from dcsim.network.routing import ROUTING_POLICIES, resolve_policy
from dcsim.network.routing.base import Path


class Widest(RoutingPolicy):
    """Example of a user policy: among equal-cost paths, the one with the fewest flows installed."""

    def choose(self, candidates: list[Path], key: int) -> Path:
        load = self.controller.link_flows
        return min(candidates, key=lambda p: int(load[self.controller.links.links_of_path(p)].max()))


def test_builtin_policies_are_registered_and_duplicates_refused() -> None:
    assert {"shortest_path", "ecmp", "least_loaded"} <= set(ROUTING_POLICIES)
    with pytest.raises(ValueError, match="routing policy 'ecmp' is already registered"):
        register_routing_policy("ecmp")(Widest)


USER_MODULE = """
from dcsim.network import RoutingPolicy


class LastPath(RoutingPolicy):
    def choose(self, candidates, key):
        return candidates[-1]
"""


def test_policy_by_module_and_class_name(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_routing.py").write_text(USER_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    controller = Controller(build_topology("fat_tree", {"k": 4}), "my_routing:LastPath")
    assert type(controller.policy).__name__ == "LastPath"
    assert controller.name(controller.route("host0", "host15").nodes[3]) == "core3"
    with pytest.raises(ValueError, match="unknown routing policy 'nope'"):
        resolve_policy("nope")
    with pytest.raises(ValueError, match="cannot load routing policy 'my_routing:Nope'"):
        resolve_policy("my_routing:Nope")


def test_ecmp_is_deterministic_in_seed_and_spreads_flows() -> None:
    graph = build_topology("fat_tree", {"k": 8})

    def cores(seed: int) -> list:
        controller = Controller(graph, "ecmp", seed)
        return [controller.name(controller.route("host0", "host127", key).nodes[3]) for key in range(64)]

    assert cores(1) == cores(1)
    assert cores(1) != cores(2)
    assert len(set(cores(1))) > 8  # 16 core switches reachable


def test_shortest_path_is_one_path_per_pair() -> None:
    controller = Controller(build_topology("fat_tree", {"k": 4}), "shortest_path")
    assert len({controller.route("host0", "host15", key).nodes for key in range(10)}) == 1


def test_least_loaded_spreads_simultaneous_flows_over_spines() -> None:
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 4, "hosts_per_leaf": 4})
    env = simpy.Environment()
    sim = FlowSimulator(env, Controller(graph, "least_loaded"))
    sim.start_flows([f"host{i}" for i in range(4)], [f"host{4 + i}" for i in range(4)], 1e6)
    uplinks = [
        sim.controller.links.link_id[(sim.controller.index("leaf0"), sim.controller.index(f"spine{s}"))]
        for s in range(4)
    ]
    assert sim.controller.link_flows[uplinks].tolist() == [1, 1, 1, 1]


def test_a_user_policy_is_one_short_subclass() -> None:
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 2, "hosts_per_leaf": 2})
    controller = Controller(graph, Widest)
    controller.link_flows[controller.links.link_id[(controller.index("leaf0"), controller.index("spine0"))]] = 5
    assert controller.name(controller.route("host0", "host2").nodes[2]) == "spine1"


def test_policy_parameters_are_checked() -> None:
    graph = build_topology("fat_tree", {"k": 4})
    assert Controller(graph, "least_loaded", policy_params={"k": 2}).policy.k == 2  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="routing policy ecmp takes no parameters"):
        Controller(graph, "ecmp", policy_params={"k": 2})
