"""NCCL's collectives: the closed form (channels on rails, algorithms, protocols, the tuner) and the
flow-level path, which must agree on an idle fabric; the published NVSwitch point; bounds every figure
must respect."""

from __future__ import annotations

import math

import pytest

from dcsim.network import NetworkConfig, NodeGroup, build_datacenter_fabric, simulate_collective
from dcsim.network.collectives.channels import layout_of, ring_edges
from dcsim.network.collectives.conventions import bus_factor
from dcsim.network.collectives.nccl_constants import nccl_tuning
from dcsim.network.collectives.nccl_model import (
    Choice,
    CommTopology,
    busiest_rail,
    candidates,
    link_busbw,
    node_topology,
    predict,
    tune,
)
from dcsim.network.collectives.sweep import parse_sizes
from dcsim.network.datacenter import DatacenterFabric
from dcsim.parallel.comm import CommModel

GB = 1e9
SIZES = parse_sizes("8:8G")  # nccl-tests' -b 8 -e 8G -f 2


def _dgx(nodes: int, nics: int = 8, gbps: float = 200, gpu: str = "a100-sxm-80gb") -> DatacenterFabric:
    """``nodes`` 8-GPU servers on one non-blocking switch (no ECMP choices: an idle fabric is uncontended)."""
    link = "nvswitch-a100" if gpu.startswith("a100") else "nvswitch-h100"
    network = NetworkConfig("leaf_spine", {"leaves": 1, "spines": 1, "hosts_per_leaf": nodes * nics}, gbps)
    return build_datacenter_fabric([NodeGroup("dgx", nodes, 8, gpu, link, nics, gbps)], network)


def _bound(topo: CommTopology) -> float:
    """The bottleneck a GPU's traffic crosses: its NVLink, and across nodes the node's rails."""
    bound = topo.gpu_bytes_per_s
    if topo.nodes > 1:
        bound = min(bound, topo.rails * topo.nic_bytes_per_s)
    return bound


def test_the_topology_is_read_from_the_fabric() -> None:
    topo = layout_of(_dgx(4, nics=4, gbps=400).graph, _dgx(4, nics=4, gbps=400).ranks(32)).topology
    assert (topo.ranks, topo.nodes, topo.ranks_per_node, topo.rails) == (32, 4, 8, 4)
    assert topo.gpu_bytes_per_s == pytest.approx(240 * GB)  # 300 GB/s x 0.8 NVLink efficiency
    assert topo.nic_bytes_per_s == pytest.approx(50 * GB)  # 400 Gb/s
    assert (topo.generation, topo.nvls, topo.intra) == ("ampere", False, "nvlink")
    h100 = layout_of(_dgx(1, gpu="h100-sxm").graph, _dgx(1, gpu="h100-sxm").ranks(8)).topology
    assert (h100.generation, h100.nvls) == ("hopper", True)


@pytest.mark.parametrize(("nodes", "nics", "gbps"), [(1, 8, 200), (2, 1, 100), (2, 8, 200), (4, 4, 400), (4, 8, 200)])
def test_busbw_never_exceeds_the_bottleneck(nodes: int, nics: int, gbps: float) -> None:
    fabric = _dgx(nodes, nics, gbps)
    topo = layout_of(fabric.graph, fabric.ranks(8 * nodes)).topology
    bound = _bound(topo)
    for op in ("all_reduce", "all_gather", "reduce_scatter"):
        for size in SIZES:
            guess = tune(op, topo, float(size))
            busbw = size / guess.time_s * bus_factor(op, topo.ranks)
            assert busbw <= bound * (1 + 1e-9), (op, size, guess.choice)
    # at 8 GB the bottleneck is nearly reached (NVLink on one node, the rails' line rate across nodes)
    big = tune("all_reduce", topo, 8 * 2**30)
    assert 8 * 2**30 / big.time_s * bus_factor("all_reduce", topo.ranks) > 0.9 * bound


def test_in_switch_reduction_bounds_algbw_not_busbw() -> None:
    """NVLS reduces inside the NVSwitch: each GPU sends its data once, so algbw (not busbw) is bounded by
    NVLink; busbw may exceed the link rate, as nccl-tests shows on H100."""
    fabric = _dgx(1, gpu="h100-sxm")
    topo = layout_of(fabric.graph, fabric.ranks(8)).topology
    guess = tune("all_reduce", topo, 8.0 * 2**30)
    assert guess.algorithm == "nvls" and guess.protocol == "simple"
    algbw = 8 * 2**30 / guess.time_s
    assert topo.gpu_bytes_per_s < algbw * bus_factor("all_reduce", 8) and algbw <= topo.gpu_bytes_per_s
    a100 = layout_of(_dgx(1).graph, _dgx(1).ranks(8)).topology
    assert all(c.algorithm != "nvls" for c in candidates("all_reduce", a100))


