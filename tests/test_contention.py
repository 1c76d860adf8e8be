"""Cross-job network contention: proportional link sharing, step traffic, re-pricing in the scheduler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import dcsim
from dcsim.errors import UserInputError
from dcsim.network import Controller
from dcsim.network.graph import hosts
from dcsim.network.topologies import build_topology
from dcsim.scheduler.contention import LinkShares, StepTraffic
from dcsim.scheduler.traffic import LinkLoads, ring_transfers

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def expected_slowdowns(shares: LinkShares) -> dict[object, float]:
    """The model's definition computed from scratch: max(1, max over a job's links of demand / capacity)."""
    load = np.zeros(shares.capacity.size)
    for key in shares.slowdown:
        links, demand = shares.demand(key)
        load[links] += demand
    rho = load / shares.capacity
    return {key: max(1.0, float(rho[shares.demand(key)[0]].max(initial=1.0))) for key in shares.slowdown}


def check_shares(shares: LinkShares) -> None:
    carried = shares.carried_bytes_per_s()
    assert (carried <= shares.capacity * (1 + 1e-9)).all(), "a link carries more than its capacity"
    expected = expected_slowdowns(shares)
    for key, value in shares.slowdown.items():
        assert value >= 1.0
        assert value == pytest.approx(expected[key], rel=1e-9)


def test_ring_transfers():
    out: dict[tuple[str, str], float] = {}
    ring_transfers(out, "all_reduce", ["a", "b", "c", "d"], 1000.0)
    assert out == {("a", "b"): 1500.0, ("b", "c"): 1500.0, ("c", "d"): 1500.0, ("d", "a"): 1500.0}
    out = {}
    ring_transfers(out, "all_to_all", ["a", "b"], 1000.0, times=2)
    assert out == {("a", "b"): 1000.0, ("b", "a"): 1000.0}
    out = {}
    ring_transfers(out, "all_gather", ["a"], 1000.0)
    assert out == {}


def test_proportional_sharing_by_hand():
    shares = LinkShares(np.array([10.0, 10.0, 10.0]))
    # alone a job keeps its speed, even if its own demand would exceed a link (its step covers its bytes)
    assert shares.add("a", StepTraffic(np.array([0, 1]), np.array([60.0, 20.0]), 10.0)) == {"a": 1.0}
    # disjoint links: no slowdown
    assert shares.add("b", StepTraffic(np.array([2]), np.array([50.0]), 10.0)) == {"b": 1.0}
    # c asks 6 B/s of link 0 where a asks 6: rho = 1.2 slows both; b is untouched
    changed = shares.add("c", StepTraffic(np.array([0]), np.array([12.0]), 2.0))
    assert changed == {"a": pytest.approx(1.2), "c": pytest.approx(1.2)}
    check_shares(shares)
    assert shares.remove("c") == {"a": 1.0}
    assert shares.slowdown == {"a": 1.0, "b": 1.0}


@st.composite
def traffic_sets(draw: st.DrawFn) -> tuple[np.ndarray, list[StepTraffic], list[int]]:
    links = draw(st.integers(2, 12))
    capacity = np.array(draw(st.lists(st.floats(1.0, 100.0), min_size=links, max_size=links)))
    jobs = []
    for _ in range(draw(st.integers(1, 10))):
        used = sorted(draw(st.sets(st.integers(0, links - 1), min_size=1, max_size=links)))
        nbytes = draw(st.lists(st.floats(0.0, 500.0), min_size=len(used), max_size=len(used)))
        jobs.append(StepTraffic(np.array(used), np.array(nbytes), draw(st.floats(0.1, 20.0))))
    leaving = draw(st.lists(st.integers(0, len(jobs) - 1), unique=True))
    return capacity, jobs, leaving


@settings(max_examples=60, deadline=None)
@given(traffic_sets())
def test_incremental_shares_match_the_definition(case: tuple[np.ndarray, list[StepTraffic], list[int]]) -> None:
    capacity, jobs, leaving = case
    shares = LinkShares(capacity)
    for index, job in enumerate(jobs):
        shares.add(index, job)
        check_shares(shares)
    for index in leaving:
        shares.remove(index)
        check_shares(shares)
    rebuilt = LinkShares(capacity)
    rebuilt.rebuild({i: jobs[i] for i in range(len(jobs)) if i not in leaving})
    assert rebuilt.slowdown == pytest.approx(shares.slowdown)


FABRICS = st.one_of(
    st.builds(
        lambda leaves, spines, over: (
            "leaf_spine",
            {"leaves": leaves, "spines": spines, "hosts_per_leaf": 4, "oversubscription": over},
        ),
        st.integers(2, 3),
        st.integers(1, 3),
        st.sampled_from([1, 2, 4]),
    ),
    st.just(("fat_tree", {"k": 4})),
    st.just(("jellyfish", {"switches": 6, "degree": 3, "hosts": 12})),
)


@settings(max_examples=25, deadline=None)
@given(FABRICS, st.integers(0, 2**16), st.integers(1, 8))
def test_random_jobs_on_random_fabrics_never_exceed_capacity(fabric, seed: int, count: int) -> None:
    kind, params = fabric
    graph = build_topology(kind, params, 100.0, 1.0, seed % 7)
    loads = LinkLoads(Controller(graph, "ecmp", seed))
    names = [str(h) for h in hosts(graph)]
    rng = np.random.default_rng(seed)
    shares = LinkShares(loads.capacity_bytes_per_s)
    for index in range(count):
        group = [str(n) for n in rng.choice(names, size=int(rng.integers(2, min(8, len(names)) + 1)), replace=False)]
        transfers: dict[tuple[str, str], float] = {}
        ring_transfers(transfers, "all_reduce", group, float(rng.uniform(1e8, 1e10)))
        shares.add(index, loads.step_traffic(transfers, float(rng.uniform(0.05, 2.0))))
        check_shares(shares)
    shares.remove(0)
    check_shares(shares)


# ----------------------------------------------------------------------------------- in the scheduler
def two_jobs(placement: str, **changes: object) -> dict:
    scenario = yaml.safe_load((SCENARIOS / "contention_two_jobs.yaml").read_text())
    scenario["scheduler"]["placement"] = placement
    scenario["outputs"] = {"plots": False}
    for workload in scenario["workloads"]:
        workload["steps"] = 20
    scenario["scheduler"].update(changes)
    return scenario


@pytest.fixture(scope="module")
def spread() -> dict:
    return dcsim.run_scenario(two_jobs("spread")).summary["workloads"]


def test_jobs_sharing_an_oversubscribed_spine_slow_each_other(spread: dict) -> None:
    for name in ("job-a", "job-b"):
        job = spread[name]
        assert job["network_slowdown"] > 1.05
        assert job["step_time_shared_s"] == pytest.approx(job["step_time_s"] * job["network_slowdown"])
        # the run takes longer by the slowdown (both run together from start to end)
        assert job["time_to_train_s"] == pytest.approx(job["compute_time_to_train_s"] * job["network_slowdown"])


def test_jobs_in_their_own_racks_do_not_slow_each_other() -> None:
    summary = dcsim.run_scenario(two_jobs("topology_aware")).summary["workloads"]
    for name in ("job-a", "job-b"):
        assert summary[name]["network_slowdown"] == 1.0
        assert summary[name]["time_to_train_s"] == pytest.approx(summary[name]["compute_time_to_train_s"])


def test_a_job_alone_is_not_slowed(spread: dict) -> None:
    scenario = two_jobs("spread")
    scenario["workloads"] = scenario["workloads"][:1]
    alone = dcsim.run_scenario(scenario).summary["workloads"]["job-a"]
    assert alone["network_slowdown"] == 1.0
    assert alone["step_time_s"] == pytest.approx(spread["job-a"]["step_time_s"])  # same placement
    off = dcsim.run_scenario(two_jobs("spread", network_contention=False)).summary["workloads"]["job-a"]
    assert "network_slowdown" not in off
    assert off["time_to_train_s"] == pytest.approx(off["compute_time_to_train_s"])


def traffic_jobs(tmp_path: Path, rows: str) -> dict:
    """Four 2-GPU servers with one 100 Gb/s NIC each, two per rack, under a 4:1 oversubscribed leaf-spine
    (one 50 Gb/s = 6.25 GB/s uplink per leaf). ``spread`` gives each 4-GPU job one GPU of every server, so
    its ring crosses the uplinks; a job all-reduces 3 GB per 1 s step: 1.5 * 3 = 4.5 GB/s each way per
    ring hop, so two jobs ask 9 GB/s of each uplink direction (rho = 1.44) and 9 of a NIC's 12.5."""
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,submit_s,gpus,duration_s\n" + rows)
    return {
        "name": "contention-jobs",
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
                "params": {"leaves": 2, "spines": 1, "hosts_per_leaf": 2, "oversubscription": 4},
                "link_gbps": 100,
            },
        },
        "scheduler": {"placement": "spread"},
        "workloads": [
            {
                "kind": "jobs",
                "name": "dp",
                "trace": str(trace),
                "network_traffic": {"step_s": 1.0, "allreduce_gb": 3.0},
            }
        ],
        "outputs": {"plots": False},
    }


