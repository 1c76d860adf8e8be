"""Classic scheduling results reproduced through `dcsim.run_scenario` (fixed seeds, so deterministic)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import dcsim
from dcsim.errors import UserInputError

BASE: dict[str, Any] = {
    "name": "classic",
    "seed": 11,
    "datacenter": {
        "nodes": [
            {"name": "n", "count": 4, "accelerator": "a100-sxm-80gb", "accelerators_per_node": 8, "usd_per_hour": 10.0}
        ]
    },
    "workloads": [{"kind": "jobs", "name": "w", "synthetic": {}}],
    "outputs": {"plots": False},
}


def run(policy: str, synthetic: dict[str, Any], seed: int = 11, **scheduler: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    spec["seed"] = seed
    spec["workloads"][0]["synthetic"] = synthetic
    spec["scheduler"] = {"policy": policy, **scheduler}
    return dcsim.run_scenario(spec).summary


def test_sjf_lowers_mean_jct_against_fifo():
    stream = {
        "count": 3000,
        "rate_per_h": 17,
        "gpus": {"choices": [1, 2, 4]},
        "duration_s": {"dist": "lognormal", "mean": 2400, "sigma": 1.2},
    }
    # offered load 17/h x E[gpus] 2.33 x 2400 s / 32 accelerators ~ 0.83
    for seed in (1, 2, 3):
        fifo = run("fifo", stream, seed)["workloads"]["w"]["jct_s"]
        sjf = run("sjf", stream, seed)["workloads"]["w"]["jct_s"]
        assert sjf["mean"] < 0.92 * fifo["mean"]
        assert sjf["p50"] < 0.85 * fifo["p50"]


def test_backfill_raises_utilization_over_fifo_on_mixed_sizes():
    stream = {
        "count": 1500,
        "rate_per_h": 40,
        "gpus": {"choices": [1, 2, 8, 32], "weights": [50, 25, 15, 10]},
        "duration_s": {"dist": "lognormal", "mean": 1800, "sigma": 1.0},
    }
    for seed in (1, 2, 3):
        fifo = run("fifo", stream, seed)
        backfill = run("backfill", stream, seed)
        assert backfill["datacenter"]["accelerator_utilization"] > fifo["datacenter"]["accelerator_utilization"] + 0.05
        assert backfill["workloads"]["w"]["makespan_s"] < fifo["workloads"]["w"]["makespan_s"]


def test_las_beats_fifo_on_heavy_tailed_durations():
    # Pareto(alpha 1.3): infinite variance; offered load ~0.9. Per seed LAS wins on mean and median; over
    # the seeds the mean JCT roughly halves (the seeds with a monster job at the head of FIFO dominate).
    stream = {
        "count": 3000,
        "rate_per_h": 17,
        "gpus": {"choices": [1, 2, 4]},
        "duration_s": {"dist": "pareto", "alpha": 1.3, "scale": 600},
    }
    fifo_total = las_total = 0.0
    for seed in (1, 2, 3):
        fifo = run("fifo", stream, seed)["workloads"]["w"]
        las = run("las", stream, seed, preemption=True, checkpoint_s=30, restart_s=60)["workloads"]["w"]
        assert las["jct_s"]["mean"] < fifo["jct_s"]["mean"]
        assert las["jct_s"]["p50"] < 0.9 * fifo["jct_s"]["p50"]
        assert las["preemptions"] > 0
        fifo_total += fifo["jct_s"]["mean"]
        las_total += las["jct_s"]["mean"]
    assert las_total < 0.7 * fifo_total


def test_priority_preemption_serves_high_priority_first(tmp_path):
    (tmp_path / "t.csv").write_text("job_id,submit_s,gpus,duration_s,priority\nlow,0,32,1000,0\nhigh,10,16,100,5\n")
    spec = copy.deepcopy(BASE)
    spec["workloads"][0] = {"kind": "jobs", "name": "w", "trace": str(tmp_path / "t.csv")}
    spec["scheduler"] = {"policy": "priority", "preemption": True, "checkpoint_s": 5, "restart_s": 20}
    jobs = dcsim.run_scenario(spec).jobs.set_index("job_id")
    assert jobs.loc["high", "start_s"] == 10 and jobs.loc["high", "end_s"] == 110
    # the low job ran 10 s, was preempted, resumed at 110 after 25 s of checkpoint + restart set-up
    assert jobs.loc["low", "preemptions"] == 1
    assert jobs.loc["low", "end_s"] == 110 + 25 + 990


def test_user_policy_from_yaml_by_module_and_class(tmp_path, monkeypatch):
    (tmp_path / "mypolicies.py").write_text(
        "from dcsim.scheduler import SchedulingPolicy\n\n"
        "class LargestFirst(SchedulingPolicy):\n"
        "    blocking = False\n\n"
        "    def key(self, job):\n"
        "        return (-job.gpus, job.submit_s, job.seq)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "t.csv").write_text("job_id,submit_s,gpus,duration_s\nblock,0,32,100\nsmall,1,1,10\nbig,2,16,10\n")
    spec = copy.deepcopy(BASE)
    spec["workloads"][0] = {"kind": "jobs", "name": "w", "trace": str(tmp_path / "t.csv")}
    spec["scheduler"] = {"policy": "mypolicies:LargestFirst"}
    jobs = dcsim.run_scenario(spec).jobs.set_index("job_id")
    assert jobs.loc["big", "start_s"] == 100 and jobs.loc["small", "start_s"] == 100  # both fit after "block"
    spec["scheduler"] = {"policy": "mypolicies:Missing"}
    with pytest.raises(UserInputError, match="'mypolicies:Missing' is not a SchedulingPolicy subclass"):
        dcsim.run_scenario(spec)


def test_quotas_labels_and_taints_from_yaml():
    spec = copy.deepcopy(BASE)
    spec["datacenter"]["nodes"] = [
        {
            "name": "ondemand",
            "count": 2,
            "accelerator": "a100-sxm-80gb",
            "accelerators_per_node": 8,
            "usd_per_hour": 10.0,
            "labels": {"tier": "prod"},
        },
        {
            "name": "spot",
            "count": 2,
            "accelerator": "a100-sxm-80gb",
            "accelerators_per_node": 8,
            "usd_per_hour": 4.0,
            "labels": {"tier": "batch"},
            "taints": ["preemptible"],
        },
    ]
    stream = {
        "count": 200,
        "rate_per_h": 30,
        "gpus": {"choices": [1, 2, 4, 8]},
        "duration_s": {"dist": "exponential", "mean": 1800},
    }
    spec["workloads"] = [
        {"kind": "jobs", "name": "prod", "team": "prod", "node_selector": {"tier": "prod"}, "synthetic": stream},
        {"kind": "jobs", "name": "batch", "team": "batch", "tolerations": ["preemptible"], "synthetic": stream},
    ]
    spec["scheduler"] = {"policy": "sjf", "quotas": {"batch": 12}}
    jobs = dcsim.run_scenario(spec).jobs
    prod = jobs[jobs["workload"] == "prod"]
    assert set(";".join(prod["nodes"]).split(";")) <= {"ondemand-0", "ondemand-1"}
    batch = jobs[jobs["workload"] == "batch"]
    assert {n.split("-")[0] for n in ";".join(batch["nodes"]).split(";")} == {"ondemand", "spot"}
    # the batch team never holds more than its quota of 12 accelerators
    events = sorted(
        [(t, g) for t, g in zip(batch["start_s"], batch["gpus"], strict=True)]
        + [(t, -g) for t, g in zip(batch["end_s"], batch["gpus"], strict=True)],
        key=lambda e: (e[0], e[1]),
    )
    held = peak = 0
    for _, delta in events:
        held += delta
        peak = max(peak, held)
    assert peak <= 12 and peak >= 8


def test_selector_matching_no_node_is_an_input_error():
    spec = copy.deepcopy(BASE)
    spec["workloads"][0] = {
        "kind": "jobs",
        "name": "w",
        "node_selector": {"zone": "mars"},
        "synthetic": {"count": 5, "rate_per_h": 1, "duration_s": 60},
    }
    with pytest.raises(UserInputError, match=r"workloads\[0\].node_selector: no node type matches"):
        dcsim.load_scenario(spec)
