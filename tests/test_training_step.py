"""Training step model: collective probes, the step's parts, plan validation, and runs through a scenario."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import simpy

import dcsim
from dcsim.compute import predict_many
from dcsim.errors import UserInputError
from dcsim.models import TransformerConfig, get_model
from dcsim.network import Controller, FlowSimulator, run_collective
from dcsim.parallel.comm import CommModel
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.step import TrainingSetup, check_plan, estimate_step, optimizer_seconds
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

DGX: dict[str, Any] = {
    "name": "train",
    "seed": 1,
    "datacenter": {
        "nodes": [
            {
                "name": "dgx",
                "count": 4,
                "accelerator": "a100-sxm-80gb",
                "accelerators_per_node": 8,
                "intra_node": "nvswitch-a100",
                "nics": {"count": 8, "gbps": 200},
                "usd_per_hour": 32.0,
            }
        ],
        "network": {"topology": "fat_tree", "link_gbps": 200},
    },
    "workloads": [
        {
            "kind": "training",
            "name": "gpt",
            "model": "gpt3-1.3b",
            "parallelism": {"dp": 4, "tp": 4, "pp": 2, "microbatch_size": 2},
            "global_batch_size": 64,
            "seq_len": 2048,
            "steps": 100,
        }
    ],
    "outputs": {"plots": False},
}
SMALL = TransformerConfig("small", 8, 1024, 16, 4096, 32000, 1024)


def _fabric() -> Any:
    return build_fabric(load_scenario(copy.deepcopy(DGX)).datacenter, 1)


def test_lock_step_probes_equal_the_full_flow_simulation() -> None:
    """CommModel simulates one round of each phase and multiplies: exact for one group on an idle network;
    concurrent groups run their rounds in lock step, which the full simulation lets drift a little."""
    fabric = _fabric()
    accs = fabric.accelerators() if callable(fabric.accelerators) else fabric.accelerators
    comm = CommModel(fabric.graph, "ecmp", 0)
    cases = [
        ("all_reduce", [accs[:8]], 1e8),
        ("all_reduce", [accs[:16]], 1e8),  # NCCL ring channels on 8 rails over two nodes
        ("all_reduce", [accs[i::8][:4] for i in range(8)], 1e8),  # 8 concurrent rings across 4 nodes
        ("all_gather", [accs[i::8][:4] for i in range(8)], 1e7),
        ("all_to_all", [accs[:32]], 1e8),
        ("send_recv", [(accs[0], accs[8]), (accs[1], accs[9])], 1e7),
    ]
    for op, groups, nbytes in cases:
        env = simpy.Environment()
        flows = FlowSimulator(env, Controller(fabric.graph, "ecmp", 0))
        procs = [env.process(run_collective(flows, op, list(g), nbytes)) for g in groups]
        env.run()
        full = max(p.value.time_s for p in procs)
        assert comm.collective_s(op, groups, nbytes) == pytest.approx(full, rel=1e-9 if len(groups) == 1 else 0.01), op


def _estimate(plan: ParallelPlan, setup: TrainingSetup, fidelity: str = "fast") -> Any:
    fabric = _fabric()
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    layout = RankLayout(plan, tuple(fabric.ranks(plan.world_size)))
    return estimate_step(setup, plan, layout, CommModel(fabric.graph, "ecmp", 0), server_of, fidelity)


def test_one_accelerator_step_is_its_microbatches_plus_the_optimizer() -> None:
    setup = TrainingSetup(SMALL, "a100-sxm-80gb", 8, 1024, "bf16")
    step = _estimate(ParallelPlan(microbatch_size=2), setup)
    ops = SMALL.ops(2, 1024, 1, "bf16")
    fwd_bwd = [op for _layer, op in ops.steps("fwd+bwd")]
    counts = [layer.count for layer, _op in ops.steps("fwd+bwd")]
    per_microbatch = float(sum(t * c for t, c in zip(predict_many(fwd_bwd, "a100-sxm-80gb"), counts, strict=True)))
    assert step.microbatches == 4
    assert step.compute_s == pytest.approx(4 * per_microbatch)
    assert step.optimizer_s == pytest.approx(optimizer_seconds(setup, SMALL.param_count(), "a100-sxm-80gb"))
    assert step.step_time_s == pytest.approx(step.compute_s + step.optimizer_s)
    assert step.tp_exposed_s == step.pp_bubble_s == step.dp_exposed_s == 0.0


def test_parts_add_up_and_each_parallelism_costs_what_it_should() -> None:
    setup = TrainingSetup(SMALL, "a100-sxm-80gb", 64, 1024, "bf16")
    dp = _estimate(ParallelPlan(dp=32), setup)
    tp = _estimate(ParallelPlan(dp=8, tp=4), setup)
    pp = _estimate(ParallelPlan(dp=8, pp=4), setup)
    for step in (dp, tp, pp):
        assert sum(step.breakdown().values()) == pytest.approx(step.step_time_s)
    assert dp.tp_exposed_s == 0 and dp.pp_bubble_s == 0 and "dp_stage0_s" in dp.comm_s
    assert tp.tp_exposed_s > 0 and tp.comm_s["tp_collective_s"] > 0
    assert pp.pp_bubble_s > 0 and pp.comm_s["pp_send_s"] > 0
    # 1F1B with 4 stages and 8 microbatches: the busiest (last: the head) stage idles while the 3 others
    # fill and drain, at most (p - 1)/m of its own compute
    assert 0.15 < pp.pp_bubble_s / pp.compute_s <= 3 / 8
    overlapped = _estimate(ParallelPlan(dp=32, overlap_dp=True), setup)
    exposed = _estimate(ParallelPlan(dp=32, overlap_dp=False), setup)
    assert exposed.dp_exposed_s == pytest.approx(exposed.comm_s["dp_stage0_s"])
    assert overlapped.dp_exposed_s < exposed.dp_exposed_s


@pytest.mark.parametrize(
    "plan",
    [
        ParallelPlan(dp=4, tp=2, pp=4, microbatch_size=1),
        ParallelPlan(dp=2, tp=4, pp=4, microbatch_size=2, schedule="interleaved", virtual_stages=2),
        ParallelPlan(dp=8, tp=1, pp=4, microbatch_size=1, recompute="full"),
    ],
)
def test_fast_and_detailed_levels_agree_on_a_step(plan: ParallelPlan) -> None:
    setup = TrainingSetup(SMALL, "a100-sxm-80gb", 64, 1024, "bf16")
    fast = _estimate(plan, setup, "fast")
    detailed = _estimate(plan, setup, "detailed")
    assert fast.step_time_s == pytest.approx(detailed.step_time_s, rel=0.03)


def test_recompute_and_zero3_cost_time() -> None:
    setup = TrainingSetup(SMALL, "a100-sxm-80gb", 64, 1024, "bf16")
    none = _estimate(ParallelPlan(dp=32), setup)
    selective = _estimate(ParallelPlan(dp=32, recompute="selective"), setup)
    full = _estimate(ParallelPlan(dp=32, recompute="full"), setup)
    assert none.compute_s < selective.compute_s < full.compute_s
    zero3 = _estimate(ParallelPlan(dp=32, zero_stage=3), setup)
    assert "zero3_stage0_s" in zero3.comm_s and zero3.optimizer_s < none.optimizer_s / 16


def test_invalid_plans_name_the_field() -> None:
    gpt3 = get_model("gpt3-175b")
    setup = TrainingSetup(gpt3, "a100-sxm-80gb", 1536, 2048)
    assert ("parallelism.tp", "must divide heads (96)") in check_plan(setup, ParallelPlan(dp=16, tp=64))
    assert check_plan(setup, ParallelPlan(dp=8, pp=7)) == []  # 96 layers on 7 stages: split unevenly
    assert ("parallelism.pp", "pp (128) must not exceed the model's layers (96)") in check_plan(
        setup, ParallelPlan(dp=8, pp=128)
    )
    assert any(f == "global_batch_size" for f, _ in check_plan(setup, ParallelPlan(dp=7)))
    short = check_plan(TrainingSetup(gpt3, "a100-sxm-80gb", 16, 2048), ParallelPlan(dp=2, pp=16, microbatch_size=2))
    assert short == [("parallelism.microbatch_size", "gives 4 microbatches, fewer than the pipeline's 16 stages")]


def _problems(scenario: dict[str, Any]) -> list[str]:
    with pytest.raises(UserInputError) as info:
        load_scenario(scenario)
    return [str(p) for p in info.value.problems]


def test_scenario_errors_are_one_line_per_field() -> None:
    bad = copy.deepcopy(DGX)
    bad["workloads"][0]["model"] = "gpt3-175b"
    bad["workloads"][0]["parallelism"] = {"dp": 1, "tp": 5, "pp": 6}
    problems = _problems(bad)
    assert "workloads[0].parallelism.tp: must divide heads (96)" in problems
    assert (
        "workloads[0].parallelism: dp * tp * pp = 30 accelerators, but the a100-sxm-80gb nodes have 32" not in problems
    )
    bad["workloads"][0]["parallelism"] = {"dp": 8, "tp": 8, "pp": 1}
    assert any(p.startswith("workloads[0].parallelism: dp * tp * pp = 64") for p in _problems(bad))
    bad["workloads"][0]["model"] = "gpt-4"
    assert any(p.startswith("workloads[0].model: unknown model 'gpt-4'") for p in _problems(bad))
    both = copy.deepcopy(DGX)
    both["workloads"][0]["tokens"] = 1e9
    assert _problems(both) == ["workloads[0]: give exactly one of tokens and steps"]


def test_training_runs_through_the_scheduler_and_reports_the_contract() -> None:
    summary = dcsim.run_scenario(copy.deepcopy(DGX)).summary
    w = summary["workloads"]["gpt"]
    for key in (
        "step_time_s",
        "tokens_per_s",
        "tflops_per_accelerator",
        "mfu",
        "time_to_train_s",
        "memory_per_accelerator_gb",
        "fits_in_memory",
        "cost_usd",
        "energy_kwh",
    ):
        assert key in w
    assert w["status"] == "completed" and w["fits_in_memory"]
    assert w["time_to_train_s"] == pytest.approx(100 * w["step_time_s"])
    assert w["tokens_per_s"] == pytest.approx(64 * 2048 / w["step_time_s"])
    assert 0.05 < w["mfu"] < 0.8
    assert w["cost_usd"] == pytest.approx(32 * w["time_to_train_s"] * 32.0 / 8 / 3600)  # 32 GPUs at $4/GPU-h
    assert summary["datacenter"]["cost_usd"]["compute"] == pytest.approx(w["cost_usd"])


def test_a_plan_that_does_not_fit_is_reported_not_run() -> None:
    big = copy.deepcopy(DGX)
    big["workloads"][0].update(model="gpt3-175b", parallelism={"dp": 1, "tp": 8, "pp": 4}, global_batch_size=8)
    w = dcsim.run_scenario(big).summary["workloads"]["gpt"]
    assert w["status"] == "does_not_fit" and w["fits_in_memory"] is False
    assert w["memory_breakdown_gb"]["total"] > 80 and w["cost_usd"] == 0


def test_topology_aware_placement_trains_faster_on_an_oversubscribed_leaf_spine() -> None:
    """Issue #8: the placement decides which links a job's collectives cross; the step time shows it."""
    scenario = copy.deepcopy(DGX)
    scenario["datacenter"]["nodes"][0].update(count=8, nodes_per_rack=4, nics={"count": 1, "gbps": 100})
    scenario["datacenter"]["network"] = {
        "topology": "leaf_spine",
        "params": {"leaves": 2, "spines": 2, "hosts_per_leaf": 4, "oversubscription": 4},
        "link_gbps": 100,
    }
    scenario["workloads"][0]["parallelism"] = {"dp": 4, "tp": 8, "pp": 1}
    steps = {}
    for placement in ("topology_aware", "spread"):
        scenario["scheduler"] = {"placement": placement}
        steps[placement] = dcsim.run_scenario(copy.deepcopy(scenario)).summary["workloads"]["gpt"]["step_time_s"]
    assert steps["topology_aware"] < 0.8 * steps["spread"]