RHO = 9.0 / 6.25


def test_repricing_at_start_and_end(tmp_path: Path) -> None:
    # a runs alone for 100 s; b (100 s of work) joins and both run at 1/RHO speed until b ends
    result = dcsim.run_scenario(traffic_jobs(tmp_path, "a,0,4,400\nb,100,4,100\n"))
    jobs = result.tables["jobs"].set_index("job_id")
    assert jobs.loc["b", "end_s"] == pytest.approx(100 + 100 * RHO)
    assert jobs.loc["a", "end_s"] == pytest.approx(400 + 100 * RHO - 100)
    assert jobs.loc["b", "network_slowdown"] == pytest.approx(RHO)
    assert jobs.loc["a", "network_slowdown"] == pytest.approx(jobs.loc["a", "end_s"] / 400)
    summary = result.summary["workloads"]["dp"]
    assert summary["network_slowdown_max"] == pytest.approx(RHO)


def test_repricing_at_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = traffic_jobs(tmp_path, "a,0,4,400\nb,0,4,400\n")
    together = dcsim.run_scenario(scenario).tables["jobs"].set_index("job_id")
    assert together.loc["a", "end_s"] == pytest.approx(400 * RHO)
    from dcsim.run import world

    original = world._failures

    def fail_b_at_100_s(scenario_, sim, scheduler, done):
        def fail(_event: object) -> None:
            b = next(job for job in scheduler.running.values() if job.job_id == "b")
            scheduler.fail(b.accelerators[0])

        sim.env.timeout(100.0).callbacks.append(fail)
        return original(scenario_, sim, scheduler, done)

    monkeypatch.setattr(world, "_failures", fail_b_at_100_s)
    jobs = dcsim.run_scenario(scenario).tables["jobs"].set_index("job_id")
    # b is killed at 100 s (its accelerator is never repaired) and a goes on alone at full speed; b
    # restarts from scratch on the 7 accelerators left once a is done, alone
    assert jobs.loc["a", "end_s"] == pytest.approx(100 + (400 - 100 / RHO))
    assert jobs.loc["b", "end_s"] == pytest.approx(jobs.loc["a", "end_s"] + 400)


