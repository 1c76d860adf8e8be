"""Training steps on this CPU: dcsim's predictions against real torch (issue 5, "Prove it").

The measurements come from ``calibration/validate_training.py`` (torch, run by hand; this test needs no
torch): ``calibration/validation/host-cpu-training.json``. Predictions use the host-cpu calibration profile.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from dcsim.catalog import load_catalog
from dcsim.compute import Op, Pointwise, predict
from dcsim.models import TransformerConfig, get_model
from dcsim.parallel.optimizer_step import (
    HOST_CPU_PER_TENSOR_S,
    IN_PLACE_PIECE_ELEMENTS,
    optimizer_kernels,
    optimizer_step_ops,
    optimizer_step_time_s,
)
from dcsim.parallel.validation import (
    param_shapes,
    per_tensor_slope_s,
    predict_dp_step,
    predict_single_step,
    ring_allreduce_s,
)

DATA = Path(__file__).resolve().parents[1] / "calibration" / "validation" / "host-cpu-training.json"


def _predict(op: Op) -> float:
    return predict(op, "host-cpu")


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def _relative_error(predicted: float, measured: float) -> float:
    return predicted / measured - 1.0


def _steps(parts: dict[str, Any]) -> dict[str, Any]:
    """The summary the predictions are held to: the quiet steps (no time slices taken by other jobs; see
    calibration/validate_training.py) when there are at least 3 of them, else all steps. dcsim predicts a
    machine without other jobs."""
    return parts["quiet"] if parts["quiet_steps"] >= 3 else parts


# --- the op lists -------------------------------------------------------------------------------------


def test_adamw_kernels_mirror_torch_traffic():
    """AdamW on a vector: 9 ops (addcdiv as add + relu); elements moved per parameter: 2 (mul_) + 3 (lerp_)
    + 2 (mul_) + 3 (addcmul_) + 2 (sqrt) + 2 (div) + 2 (add_) + 5 (addcdiv_) = 21."""
    n = 1000
    kernels = optimizer_kernels("adamw", n)
    assert len(kernels) == 9
    assert sum(k.op.bytes for k in kernels) == 21 * n * 4
    assert [k.op.kind for k in kernels] == ["relu", "add", "relu", "add", "gelu", "relu", "relu", "add", "relu"]


def test_sgd_and_adafactor_kernels():
    assert sum(k.op.bytes for k in optimizer_kernels("sgd", 1000)) == (2 + 3 + 3) * 1000 * 4
    vector = optimizer_kernels("adafactor", 1000)
    matrix = optimizer_kernels("adafactor", [(100, 10)])
    assert any(k.call == "variance.clone()" for k in vector)
    assert any(k.call == "row_var @ col_var" for k in matrix) and not any(k.call == "grad * grad" for k in matrix)


def test_in_place_kernels_are_split_below_the_fault_threshold():
    n = 3 * IN_PLACE_PIECE_ELEMENTS + 5
    kernels = optimizer_kernels("sgd", n)
    assert all(isinstance(k.op, Pointwise) and k.op.numel <= IN_PLACE_PIECE_ELEMENTS for k in kernels)
    assert sum(k.op.numel for k in kernels if isinstance(k.op, Pointwise)) == 3 * n
    sqrt = [k for k in optimizer_kernels("adamw", n) if k.call == "exp_avg_sq.sqrt()"]
    assert len(sqrt) == 1 and isinstance(sqrt[0].op, Pointwise) and sqrt[0].op.numel == n  # it allocates


def test_ops_merge_identical_kernels_and_master_weights_add_casts():
    ops = optimizer_step_ops("sgd", [(64,)] * 10)
    assert [(op.kind, count) for op, count in ops] == [("relu", 10), ("add", 20)]  # both add_ kernels merge
    mixed = optimizer_kernels("adamw", 1000, precision="bf16", master_weights=True)
    assert mixed[0].call == "grad.float()" and mixed[-1].call == "param.copy_(master)"
    assert all(k.op.precision == "fp32" for k in mixed)
    assert all(k.op.precision == "bf16" for k in optimizer_kernels("adamw", 1000, precision="bf16"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("adam", 10), "optimizer must be one of adamw, sgd, adafactor"),
        (("adamw", 0), "params must be a positive integer"),
        (("adamw", [(3, 0)]), "params: every tensor shape"),
        (("adamw", []), "params: no tensors"),
        (("adamw", 10, "fp13"), "unknown precision 'fp13'"),
    ],
)
def test_bad_input_names_the_field(args, message):
    with pytest.raises(ValueError, match=message):
        optimizer_step_ops(*args)
    with pytest.raises(ValueError, match="per_tensor_s must be >= 0"):
        optimizer_step_time_s("sgd", 10, _predict, per_tensor_s=-1.0)


@pytest.mark.parametrize("model_id", ["gpt2-small", "bert-base", "resnet50"])
def test_param_shapes_sum_to_param_count(model_id):
    cfg = get_model(model_id)
    size = 224 if model_id == "resnet50" else 128
    model = cfg.ops(1, size)
    shapes = param_shapes(model)
    total = 0
    for shape in shapes:
        n = 1
        for d in shape:
            n *= d
        total += n
    assert total == model.param_count


def test_ring_allreduce_formula():
    assert ring_allreduce_s(1e9, 2, 1e-4, 1e9) == pytest.approx(2 * 1e-4 + 1.0)
    assert ring_allreduce_s(8e9, 8, 0.0, 1e9) == pytest.approx(2 * 7 / 8 * 8)
    assert ring_allreduce_s(123.0, 1, 1.0, 1.0) == 0.0
    with pytest.raises(ValueError, match="ranks must be >= 1"):
        ring_allreduce_s(1.0, 0, 0.0, 1.0)


# --- against the measurements -------------------------------------------------------------------------


def test_measurements_describe_this_setup(data):
    assert data["device_id"] == "host-cpu" and data["threads"] == 1
    assert data["torch_version"].startswith("2.")
    single = data["single"]
    model = get_model(single["model"]).ops(single["batch"], single["seq_len"])
    assert model.param_count == single["params"]  # dcsim's op list and the torch module hold the same weights
    assert len(param_shapes(model)) == single["tensors"]


def test_single_process_step_within_15_percent(data):
    """GPT-2 small, batch 1, 128 tokens, AdamW, 1 thread: forward + backward + optimizer step against the
    median CPU time of the steps."""
    single = data["single"]
    model = get_model(single["model"]).ops(single["batch"], single["seq_len"])
    predicted = predict_single_step(model, _predict)
    measured = _steps(single["parts"])["cpu"]
    error = _relative_error(predicted.step_s, measured["step_s"]["median_s"])
    assert abs(error) <= 0.15, f"step: predicted {predicted.step_s:.3f} s, error {error:+.1%}"
    # the part alone within 25%: one pass of steps, and passes of the same step differ by up to 25% on this
    # shared machine (docs/training.md)
    opt_error = _relative_error(predicted.optimizer_s, measured["optimizer_s"]["median_s"])
    assert abs(opt_error) <= 0.25, f"optimizer part: error {opt_error:+.1%}"


def _loopback() -> tuple[float, float]:
    link = load_catalog().interconnect("loopback-host")
    return link.latency_us * 1e-6, link.bandwidth_gb_per_s * 1e9


def test_loopback_entry_is_the_measured_fit(data):
    """The catalog entry holds the script's alpha-beta fit, and the fit describes the messages of 1 MiB and
    more (the gradients' sizes) within 35%, the spread of loopback times on this shared machine."""
    fit = data["dp"]["allreduce_fit"]
    latency_s, bandwidth = _loopback()
    assert latency_s == pytest.approx(fit["latency_s"], rel=0.01)
    assert bandwidth == pytest.approx(fit["bandwidth_gb_per_s"] * 1e9, rel=0.01)
    for point in data["dp"]["allreduce"]:
        if point["bytes"] >= 2**20:
            fitted = ring_allreduce_s(point["bytes"], 2, latency_s, bandwidth)
            assert abs(_relative_error(fitted, point["median_s"])) <= 0.35, point["bytes"]


def _dp_model(dp: dict[str, Any]):
    base = get_model(dp["model"])
    assert isinstance(base, TransformerConfig)
    return dataclasses.replace(base, layers=dp["layers"]).ops(dp["batch"], dp["seq_len"])


def test_two_rank_data_parallel_step(data):
    """Two gloo ranks on this 2-core machine: compute per rank plus one ring all-reduce per gradient tensor
    over the loopback entry, nothing overlapped, against the median wall-clock step. Tolerance 20%: the
    single-process target (15%) plus what the model leaves out, the two ranks' contention for memory
    bandwidth when both run the memory-bound optimizer step at once (docs/training.md). Against the quiet
    steps' median (:func:`_steps`); the median of all steps on this shared machine is reported there."""
    dp = data["dp"]
    model = _dp_model(dp)
    assert model.param_count == dp["params"]
    latency_s, bandwidth = _loopback()
    predicted = predict_dp_step(model, _predict, dp["world_size"], latency_s, bandwidth)
    wall = _steps(dp["parts"])["wall"]
    error = _relative_error(predicted.step_s, wall["step_s"]["median_s"])
    assert abs(error) <= 0.20, f"dp step: predicted {predicted.step_s:.3f} s, error {error:+.1%}"
    comm_error = _relative_error(predicted.allreduce_s, wall["allreduce_s"]["median_s"])
    assert abs(comm_error) <= 0.25, f"dp all-reduce: {comm_error:+.1%}"
    compute = wall["fwd_s"]["median_s"] + wall["bwd_s"]["median_s"]
    assert abs(_relative_error(predicted.fwd_bwd_s, compute)) <= 0.15


#: (optimizer, case): the parameter sets of a real model and the per-tensor regime, asserted within 20%
#: (passes of one case differ by up to 25% on this shared machine). Left out (reported in docs/training.md):
#: single tensors of 64 K to 16 M elements stepped over and over, whose state stays in the 32 MiB L3 cache
#: (up to 4 M elements) or takes fresh pages, which the allocating pointwise fits describe neither, and
#: Adafactor on matrices, whose column norm torch computes strided, which no measured op class prices.
OPTIMIZER_CASES = [
    ("adamw", "gpt2-small"),
    ("sgd", "gpt2-small"),
    ("adamw", "matrix-50257x768"),
    *((name, f"many-{n}x1k") for name in ("adamw", "sgd", "adafactor") for n in (64, 256, 1024)),
]


@pytest.mark.parametrize(("optimizer", "case"), OPTIMIZER_CASES)
def test_optimizer_step_against_torch(data, optimizer, case):
    (row,) = [c for c in data["optimizer_steps"]["cases"] if c["optimizer"] == optimizer and c["case"] == case]
    shapes = [tuple(s) for s in row["shapes"]]
    predicted = optimizer_step_time_s(optimizer, shapes, _predict, per_tensor_s=HOST_CPU_PER_TENSOR_S[optimizer])
    error = _relative_error(predicted, row["median_s"])
    assert abs(error) <= 0.20, f"{optimizer} {case}: {error:+.1%}"


@pytest.mark.parametrize("optimizer", ["adamw", "sgd", "adafactor"])
def test_per_tensor_constant_is_the_measured_slope(data, optimizer):
    points = []
    for row in data["optimizer_steps"]["cases"]:
        if row["optimizer"] == optimizer and row["case"].startswith("many-"):
            shapes = [tuple(s) for s in row["shapes"]]
            kernels = optimizer_step_time_s(optimizer, shapes, _predict, per_tensor_s=0.0)
            points.append((len(shapes), row["median_s"] - kernels))
    assert HOST_CPU_PER_TENSOR_S[optimizer] == pytest.approx(per_tensor_slope_s(points), rel=0.1)
