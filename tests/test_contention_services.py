"""Cross-job contention beyond training jobs: serving replicas that span nodes, and scenario link failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcsim
from dcsim.errors import UserInputError
from dcsim.network import Controller
from dcsim.network.graph import hosts
from dcsim.network.topologies import build_topology
from dcsim.scheduler.contention import LinkShares, StepTraffic
from dcsim.scheduler.shared_network import Service, SharedNetwork
from dcsim.scheduler.traffic import ring_transfers, send_transfers
from dcsim.workloads.jobs import Job


def check_capacity(shares: LinkShares) -> None:
    carried = shares.carried_bytes_per_s()
    assert (carried <= shares.capacity * (1 + 1e-9)).all(), "a link carries more than its capacity"
    assert all(value >= 1.0 for value in shares.slowdown.values())


def job(seq: int, accelerators: list[int]) -> Job:
    out = Job(seq, f"j{seq}", 0.0, len(accelerators), 10.0, "w")
    out.seq, out.accelerators = seq, accelerators
    return out


# ------------------------------------------------------------------------- services on the shared network
def test_a_service_and_a_job_on_a_shared_link_slow_each_other() -> None:
    # one spine: each leaf's single uplink is 50 Gb/s = 6.25 GB/s (4:1 over two 100 Gb/s hosts)
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 1, "hosts_per_leaf": 2, "oversubscription": 4})
    network = SharedNetwork(Controller(graph, "ecmp", 0))
    names = [str(h) for h in hosts(graph)]  # host0, host1 on leaf0; host2, host3 on leaf1

    def source(j: Job) -> StepTraffic:
        transfers: dict[tuple[str, str], float] = {}
        ring_transfers(transfers, "all_reduce", [names[a] for a in j.accelerators], 5e9)  # 5 GB each way
        return network.loads.step_traffic(transfers, 1.0)

    network.sources["w"] = source
    told: list[float] = []

    def service(pair: tuple[int, int], bytes_per_s: float) -> Service:
        def traffic() -> StepTraffic:
            transfers: dict[tuple[str, str], float] = {}
            send_transfers(transfers, [(names[pair[0]], names[pair[1]])], bytes_per_s)
            return network.loads.step_traffic(transfers, 1.0)

        return Service(traffic, told.append)

    assert network.started(job(0, [0, 2])) == {}  # alone
    # the service sends 2.5 GB/s host1 -> host3 up the same uplink: rho = (5 + 2.5) / 6.25 = 1.2 for both
    changed = network.service_started("replica", service((1, 3), 2.5e9))
    assert changed == {0: pytest.approx(1.2)}  # only jobs come back to the scheduler ...
    assert told == [pytest.approx(1.2)]  # ... the service is told its own
    check_capacity(network.shares)
    assert network.service_stopped("replica") == {0: 1.0}
    # inside one leaf (host2 -> host3) it shares no link with the job's ring: nobody is slowed
    told.clear()
    assert network.service_started("replica", service((2, 3), 2.5e9)) == {}
    assert told == [1.0]
    assert network.on_links("replica")


def serving_next_to_jobs(tmp_path: Path, gpus: int = 3, placement: str = "spread", jobs: bool = True) -> dict:
    """Four 2-GPU servers with one 1 Gb/s NIC each, two per leaf. Llama-2-7B served as tp 1 x pp 3 spans
    server 0 (stages 0, 1) and server 1 (stage 2): its boundary crosses server 0's NIC to server 1's. A
    ``gpus``-accelerator trace job that all-reduces 0.1 GB per 1 s step takes the free accelerators:
    ``spread`` over servers 1, 2, 3 its ring ends in server 1 through the same NIC link; ``topology_aware``
    with 4 it takes servers 2 and 3, whose traffic stays under the other leaf."""
    trace = tmp_path / "jobs.csv"
    trace.write_text(f"job_id,submit_s,gpus,duration_s\na,0,{gpus},100\n")
    workloads: list[dict] = [
        {
            "kind": "inference",
            "name": "serve",
            "model": "llama2-7b",
            "precision": "fp16",
            "replicas": 1,
            "parallelism": {"tp": 1, "pp": 3},
            "batching": {"policy": "continuous", "max_batch_size": 32, "max_batch_tokens": 4096},
            "traffic": {
                "arrival": "poisson",
                "rate_per_s": 4.0,
                "duration_s": 60,
                "prompt_tokens": {"dist": "constant", "value": 512},
                "output_tokens": {"dist": "constant", "value": 64},
            },
        }
    ]
    if jobs:
        workloads.append(
            {"kind": "jobs", "name": "dp", "trace": str(trace), "network_traffic": {"step_s": 1.0, "allreduce_gb": 0.1}}
        )
    return {
        "name": "serving-next-to-jobs",
        "seed": 0,
        "datacenter": {
            "nodes": [
                {
                    "name": "n",
                    "count": 4,
                    "accelerator": "h100-sxm",
                    "accelerators_per_node": 2,
                    "nodes_per_rack": 2,
                    "intra_node": "nvswitch-h100",
                    "nics": {"count": 1, "gbps": 1},
                }
            ],
            "network": {
                "topology": "leaf_spine",
                "params": {"leaves": 2, "spines": 1, "hosts_per_leaf": 2, "oversubscription": 1},
                "link_gbps": 1,
            },
        },
        "scheduler": {"placement": placement},
        "workloads": workloads,
        "outputs": {"plots": False},
    }


def test_a_replica_spanning_nodes_and_a_job_slow_each_other(tmp_path: Path) -> None:
    result = dcsim.run_scenario(serving_next_to_jobs(tmp_path))
    serve = result.summary["workloads"]["serve"]
    job_row = result.tables["jobs"].set_index("job_id").loc["a"]
    # the job alone fills its busiest link (server 1's NIC downlink) and the replica adds its demand there:
    # one overloaded link, the same slowdown for both, and the job takes that much longer
    assert serve["network_slowdown"] > 1.05
    assert job_row["network_slowdown"] == pytest.approx(serve["network_slowdown"])
    assert job_row["end_s"] == pytest.approx(100.0 * serve["network_slowdown"])
    alone = dcsim.run_scenario(serving_next_to_jobs(tmp_path, jobs=False)).summary["workloads"]["serve"]
    assert "network_slowdown" not in alone  # never shared a link: no key, summaries as before
    assert serve["tpot_ms"]["mean"] > alone["tpot_ms"]["mean"]  # its stage sends stretched


def test_a_replica_and_a_job_on_disjoint_links_do_not(tmp_path: Path) -> None:
    result = dcsim.run_scenario(serving_next_to_jobs(tmp_path, gpus=4, placement="topology_aware"))
    serve = result.summary["workloads"]["serve"]
    assert serve["network_slowdown"] == 1.0
    assert result.tables["jobs"].set_index("job_id").loc["a", "end_s"] == pytest.approx(100.0)
    alone = dcsim.run_scenario(serving_next_to_jobs(tmp_path, jobs=False)).summary["workloads"]["serve"]
    assert serve["tpot_ms"] == alone["tpot_ms"]


def test_the_replica_demand_by_hand(tmp_path: Path) -> None:
    from dcsim.run.serving_contention import hop_wire_s
    from dcsim.serving.stagehop import StageHop

    result = dcsim.run_scenario(serving_next_to_jobs(tmp_path))
    requests = result.tables["requests"]
    tokens_per_s = float((requests["prompt_tokens"] + requests["output_tokens"]).sum()) / 60.0
    demand = tokens_per_s * 4096 * 2  # one boundary pair, tp 1, fp16 activations of hidden 4096
    slowdown = result.summary["workloads"]["serve"]["network_slowdown"]
    capacity = demand / (slowdown - 1.0)  # rho = (capacity + demand) / capacity on the shared NIC link
    assert 0.9 * 1e9 / 8 < capacity <= 1e9 / 8  # 1 Gb/s, less the link efficiency
    # the stretch: (s - 1) x the wire seconds of the inter-node sends, latency excluded: a large send's wire
    # bytes are its bytes (Simple protocol), small ones pay LL/LL128's flag bytes on top
    hops = (StageHop(1e8), StageHop(2e8))
    assert hop_wire_s(hops, 8192.0, 1000) == pytest.approx(8_192_000 / 1e8 + 8_192_000 / 2e8)
    assert hop_wire_s(hops[:1], 8192.0, 1) >= 8192 / 1e8
    assert hop_wire_s(hops, 8192.0, 0) == 0.0


# ------------------------------------------------------------------------------------ link failures
def two_dp_jobs(tmp_path: Path, events: list[dict] | None = None) -> dict:
    """Four 2-GPU servers, one 100 Gb/s NIC each, two per leaf, two spines: each leaf has two 50 Gb/s
    (6.25 GB/s) uplinks. Two 4-GPU jobs placed ``spread`` (one GPU of each server) all-reduce 3 GB per 1 s
    step: each ring hop across the leaves carries 1.5 x 3 = 4.5 GB/s each way. With seed 2 ECMP puts the
    two jobs' cross-leaf flows on different spines: 4.5 of 6.25, nobody is slowed."""
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,submit_s,gpus,duration_s\na,0,4,400\nb,0,4,400\n")
    scenario: dict = {
        "name": "link-failure",
        "seed": 2,
        "datacenter": {
            "nodes": [
                {
                    "name": "n",
                    "count": 4,
                    "accelerator": "h100-sxm",
                    "accelerators_per_node": 2,
                    "nodes_per_rack": 2,
                    "nics": {"count": 1, "gbps": 100},
                }
            ],
            "network": {
                "topology": "leaf_spine",
                "params": {"leaves": 2, "spines": 2, "hosts_per_leaf": 2, "oversubscription": 2},
                "link_gbps": 100,
            },
        },
        "scheduler": {"placement": "spread"},
        "workloads": [
            {"kind": "jobs", "name": "dp", "trace": str(trace), "network_traffic": {"step_s": 1.0, "allreduce_gb": 3.0}}
        ],
        "outputs": {"plots": False},
    }
    if events is not None:
        scenario["failures"] = {"links": {"events": events}}
    return scenario


