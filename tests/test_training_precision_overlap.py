"""Training precision recipes (fp8 as Transformer Engine runs it), communication overlap and the launch floor."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

import pytest

from dcsim.compute import Attention, Matmul, Pointwise, load_profile, predict_many
from dcsim.compute.predictor import default_profile_dirs
from dcsim.errors import UserInputError
from dcsim.models import TransformerConfig, get_model
from dcsim.parallel.comm import CommModel
from dcsim.parallel.launch_floor import (
    Launches,
    kernel_launches,
    launch_floor_s,
    profile_launch_floor_s,
    with_launch_floor,
)
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.overlap import (
    OverlapOptions,
    bucketed_exposed_s,
    collective_hbm_bytes,
    contended_exposed_s,
    gather_exposed_s,
    hbm_share,
    scatter_exposed_s,
)
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.precision_recipe import PrecisionRecipe, cast_ops, cast_times
from dcsim.parallel.stages import PartTimes, step_ops
from dcsim.parallel.step import TrainingSetup, check_plan, estimate_step
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

H100_NODES: dict[str, Any] = {
    "name": "h100",
    "seed": 1,
    "datacenter": {
        "nodes": [
            {
                "name": "dgx",
                "count": 4,
                "accelerator": "h100-sxm",
                "accelerators_per_node": 8,
                "intra_node": "nvswitch-h100",
                "nics": {"count": 8, "gbps": 400},
            }
        ],
        "network": {"topology": "fat_tree", "link_gbps": 400},
    },
    "workloads": [
        {
            "kind": "training",
            "name": "llama",
            "model": "llama2-7b",
            "precision": "fp8",
            "parallelism": {"dp": 4, "tp": 8, "sequence_parallel": True},
            "global_batch_size": 64,
            "seq_len": 4096,
            "steps": 10,
        }
    ],
    "outputs": {"plots": False},
}
MICRO = TransformerConfig("micro", 2, 64, 2, 256, 256, 64)


@pytest.fixture(scope="module")
def fabric() -> Any:
    return build_fabric(load_scenario(copy.deepcopy(H100_NODES)).datacenter, 1)


def _estimate(fabric: Any, plan: ParallelPlan, setup: TrainingSetup) -> Any:
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    layout = RankLayout(plan, tuple(fabric.ranks(plan.world_size)))
    return estimate_step(setup, plan, layout, CommModel(fabric.graph, "ecmp", 0), server_of, "fast")


# --- the fp8 recipe -------------------------------------------------------------------------------------


def _ops_by_name(recipe: PrecisionRecipe, model: Any, tp: int = 1) -> dict[str, Any]:
    ops = recipe.apply(step_ops(model, 1, 1024, tp, recipe.base_precision))
    return {layer.name: layer.op for layer in ops.layers}


def test_fp8_runs_only_the_transformer_gemms_in_fp8():
    ops = _ops_by_name(PrecisionRecipe("fp8"), get_model("llama2-7b"))
    for name in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down"):
        assert ops[name].precision == "fp8", name
    for name in ("attn.core", "attn.norm", "mlp.act", "mlp.gate", "attn.residual", "head.logits", "head.loss"):
        assert ops[name].precision == "bf16", name
    assert ops["embed.tokens"].precision == "bf16"
    with_attention = _ops_by_name(PrecisionRecipe("fp8", fp8_attention=True), get_model("llama2-7b"))
    assert with_attention["attn.core"].precision == "fp8" and with_attention["mlp.act"].precision == "bf16"
    moe = _ops_by_name(PrecisionRecipe("fp8"), get_model("mixtral-8x7b"))
    assert moe["moe.router"].precision == "bf16" and moe["moe.expert.up"].precision == "fp8"
    assert _ops_by_name(PrecisionRecipe("bf16"), get_model("llama2-7b"))["attn.qkv"].precision == "bf16"
    with pytest.raises(ValueError, match="fp8_attention needs precision fp8"):
        PrecisionRecipe("bf16", fp8_attention=True)


def test_every_fp8_gemm_casts_its_input_weight_and_output_gradient():
    recipe = PrecisionRecipe("fp8")
    ops = recipe.apply(step_ops(get_model("llama2-7b"), 2, 1024, 2, "bf16"))
    casts = cast_ops(ops)
    gemms = [layer for layer in ops.layers if layer.op.precision == "fp8"]
    assert len(casts) == 3 * len(gemms) == 12
    qkv = next(layer.op for layer in gemms if layer.name == "attn.qkv")
    assert isinstance(qkv, Matmul)
    sizes = {c.phase: c.op.numel for c in casts[:3]}
    assert sizes == {"fwd": qkv.m * qkv.k, "step": qkv.k * qkv.n, "bwd": qkv.m * qkv.n}
    # a cast reads bf16 and writes the fp8 copy and its transpose: the 4 bytes per element of a bf16 copy
    assert all(c.op == Pointwise("copy", c.op.numel, "bf16") and c.op.bytes == 4 * c.op.numel for c in casts)
    times = cast_times(ops, "h100-sxm")
    expected = predict_many([casts[0].op], "h100-sxm")[0] * 32
    assert times.fwd_s["block"] >= expected > 0 and times.weights_total_s > 0
    attention = PrecisionRecipe("fp8", fp8_attention=True).apply(step_ops(get_model("llama2-7b"), 1, 512, 1, "bf16"))
    core = next(layer.op for layer in attention.layers if layer.name == "attn.core")
    assert isinstance(core, Attention)
    extra = [c for c in cast_ops(attention) if c.phase != "step"]
    assert len(extra) == 2 * 4 + 2  # the four GEMMs' input and gradient casts, Q/K/V and dO of the core
    assert cast_ops(step_ops(get_model("llama2-7b"), 1, 512, 1, "bf16")) == []


def test_fp8_7b_on_h100_is_faster_than_bf16_but_not_twice_as_fast(fabric):
    """Issue 19: Transformer Engine's public Llama-class results gain far less than the 2x of the fp8 peak:
    the attention core, norms and pointwise ops stay bf16 and every GEMM pays its casts."""
    plan = ParallelPlan(dp=8, microbatch_size=2)
    model = get_model("llama2-7b")
    bf16 = _estimate(fabric, plan, TrainingSetup(model, "h100-sxm", 64, 4096, "bf16"))
    fp8 = _estimate(fabric, plan, TrainingSetup(model, "h100-sxm", 64, 4096, "fp8"))
    assert 1.0 < bf16.compute_s / fp8.compute_s < 2.0
    assert 1.0 < bf16.step_time_s / fp8.step_time_s < 2.0
    attention = _estimate(fabric, plan, TrainingSetup(model, "h100-sxm", 64, 4096, "fp8", fp8_attention=True))
    assert attention.compute_s < fp8.compute_s


def test_bad_precision_and_overlap_fields_are_named_in_a_scenario():
    bad = copy.deepcopy(H100_NODES)
    bad["workloads"][0].update(precision="bf16", fp8_attention=True)
    with pytest.raises(UserInputError) as info:
        load_scenario(bad)
    assert [str(p) for p in info.value.problems] == [
        "workloads[0].fp8_attention: needs precision: fp8 (it runs the attention core of the fp8 recipe in fp8)"
    ]
    bad = copy.deepcopy(H100_NODES)
    bad["workloads"][0].update(overlap={"tp": True, "dp_bucket_mb": 0}, parallelism={"dp": 4, "tp": 8})
    with pytest.raises(UserInputError) as info:
        load_scenario(bad)
    assert [str(p) for p in info.value.problems] == ["workloads[0].overlap.dp_bucket_mb: must be > 0.0 (got 0)"]
    bad["workloads"][0]["overlap"]["dp_bucket_mb"] = 100
    with pytest.raises(UserInputError) as info:
        load_scenario(bad)
    assert [str(p) for p in info.value.problems] == [
        "workloads[0].overlap.tp: needs parallelism.sequence_parallel: true (it splits the SP collectives)"
    ]


# --- overlap ---------------------------------------------------------------------------------------------


def _chunk_pipeline(comm: float, gemm: float, n: int, gather: bool) -> float:
    """Exposed seconds of ``n`` comm chunks and ``n`` GEMM chunks on two streams, event by event."""
    c, g = comm / (n - 1 if gather else n), gemm / n
    if gather:  # chunk 0 is local; chunk k arrives after k transfers
        arrive = [k * c for k in range(n)]
        end = 0.0
        for k in range(n):
            end = max(end, arrive[k]) + g
        return end - gemm
    gemm_end = [(k + 1) * g for k in range(n)]
    end = 0.0
    for k in range(n):
        end = max(end, gemm_end[k]) + c
    return end - gemm


@pytest.mark.parametrize("comm", [0.1, 0.9, 1.0, 1.7, 5.0])
@pytest.mark.parametrize("n", [2, 4, 8])
def test_chunked_overlap_formulas_match_the_chunk_pipeline(comm, n):
    assert gather_exposed_s(comm, 1.0, n) == pytest.approx(_chunk_pipeline(comm, 1.0, n, True), abs=1e-12)
    assert scatter_exposed_s(comm, 1.0, n) == pytest.approx(_chunk_pipeline(comm, 1.0, n, False), abs=1e-12)


def _buckets_by_events(total: float, bucket: float, window: float, price: Any) -> float:
    """Bucket by bucket: each starts when its gradients are ready and the one before is done; the last,
    partial bucket priced as a full one."""
    count = math.ceil(total / bucket)
    end = 0.0
    for i in range(count):
        end = max(end, window * min(total, (i + 1) * bucket) / total) + price(bucket if count > 1 else total)
    return max(0.0, end - window)


@pytest.mark.parametrize(
    ("total", "bucket", "window"),
    [(100.0, 25.0, 10.0), (100.0, 30.0, 1.0), (10.0, 25.0, 5.0), (1e3, 7.0, 40.0), (1e3, 7.0, 1e4)],
)
def test_bucketed_reduction_matches_bucket_by_bucket(total, bucket, window):
    def price(size: float) -> float:
        return 0.05 + size / 20.0

    exposed, comm = bucketed_exposed_s(total, bucket, window, price)
    assert exposed == pytest.approx(_buckets_by_events(total, bucket, window, price))
    assert exposed >= price(min(bucket, total)) - 1e-12  # the last bucket at least
    assert comm == pytest.approx(price(total) if total <= bucket else math.ceil(total / bucket) * price(bucket))


def test_contended_prefetch_is_partly_exposed():
    assert contended_exposed_s(1.0, 10.0, 0.25) == pytest.approx(0.25)
    assert contended_exposed_s(5.0, 1.0, 0.25) == pytest.approx(4.0)
    assert contended_exposed_s(1.0, 10.0, 0.0) == 0.0


def test_tp_overlap_hides_most_of_the_sequence_parallel_collectives(fabric):
    model = get_model("llama2-7b")
    plan = ParallelPlan(dp=4, tp=8, sequence_parallel=True, microbatch_size=1)
    plain = _estimate(fabric, plan, TrainingSetup(model, "h100-sxm", 64, 4096, "bf16"))
    setup = TrainingSetup(model, "h100-sxm", 64, 4096, "bf16", overlap=OverlapOptions(tp=True))
    hidden = _estimate(fabric, plan, setup)
    assert 0 < hidden.tp_exposed_s < 0.5 * plain.tp_exposed_s
    assert hidden.compute_s == pytest.approx(plain.compute_s)
    no_sp = ParallelPlan(dp=4, tp=8, microbatch_size=1)
    assert ("overlap.tp", "needs parallelism.sequence_parallel: true (it splits the SP collectives)") in check_plan(
        setup, no_sp
    )


def test_data_parallel_buckets_leave_the_last_bucket_exposed(fabric):
    model = get_model("llama2-7b")
    plan = ParallelPlan(dp=32, microbatch_size=1)
    step = _estimate(fabric, plan, TrainingSetup(model, "h100-sxm", 64, 2048, "bf16"))
    small = _estimate(
        fabric, plan, TrainingSetup(model, "h100-sxm", 64, 2048, "bf16", overlap=OverlapOptions(False, 4))
    )
    serial = _estimate(fabric, ParallelPlan(dp=32, overlap_dp=False), TrainingSetup(model, "h100-sxm", 64, 2048))
    assert 0 < step.dp_exposed_s < serial.dp_exposed_s
    assert small.comm_s["dp_stage0_s"] > step.comm_s["dp_stage0_s"]  # more buckets, more latency terms


def test_zero3_prefetch_contends_for_memory_bandwidth(fabric):
    model = get_model("llama2-7b")
    setup = TrainingSetup(model, "h100-sxm", 64, 4096, "bf16")
    step = _estimate(fabric, ParallelPlan(dp=8, zero_stage=3), setup)
    comm = step.comm_s["zero3_stage0_s"]
    assert comm * step.microbatches < step.compute_s  # the gathers fit beside the compute...
    # ...but take their share of HBM bandwidth: 2 gathers + 1 reduce-scatter of the bf16 weights over 8 ranks
    share = hbm_share(3 * collective_hbm_bytes(model.param_count() * 2.0, 8), comm, 3.35e12)
    assert 0.15 < share < 0.3  # an NVLink all-gather on H100 takes about a fifth (docs/training.md)
    assert step.dp_exposed_s == pytest.approx(step.microbatches * share * comm, rel=1e-6)


# --- the launch floor -----------------------------------------------------------------------------------


def test_launch_floor_is_the_fastest_op_the_profile_measured():
    profile = load_profile(next(d for d in default_profile_dirs() if (d / "h100-sxm.json").is_file()) / "h100-sxm.json")
    floor = launch_floor_s("h100-sxm")
    own = [p.median_s for p in profile.points if not p.source and p.op.phase == "fwd"]
    assert floor == profile_launch_floor_s(profile) == min(own)
    assert 3e-6 < floor < 20e-6  # an eager PyTorch op's dispatch: microseconds
    assert launch_floor_s("h200-sxm") == floor  # no profile of its own: its prior's reference profile
    assert launch_floor_s("host-cpu") == 0.0


def test_small_models_are_launch_bound_unless_captured_in_cuda_graphs(fabric):
    """A model of microscopic kernels: the A100's imported forward curves (bare kernel times) put its forward
    below its launches times the floor, so the floor binds; CUDA graphs lift it. On every GPU the step is never
    faster than its launches."""
    plan = ParallelPlan(dp=1, microbatch_size=1)
    launches = kernel_launches(step_ops(MICRO, 1, 64, 1, "bf16"))
    kernels = sum(launches.fwd.values()) + sum(launches.bwd.values())
    for device in ("a100-sxm-80gb", "h100-sxm", "h200-sxm"):
        eager = _estimate(fabric, plan, TrainingSetup(MICRO, device, 8, 64, "bf16"))
        assert eager.compute_s >= eager.microbatches * kernels * launch_floor_s(device) * (1 - 1e-9), device
    graphs = _estimate(fabric, plan, TrainingSetup(MICRO, "a100-sxm-80gb", 8, 64, "bf16", cuda_graphs=True))
    eager = _estimate(fabric, plan, TrainingSetup(MICRO, "a100-sxm-80gb", 8, 64, "bf16"))
    assert graphs.compute_s < eager.compute_s


def test_a_bound_pass_is_stretched_evenly_over_its_parts():
    times = PartTimes({"pre": 1.0, "block": 2.0, "post": 1.0}, {"pre": 1.0, "block": 8.0, "post": 1.0}, {}, 0.0)
    times = replace(times, attention_fwd_s={"pre": 0.0, "block": 1.0, "post": 0.0})
    launches = Launches({"pre": 2, "block": 4, "post": 2}, {"pre": 1, "block": 1, "post": 1})
    floored = with_launch_floor(times, launches, 1.0)  # forward: 8 launches > 4 s of kernels; backward not bound
    assert floored.fwd_s == {"pre": 2.0, "block": 4.0, "post": 2.0}
    assert floored.bwd_s == times.bwd_s and floored.attention_fwd_s["block"] == 2.0
    assert with_launch_floor(times, launches, 0.0) is times


def test_tf32_runs_every_product_on_tf32_tensor_cores(fabric):
    ops = _ops_by_name(PrecisionRecipe("tf32"), get_model("llama2-7b"))
    assert ops["attn.qkv"].precision == ops["head.logits"].precision == "tf32"
    assert ops["attn.core"].precision == ops["attn.norm"].precision == "fp32"
    resnet = PrecisionRecipe("tf32").apply(step_ops(get_model("resnet50"), 2, 224, 1, "fp32"))
    assert {layer.op.precision for layer in resnet.layers if layer.op.kind == "conv2d"} == {"tf32"}
    plan = ParallelPlan(dp=8, microbatch_size=1)
    model = get_model("llama2-7b")
    fp32 = _estimate(fabric, plan, TrainingSetup(model, "h100-sxm", 64, 1024, "fp32"))
    tf32 = _estimate(fabric, plan, TrainingSetup(model, "h100-sxm", 64, 1024, "tf32"))
    assert tf32.compute_s < fp32.compute_s / 2  # GEMMs at 494.5 instead of 67 TFLOP/s (H100 SXM datasheet)


def test_precisions_the_accelerator_lacks(fabric):
    model = get_model("llama2-7b")
    plan = ParallelPlan(dp=8)
    problems = check_plan(TrainingSetup(model, "a100-sxm-80gb", 64, 1024, "fp8"), plan)
    assert ("precision", "a100-sxm-80gb has no fp8 units (supported: bf16, fp16, fp32, fp64, int8, tf32)") in problems
    assert PrecisionRecipe("tf32").for_device("v100-sxm-32gb") == PrecisionRecipe("fp32")  # no TF32 units
    assert PrecisionRecipe("tf32").for_device("host-cpu") == PrecisionRecipe("fp32")
    assert PrecisionRecipe("tf32").for_device("a100-sxm-80gb") == PrecisionRecipe("tf32")
    assert check_plan(TrainingSetup(model, "v100-sxm-32gb", 64, 1024, "bf16"), plan)[0] == (
        "precision",
        "v100-sxm-32gb has no bf16 units (supported: fp16, fp32, fp64)",
    )
    assert not check_plan(TrainingSetup(model, "v100-sxm-32gb", 64, 1024, "tf32"), plan)
    cpu = [_estimate(fabric, ParallelPlan(), TrainingSetup(MICRO, "host-cpu", 2, 64, p)) for p in ("tf32", "fp32")]
    assert cpu[0].step_time_s == cpu[1].step_time_s
