"""Limits check enforces: sizes against memory, runs that could never finish, non-finite numbers, and
scenarios that passed check and then crashed in run. Minimal inputs, one line per problem naming the field."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import yaml

from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario
from dcsim.scenario.estimate import MEMORY_BUDGET_BYTES, size_items, topology_size

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def errors_of(spec) -> list[str]:
    with pytest.raises(UserInputError) as info:
        load_scenario(spec)
    return [str(p) for p in info.value.problems]


def inference(**traffic) -> dict:
    """A one-replica Llama-2-7B workload on the base scenario's A100s, with ``traffic`` overrides."""
    base_traffic = {
        "arrival": "poisson",
        "rate_per_s": 1,
        "duration_s": 10,
        "prompt_tokens": {"dist": "constant", "value": 100},
        "output_tokens": {"dist": "constant", "value": 10},
    }
    return {"kind": "inference", "name": "chat", "model": "llama2-7b", "replicas": 1, "traffic": base_traffic | traffic}


# ---------------------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("count", [10**9, 10**12, 1e308])
def test_absurd_node_counts_are_refused_with_their_size(base, count):
    base["datacenter"]["nodes"][0]["count"] = count
    [line] = errors_of(base)
    assert line.startswith("datacenter.nodes[0].count: ")
    assert "nodes x 4 accelerators is " in line
    assert "dcsim handles up to ~" in line and "(an estimated " in line


def test_a_309_digit_count_is_named_without_overflow(base):
    base["datacenter"]["nodes"][0]["count"] = 1e308
    [line] = errors_of(base)
    assert "~1e+308 nodes x 4 accelerators is ~1e+308 accelerators" in line
    assert "(an estimated more than 1e+308 bytes)" in line


@pytest.mark.parametrize("count", [10**9, 10**12, 1e308])
def test_absurd_job_counts_are_refused(base, count):
    base["workloads"][0]["synthetic"]["count"] = count
    base["workloads"][0]["synthetic"]["rate_per_s"] = 1e6
    del base["workloads"][0]["synthetic"]["rate_per_h"]
    line = errors_of(base)[0]  # (1e308 jobs at 1e6 per second also arrive past the simulated horizon)
    assert line.startswith("workloads[0].synthetic.count: ")
    assert " jobs; dcsim handles up to ~" in line


def test_requests_are_rate_times_duration(base):
    base["workloads"] = [inference(rate_per_s=1e6, duration_s=1e6)]
    [line] = errors_of(base)
    assert line.startswith("workloads[0].traffic.duration_s: 1e+06 requests/s x 1e+06 s is 1e+12 requests; ")


def test_fat_tree_k_2000_is_refused_without_building_it(base):
    base["datacenter"]["network"] = {"topology": "fat_tree", "params": {"k": 2000}}
    started = time.perf_counter()
    [line] = errors_of(base)
    assert time.perf_counter() - started < 2.0
    assert line.startswith("datacenter.network.params.k: fat_tree k 2000: 2e+09 hosts, 5e+06 switches and 6e+09 links")


def test_topology_formulas_match_the_builders():
    from dcsim.network.topologies import build_topology

    for kind, params in [
        ("fat_tree", {"k": 4}),
        ("leaf_spine", {"leaves": 3, "spines": 2, "hosts_per_leaf": 4}),
        ("torus", {"dims": [3, 4]}),
        ("dragonfly", {"groups": 3, "routers": 2, "hosts": 2}),
        ("jellyfish", {"switches": 6, "degree": 3, "hosts": 2}),
    ]:
        graph = build_topology(kind, params)
        hosts = sum(1 for _, role in graph.nodes(data="role") if role == "host")
        assert topology_size(kind, params) == (hosts, graph.number_of_nodes() - hosts, graph.number_of_edges()), kind


def test_many_items_that_fit_alone_are_refused_together(base):
    nodes = base["datacenter"]["nodes"]
    nodes.append(dict(nodes[0], name="m", count=nodes[0]["count"]))
    per_type = int(0.6 * MEMORY_BUDGET_BYTES / 650 / 4)  # 60% of the budget each (650 B per accelerator)
    nodes[0]["count"] = nodes[1]["count"] = per_type
    [line] = errors_of(base)
    assert line.startswith("datacenter.nodes[0].count: the run needs an estimated ")