def test_training_checkpoints_are_sized_from_the_model_and_failures_cost_time() -> None:
    """Issue #8: checkpoint cost from model size and storage bandwidth, Young/Daly interval, restarts."""
    scenario = copy.deepcopy(DGX)
    scenario["datacenter"]["storage"] = {"capacity_tb": 10, "usd_per_tb_month": 20, "write_gbps": 80}
    scenario["workloads"][0]["steps"] = 20000
    scenario["failures"] = {
        "accelerator_mtbf_h": 50,
        "repair_s": 600,
        "checkpoint_interval_s": "auto",
        "restart_s": 120,
    }
    w = dcsim.run_scenario(scenario).summary["workloads"]["gpt"]
    params = get_model("gpt3-1.3b").param_count()
    size_bytes = params * 12  # fp32 master weights and two AdamW moments (mixed precision)
    assert w["checkpoint"]["size_gb"] == pytest.approx(size_bytes / 1e9)
    assert w["checkpoint"]["cost_s"] == pytest.approx(size_bytes / (80e9 / 8))
    mtbf_s = 50 * 3600 / 32
    assert w["checkpoint"]["interval_s"] == pytest.approx((2 * w["checkpoint"]["cost_s"] * mtbf_s) ** 0.5)
    assert w["status"] == "completed" and w["failures"] > 0
    assert w["time_to_train_s"] > w["compute_time_to_train_s"]  # checkpoints, lost work and restarts


