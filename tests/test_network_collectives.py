"""Collectives as flows: formulas, nccl-tests conventions, the published NVSwitch point, oversubscription,
ECMP collisions against least_loaded."""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest
import simpy

from dcsim.network import (
    Controller,
    FlowSimulator,
    NetworkConfig,
    NodeGroup,
    build_datacenter_fabric,
    build_topology,
    bus_factor,
    run_collective,
    simulate_collective,
)

GB = 1e9


def _value(event: simpy.Event) -> Any:
    """An event's value (typed Any for attribute access in assertions)."""
    return event.value


def _star(n: int, gbps: float = 100.0, latency_us: float = 1.0) -> nx.Graph:
    return build_topology("leaf_spine", {"leaves": 1, "spines": 1, "hosts_per_leaf": n}, gbps, latency_us)


def _nccl_simple_ring_latency_s(op: str, n: int) -> float:
    """NCCL 2.30's latency of a Simple ring over n ranks on n nodes (src/graph/tuning.cc): base 8.4 us plus,
    per step, the tree's network latency 14 us (one rank per node) and 3 x 1 us of network post overhead;
    all-reduce across nodes x 1.4 (the ring's plateau)."""
    steps = 2 * (n - 1) if op == "all_reduce" else n - 1
    latency = (8.4 + steps * (14.0 + 3.0)) * 1e-6
    return latency * 1.4 if op == "all_reduce" else latency


@pytest.mark.parametrize("n", [2, 3, 8, 13])
def test_ring_all_reduce_is_the_textbook_bandwidth_plus_nccls_latency(n: int) -> None:
    size, bandwidth = 1 * GB, 100e9 / 8
    result = simulate_collective(_star(n), "all_reduce", [f"host{i}" for i in range(n)], size, "ring")
    assert (result.algorithm, result.protocol) == ("ring", "simple")
    expected = 2 * (n - 1) / n * size / bandwidth + _nccl_simple_ring_latency_s("all_reduce", n)
    assert result.time_s == pytest.approx(expected, rel=1e-9)
    assert result.busbw_bytes_per_s == pytest.approx(result.algbw_bytes_per_s * 2 * (n - 1) / n)


@pytest.mark.parametrize("op", ["all_gather", "reduce_scatter"])
def test_ring_all_gather_and_reduce_scatter_on_a_non_blocking_switch(op: str) -> None:
    size, bandwidth = 1 * GB, 12.5e9
    result = simulate_collective(_star(8), op, [f"host{i}" for i in range(8)], size, "ring")
    expected = 7 / 8 * size / bandwidth + _nccl_simple_ring_latency_s(op, 8)
    assert result.time_s == pytest.approx(expected, rel=1e-9)
    assert result.busbw_bytes_per_s == pytest.approx(bandwidth, rel=0.01)


@pytest.mark.parametrize(
    ("op", "algorithm", "steps", "per_step_fraction"),
    [
        ("all_to_all", "direct", 1, 7 / 8),
        ("all_to_all", "pairwise", 7, 1 / 8),
        ("send_recv", "direct", 1, 1.0),
    ],
)
def test_other_collectives_on_a_non_blocking_switch(
    op: str, algorithm: str, steps: int, per_step_fraction: float
) -> None:
    size, bandwidth = 1 * GB, 12.5e9
    result = simulate_collective(_star(8), op, [f"host{i}" for i in range(8)], size, algorithm)
    # each round: NCCL's point-to-point latency across nodes (Simple: ring base 8.4 us + network 14 us + 3 x 1
    # us post overhead), not the path's link latencies, plus its bytes over the link
    latency = (8.4 + 14.0 + 3.0) * 1e-6
    assert result.time_s == pytest.approx(steps * (per_step_fraction * size / bandwidth + latency), rel=1e-9)
    # on a non-blocking switch every op's busbw approaches the link bandwidth
    assert result.busbw_bytes_per_s == pytest.approx(bandwidth, rel=0.01)


def test_broadcast_and_tree_reach_link_bandwidth_for_large_messages() -> None:
    ranks = [f"host{i}" for i in range(8)]
    broadcast = simulate_collective(_star(8), "broadcast", ranks, 4 * GB)
    assert broadcast.busbw_bytes_per_s == pytest.approx(12.5e9, rel=0.01)
    tree = simulate_collective(_star(8), "all_reduce", ranks, 4 * GB, "tree")
    # NCCL's tree: reduce up then broadcast down, S per link each, algbw = 0.5 x busbw, busbw x 0.92
    assert tree.algbw_bytes_per_s == pytest.approx(12.5e9 * 0.92 / 2, rel=0.01)


