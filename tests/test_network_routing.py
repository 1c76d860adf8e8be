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
    with pytest.raises(ValueError, match="'my_routing:Nope' is not a RoutingPolicy subclass"):
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


def _graphs() -> list[object]:
    from dcsim.network import NetworkConfig, NodeGroup, build_datacenter_fabric

    fabric = build_datacenter_fabric(
        [NodeGroup("dgx", 2, 8, "a100-sxm-80gb", "nvswitch-a100", 2, 200)], NetworkConfig("leaf_spine", None, 200)
    )
    return [
        build_topology("fat_tree", {"k": 4}, 100, 1.0),
        build_topology("torus", {"dims": [3, 4]}, 100, 0.7),
        build_topology("jellyfish", {"switches": 8, "degree": 3, "hosts": 2}, 100, 0.3, seed=2),
        fabric.graph,
    ]


@pytest.mark.parametrize("graph", _graphs())
@pytest.mark.parametrize("failed", [False, True])
def test_fast_ecmp_routes_match_the_hop_by_hop_walk(graph: object, failed: bool) -> None:
    """Ecmp's vectorized batch routing and its single-flow walk (per-destination hop tables, leaves
    routed through their switch) give the links and latency of ``Controller.route_index``, bit for bit."""
    import networkx as nx
    import numpy as np

    from dcsim.network.routing import NoRouteError

    assert isinstance(graph, nx.Graph)
    controller = Controller(graph, "ecmp", seed=5)
    if failed:  # a link between two switches goes down (a leaf may lose its only link in the dgx fabric)
        u, v = next((u, v) for u, v in graph.edges if graph.degree(u) > 1 and graph.degree(v) > 1)
        controller.fail_link(u, v)
    n = len(controller.links.nodes)
    rng = np.random.default_rng(1)
    src = rng.integers(0, n, 400)
    dst = rng.integers(0, n, 400)
    key = rng.integers(-(2**40), 2**62, 400)
    expected = []
    for s, d, k in zip(src.tolist(), dst.tolist(), key.tolist(), strict=True):
        try:
            route = controller.route_index(s, d, k)
        except NoRouteError:
            expected.append(None)
            continue
        expected.append((route.links.tolist(), route.latency_s))
        assert controller.policy.route_one(s, d, k) == expected[-1]
    ok = np.array([e is not None for e in expected])
    ptr, links, latency = controller.policy.route_links(src[ok], dst[ok], key[ok])
    got = [(links[a:b].tolist(), lat) for a, b, lat in zip(ptr[:-1], ptr[1:], latency.tolist(), strict=True)]
    assert got == [e for e in expected if e is not None]
    if not ok.all():
        with pytest.raises(NoRouteError):
            controller.policy.route_links(src, dst, key)
