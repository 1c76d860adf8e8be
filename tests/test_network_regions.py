"""Region routing (no route table per destination) gives exactly the routes of per-destination tables."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from dcsim.network import NetworkConfig, NodeGroup, build_datacenter_fabric
from dcsim.network.collectives.runner import channel_keys
from dcsim.network.controller import Controller
from dcsim.network.factory import make_controller
from dcsim.network.graph import add_link, add_node
from dcsim.network.routing import NoRouteError, mix64
from dcsim.network.routing.regions import INF, RegionRouter
from dcsim.network.topologies import build_topology
from dcsim.parallel.comm import CommModel


def dgx_fabric(servers: int = 6, topology: str = "fat_tree", params: dict | None = None) -> nx.Graph:
    """DGX H100 servers (8 GPUs, 8 NICs) on a fat tree of k=6: three NICs per edge switch, so most servers
    straddle two or three edge switches (routes through the destination's other NICs and NVSwitch tie)."""
    network = NetworkConfig(topology, {"k": 6} if params is None else params, 400)
    group = NodeGroup("dgx", servers, 8, "h100-sxm", "nvswitch-h100", 8, 400)
    return build_datacenter_fabric([group], network).graph


def pair(graph: nx.Graph, seed: int = 3) -> tuple[Controller, Controller]:
    return Controller(graph, "ecmp", seed, route_tables=True), Controller(graph, "ecmp", seed, route_tables=False)


def same_routes(tables: Controller, regions: Controller, src: np.ndarray, dst: np.ndarray, key: np.ndarray) -> None:
    expected = tables.policy.route_links(src, dst, key)
    got = regions.policy.route_links(src, dst, key)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_array_equal(have, want)
    for s, d, k in list(zip(src.tolist(), dst.tolist(), key.tolist(), strict=True))[:200]:
        assert regions.policy.route_one(s, d, k) == tables.policy.route_one(s, d, k)


def test_next_hops_and_distances_match_the_tables_at_every_node() -> None:
    tables, regions = pair(dgx_fabric())
    router = regions.region_router()
    assert isinstance(router, RegionRouter)
    nodes = len(tables.links.nodes)
    through_server = 0
    for target in range(0, nodes, 7):
        dist = tables.distances(target)
        dest = router.destination(target)
        for node in range(nodes):
            assert router.distance(dest, node) == (dist[node] if dist[node] >= 0 else INF)
            if node != target and dist[node] > 0:
                hops, links = router.next_hops(dest, node)
                assert list(hops) == tables.next_hops(node, target)
                assert list(links) == [tables.links.link_id[(node, h)] for h in hops]
                roles = {tables.graph.nodes[tables.name(h)]["role"] for h in hops}
                through_server += "switch" in roles and len(roles) > 1  # a switch also sends into a server
    assert through_server > 0  # the equal-length ways through a server's other NIC occur and are kept


def test_routes_match_for_accelerators_and_any_nodes() -> None:
    tables, regions = pair(dgx_fabric())
    assert tables.region_router() is None and regions.region_router() is not None
    rng = np.random.default_rng(0)
    accs = np.array([i for i, n in enumerate(tables.links.nodes) if tables.graph.nodes[n]["role"] == "accelerator"])
    n = len(tables.links.nodes)
    for src, dst in (
        (rng.choice(accs, 2000), rng.choice(accs, 2000)),
        (rng.integers(0, n, 2000), rng.integers(0, n, 2000)),
    ):
        same_routes(tables, regions, src, dst, rng.integers(0, 2**62, src.size))


@pytest.mark.parametrize(
    "graph",
    [
        build_topology("fat_tree", {"k": 4}),
        build_topology("leaf_spine", {"leaves": 4, "spines": 2, "hosts_per_leaf": 4}),
        dgx_fabric(4, "rail_optimized", {}),
    ],
    ids=["fat_tree_hosts", "leaf_spine_hosts", "rail_optimized_dgx"],
)
def test_other_fabrics(graph: nx.Graph) -> None:
    tables, regions = pair(graph, seed=11)
    assert regions.region_router() is not None
    rng = np.random.default_rng(1)
    n = len(tables.links.nodes)
    same_routes(tables, regions, rng.integers(0, n, 1500), rng.integers(0, n, 1500), rng.integers(0, 2**62, 1500))


def test_a_shortcut_through_a_server_between_switches() -> None:
    """A chain of six switches whose ends a dual-homed host joins: the shortest way between the ends crosses
    the host (the region between two boundary switches), which switch distances must account for."""
    graph = nx.Graph()
    for i in range(6):
        add_node(graph, f"s{i}", "switch")
        add_node(graph, f"h{i}", "host")
        add_link(graph, f"s{i}", f"h{i}", 1e9, 1e-6, "edge")
        if i:
            add_link(graph, f"s{i - 1}", f"s{i}", 1e9, 1e-6, "core")
    add_node(graph, "x", "host")
    add_link(graph, "s0", "x", 1e9, 1e-6, "edge")
    add_link(graph, "s5", "x", 1e9, 1e-6, "edge")
    tables, regions = pair(graph)
    assert tables.route("h0", "h5").nodes == tuple(tables.index(n) for n in ("h0", "s0", "x", "s5", "h5"))
    n = len(tables.links.nodes)
    src, dst = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    same_routes(tables, regions, src, dst, np.arange(src.size))


def test_failed_links_and_unreachable_destinations() -> None:
    graph = dgx_fabric(4)
    tables, regions = pair(graph)
    rng = np.random.default_rng(2)
    accs = np.array([i for i, n in enumerate(tables.links.nodes) if graph.nodes[n]["role"] == "accelerator"])
    edge = next(n for n in graph if graph.nodes[n]["role"] == "switch" and "edge" in str(n))
    for neighbour in list(graph.neighbors(edge))[:2]:
        tables.fail_link(edge, neighbour)
        regions.fail_link(edge, neighbour)
    same_routes(tables, regions, rng.choice(accs, 1000), rng.choice(accs, 1000), rng.integers(0, 2**62, 1000))
    server = [n for n in graph if str(n).startswith("dgx-0/")]  # cut one server off the network
    for nic in (n for n in server if graph.nodes[n]["role"] == "host"):
        for switch in list(graph.neighbors(nic)):
            if graph.nodes[switch]["role"] == "switch":
                tables.fail_link(nic, switch)
                regions.fail_link(nic, switch)
    src, dst = np.array([tables.index("dgx-1/acc0")]), np.array([tables.index("dgx-0/acc3")])
    messages = []
    for controller in (tables, regions):
        with pytest.raises(NoRouteError) as caught:
            controller.policy.route_links(src, dst, np.array([5]))
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    same_routes(tables, regions, np.array([tables.index("dgx-0/acc1")]), dst, np.array([5]))  # inside still works


def test_an_unreachable_destination_leaves_no_trace() -> None:
    """Servers each under one leaf: after a flow to a cut-off server fails, the same source still routes."""
    network = NetworkConfig("leaf_spine", {"leaves": 3, "spines": 2, "hosts_per_leaf": 8}, 400)
    graph = build_datacenter_fabric([NodeGroup("dgx", 3, 8, "h100-sxm", "nvswitch-h100", 8, 400)], network).graph
    tables, regions = pair(graph)
    for nic in (n for n in graph if str(n).startswith("dgx-0/nic")):
        for switch in [s for s in graph.neighbors(nic) if graph.nodes[s]["role"] == "switch"]:
            tables.fail_link(nic, switch)
            regions.fail_link(nic, switch)
    src = np.array([tables.index("dgx-1/acc0")])
    with pytest.raises(NoRouteError):
        regions.policy.route_links(src, np.array([tables.index("dgx-0/acc3")]), np.array([1]))
    same_routes(tables, regions, src, np.array([tables.index("dgx-2/acc5")]), np.array([1]))


def test_graphs_without_switches_keep_tables() -> None:
    torus = build_topology("torus", {"dims": [4, 4]})
    controller = Controller(torus, "ecmp", route_tables=False)
    assert controller.region_router() is None
    assert controller.route(0 if 0 in torus else next(iter(torus)), list(torus)[5]).links.size > 0


def test_collective_times_match() -> None:
    graph = dgx_fabric()
    accs = [n for n in graph if graph.nodes[n]["role"] == "accelerator"]
    queries: list[tuple[str, list[list[str]] | list[tuple[str, str]], float]] = [
        ("all_reduce", [accs[i::8] for i in range(8)], 64e6),  # data-parallel groups across the servers
        ("all_reduce", [accs[:8], accs[8:16]], 16e6),  # tensor-parallel groups inside servers
        ("all_to_all", [accs[::3]], 8e6),
        ("send_recv", [(accs[0], accs[40]), (accs[1], accs[41])], 4e6),
    ]
    times = []
    for tables in (True, False):
        comm = CommModel(graph, "ecmp", 0)
        comm.controller = make_controller(graph, "ecmp", 0, route_tables=tables)
        times.append([comm.collective_s(op, groups, nbytes) for op, groups, nbytes in queries])
    assert times[0] == times[1]
    assert all(t > 0 for t in times[0])


def test_channel_keys_are_mix64_of_tag_edge_and_ranks() -> None:
    """The vectorized ECMP keys of a collective's channel connections are exactly the per-edge hashes."""
    rng = np.random.default_rng(4)
    edges = [(int(i), int(j)) for i, j in rng.integers(0, 20_000, size=(500, 2))]
    for tag in (0, 7, 2**40 + 3):
        assert channel_keys(tag, edges) == [mix64(tag, e, i, j) & 0x7FFFFFFFFFFFFFFF for e, (i, j) in enumerate(edges)]
    assert channel_keys(3, []) == []