def test_repricing_after_a_link_failure() -> None:
    # two 50 Gb/s (6.25 GB/s) uplinks per leaf; each job's two flows ask 10 GB/s alone, capped at 6.25
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 2, "hosts_per_leaf": 2, "oversubscription": 2})
    from dcsim.scheduler.shared_network import SharedNetwork
    from dcsim.workloads.jobs import Job

    network = SharedNetwork(Controller(graph, "ecmp", 0))
    names = [str(h) for h in hosts(graph)]  # host0, host1 on leaf0; host2, host3 on leaf1

    def source(job: Job) -> StepTraffic:
        transfers: dict[tuple[str, str], float] = {}
        ring_transfers(transfers, "all_reduce", [names[a] for a in job.accelerators], 5e9)
        return network.loads.step_traffic(transfers, 0.5)

    network.sources["w"] = source
    jobs = []
    for seq, pair in enumerate(([0, 2], [1, 3])):
        job = Job(seq, f"j{seq}", 0.0, 2, 10.0, "w")
        job.seq, job.accelerators = seq, pair
        jobs.append(job)
        network.started(job)
    before = dict(network.shares.slowdown)
    network.fail_link("leaf0", "spine0")
    # both jobs' leaf0 -> leaf1 flows now share spine1's uplink: twice its capacity asked
    assert network.shares.slowdown == {0: pytest.approx(2.0), 1: pytest.approx(2.0)}
    controller = network.controller
    dead = controller.links.link_id[(controller.index("leaf0"), controller.index("spine0"))]
    assert network.shares.load[dead] == 0.0
    check_shares(network.shares)
    network.restore_link("leaf0", "spine0")
    assert network.shares.slowdown == pytest.approx(before)


def test_bad_network_traffic_names_the_field(tmp_path: Path) -> None:
    scenario = traffic_jobs(tmp_path, "a,0,4,400\n")
    scenario["workloads"][0]["network_traffic"] = {"step_s": 0, "allreduce_gb": -1}
    scenario["scheduler"]["network_contention"] = "yes"
    with pytest.raises(UserInputError) as error:
        dcsim.load_scenario(scenario)
    paths = {problem.path for problem in error.value.problems}
    assert {
        "workloads[0].network_traffic.step_s",
        "workloads[0].network_traffic.allreduce_gb",
        "scheduler.network_contention",
    } <= paths


def test_a_job_alone_is_not_routed_until_another_joins() -> None:
    from dcsim.scheduler.shared_network import SharedNetwork
    from dcsim.workloads.jobs import Job

    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 1, "hosts_per_leaf": 2, "oversubscription": 4})
    built = []

    def controller() -> Controller:
        built.append(1)
        return Controller(graph, "ecmp", 0)

    network = SharedNetwork(controller)
    names = [str(h) for h in hosts(graph)]

    def source(job: Job) -> StepTraffic:
        transfers: dict[tuple[str, str], float] = {}
        ring_transfers(transfers, "all_reduce", [names[a] for a in job.accelerators], 5e9)
        return network.loads.step_traffic(transfers, 1.0)

    network.sources["w"] = source
    jobs = []
    for seq, pair in enumerate(([0, 2], [1, 3])):
        job = Job(seq, f"j{seq}", 0.0, 2, 10.0, "w")
        job.seq, job.accelerators = seq, pair
        jobs.append(job)
    assert network.started(jobs[0]) == {} and not built  # alone: nothing routed, no controller
    assert network.stopped(jobs[0]) == {}
    assert network.started(jobs[0]) == {}
    # both cross the one 6.25 GB/s uplink with 5 GB/s each way: rho = 1.6 for both
    assert network.started(jobs[1]) == {0: pytest.approx(1.6), 1: pytest.approx(1.6)} and built == [1]
    assert network.stopped(jobs[1]) == {0: 1.0}
