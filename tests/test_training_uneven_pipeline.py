"""Pipelines whose stages do not divide the layers evenly: explicit splits, automatic balance, virtual stages."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcsim
from dcsim.errors import UserInputError
from dcsim.models import TransformerConfig, get_model
from dcsim.parallel.comm import CommModel
from dcsim.parallel.evaluate import evaluate_plan
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.memory import training_memory
from dcsim.parallel.pipeline import analytic_pipeline, simulate_pipeline
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.stages import (
    balanced_split,
    chunk_layers,
    device_layers,
    even_split,
    split_problems,
    spread_over_chunks,
)
from dcsim.parallel.step import TrainingSetup, check_plan, estimate_step
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

H100: dict[str, Any] = {
    "name": "uneven",
    "seed": 3,
    "datacenter": {
        "nodes": [
            {
                "name": "dgx-h100",
                "count": 16,
                "accelerator": "h100-sxm",
                "accelerators_per_node": 8,
                "intra_node": "nvswitch-h100",
                "nics": {"count": 8, "gbps": 400},
                "usd_per_hour": 80.0,
            }
        ],
        "network": {"topology": "leaf_spine", "link_gbps": 400},
    },
    "workloads": [
        {
            "kind": "training",
            "name": "llama3-405b",
            "model": "llama3-405b",
            "parallelism": {
                "tp": 8,
                "pp": 16,
                "microbatch_size": 1,
                "recompute": "full",
                "sequence_parallel": True,
            },
            "global_batch_size": 16,
            "seq_len": 2048,
            "steps": 10,
            "fidelity": "fast",
        }
    ],
    "outputs": {"plots": False},
}
SMALL = TransformerConfig("small-30", 30, 1024, 16, 4096, 32000, 1024)


def _max_device_s(split: tuple[int, ...], pp: int, layer_s: float, first_s: float, last_s: float) -> float:
    per_device = [n * layer_s for n in device_layers(split, pp)]
    per_device[0] += first_s
    per_device[-1] += last_s
    return max(per_device)


@pytest.fixture(scope="module")
def fabric() -> Any:
    return build_fabric(load_scenario(copy.deepcopy(H100)).datacenter, 3)


def _step(fabric: Any, setup: TrainingSetup, plan: ParallelPlan, fidelity: str = "fast") -> Any:
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    layout = RankLayout(plan, tuple(fabric.ranks(plan.world_size)))
    return estimate_step(setup, plan, layout, CommModel(fabric.graph, "ecmp", 0), server_of, fidelity)


def test_llama3_405b_trains_on_16_stages_through_the_scenario() -> None:
    """126 layers do not divide over 16 stages: the default (auto) balances them, and the summary says how."""
    summary = dcsim.run_scenario(copy.deepcopy(H100)).summary["workloads"]["llama3-405b"]
    assert summary["status"] == "completed" and summary["fits_in_memory"]
    split = summary["plan"]["layers_per_stage"]
    assert len(split) == 16 and sum(split) == 126 and max(split) - min(split) <= 2
    assert summary["step_time_s"] > 0 and 0.05 < summary["mfu"] < 0.8


def test_llama3_405b_on_16_stages_through_the_api_is_balanced_like_meta_did(fabric: Any) -> None:
    """Dubey et al. 2024, Section 3.3.2: one layer fewer on the first and the last stage (embedding; head and
    loss). The balancer finds a split with the same slowest stage, never worse than the naive one."""
    setup = TrainingSetup(get_model("llama3-405b"), "h100-sxm", 16, 2048, "bf16")
    plan = ParallelPlan(tp=8, pp=16, recompute="full", sequence_parallel=True)
    assert check_plan(setup, plan) == []
    auto = _step(fabric, setup, plan)
    assert sum(auto.layers_per_chunk) == 126 and max(auto.layers_per_chunk) == 8
    assert auto.layers_per_chunk[-1] <= 7  # the head and loss stage is lightened
    meta = _step(fabric, setup, replace(plan, layers_per_stage=(7, *[8] * 14, 7)))
    naive = _step(fabric, setup, replace(plan, layers_per_stage=even_split(126, 16)))
    backwards = _step(fabric, setup, replace(plan, layers_per_stage=even_split(126, 16)[::-1]))
    assert auto.step_time_s <= min(meta.step_time_s, naive.step_time_s, backwards.step_time_s) * (1 + 1e-12)
    assert auto.step_time_s < backwards.step_time_s  # 8 layers plus the head on the last stage is slower
    assert sum(auto.breakdown().values()) == pytest.approx(auto.step_time_s)


def test_an_explicit_split_is_honoured_in_time_and_memory(fabric: Any) -> None:
    setup = TrainingSetup(SMALL, "h100-sxm", 64, 1024, "bf16")
    split = (4, 12, 8, 6)
    plan = ParallelPlan(dp=2, pp=4, layers_per_stage=split)
    step = _step(fabric, setup, plan)
    assert step.layers_per_chunk == split
    memory = training_memory(SMALL, plan, seq_len=1024, global_batch_size=64)
    assert memory.stage == 1  # 12 layers x 3 microbatches in flight beat stage 0's 4 x 4
    per_stage = [training_memory(SMALL, plan, seq_len=1024, global_batch_size=64, stage=i) for i in range(4)]
    assert per_stage[1].weights_bytes == pytest.approx(1.5 * per_stage[2].weights_bytes, rel=1e-9)  # 12 vs 8 layers
    assert memory.total_bytes == max(m.total_bytes for m in per_stage)
    ev = evaluate_plan(
        setup,
        plan,
        RankLayout(plan, tuple(fabric.ranks(8))),
        CommModel(fabric.graph, "ecmp", 0),
        {a: s for s, accs in fabric.servers.items() for a in accs},
    )
    assert ev.memory == memory and ev.step.layers_per_chunk == split


def test_step_time_grows_with_the_slowest_stage(fabric: Any) -> None:
    setup = TrainingSetup(SMALL, "h100-sxm", 64, 1024, "bf16")
    splits = [(8, 8, 7, 7), (9, 8, 7, 6), (10, 8, 7, 5), (12, 7, 6, 5), (15, 5, 5, 5)]
    times = [_step(fabric, setup, ParallelPlan(dp=2, pp=4, layers_per_stage=s)).step_time_s for s in splits]
    assert times == sorted(times) and times[0] < times[-1]


@settings(max_examples=60, deadline=None)
@given(
    pp=st.integers(2, 8),
    m=st.integers(1, 4),
    times=st.lists(st.floats(0.1, 3.0), min_size=8, max_size=8),
    slow=st.integers(0, 7),
    more=st.floats(0.01, 2.0),
)
def test_the_pipeline_span_is_monotone_in_the_slowest_stage(
    pp: int, m: int, times: list[float], slow: int, more: float
) -> None:
    """Both levels: making the slowest stage slower never shortens the step, and the span is at least the
    slowest stage's own work."""
    fwd = times[:pp]
    bwd = [2 * t for t in fwd]
    d = max(range(pp), key=lambda i: fwd[i]) if slow >= pp else slow
    slower = list(fwd)
    slower[d] += more
    slower_b = [2 * t for t in slower]
    for run in (
        lambda f, b: simulate_pipeline(f, b, m * pp, "1f1b", pp),
        lambda f, b: analytic_pipeline(f, b, m * pp, pp),
    ):
        base, after = run(fwd, bwd).makespan_s, run(slower, slower_b).makespan_s
        assert after >= base - 1e-9
        assert base >= m * pp * 3 * max(fwd) - 1e-9


