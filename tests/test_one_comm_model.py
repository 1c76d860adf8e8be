"""One communication model: send/recv, all-to-all and broadcast are priced with NCCL's constants on the
analytic path and on the flow path, which agree on an idle fabric; no workload package prices communication
with a formula of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dcsim.network import NetworkConfig, NodeGroup, build_datacenter_fabric, simulate_collective
from dcsim.network.collectives.channels import layout_of
from dcsim.network.collectives.nccl_model import tune
from dcsim.network.collectives.p2p_model import (
    hop_latency_s,
    p2p_protocol,
    peer_layout,
    predict_p2p,
    send_time_s,
    wire_bytes,
)
from dcsim.network.datacenter import DatacenterFabric
from dcsim.parallel.comm import CommModel

US = 1e-6


def _dgx(nodes: int, nics: int = 8, gbps: float = 200, oversubscription: float = 1.0) -> DatacenterFabric:
    """``nodes`` 8-A100 servers; one non-blocking switch, or two leaves under one spine oversubscribed."""
    if oversubscription == 1.0:
        params = {"leaves": 1, "spines": 1, "hosts_per_leaf": nodes * nics}
    else:
        params = {"leaves": 2, "spines": 1, "hosts_per_leaf": nodes * nics // 2, "oversubscription": oversubscription}
    network = NetworkConfig("leaf_spine", params, gbps)
    return build_datacenter_fabric([NodeGroup("dgx", nodes, 8, "a100-sxm-80gb", "nvswitch-a100", nics, gbps)], network)


@pytest.mark.parametrize(("nodes", "nics"), [(1, 8), (2, 1), (2, 4), (4, 8)])
@pytest.mark.parametrize(
    ("op", "algorithm"), [("all_to_all", "direct"), ("all_to_all", "pairwise"), ("send_recv", "direct")]
)
def test_point_to_point_paths_agree_without_contention(nodes: int, nics: int, op: str, algorithm: str) -> None:
    fabric = _dgx(nodes, nics)
    ranks = fabric.ranks(8 * nodes)
    comm = CommModel(fabric.graph, "ecmp", 0)
    layout = peer_layout(fabric.graph, ranks)
    for size in (1e3, 1e5, 64e6, 2e9):  # per-peer sends below and above NCCL's 16 KiB LL threshold
        analytic = predict_p2p(op, layout, size, algorithm).time_s
        assert comm.collective_s(op, [ranks], size, algorithm) == pytest.approx(analytic, rel=0.05), size
        flow = simulate_collective(fabric.graph, op, ranks, size, algorithm)
        assert flow.time_s == pytest.approx(analytic, rel=0.05), size


@pytest.mark.parametrize(("nodes", "nics"), [(1, 8), (2, 1), (4, 8)])
def test_broadcast_is_nccls_tuned_ring_on_both_paths(nodes: int, nics: int) -> None:
    fabric = _dgx(nodes, nics)
    ranks = fabric.ranks(8 * nodes)
    topo = layout_of(fabric.graph, ranks).topology
    comm = CommModel(fabric.graph, "ecmp", 0)
    for size in (1e3, 64e6, 2e9):
        guess = tune("broadcast", topo, size)
        assert guess.algorithm == "ring"
        assert comm.collective_s("broadcast", [ranks], size) == pytest.approx(guess.time_s, rel=0.05)
        flow = simulate_collective(fabric.graph, "broadcast", ranks, size, "chain")  # the old name, an alias
        assert (flow.algorithm, flow.protocol, flow.channels) == ("ring", guess.protocol, guess.channels)
        assert flow.time_s == pytest.approx(guess.time_s, rel=0.05)
    # every rank receives the message once: algbw reaches the bottleneck (NVLink, or a node's rails)
    big = tune("broadcast", topo, 8e9)
    bound = topo.gpu_bytes_per_s if nodes == 1 else min(topo.gpu_bytes_per_s, topo.rails * topo.nic_bytes_per_s)
    assert 0.9 * bound < 8e9 / big.time_s <= bound


def test_protocol_and_latency_come_from_nccls_tuning_data() -> None:
    """LL up to NCCL_P2P_LL_THRESHOLD (16 KiB), Simple above; a round is a ring step of NCCL 2.30's
    tuning.cc: base latency plus one hop (network: plus the post overhead, x3 for Simple)."""
    assert (p2p_protocol(16384), p2p_protocol(16385)) == ("ll", "simple")
    assert wire_bytes(1000, "ll") == 2000 and wire_bytes(1000, "simple") == 1000
    assert hop_latency_s("ll", "nvlink") == pytest.approx((6.6 + 0.6) * US)
    assert hop_latency_s("simple", "pcie") == pytest.approx((8.4 + 5.7) * US)
    assert hop_latency_s("ll", "network") == pytest.approx((6.6 + 2.7 + 1.0) * US)
    assert hop_latency_s("simple", "network") == pytest.approx((8.4 + 14.0 + 3.0) * US)
    assert hop_latency_s("simple", "network", "amd") == pytest.approx((8.4 + 14.0 + 6.0) * US)
    with pytest.raises(ValueError, match="ll or simple"):
        wire_bytes(1.0, "ll128")
    sizes = [2.0**k for k in range(3, 34)]
    times = [send_time_s(s, 25e9, "network") for s in sizes]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert send_time_s(0.0, 25e9, "network") == 0.0


def test_all_to_all_across_nodes_is_bound_by_the_rails() -> None:
    """Each rank's share for the other node leaves through its NIC: 8 of 16 peers' data over 25 GB/s."""
    fabric = _dgx(2, 8)
    layout = peer_layout(fabric.graph, fabric.ranks(16))
    predicted = predict_p2p("all_to_all", layout, 2e9)
    assert predicted.protocol == "simple"
    assert predicted.time_s == pytest.approx((8.4 + 14.0 + 3.0) * US + 8 * 2e9 / 16 / 25e9)


def test_the_flow_path_sees_oversubscription_the_analytic_path_does_not() -> None:
    """On a 4:1 oversubscribed spine the analytic path stays the idle, non-blocking bound; the flows slow."""
    fabric = _dgx(2, 8, oversubscription=4.0)
    ranks = fabric.ranks(16)
    analytic = predict_p2p("all_to_all", peer_layout(fabric.graph, ranks), 2e9).time_s
    flow = CommModel(fabric.graph, "ecmp", 0).collective_s("all_to_all", [ranks], 2e9)
    assert flow > 2 * analytic


WORKLOAD_PACKAGES = ("serving", "parallel", "run", "scheduler", "compression")
#: What may still read an interconnect's bandwidth outside the network package: host-memory streams over
#: PCIe (weight and KV offload, swap), which are not NCCL communication, and the TP group's link handed to
#: the communication model (``node_topology``).
BANDWIDTH_READERS = {"run/inference_runner.py"}
#: A CPU (gloo) data-parallel check with latency and bandwidth measured on this host, not NCCL's model.
GLOO_CHECK = {"parallel/validation.py"}


def _lines(root: Path, pattern: re.Pattern[str]) -> set[str]:
    found = set()
    for package in WORKLOAD_PACKAGES:
        for path in (root / package).rglob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                code = line.split("#", 1)[0]
                if pattern.search(code):
                    found.add(path.relative_to(root).as_posix())
    return found


def test_no_workload_package_prices_communication_with_a_formula_of_its_own() -> None:
    """Latencies of links and networks are the communication model's: no module of the workload packages
    reads ``latency_us`` (the catalog's or the network's), builds an alpha-beta ring formula, or reads an
    interconnect's bandwidth except for host-memory streams."""
    root = Path(__file__).resolve().parent.parent / "dcsim"
    assert _lines(root, re.compile(r"latency_us")) == set()
    assert _lines(root, re.compile(r"\(ranks - 1\)\s*\*\s*latency")) == GLOO_CHECK
    assert _lines(root, re.compile(r"\.bandwidth_gb_per_s")) <= BANDWIDTH_READERS
