"""Disaggregated serving: KV transfers as flows on the network flow simulator (contention, intra-node)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

import dcsim
from dcsim.network import Controller, FlowSimulator, NetworkConfig, NodeGroup, build_datacenter_fabric
from dcsim.serving.kvtransfer import FixedRateTransfer, NetworkTransfer

KV_PER_TOKEN = 2 * 32 * 32 * 128 * 2  # Llama-2-7B fp16: 512 KiB per token
NIC_BYTES_PER_S = 100e9 / 8
#: NCCL's point-to-point latency of a Simple send (NCCL 2.30 src/graph/tuning.cc: ring base 8.4 us plus one
#: hop): across nodes the network's 14 us and 3 x 1 us of post overhead, inside an NVLink node 3.4 us
NETWORK_SEND_S = (8.4 + 14.0 + 3.0) * 1e-6
NVLINK_SEND_S = (8.4 + 3.4) * 1e-6


def _network(tp: int = 1) -> tuple[simpy.Environment, FlowSimulator, NetworkTransfer]:
    """Two servers of 4 A100s with one 100 Gb/s NIC each; replicas of ``tp`` accelerators fill server 0, then
    server 1 (replica i on accelerators i*tp .. i*tp + tp - 1)."""
    fabric = build_datacenter_fabric(
        [NodeGroup("s", 2, 4, "a100-sxm-80gb", "nvswitch-a100", 1, 100.0)],
        NetworkConfig("leaf_spine", None, 100.0, 1.0, "ecmp"),
    )
    env = simpy.Environment()
    flows = FlowSimulator(env, Controller(fabric.graph, "ecmp", 0))
    accs = fabric.accelerators
    endpoints = [accs[i : i + tp] for i in range(0, len(accs), tp)]
    return env, flows, NetworkTransfer(flows, endpoints, KV_PER_TOKEN / tp)


def _arrivals(env: simpy.Environment, events: list[simpy.Event]) -> list[float]:
    times: list[float] = []
    for event in events:
        event.callbacks.append(lambda _e: times.append(env.now))
    env.run()
    return times


def test_one_transfer_alone_takes_latency_plus_bytes_over_the_nic() -> None:
    env, _, transfer = _network()
    tokens = 1536
    (t,) = _arrivals(env, [transfer.send(0, 4, tokens)])
    # NCCL's point-to-point latency replaces the path's link latencies
    assert t == pytest.approx(NETWORK_SEND_S + tokens * KV_PER_TOKEN / NIC_BYTES_PER_S, rel=1e-9)
    assert transfer.bytes_sent == tokens * KV_PER_TOKEN


def test_simultaneous_transfers_share_the_bottleneck_nic() -> None:
    tokens = 1024
    env, _, transfer = _network()
    (alone,) = _arrivals(env, [transfer.send(0, 4, tokens)])
    for n in (2, 4):
        env, _, transfer = _network()
        # n prefill replicas on server 0 send at once to n decode replicas on server 1: one NIC each way
        times = _arrivals(env, [transfer.send(i, 4 + i, tokens) for i in range(n)])
        assert len(times) == n
        assert max(times) == pytest.approx(n * alone, rel=0.01)
        assert min(times) == pytest.approx(max(times), rel=1e-9)  # equal shares: they finish together


def test_intra_node_transfer_uses_the_node_fabric() -> None:
    env, flows, transfer = _network()
    tokens = 1024
    (inside,) = _arrivals(env, [transfer.send(0, 1, tokens)])  # both replicas on server 0
    graph = flows.controller.graph
    nvswitch = graph.edges["s-0/acc0", "s-0/nvswitch"]["capacity_bytes_per_s"]
    assert inside == pytest.approx(NVLINK_SEND_S + tokens * KV_PER_TOKEN / nvswitch, rel=1e-9)
    assert inside < 0.1 * tokens * KV_PER_TOKEN / NIC_BYTES_PER_S


def test_tensor_parallel_replicas_send_one_shard_per_accelerator() -> None:
    # tp=2: each transfer is two flows of half the bytes, from acc k of the prefill replica to acc k of the
    # decode one; both leave through server 0's one NIC, so the transfer takes as long as a tp=1 one
    env, flows, transfer = _network(tp=2)
    tokens = 1024
    (t,) = _arrivals(env, [transfer.send(0, 2, tokens)])
    assert flows.flows_started == 2
    assert t == pytest.approx(NETWORK_SEND_S + tokens * KV_PER_TOKEN / NIC_BYTES_PER_S, rel=1e-6)


def test_a_small_shard_runs_nccls_ll_protocol() -> None:
    """A shard of at most 16 KiB (NCCL_P2P_LL_THRESHOLD) runs LL: half its wire bytes are flags, and LL's
    shorter latency (ring base 6.6 us, network 2.7 us, 1 us post overhead)."""
    env, flows, big = _network()
    transfer = NetworkTransfer(flows, big.endpoints, 16 * 2**10)  # 16 KiB of cache per token
    (t,) = _arrivals(env, [transfer.send(0, 4, 1)])
    assert t == pytest.approx((6.6 + 2.7 + 1.0) * 1e-6 + 2 * 16 * 2**10 / NIC_BYTES_PER_S, rel=1e-9)


def test_fixed_rate_transfers_do_not_contend() -> None:
    env = simpy.Environment()
    transfer = FixedRateTransfer(env, lambda tokens: 1e-3 + tokens * 1e-6)
    times = _arrivals(env, [transfer.send(i, 4 + i, 1000) for i in range(4)])
    assert times == pytest.approx([2e-3] * 4)


def test_bad_endpoints_are_refused() -> None:
    _, flows, _ = _network()
    with pytest.raises(ValueError, match="endpoints"):
        NetworkTransfer(flows, [["s-0/acc0"], ["s-0/acc1", "s-0/acc2"]], 1.0)


def _scenario(rate: float, nic_gbps: float = 100.0, **disaggregation: float) -> dict[str, object]:
    return {
        "name": "kv-net",
        "seed": 3,
        "datacenter": {
            "nodes": [
                {
                    "name": "a100-4x",
                    "count": 2,
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": 4,
                    "intra_node": "nvswitch-a100",
                    "nics": {"count": 1, "gbps": nic_gbps},
                    "usd_per_hour": 16.0,
                }
            ],
            "network": {"topology": "leaf_spine", "link_gbps": 100},
        },
        "workloads": [
            {
                "kind": "inference",
                "name": "split",
                "model": "llama2-7b",
                "replicas": 8,
                "disaggregation": {"prefill_replicas": 4, **disaggregation},
                "traffic": {
                    "arrival": "poisson",
                    "rate_per_s": rate,
                    "duration_s": 30,
                    "prompt_tokens": {"dist": "lognormal", "mean": 1536, "sigma": 0.6, "max": 4000},
                    "output_tokens": {"dist": "lognormal", "mean": 64, "sigma": 0.8, "max": 512},
                },
            }
        ],
        "outputs": {"plots": False},
    }


def test_run_transfers_over_the_network_complete_and_contend() -> None:
    light = dcsim.run_scenario(_scenario(1.0))
    heavy = dcsim.run_scenario(_scenario(12.0))
    for result in (light, heavy):
        w = result.summary["workloads"]["split"]
        assert w["requests_completed"] == w["requests"] == w["kv_transfers"]
        links = result.tables["links"]
        assert (links["tier"] == "access").any()  # the KV caches crossed the network
    lw, hw = light.summary["workloads"]["split"], heavy.summary["workloads"]["split"]
    # alone a mean transfer is ~0.8 GB over 12.5 GB/s plus microseconds of latency
    mean_bytes = light.tables["requests"]["prompt_tokens"].mean() * KV_PER_TOKEN
    assert lw["kv_transfer_ms"]["p50"] == pytest.approx(mean_bytes / NIC_BYTES_PER_S * 1e3, rel=0.5)
    # at 12 requests/s the NIC is ~80% busy: transfers overlap and wait for each other
    assert hw["kv_transfer_ms"]["mean"] > 2 * lw["kv_transfer_ms"]["mean"]
    assert hw["kv_transfer_ms"]["p99"] > 2 * lw["kv_transfer_ms"]["p99"]
    assert hw["tpot_ms"]["p99"] > lw["tpot_ms"]["p99"]  # the wait is paid between first and second token


def test_fixed_kv_transfer_gbps_bypasses_the_network() -> None:
    result = dcsim.run_scenario(_scenario(12.0, kv_transfer_gbps=100.0))
    w = result.summary["workloads"]["split"]
    assert w["requests_completed"] == w["requests"]
    assert "links" not in result.tables  # no flows: the network was not built
    prompts = result.tables["requests"]["prompt_tokens"].to_numpy()
    expected_ms = prompts * KV_PER_TOKEN / NIC_BYTES_PER_S * 1e3 + NETWORK_SEND_S * 1e3  # plus NCCL's latency
    assert w["kv_transfer_ms"]["mean"] == pytest.approx(float(np.mean(expected_ms)), rel=1e-6)


def test_kv_transfers_share_the_network_with_collectives_of_the_run() -> None:
    # a 40 GB send/recv between the two servers at t = 10 s (3.2 s alone), then during the KV transfers of
    # 12 requests/s, which keep the NIC ~80% busy on their own
    collective = {
        "kind": "collective",
        "name": "copy",
        "op": "send_recv",
        "bytes": 40e9,
        "hosts": ["a100-4x-0/acc0", "a100-4x-1/acc0"],
        "arrival_s": 10.0,
    }
    alone = _scenario(12.0)
    alone["workloads"] = [collective]
    shared = _scenario(12.0)
    shared["workloads"].append(collective)
    t_alone = dcsim.run_scenario(alone).summary["workloads"]["copy"]["time_s"]
    result = dcsim.run_scenario(shared)
    t_shared = result.summary["workloads"]["copy"]["time_s"]
    assert t_alone == pytest.approx(40e9 / NIC_BYTES_PER_S, rel=0.01)
    assert t_shared > 2 * t_alone  # the KV flows in flight take their max-min shares of the NIC
    split = result.summary["workloads"]["split"]
    assert split["requests_completed"] == split["requests"]