def test_times_past_the_simulated_horizon_are_refused(base):
    base["duration_s"] = 1e12
    assert errors_of(base) == [
        "duration_s: it reaches 1e+12 s of simulated time; dcsim handles up to 1e+10 s "
        "(~317 years: beyond it float64 seconds lose microsecond resolution)"
    ]


def test_inference_duration_1e308_is_refused_not_overflowed(base):
    base["workloads"] = [inference(rate_per_s=1e-305, duration_s=1e308)]
    [line] = errors_of(base)
    assert line.startswith("workloads[0].traffic.duration_s: it reaches 1e+308 s of simulated time")


def test_shipped_scenarios_pass_quickly_and_are_small():
    from dcsim.scenario.network import _build_fabric

    paths = sorted(SCENARIOS.glob("*.yaml"))
    for path in paths:
        load_scenario(path)  # imports and catalogs warm: what is timed is check after import
    for path in paths:
        _build_fabric.cache_clear()
        started = time.perf_counter()
        scenario = load_scenario(path)
        assert time.perf_counter() - started < 1.0, path.name
        assert sum(item.bytes for item in size_items(scenario)) < MEMORY_BUDGET_BYTES / 10, path.name


# ------------------------------------------------------------------------------ runs that cannot finish
def test_failure_storm_is_refused(base):
    base["failures"] = {"accelerator_mtbf_h": 1e-9, "repair_s": 60}
    [line] = errors_of(base)
    assert line.startswith("failures.accelerator_mtbf_h: the cluster fails 2.22e+06 times per second; ")
    assert "dcsim handles up to ~1e+06" in line


def test_checkpoint_interval_shorter_than_a_checkpoint_is_refused(base):
    base["failures"] = {"accelerator_mtbf_h": 1000, "repair_s": 60, "checkpoint_interval_s": 1e-6, "checkpoint_s": 10}
    assert errors_of(base) == [
        "failures.checkpoint_interval_s: 1e-06 s of work between checkpoints that take 10 s each: jobs would "
        "spend 1e+07 times as long writing checkpoints as working; give at least 10 s (the checkpoint time), or auto"
    ]


def test_job_that_never_outlives_a_failure_is_refused(base):
    # a 4-accelerator job fails every ~90 s on average but needs 1800 s without a failure (no checkpoints)
    base["failures"] = {"accelerator_mtbf_h": 0.1, "repair_s": 1}
    base["duration_s"] = 3600
    [line] = errors_of(base)
    assert line.startswith(
        "failures.accelerator_mtbf_h: a job of workloads[0] (4 accelerators, 1.8e+03 s) fails every 90 s"
    )
    assert "it would fail ~" in line


def test_frequent_but_survivable_failures_pass(base):
    base["failures"] = {"accelerator_mtbf_h": 2, "repair_s": 1, "checkpoint_interval_s": 60, "checkpoint_s": 5}
    load_scenario(base)


def test_quota_below_a_teams_jobs_is_refused(base):
    base["scheduler"] = {"quotas": {"alice": 0}}
    base["workloads"][0]["team"] = "alice"
    assert errors_of(base) == [
        "scheduler.quotas.alice: 0 accelerators, but workload 'w' has jobs of up to 4 accelerators for team alice: "
        "they could never start"
    ]


# ------------------------------------------------------------------------------------ non-finite numbers
@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        (("datacenter", "nodes", 0, "usd_per_hour"), math.inf, "datacenter.nodes[0].usd_per_hour"),
        (("datacenter", "electricity_usd_per_kwh"), math.nan, "datacenter.electricity_usd_per_kwh"),
        (
            ("workloads", 0, "synthetic", "duration_s", "mean"),
            math.inf,
            "workloads[0].synthetic.duration_s",
        ),  # "mean must be finite"
    ],
)
def test_non_finite_numbers_are_refused(base, where, value, path):
    target = base
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    lines = errors_of(base)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ")
    assert "inf" in lines[0] or "nan" in lines[0]