def test_a_link_failure_in_a_scenario_reprices_by_hand(tmp_path: Path) -> None:
    intact = dcsim.run_scenario(two_dp_jobs(tmp_path)).tables["jobs"].set_index("job_id")
    assert list(intact["end_s"]) == pytest.approx([400.0, 400.0])
    failed = dcsim.run_scenario(two_dp_jobs(tmp_path, [{"at_s": 100, "link": ["leaf0", "spine0"], "down_s": 100}]))
    jobs = failed.tables["jobs"].set_index("job_id")
    # 100 s alone speed; then both cross-leaf flows use spine1's links, rho = 9 / 6.25 = 1.44, for 100 s
    # (100 / 1.44 s of work); the link is back and the rest runs at full speed
    rho = 9.0 / 6.25
    expected = 100 + 100 + (400 - 100 - 100 / rho)
    assert list(jobs["end_s"]) == pytest.approx([expected, expected])
    assert failed.summary["datacenter"]["link_failures"] == 1
    assert failed.summary["datacenter"]["link_down_s"] == 100.0
    assert "link_failures" not in dcsim.run_scenario(two_dp_jobs(tmp_path)).summary["datacenter"]


def test_drawn_link_failures_are_deterministic(tmp_path: Path) -> None:
    scenario = two_dp_jobs(tmp_path)
    scenario["failures"] = {"links": {"mtbf_h": 0.05, "repair_s": 30}}
    first = dcsim.run_scenario(scenario).summary
    again = dcsim.run_scenario(scenario).summary
    assert first == again
    assert first["datacenter"]["link_failures"] > 0