def test_a_checkpoint_interval_without_a_size_is_refused_for_trace_jobs(base: dict[str, Any]) -> None:
    base["failures"] = {"accelerator_mtbf_h": 100, "repair_s": 60, "checkpoint_interval_s": 600}
    assert _problems(base) == [
        "failures.checkpoint_interval_s: needs the cost of a checkpoint: checkpoint_s or checkpoint_gb "
        "(only training workloads size their own, from their model)"
    ]


def test_distillation_trains_the_student_with_the_teachers_forward_and_costs_as_compression() -> None:
    scenario = copy.deepcopy(DGX)
    scenario["workloads"][0].update(
        model="bert-base", parallelism={"dp": 32, "microbatch_size": 8}, global_batch_size=256, seq_len=512
    )
    student = {
        "family": "encoder",
        "layers": 6,
        "hidden": 768,
        "heads": 12,
        "ffn_hidden": 3072,
        "vocab": 30522,
        "seq_len": 512,
    }
    plain = copy.deepcopy(scenario)
    plain["workloads"][0]["model"] = student
    alone = dcsim.run_scenario(plain).summary["workloads"]["gpt"]
    scenario["workloads"][0]["compression"] = {"distillation": {"student": student, "tokens": 1e9}}
    summary = dcsim.run_scenario(scenario).summary
    w = summary["workloads"]["gpt"]
    teacher = get_model("bert-base")
    assert w["compression"]["teacher_params"] == teacher.param_count()
    assert w["compression"]["trained_params"] < teacher.param_count()
    # the teacher's forward on every microbatch: slower than training the student alone, and its weights
    # (16-bit, not sharded by pure data parallelism) sit beside the student's
    assert w["step_breakdown_s"]["compute_s"] > alone["step_breakdown_s"]["compute_s"]
    extra_gb = w["memory_breakdown_gb"]["weights"] - alone["memory_breakdown_gb"]["weights"]
    assert extra_gb == pytest.approx(teacher.param_count() * 2 / 1e9)
    # producing the student is COST's compression term, not compute
    cost = summary["datacenter"]["cost_usd"]
    assert cost["compression"] == pytest.approx(w["cost_usd"]) and w["compression"]["production_usd"] == w["cost_usd"]
    assert cost["compute"] == pytest.approx(0.0, abs=1e-6)  # the run is the only work on the cluster


def test_training_refuses_recipes_it_does_not_model() -> None:
    scenario = copy.deepcopy(DGX)
    scenario["workloads"][0]["compression"] = {"quantization": {"weights": "int4", "method": "awq"}}
    assert _problems(scenario)[0].startswith("workloads[0].compression: quantization: quantization-aware training")