@pytest.mark.parametrize("algorithm", ["auto", "ring", "tree"])
@pytest.mark.parametrize("protocol", ["auto", "ll", "ll128", "simple"])
def test_time_is_monotone_in_message_size(algorithm: str, protocol: str) -> None:
    for nodes in (1, 4):
        fabric = _dgx(nodes)
        topo = layout_of(fabric.graph, fabric.ranks(8 * nodes)).topology
        times = [tune("all_reduce", topo, float(s), algorithm, protocol).time_s for s in SIZES]
        assert all(b >= a for a, b in zip(times, times[1:], strict=False)), times


@pytest.mark.parametrize(("nics", "channels"), [(1, 4), (2, 3), (4, 16), (8, 8), (8, 12), (8, 32)])
def test_channels_never_exceed_the_rails_that_carry_them(nics: int, channels: int) -> None:
    fabric = _dgx(2, nics, 200)
    ranks = fabric.ranks(16)
    layout = layout_of(fabric.graph, ranks)
    rail = {ranks[p]: (p % 8) * nics // 8 for p in range(16)}  # GPU i uses NIC i * nics // 8
    for algorithm in ("ring", "tree"):
        edges = ring_edges(layout, channels, algorithm)
        crossing = [(ranks[i], ranks[j]) for i, j in edges if (i < 8) != (j < 8)]
        assert crossing and all(rail[a] == rail[b] for a, b in crossing)  # each inter-node hop on one rail
        used = {rail[a] for a, _ in crossing}
        assert len(used) == min(nics, channels if algorithm == "ring" else math.ceil(channels / 2))
        per_rail = busiest_rail(algorithm, channels, layout.rails)
        per_channel = link_busbw(layout.topology, algorithm, channels) / channels
        assert per_rail * per_channel <= layout.topology.nic_bytes_per_s * (1 + 1e-12)
    assert all(c.channels <= nccl_tuning().max_channels for c in candidates("all_reduce", layout.topology))


def test_eight_a100_on_nvswitch_reach_the_published_busbw() -> None:
    """nccl-tests maintainers: ~230 GB/s all-reduce busbw on 8x A100 over NVSwitch at large sizes."""
    fabric = _dgx(1)
    flow = simulate_collective(fabric.graph, "all_reduce", fabric.ranks(8), 8 * GB)
    assert flow.busbw_gb_per_s == pytest.approx(230, rel=0.06)
    assert (flow.algorithm, flow.protocol) == ("ring", "simple")
    topo = layout_of(fabric.graph, fabric.ranks(8)).topology
    assert 8 * GB / tune("all_reduce", topo, 8 * GB).time_s * 1.75 / GB == pytest.approx(230, rel=0.06)


@pytest.mark.parametrize(("nodes", "nics"), [(1, 8), (2, 1), (2, 4), (2, 8), (4, 2), (4, 8)])
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter"])
def test_analytic_and_flow_paths_agree_without_contention(nodes: int, nics: int, op: str) -> None:
    fabric = _dgx(nodes, nics, 200)
    ranks = fabric.ranks(8 * nodes)
    comm = CommModel(fabric.graph, "ecmp", 0)
    topo = comm.layout(ranks).topology
    for size in (1e3, 1e6, 64e6, 2e9):
        analytic = tune(op, topo, size).time_s
        assert comm.collective_s(op, [ranks], size) == pytest.approx(analytic, rel=0.05), (size, tune(op, topo, size))


@pytest.mark.parametrize(("nodes", "algorithm"), [(1, "ring"), (2, "tree"), (4, "ring"), (4, "tree")])
def test_a_whole_collective_on_the_flow_simulator_agrees_with_the_closed_form(nodes: int, algorithm: str) -> None:
    fabric = _dgx(nodes, 8, 400)
    ranks = fabric.ranks(8 * nodes)
    topo = layout_of(fabric.graph, ranks).topology
    for size in (4e3, 256e6):
        flow = simulate_collective(fabric.graph, "all_reduce", ranks, size, algorithm)
        analytic = tune("all_reduce", topo, size, algorithm)
        assert (flow.protocol, flow.channels) == (analytic.protocol, analytic.channels)
        assert flow.time_s == pytest.approx(analytic.time_s, rel=0.05)


def test_auto_picks_the_least_predicted_time() -> None:
    for nodes in (1, 2, 4):
        fabric = _dgx(nodes)
        topo = layout_of(fabric.graph, fabric.ranks(8 * nodes)).topology
        for size in (8.0, 4096.0, 2.0**20, 2.0**27, 2.0**33):
            best = tune("all_reduce", topo, size)
            times = [predict("all_reduce", topo, c, size).time_s for c in candidates("all_reduce", topo)]
            assert best.time_s == min(times)
    # small messages go to a low-latency protocol, large ones to Simple
    topo = layout_of(_dgx(4).graph, _dgx(4).ranks(32)).topology
    assert tune("all_reduce", topo, 8.0).protocol == "ll"
    assert tune("all_reduce", topo, 2.0**33).protocol == "simple"


def test_protocol_factors_and_latencies_follow_nccls_tuning_model() -> None:
    topo = node_topology("a100-sxm-80gb", "nvswitch-a100", 8)
    link = link_busbw(topo, "ring", 16)
    simple = predict("all_reduce", topo, Choice("ring", "simple", 16), 1e9)
    ll = predict("all_reduce", topo, Choice("ring", "ll", 16), 1e9)
    ll128 = predict("all_reduce", topo, Choice("ring", "ll128", 16), 1e9)
    assert simple.busbw_bytes_per_s == pytest.approx(link)
    assert ll.busbw_bytes_per_s == pytest.approx(min(0.5 * link, 87.7e9))  # Ampere one-node LL max
    assert ll128.busbw_bytes_per_s == pytest.approx(min(0.92 * link, 16 * 20e9))
    # ring LL on NVLink: base 6.6 us + 2(n-1) steps x 0.6 us
    assert ll.latency_s == pytest.approx((6.6 + 14 * 0.6) * 1e-6)
    # across nodes, one rank per node: tree's network latency plus the post overhead per step
    hosts = CommTopology(ranks=4, nodes=4, ranks_per_node=1, gpu_bytes_per_s=math.inf, nic_bytes_per_s=25e9)
    ring_ll = predict("all_reduce", hosts, Choice("ring", "ll", 1), 8.0)
    assert ring_ll.latency_s == pytest.approx((6.6 + 6 * (5.0 + 1.0)) * 1e-6)


def test_collnet_runs_across_nodes_when_asked_for() -> None:
    fabric = _dgx(4)
    topo = layout_of(fabric.graph, fabric.ranks(32)).topology
    assert all(c.algorithm != "collnet" for c in candidates("all_reduce", topo))  # no SHARP switches stated
    sharp = tune("all_reduce", topo, 1e9, "collnet")
    assert (sharp.algorithm, sharp.protocol) == ("collnet", "simple")
    with pytest.raises(ValueError, match="no collnet algorithm"):
        candidates("all_reduce", layout_of(_dgx(1).graph, _dgx(1).ranks(8)).topology, "collnet")


def test_small_message_all_reduce_costs_microseconds_not_a_link_latency() -> None:
    """A decode step's TP all-reduce (a few KB) costs NCCL about ten microseconds or more on 8 GPUs."""
    topo = node_topology("h100-sxm", "nvswitch-h100", 8)
    small = tune("all_reduce", topo, 16e3)
    assert 8e-6 < small.time_s < 60e-6
    assert small.protocol == "ll"


def test_serving_prices_its_tp_all_reduces_with_the_analytic_path() -> None:
    """A decode step runs two all-reduces per layer; each costs NCCL's small-message latency, not one link
    latency (Llama-2-70B on 8 H100s: 160 all-reduces of 16 KB, about 15 us each)."""
    from dcsim.models import get_model
    from dcsim.models.inference import allreduce_bytes
    from dcsim.serving.costs import IterationCost

    cfg = get_model("llama2-70b")
    cost = IterationCost(cfg, "fp16", "h100-sxm", 8, 1, 450e9, interconnect="nvswitch-h100")
    per_op = allreduce_bytes(cfg, 1, "fp16") / (2 * cfg.layers)
    one = tune("all_reduce", node_topology("h100-sxm", "nvswitch-h100", 8), per_op)
    assert cost.comm_s(1) == pytest.approx(2 * cfg.layers * one.time_s)
    assert 2 * cfg.layers * 10e-6 < cost.comm_s(1) < 2 * cfg.layers * 30e-6


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_nvls_on_h100_agrees_on_both_paths(nodes: int) -> None:
    """NVLS reduces in the NVSwitch (no flows on one node); across nodes its rings over the rail GPUs run as
    flows. Both paths still give the closed form's time."""
    fabric = _dgx(nodes, 8, 400, gpu="h100-sxm")
    ranks = fabric.ranks(8 * nodes)
    topo = layout_of(fabric.graph, ranks).topology
    guess = tune("all_reduce", topo, 2e9)
    assert guess.algorithm == "nvls"
    comm = CommModel(fabric.graph, "ecmp", 0)
    assert comm.collective_s("all_reduce", [ranks], 2e9) == pytest.approx(guess.time_s, rel=0.05)
    flow = simulate_collective(fabric.graph, "all_reduce", ranks, 2e9)
    assert (flow.algorithm, flow.channels) == ("nvls", guess.channels)
    assert flow.time_s == pytest.approx(guess.time_s, rel=0.05)