def test_bad_link_failures_name_the_field(tmp_path: Path) -> None:
    scenario = two_dp_jobs(tmp_path, [{"at_s": 10, "link": ["leaf0", "nowhere"], "down_s": 5}])
    with pytest.raises(UserInputError) as error:
        dcsim.load_scenario(scenario)
    assert [p.path for p in error.value.problems] == ["failures.links.events[0].link"]
    scenario = two_dp_jobs(tmp_path, [{"at_s": -1, "link": ["leaf0"], "down_s": 0}])
    with pytest.raises(UserInputError) as error:
        dcsim.load_scenario(scenario)
    paths = {p.path for p in error.value.problems}
    assert {
        "failures.links.events[0].at_s",
        "failures.links.events[0].link",
        "failures.links.events[0].down_s",
    } <= paths
    scenario = two_dp_jobs(tmp_path)
    scenario["failures"] = {"links": {"mtbf_h": 1.0}}  # no repair_s anywhere
    with pytest.raises(UserInputError):
        dcsim.load_scenario(scenario)
    scenario = two_dp_jobs(tmp_path, [{"at_s": 10, "link": ["leaf0", "spine0"], "down_s": 5}])
    scenario["scheduler"]["network_contention"] = False
    with pytest.raises(UserInputError) as error:
        dcsim.load_scenario(scenario)
    assert [p.path for p in error.value.problems] == ["failures.links"]


