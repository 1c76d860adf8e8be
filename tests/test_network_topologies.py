"""Topology builders, the intra-node fabrics and the datacenter graph."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from dcsim.network import (
    Controller,
    NetworkConfig,
    NodeGroup,
    TopologyError,
    build_datacenter_fabric,
    build_topology,
    hosts,
)
from dcsim.network.graph import accelerators


@pytest.mark.parametrize(
    ("kind", "params", "n_hosts", "n_links"),
    [
        ("fat_tree", {"k": 4}, 16, 48),
        ("fat_tree", {"k": 16}, 1024, 3072),
        ("leaf_spine", {"leaves": 4, "spines": 2, "hosts_per_leaf": 8}, 32, 40),
        ("torus", {"dims": [4, 4, 4]}, 64, 192),
        ("torus", {"dims": [2, 3]}, 6, 9),
        ("dragonfly", {"groups": 9, "routers": 4, "hosts": 2}, 72, 72 + 9 * 6 + 36),
        ("jellyfish", {"switches": 10, "degree": 4, "hosts": 2}, 20, 20 + 20),
    ],
)
def test_builders_have_the_textbook_sizes(kind: str, params: dict, n_hosts: int, n_links: int) -> None:
    graph = build_topology(kind, params, link_gbps=100, link_latency_us=1, seed=1)
    assert len(hosts(graph)) == n_hosts
    assert graph.number_of_edges() == n_links
    assert nx.is_connected(graph)
    for _, _, data in graph.edges(data=True):
        assert data["capacity_bytes_per_s"] > 0 and data["latency_s"] == pytest.approx(1e-6)


def test_leaf_spine_oversubscription_sets_uplink_speed() -> None:
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 2, "hosts_per_leaf": 8, "oversubscription": 4}, 100)
    assert graph.edges["leaf0", "spine0"]["capacity_bytes_per_s"] == pytest.approx(8 * 100e9 / 8 / (2 * 4))


def test_random_generators_are_deterministic_in_seed() -> None:
    def edges(seed: int) -> list:
        return sorted(build_topology("jellyfish", {"switches": 12, "degree": 3, "hosts": 1}, seed=seed).edges)

    assert edges(3) == edges(3)
    assert edges(3) != edges(4)
    df = {"groups": 5, "routers": 4, "hosts": 1, "arrangement": "random"}
    assert sorted(build_topology("dragonfly", df, seed=2).edges) == sorted(
        build_topology("dragonfly", df, seed=2).edges
    )


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("fat_tree", {"k": 3}, "fat_tree: k must be even, got 3"),
        ("fat_tree", {}, "fat_tree: parameter k is required"),
        ("fat_tree", {"k": 4, "pods": 2}, "fat_tree: unknown parameter(s) pods (allowed: k)"),
        ("torus", {"dims": [4]}, "torus: dims must be a list of 2 or 3 sizes, got [4]"),
        ("leaf_spine", {"leaves": 0}, "leaf_spine: leaves must be an integer >= 1, got 0"),
        ("mesh", {}, "unknown topology 'mesh'"),
        ("file", {}, "file: parameter path (a GraphML or edge-list file) is required"),
    ],
)
def test_bad_parameters_are_named(kind: str, params: dict, message: str) -> None:
    with pytest.raises(
        TopologyError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        build_topology(kind, params)


def test_edge_list_file(tmp_path: Path) -> None:
    path = tmp_path / "dc.txt"
    path.write_text("# my datacenter\nsw0 sw1 400 0.5\nh0 sw0\nh1, sw1, 25\n", encoding="utf-8")
    graph = build_topology("file", {"path": str(path)}, link_gbps=100, link_latency_us=2)
    assert hosts(graph) == ["h0", "h1"]  # the nodes with one link
    assert graph.edges["sw0", "sw1"]["capacity_bytes_per_s"] == 400e9 / 8
    assert graph.edges["sw0", "sw1"]["latency_s"] == pytest.approx(0.5e-6)
    assert graph.edges["h1", "sw1"]["capacity_bytes_per_s"] == 25e9 / 8
    assert graph.edges["h0", "sw0"]["latency_s"] == pytest.approx(2e-6)
    path.write_text("a b c d e\n", encoding="utf-8")
    with pytest.raises(TopologyError, match=r"dc.txt:1: expected 'u v \[gbps \[latency_us\]\]'"):
        build_topology("file", {"path": str(path)})


def test_graphml_file_with_roles(tmp_path: Path) -> None:
    raw = nx.Graph()
    raw.add_node("a", role="host")
    raw.add_node("b", role="host")
    raw.add_node("s", role="switch")
    raw.add_edge("a", "s", gbps=50.0)
    raw.add_edge("b", "s")
    nx.write_graphml(raw, tmp_path / "dc.graphml")
    graph = build_topology("file", {"path": str(tmp_path / "dc.graphml")}, link_gbps=10)
    assert hosts(graph) == ["a", "b"]
    assert graph.edges["a", "s"]["capacity_bytes_per_s"] == 50e9 / 8
    assert graph.edges["b", "s"]["capacity_bytes_per_s"] == 10e9 / 8


def test_datacenter_joins_fabrics_to_nics() -> None:
    groups = [
        NodeGroup("dgx", 2, 8, "a100-sxm-80gb", "nvswitch-a100", nic_count=8, nic_gbps=200),
        NodeGroup("dgx1", 1, 8, "v100-sxm-32gb", None, nic_count=4, nic_gbps=100),
        NodeGroup("pc", 1, 4, "l4", "pcie4", nic_count=1, nic_gbps=50),
        NodeGroup("tpu", 1, 4, "tpu-v4", None, nic_count=1),
    ]
    fabric = build_datacenter_fabric(groups, NetworkConfig("leaf_spine", None, link_gbps=100))
    graph = fabric.graph
    assert nx.is_connected(graph)
    assert len(accelerators(graph)) == 16 + 8 + 4 + 4
    assert list(fabric.servers) == ["dgx-0", "dgx-1", "dgx1-0", "pc-0", "tpu-0"]
    # NVSwitch: 300 GB/s x 0.8 efficiency per GPU; the NIC's network link at min(100, 200) Gb/s
    assert graph.edges["dgx-0/acc0", "dgx-0/nvswitch"]["capacity_bytes_per_s"] == pytest.approx(240e9)
    assert graph.edges["dgx-0/acc3", "dgx-0/acc3-pcie"]["capacity_bytes_per_s"] == pytest.approx(25e9)
    assert graph.edges["dgx-0/acc3-pcie", "dgx-0/nic3"]["capacity_bytes_per_s"] == pytest.approx(25e9)
    nic_links = [d["capacity_bytes_per_s"] for _, _, d in graph.edges("dgx-0/nic3", data=True) if d["tier"] != "nic"]
    assert nic_links == [pytest.approx(12.5e9)]
    # DGX-1 hybrid cube-mesh: 6 NVLinks of 25 GB/s x 0.8 per GPU, over 4 neighbours
    mesh = [d["capacity_bytes_per_s"] for _, _, d in graph.edges("dgx1-0/acc0", data=True) if d["tier"] == "intra"]
    assert len(mesh) == 4 and sum(mesh) == pytest.approx(150e9 * 0.8)
    assert fabric.expand(["pc-0", "dgx-1/acc2"]) == [*fabric.servers["pc-0"], "dgx-1/acc2"]
    with pytest.raises(ValueError, match="'nope' is neither a server nor an accelerator"):
        fabric.expand(["nope"])


def test_intra_node_traffic_never_hairpins_through_a_nic() -> None:
    fabric = build_datacenter_fabric([NodeGroup("pc", 2, 4, "l4", "pcie4", 1, 100)], NetworkConfig("leaf_spine"))
    controller = Controller(fabric.graph, "ecmp")
    paths = {tuple(controller.name(n) for n in controller.route("pc-0/acc0", "pc-0/acc1", k).nodes) for k in range(20)}
    assert paths == {("pc-0/acc0", "pc-0/pcie", "pc-0/acc1")}
    across = [controller.name(n) for n in controller.route("pc-0/acc0", "pc-1/acc2").nodes]
    assert across == ["pc-0/acc0", "pc-0/acc0-pcie", "pc-0/nic0", "leaf0", "pc-1/nic0", "pc-1/acc2-pcie", "pc-1/acc2"]


def test_too_small_a_network_is_reported() -> None:
    with pytest.raises(TopologyError, match="the fat_tree network has 16 hosts but the nodes have 32 NICs"):
        build_datacenter_fabric([NodeGroup("n", 4, 8, nic_count=8)], NetworkConfig("fat_tree", {"k": 4}))
