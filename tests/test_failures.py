"""Failures, checkpoints and restarts: the work model, Young/Daly, a hand-computed case, properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcsim
from dcsim.scheduler.checkpointing import Checkpointing, young_daly_interval_s
from dcsim.scheduler.cluster import NodeGroup
from dcsim.scheduler.policies import POLICIES
from dcsim.testing import check_invariants, simulate_policy
from dcsim.testing.strategies import JobSpec, clusters, failure_schedules, job_streams


def test_young_daly():
    # sqrt(2 * 60 s * 10 h) = sqrt(2 * 60 * 36000) = 2078.46 s
    assert young_daly_interval_s(60, 36000) == pytest.approx(math.sqrt(2 * 60 * 36000))
    ckpt = Checkpointing("auto", 60, 0, accelerator_mtbf_s=8 * 36000)
    assert ckpt.interval_for(8) == pytest.approx(young_daly_interval_s(60, 36000))  # job MTBF = MTBF / gpus
    with pytest.raises(ValueError, match="must be > 0"):
        young_daly_interval_s(0, 10)


def test_work_model():
    ckpt = Checkpointing(30.0, 5.0, 10.0)
    assert ckpt.overhead_s(100, 30) == 15  # chunks 30,30,30,10: three checkpoints, none after the last
    assert ckpt.overhead_s(90, 30) == 10
    assert ckpt.progress_s(50, 30) == 45  # 30 work + 5 checkpoint + 15 work
    assert ckpt.saved_s(50, 30) == 30
    assert ckpt.progress_s(50, None) == 50 and ckpt.saved_s(50, None) == 0


def test_failure_restarts_from_last_checkpoint():
    run = simulate_policy(
        [NodeGroup("g", 1, "h100-sxm", 1)],
        [JobSpec(0, 1, 100.0)],
        failures=[(50.0, 0, 0.0)],  # repaired at once
        checkpointing=Checkpointing(30.0, 5.0, 10.0),
    )
    [job] = run.jobs
    assert job.failures == 1
    assert job.lost_s == pytest.approx(15.0)  # 45 s of work done, 30 s saved
    # restart: 10 s set-up + 70 s work + 2 checkpoints of 5 s = 90 s after the failure
    assert job.end_s == pytest.approx(140.0)
    assert check_invariants(run) == []


def test_without_checkpoints_a_failure_restarts_from_scratch():
    run = simulate_policy([NodeGroup("g", 1, "h100-sxm", 1)], [JobSpec(0, 1, 100.0)], failures=[(40.0, 0, 20.0)])
    [job] = run.jobs
    assert job.lost_s == pytest.approx(40.0)
    assert job.end_s == pytest.approx(60.0 + 100.0)  # waits for the repair (at 60 s), then the full 100 s


@pytest.mark.parametrize("policy", POLICIES.names())
@settings(max_examples=40, deadline=None)
@given(data=st.data(), preemption=st.booleans())
def test_invariants_hold_under_failures(policy, data, preemption):
    groups = data.draw(clusters())
    jobs = data.draw(job_streams(groups))
    failures = data.draw(failure_schedules(groups))
    ckpt = Checkpointing(data.draw(st.sampled_from([None, 5.0, 20.0])), 1.0, 2.0)
    run = simulate_policy(
        groups, jobs, policy, preemption=preemption, checkpoint_s=1.0, failures=failures, checkpointing=ckpt
    )
    assert check_invariants(run) == []
    assert len(run.scheduler.finished) == len(jobs)
    assert not run.cluster.down  # every failed accelerator was repaired


def test_scenario_with_mtbf_reports_goodput_and_losses():
    spec = {
        "name": "failures",
        "seed": 5,
        "datacenter": {
            "nodes": [
                {"name": "n", "count": 8, "accelerator": "h100-sxm", "accelerators_per_node": 8, "usd_per_hour": 20.0}
            ],
            "storage": {"capacity_tb": 10, "write_gbps": 100},
        },
        "workloads": [
            {
                "kind": "jobs",
                "name": "train",
                "synthetic": {
                    "count": 60,
                    "rate_per_h": 2,
                    "gpus": {"choices": [8, 16, 32]},
                    "duration_s": {"dist": "lognormal", "mean": 36000, "sigma": 0.5},
                },
            }
        ],
        "failures": {
            "accelerator_mtbf_h": 500,
            "repair_s": 3600,
            "checkpoint_interval_s": "auto",
            "checkpoint_gb": 500,
            "restart_s": 300,
        },
        "outputs": {"plots": False},
    }
    summary = dcsim.run_scenario(spec).summary
    work, dc = summary["workloads"]["train"], summary["datacenter"]
    assert work["jobs_completed"] == 60
    assert dc["accelerator_failures"] > 0 and work["failures"] > 0
    assert work["lost_accelerator_hours"] > 0
    assert 0.8 < dc["goodput"] < 1.0
    # no checkpoints: more work lost
    spec["failures"] = {"accelerator_mtbf_h": 500, "repair_s": 3600, "restart_s": 300}
    no_ckpt = dcsim.run_scenario(spec).summary
    assert no_ckpt["workloads"]["train"]["lost_accelerator_hours"] > work["lost_accelerator_hours"]