def test_bus_factors_follow_nccl_tests() -> None:
    assert bus_factor("all_reduce", 8) == 2 * 7 / 8
    assert bus_factor("all_gather", 8) == bus_factor("reduce_scatter", 8) == bus_factor("all_to_all", 8) == 7 / 8
    assert bus_factor("broadcast", 8) == bus_factor("send_recv", 8) == 1.0
    with pytest.raises(ValueError, match="unknown collective 'gather'"):
        bus_factor("gather", 8)


def test_gbps_fields_are_gigabits() -> None:
    result = simulate_collective(_star(2), "send_recv", ["host0", "host1"], 1 * GB)
    assert result.busbw_gbps == pytest.approx(result.busbw_bytes_per_s * 8 / 1e9)
    assert result.summary()["busbw_gbps"] == result.busbw_gbps


def test_nvswitch_a100_matches_the_published_all_reduce_busbw() -> None:
    """nccl-tests maintainers: 8x A100 on NVSwitch reach about 230 GB/s all-reduce busbw (large messages)."""
    fabric = build_datacenter_fabric([NodeGroup("dgx", 1, 8, "a100-sxm-80gb", "nvswitch-a100", 8, 200)])
    result = simulate_collective(fabric.graph, "all_reduce", fabric.ranks(8), 8 * GB)
    assert result.busbw_gb_per_s == pytest.approx(230, rel=0.10)


def test_oversubscribed_leaf_spine_slows_cross_rack_all_reduce_by_the_ratio() -> None:
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 1, "hosts_per_leaf": 8, "oversubscription": 4}, 100)
    in_rack = simulate_collective(graph, "all_reduce", [f"host{i}" for i in range(8)], 1 * GB, "ring")
    interleaved = [f"host{i // 2 + 8 * (i % 2)}" for i in range(16)]  # every ring hop crosses the spine
    cross = simulate_collective(graph, "all_reduce", interleaved, 1 * GB, "ring")
    assert in_rack.busbw_bytes_per_s / cross.busbw_bytes_per_s == pytest.approx(4.0, rel=0.02)
    bandwidth_terms = (2 * 15 / 16 / (100 / 4)) / (2 * 7 / 8 / 100)
    assert cross.time_s / in_rack.time_s == pytest.approx(bandwidth_terms, rel=0.02)


def test_ecmp_collisions_cost_time_that_least_loaded_avoids() -> None:
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 4, "hosts_per_leaf": 8, "uplink_gbps": 100}, 100)
    interleaved = [f"host{i // 2 + 8 * (i % 2)}" for i in range(16)]
    ecmp = [
        simulate_collective(graph, "all_reduce", interleaved, GB, "ring", routing="ecmp", seed=s).time_s
        for s in range(4)
    ]
    balanced = simulate_collective(graph, "all_reduce", interleaved, GB, "ring", routing="least_loaded").time_s
    assert all(t > balanced * 1.05 for t in ecmp)
    assert sum(ecmp) / len(ecmp) > 1.2 * balanced


def test_ring_channels_use_every_rail_across_nodes() -> None:
    fabric = build_datacenter_fabric(
        [NodeGroup("dgx", 2, 8, "a100-sxm-80gb", "nvswitch-a100", 8, 200)], NetworkConfig("leaf_spine", None, 200)
    )
    ranks = fabric.ranks(16)
    ring = simulate_collective(fabric.graph, "all_reduce", ranks, GB, "ring", routing="least_loaded")
    hierarchical = simulate_collective(fabric.graph, "all_reduce", ranks, GB, "hierarchical", routing="least_loaded")
    assert hierarchical.algorithm == "ring" and hierarchical.time_s == ring.time_s  # kept as an alias
    assert ring.channels >= 8  # a channel per rail at least: 8 NICs of 200 Gb/s = 200 GB/s
    assert ring.busbw_gb_per_s == pytest.approx(200, rel=0.03)


def test_collectives_contend_with_other_traffic() -> None:
    graph = _star(4)
    env = simpy.Environment()
    sim = FlowSimulator(env, Controller(graph, "ecmp"))
    background = sim.start_flow("host3", "host0", 10 * GB)
    process = env.process(run_collective(sim, "send_recv", ["host1", "host0"], GB))
    env.run()
    alone = simulate_collective(graph, "send_recv", ["host1", "host0"], GB)
    assert _value(process).time_s > 1.9 * alone.time_s  # host0's downlink is shared half and half
    assert _value(background).end_s > _value(process).time_s


def test_bad_collective_arguments_are_named() -> None:
    graph = _star(4)
    with pytest.raises(ValueError, match="all_gather has no algorithm 'tree'"):
        simulate_collective(graph, "all_gather", ["host0", "host1"], GB, "tree")
    with pytest.raises(ValueError, match="all_reduce needs at least 2 ranks, got 1"):
        simulate_collective(graph, "all_reduce", ["host0"], GB)