@settings(max_examples=150, deadline=None)
@given(
    layers=st.integers(2, 130),
    pp=st.integers(1, 16),
    v=st.integers(1, 3),
    layer_s=st.floats(0.01, 1.0),
    first=st.floats(0.0, 3.0),
    last=st.floats(0.0, 3.0),
)
def test_balanced_split_is_never_worse_than_the_naive_one(
    layers: int, pp: int, v: int, layer_s: float, first: float, last: float
) -> None:
    if pp * v > layers:
        return
    split = balanced_split(layers, pp, v, layer_s, first * layer_s, last * layer_s)
    assert len(split) == pp * v and sum(split) == layers and min(split) >= 1
    best = _max_device_s(split, pp, layer_s, first * layer_s, last * layer_s)
    for naive in (even_split(layers, pp * v), even_split(layers, pp * v)[::-1]):
        assert best <= _max_device_s(naive, pp, layer_s, first * layer_s, last * layer_s) * (1 + 1e-9)
    # no single layer moved between two devices lowers the slowest device's time
    counts = device_layers(split, pp)
    for src in range(pp):
        for dst in range(pp):
            if src != dst and counts[src] > v:
                moved = list(counts)
                moved[src] -= 1
                moved[dst] += 1
                worse = _max_device_s(spread_over_chunks(moved, pp, v), pp, layer_s, first * layer_s, last * layer_s)
                assert worse >= best * (1 - 1e-9)


def test_auto_splits_evenly_where_the_stages_divide_the_layers() -> None:
    """Megatron-LM's default: an even split whenever pp * v divides the layers (existing plans are unchanged);
    ``balanced`` balances anyway, ``auto`` only where it must."""
    assert chunk_layers(ParallelPlan(pp=4), 32, (1.0, 0.1, 3.0)) == (8, 8, 8, 8)
    balanced = chunk_layers(ParallelPlan(pp=4, layers_per_stage="balanced"), 32, (1.0, 0.1, 3.0))
    assert balanced == (8, 9, 9, 6)  # the slowest device at 9 layer-times: 8 + 0.1, 9, 9, 6 + 3
    # without predicted times the embedding and the loss count as a layer each (Megatron's accounting)
    assert chunk_layers(ParallelPlan(pp=16), 126) == (7, *[8] * 14, 7)


