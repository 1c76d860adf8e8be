"""Every file in scenarios/ runs, and its summary is checked against properties stated here.

A new scenario needs an entry in EXPECTATIONS (the test fails otherwise), so none ships unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dcsim
from dcsim.testing import check_job_invariants

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def quickstart(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["research"]
    assert w["jobs_completed"] == w["jobs_submitted"] == 500
    dc = summary["datacenter"]
    # offered load: 7 jobs/h x E[gpus] 3.6 x ~1 h on 32 accelerators ~ 0.8; FIFO head-of-line blocking with
    # 16-accelerator gangs wastes some capacity, so realized utilization is lower but substantial
    assert 0.5 < dc["accelerator_utilization"] < 0.95
    assert w["wait_s"]["p50"] <= w["wait_s"]["p90"] <= w["wait_s"]["p99"]
    assert dc["carbon_kg"] == pytest.approx(dc["energy_kwh"] * 0.4)
    hours = summary["simulated_time_s"] / 3600
    assert dc["cost_usd"]["compute"] == pytest.approx(4 * 32.0 * hours)


def trace_replay(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["lab"]
    assert w["jobs_completed"] == 20
    # 20 jobs of the sample trace: total accelerator-hours = sum(gpus x duration) / 3600
    assert w["accelerator_hours"] == pytest.approx(668400 / 3600)
    assert summary["datacenter"]["price_basis"]["dgx-h100"].startswith("capex_usd amortized")


def nccl_allreduce_dgx_a100(summary: dict[str, Any]) -> None:
    one = summary["workloads"]["allreduce-1node"]
    # nccl-tests maintainers: ~230 GB/s all-reduce busbw on 8 A100 over NVSwitch (= 1,840 Gb/s); within 10%
    assert one["busbw_gbps"] == pytest.approx(230 * 8, rel=0.10)
    assert one["busbw_gbps"] == pytest.approx(one["algbw_gbps"] * 2 * 7 / 8)
    four = summary["workloads"]["allreduce-4nodes"]
    # across nodes the NICs (8 x 200 Gb/s per node) and the fabric, not NVSwitch, bound the bandwidth
    assert four["busbw_gbps"] < one["busbw_gbps"]
    a2a = summary["workloads"]["alltoall-4nodes"]
    assert a2a["busbw_gbps"] == pytest.approx(a2a["algbw_gbps"] * 31 / 32)


def leaf_spine_oversubscribed(summary: dict[str, Any]) -> None:
    inside = summary["workloads"]["in-rack"]
    across = summary["workloads"]["cross-rack"]
    # in-rack: the ring runs at the 100 Gb/s NIC speed; across racks 8 ring flows per direction share a
    # leaf's 400 Gb/s of uplinks (16 x 100 Gb/s / 4), 50 Gb/s each: half the bandwidth, twice the time
    assert inside["busbw_gbps"] == pytest.approx(100, rel=0.01)
    assert across["busbw_gbps"] == pytest.approx(50, rel=0.01)
    assert across["time_s"] == pytest.approx(2 * inside["time_s"], rel=0.02)


def research_cluster(summary: dict[str, Any]) -> None:
    work = summary["workloads"]["research"]
    assert work["jobs_completed"] == 600
    # sample trace: 600 jobs of the offered load ~0.89 on 64 GPUs; every accelerator-second is a job's
    assert work["accelerator_hours"] == pytest.approx(
        summary["datacenter"]["accelerator_utilization"] * 64 * summary["simulated_time_s"] / 3600
    )
    assert summary["datacenter"]["goodput"] == pytest.approx(1.0)


def research_cluster_failures(summary: dict[str, Any]) -> None:
    work, dc = summary["workloads"]["research"], summary["datacenter"]
    assert work["jobs_completed"] == 600
    assert dc["accelerator_failures"] > 0 and work["failures"] > 0
    assert 0.9 < dc["goodput"] < 1.0 and work["lost_accelerator_hours"] > 0


EXPECTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "quickstart.yaml": quickstart,
    "trace_replay.yaml": trace_replay,
    "nccl_allreduce_dgx_a100.yaml": nccl_allreduce_dgx_a100,
    "leaf_spine_oversubscribed.yaml": leaf_spine_oversubscribed,
    "research_cluster.yaml": research_cluster,
    "research_cluster_failures.yaml": research_cluster_failures,
}


def scenario_files() -> list[Path]:
    return sorted(SCENARIOS.glob("*.yaml"))


def test_every_scenario_has_expectations():
    assert {p.name for p in scenario_files()} == set(EXPECTATIONS)


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.name)
def test_scenario_runs(path, tmp_path):
    result = dcsim.run_scenario(path)
    summary = json.loads(result.summary_json())
    assert set(summary["workloads"]) == {w.name for w in result.scenario.workloads}
    dc = summary["datacenter"]
    assert dc["energy_kwh"] > 0 and dc["cost_usd"]["total"] >= 0
    assert 0 <= dc["accelerator_utilization"] <= 1
    if "jobs" in result.tables and result.scenario.failures is None and not result.scenario.scheduler.preemption:
        assert check_job_invariants(result.jobs, dc["accelerators"]) == []
    EXPECTATIONS[path.name](summary)
    written = result.write(tmp_path / "out", plots=True)
    assert all(p.stat().st_size > 0 for p in written)