# ------------------------------------------------------ capacity under jobs, services and link failures
FABRICS = st.one_of(
    st.builds(
        lambda leaves, spines, over: (
            "leaf_spine",
            {"leaves": leaves, "spines": spines, "hosts_per_leaf": 4, "oversubscription": over},
        ),
        st.integers(2, 3),
        st.integers(2, 3),
        st.sampled_from([1, 2, 4]),
    ),
    st.just(("fat_tree", {"k": 4})),
)


@settings(max_examples=20, deadline=None)
@given(FABRICS, st.integers(0, 2**16), st.integers(1, 6), st.integers(1, 4))
def test_jobs_services_and_link_failures_never_exceed_capacity(fabric, seed: int, count: int, services: int) -> None:
    kind, params = fabric
    graph = build_topology(kind, params, 100.0, 1.0, seed % 7)
    network = SharedNetwork(Controller(graph, "ecmp", seed))
    names = [str(h) for h in hosts(graph)]
    rng = np.random.default_rng(seed)
    groups: dict[int, list[str]] = {}

    def source(j: Job) -> StepTraffic:
        transfers: dict[tuple[str, str], float] = {}
        ring_transfers(transfers, "all_reduce", groups[j.seq], 1e9 * (1 + j.seq))
        return network.loads.step_traffic(transfers, 0.5)

    network.sources["w"] = source
    for seq in range(count):
        groups[seq] = [str(n) for n in rng.choice(names, size=int(rng.integers(2, 6)), replace=False)]
        network.started(job(seq, []))
    for index in range(services):
        pairs = [tuple(str(n) for n in rng.choice(names, size=2, replace=False)) for _ in range(3)]
        rate = float(rng.uniform(1e8, 2e10))

        def traffic(pairs: list = pairs, rate: float = rate) -> StepTraffic:
            transfers: dict[tuple[str, str], float] = {}
            send_transfers(transfers, pairs, rate)
            return network.loads.step_traffic(transfers, 1.0)

        network.service_started(("replica", index), Service(traffic, lambda s: None))
    if len(network.shares):
        check_capacity(network.shares)
    switches = sorted(
        (str(u), str(v))
        for u, v in graph.edges()
        if graph.nodes[u].get("role") == "switch" and graph.nodes[v].get("role") == "switch"
    )
    u, v = switches[int(rng.integers(len(switches)))]
    network.fail_link(u, v)
    if len(network.shares):
        check_capacity(network.shares)
    network.service_stopped(("replica", 0))
    network.restore_link(u, v)
    if len(network.shares):
        check_capacity(network.shares)


def test_links_failing_faster_than_the_work_stop_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dcsim.scheduler import link_failures

    monkeypatch.setattr(link_failures, "MAX_LINK_FAILURES", 50)
    scenario = two_dp_jobs(tmp_path)
    scenario["failures"] = {"links": {"mtbf_h": 0.001, "repair_s": 1}}
    with pytest.raises(UserInputError) as error:
        dcsim.run_scenario(scenario)
    assert [p.path for p in error.value.problems] == ["failures.links.mtbf_h"]