def test_virtual_stages_take_uneven_splits(fabric: Any) -> None:
    setup = TrainingSetup(SMALL, "h100-sxm", 64, 1024, "bf16")
    plan = ParallelPlan(dp=2, pp=4, schedule="interleaved", virtual_stages=2, microbatch_size=2)
    assert check_plan(setup, plan) == []  # 30 layers on 8 chunks
    fast = _step(fabric, setup, plan, "fast")
    detailed = _step(fabric, setup, plan, "detailed")
    assert sum(fast.layers_per_chunk) == 30 and len(fast.layers_per_chunk) == 8 and min(fast.layers_per_chunk) >= 3
    assert fast.step_time_s == pytest.approx(detailed.step_time_s, rel=0.04)
    per_device = _step(fabric, setup, replace(plan, layers_per_stage=(6, 8, 8, 8)))
    assert per_device.layers_per_chunk == (3, 4, 4, 4, 3, 4, 4, 4)
    per_chunk = (3, 4, 4, 4, 4, 4, 4, 3)
    assert _step(fabric, setup, replace(plan, layers_per_stage=per_chunk)).layers_per_chunk == per_chunk
    memory = training_memory(SMALL, replace(plan, layers_per_stage=per_chunk), seq_len=1024, global_batch_size=64)
    assert memory.total_bytes > 0


def test_split_problems_name_the_field() -> None:
    assert split_problems(ParallelPlan(pp=4, layers_per_stage=(8, 8, 8)), 30) == [
        ("layers_per_stage", "needs pp (4) entries, one per stage in pipeline order (got 3)")
    ]
    assert split_problems(ParallelPlan(pp=4, layers_per_stage=(8, 0, 8, 8)), 30) == [
        ("layers_per_stage", "sums to 24, not the model's 30 layers"),
        ("layers_per_stage[1]", "must be >= 1 (got 0): a stage between the first and the last needs a layer"),
    ]
    assert split_problems(ParallelPlan(pp=4, layers_per_stage=(0, 15, 15, 0)), 30) == []  # embedding/head only
    interleaved = ParallelPlan(pp=2, schedule="interleaved", virtual_stages=2, layers_per_stage=(1, 29))
    assert split_problems(interleaved, 30)[0][0] == "layers_per_stage[0]"
    assert split_problems(ParallelPlan(pp=64), 30) == [("pp", "pp (64) must not exceed the model's layers (30)")]
    with pytest.raises(ValueError, match="whole numbers >= 0"):
        ParallelPlan(pp=2, layers_per_stage=(-1, 31))
    with pytest.raises(ValueError, match="auto, balanced"):
        ParallelPlan(pp=2, layers_per_stage="greedy")


def test_scenario_split_errors_are_one_line_per_field() -> None:
    bad = copy.deepcopy(H100)
    bad["workloads"][0]["parallelism"]["layers_per_stage"] = [8] * 15
    with pytest.raises(UserInputError) as info:
        load_scenario(bad)
    assert [str(p) for p in info.value.problems] == [
        "workloads[0].parallelism.layers_per_stage: needs pp (16) entries, one per stage in pipeline order (got 15)"
    ]
    bad["workloads"][0]["parallelism"]["layers_per_stage"] = [8, -1, *[8] * 14]
    with pytest.raises(UserInputError) as info:
        load_scenario(bad)
    assert [str(p) for p in info.value.problems] == [
        "workloads[0].parallelism.layers_per_stage[1]: must be >= 0 (got -1)"
    ]
    bad["workloads"][0]["parallelism"]["layers_per_stage"] = [8, 0, *[8] * 14]
    with pytest.raises(UserInputError) as info:
        load_scenario(bad)
    problems = [str(p) for p in info.value.problems]
    assert problems[0] == "workloads[0].parallelism.layers_per_stage: sums to 120, not the model's 126 layers"
    assert problems[1].startswith("workloads[0].parallelism.layers_per_stage[1]: must be >= 1")
    for value, message in (
        ("greedy", "must be one of 'auto' or 'balanced' (got 'greedy')"),
        (5, "must be a list (got 5)"),
    ):
        bad["workloads"][0]["parallelism"]["layers_per_stage"] = value
        with pytest.raises(UserInputError) as info:
            load_scenario(bad)
        assert [str(p) for p in info.value.problems] == [f"workloads[0].parallelism.layers_per_stage: {message}"]
    good = copy.deepcopy(H100)
    good["workloads"][0]["parallelism"]["layers_per_stage"] = [7, *[8] * 14, 7]
    assert load_scenario(good).workloads[0].parallelism.plan().layers_per_stage == (7, *[8] * 14, 7)