# ------------------------------------------------------------------------- passed check, crashed in run
def test_disconnected_custom_topology_is_refused(base, tmp_path):
    (tmp_path / "split.txt").write_text("s1 h1\ns2 h2\ns1 x1\ns2 x2\n")  # the two servers land on h1 and h2
    node = base["datacenter"]["nodes"][0]
    node.update(intra_node="nvswitch-a100", nics={"count": 1, "gbps": 100})
    base["datacenter"]["network"] = {"topology": "file", "params": {"path": str(tmp_path / "split.txt")}}
    base["workloads"] = [{"kind": "collective", "name": "c", "op": "all_reduce", "bytes": 1e6, "ranks": 8}]
    assert errors_of(base) == [
        "datacenter.network: servers n-1 cannot reach n-0: the network hosts their NICs are wired to are not "
        "connected to the rest (or the servers have no NICs)"
    ]
    (tmp_path / "split.txt").write_text("s1 h1\ns2 h2\ns1 x1\ns2 x2\ns1 s2\n")
    load_scenario(base)  # joined: fine


# ---------------------------------------------------------------------------- requests that never fit
def test_prompt_longer_than_any_kv_cache_is_refused(base):
    base["workloads"] = [inference(prompt_tokens={"dist": "constant", "value": 1e9})]
    [line] = errors_of(base)
    assert line.startswith(
        "workloads[0].traffic.prompt_tokens: the smallest request holds 1e+09 prompt + 10 output tokens, "
        "more than a replica's KV cache ("
    )
    assert line.endswith("tokens on a100-sxm-80gb): every request would be dropped")


def test_a_long_tail_that_sometimes_fits_passes(base):
    base["workloads"] = [inference(prompt_tokens={"dist": "lognormal", "mean": 500, "sigma": 1.0, "max": 1e9})]
    load_scenario(base)


def test_dropped_requests_are_said_on_the_console(base, tmp_path, capsys):
    from dcsim.cli import main

    (tmp_path / "big.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,100,10\n1,1000000000,10\n")
    base["workloads"] = [{**inference(), "traffic": {"arrival": "trace", "trace": str(tmp_path / "big.csv")}}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(base))
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 requests served (1 dropped" in out
    assert "    warning: 1 requests dropped: prompt and output longer than a replica's KV cache holds (" in out


# ------------------------------------------------------------------------------- summaries stay finite
def test_summary_json_turns_non_finite_numbers_into_null(base):
    import json

    from dcsim.run.result import Result

    summary = {"a": math.inf, "b": [1.0, -math.inf, {"c": math.nan}], "d": (2, math.nan), "e": "inf", "f": 3}
    text = Result(scenario=load_scenario(base), summary=summary).summary_json()
    assert json.loads(text) == {"a": None, "b": [1.0, None, {"c": None}], "d": [2, None], "e": "inf", "f": 3}


def test_a_run_that_fails_faster_than_it_works_stops_with_a_diagnosis(base, tmp_path, capsys, monkeypatch):
    import dcsim.scheduler.failures
    from dcsim.cli import main

    # passes check (~240 failures per job, within the limit), then simulates more failures than allowed
    monkeypatch.setattr(dcsim.scheduler.failures, "MAX_FAILURE_EVENTS", 50)
    base["workloads"][0]["synthetic"]["duration_s"] = {"dist": "constant", "value": 1e5}
    base["failures"] = {"accelerator_mtbf_h": 0.5, "repair_s": 1, "checkpoint_interval_s": 60, "checkpoint_s": 1}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(base))
    assert main(["check", str(tmp_path / "s.yaml")]) == 0
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: failures: run stopped at ")
    assert "after 50 failures with work still left" in err and len(err.splitlines()) == 1


def test_an_autoscaler_waking_every_nanosecond_is_refused(base):
    workload = inference()
    del workload["replicas"]
    workload["autoscale"] = {"min": 1, "max": 2, "target_queue": 2, "interval_s": 1e-9, "cold_start_s": 1}
    base["workloads"] = [workload]
    assert errors_of(base) == [
        "workloads[0].autoscale.interval_s: every 1e-09 s over 10 s of traffic is 1e+10 autoscaler wake-ups; "
        "dcsim handles up to ~1e+07"
    ]


def test_whole_numbers_past_64_bits_are_refused(base):
    base["workloads"] = [inference()]
    base["workloads"][0]["batching"] = {"max_batch_size": 10**400}
    assert errors_of(base) == ["workloads[0].batching.max_batch_size: must be at most 9.22e+18 in size (got ~1e+400)"]
    base["workloads"][0]["batching"] = {}
    base["seed"] = 2**70  # a seed may be any size
    load_scenario(base)
