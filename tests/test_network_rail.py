"""The rail-optimized topology: wiring, sizing, fitting to the servers, and rail-aligned collectives."""

from __future__ import annotations

import pytest

from dcsim.errors import UserInputError
from dcsim.network import NetworkConfig, NodeGroup, TopologyError, build_datacenter_fabric, build_topology
from dcsim.network.session import CollectiveSpec, run_collectives
from dcsim.network.topologies.rail_optimized import uplink_gbps
from dcsim.network.units import gbps_to_bytes_per_s
from dcsim.scenario import load_scenario
from dcsim.scenario.estimate import topology_size


def test_nic_i_of_every_node_of_a_group_is_on_rail_leaf_i() -> None:
    params = {"nodes": 6, "nics_per_node": 4, "nodes_per_group": 4, "spines": 2}
    graph = build_topology("rail_optimized", params, link_gbps=400)
    for n in range(6):
        for i in range(4):
            assert list(graph.neighbors(f"host{n * 4 + i}")) == [f"group{n // 4}-rail{i}"]
    leaves = [name for name, tier in graph.nodes(data="tier") if tier == "leaf"]
    assert len(leaves) == 2 * 4  # two rail groups (4 + 2 nodes), one leaf per NIC index
    for leaf in leaves:
        assert {f"spine{s}" for s in range(2)} <= set(graph.neighbors(leaf))
    # uplinks sized for 1:1 from the leaf's 4 host ports at 400 Gb/s over 2 spines
    capacity = graph.edges["group0-rail0", "spine0"]["capacity_bytes_per_s"]
    assert capacity == pytest.approx(gbps_to_bytes_per_s(4 * 400 / 2))
    assert uplink_gbps({**params, "oversubscription": 4}, 400) == pytest.approx(4 * 400 / 2 / 4)


def test_size_formula_matches_the_builder() -> None:
    for params in ({"nodes": 6, "nics_per_node": 4, "nodes_per_group": 4, "spines": 2}, {"nodes": 3}):
        graph = build_topology("rail_optimized", params)
        hosts = sum(1 for _, role in graph.nodes(data="role") if role == "host")
        assert topology_size("rail_optimized", params) == (
            hosts,
            graph.number_of_nodes() - hosts,
            graph.number_of_edges(),
        )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "rail_optimized: parameter nodes is required"),
        ({"nodes": 2, "spines": 0}, "rail_optimized: spines must be an integer >= 1"),
        ({"nodes": 2, "oversubscription": 2, "uplink_gbps": 100}, "give oversubscription or uplink_gbps"),
        ({"nodes": 2, "rails": 8}, "rail_optimized: unknown parameter(s) rails"),
    ],
)
def test_bad_parameters_name_the_parameter(params: dict, message: str) -> None:
    with pytest.raises(TopologyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_topology("rail_optimized", params)


def _dgx(count: int = 4, nics: int = 8, params: dict | None = None, routing: str = "ecmp"):
    return build_datacenter_fabric(
        [NodeGroup("dgx", count, 8, "h100-sxm", "nvswitch-h100", nics, 400)],
        NetworkConfig("rail_optimized", params, 400, 1.0, routing),
    )


def test_the_fabric_puts_each_servers_nic_i_on_rail_i_and_takes_its_size_from_the_servers() -> None:
    fabric = _dgx()
    graph = fabric.graph
    assert graph.graph["params"] == {"nics_per_node": 8, "nodes": 4, "nic_gbps": 400}
    for server, nics in fabric.nics.items():
        for i, nic in enumerate(nics):
            assert f"group0-rail{i}" in set(graph.neighbors(nic)), (server, nic)
            assert graph.has_edge(f"{server}/acc{i}-pcie", nic)  # GPU i uses NIC i


def test_servers_whose_nics_do_not_match_the_rails_are_refused() -> None:
    with pytest.raises(TopologyError, match="nics_per_node is 4 but the nodes have 8 NICs"):
        _dgx(params={"nics_per_node": 4})
    with pytest.raises(TopologyError, match="every node needs the same number of NICs"):
        build_datacenter_fabric(
            [NodeGroup("a", 1, 8, "h100-sxm", None, 8, 400), NodeGroup("b", 1, 8, "h100-sxm", None, 4, 400)],
            NetworkConfig("rail_optimized", None, 400),
        )


def test_rail_aligned_all_reduces_cross_no_spine() -> None:
    """Eight all-reduces at once, one per rail: GPU i of each of 4 DGX nodes. Every byte stays on its rail
    leaf; a spine carries nothing; each rail leaf carries its rail's traffic."""
    fabric = _dgx()
    specs = [
        CollectiveSpec(f"rail{i}", "all_reduce", 1e8, [f"dgx-{n}/acc{i}" for n in range(4)], "ring") for i in range(8)
    ]
    run = run_collectives(fabric, specs)
    table = run.usage.table()
    assert table.loc[table["tier"] == "uplink", "bytes"].sum() == 0
    for i in range(8):
        into_leaf = table[(table["dst"] == f"group0-rail{i}")]["bytes"].sum()
        assert into_leaf == pytest.approx(4 * 2 * 3 / 4 * 1e8, rel=1e-6)  # ring: 2(n-1)/n of the bytes per rank
    times = {round(result.time_s, 12) for result in run.results.values()}
    assert len(times) == 1  # the rails do not slow each other


def test_cross_rail_traffic_uses_the_spines() -> None:
    fabric = _dgx(count=2, params={"nodes_per_group": 1})  # two rail groups of one node each
    run = run_collectives(fabric, [CollectiveSpec("x", "send_recv", 1e8, ["dgx-0/acc0", "dgx-1/acc0"])])
    table = run.usage.table()
    # send_recv: each rank sends to the other; each direction climbs to a spine and down (2 uplink hops)
    assert table.loc[table["tier"] == "uplink", "bytes"].sum() == pytest.approx(2 * 2 * 1e8, rel=1e-6)


def _scenario(params: dict) -> dict:
    return {
        "name": "rails",
        "datacenter": {
            "nodes": [
                {
                    "name": "dgx",
                    "count": 4,
                    "accelerator": "h100-sxm",
                    "accelerators_per_node": 8,
                    "nics": {"count": 8, "gbps": 400},
                }
            ],
            "network": {"topology": "rail_optimized", "params": params, "link_gbps": 400},
        },
        "workloads": [{"kind": "collective", "name": "ar", "op": "all_reduce", "bytes": 1e6, "ranks": 32}],
    }


def test_a_hostile_spine_count_is_sized_before_it_is_built() -> None:
    with pytest.raises(UserInputError) as info:
        load_scenario(_scenario({"spines": 1e9}))
    [line] = [str(p) for p in info.value.problems]
    assert line.startswith("datacenter.network.params.spines: rail_optimized spines 1000000000.0: 32 hosts, ")
    assert "dcsim handles up to ~" in line
