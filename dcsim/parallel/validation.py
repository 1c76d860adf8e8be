"""Predictions for the training steps that ``calibration/validate_training.py`` measures on this CPU.

Small functions the validation test (and later the training step-time model) share: the parameter
tensors of a model's op list, the predicted single-process step (forward, backward, optimizer), the ring
all-reduce time from an interconnect's latency and bandwidth, and the two-rank data-parallel step as the
script runs it (a plain loop: backward, then one all-reduce per gradient tensor, then the optimizer; no
overlap). Times in seconds. numpy-free and torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dcsim.compute.ops import BYTES_PER_ELEMENT, Conv2d, Embedding, Matmul, Normalization, Op
from dcsim.models.base import ModelOps
from dcsim.parallel.optimizer_step import HOST_CPU_PER_TENSOR_S, Shape, optimizer_step_time_s

Predict = Callable[[Op], float]


def param_shapes(model: ModelOps) -> list[Shape]:
    """Shapes of the parameter tensors a torch module of ``model`` holds, as ``nn.Linear`` (out, in) and
    its bias, ``nn.Embedding`` (vocab, hidden), ``nn.LayerNorm`` weight and bias, ``nn.RMSNorm`` weight,
    ``nn.Conv2d`` (out, in / groups, k, k) and its bias. Their sizes sum to ``model.param_count``."""
    shapes: list[Shape] = []
    for layer in model.layers:
        op = layer.op
        one: list[Shape] = []
        if isinstance(op, Matmul):
            if layer.weights:
                one.append((op.n, op.k))
            if layer.bias:
                one.append((op.n,))
        elif not layer.weights:
            continue
        elif isinstance(op, Embedding):
            one.append((op.vocab, op.hidden))
        elif isinstance(op, Normalization):
            one += [(op.cols,)] * (1 if op.op_kind == "rmsnorm" else 2)
        elif isinstance(op, Conv2d):
            one.append((op.out_channels, op.in_channels // op.groups, op.kernel, op.kernel))
            if layer.bias:
                one.append((op.out_channels,))
        else:
            raise TypeError(f"{layer.name}: {type(op).__name__} ops hold no parameters")
        shapes += one * layer.count
    return shapes


@dataclass(frozen=True)
class StepPrediction:
    """Predicted seconds of one training step on one rank, by part."""

    fwd_bwd_s: float
    optimizer_s: float
    allreduce_s: float = 0.0

    @property
    def step_s(self) -> float:
        """Forward + backward + all-reduce + optimizer (run one after another)."""
        return self.fwd_bwd_s + self.allreduce_s + self.optimizer_s


def predict_single_step(
    model: ModelOps, predict: Predict, optimizer: str = "adamw", per_tensor_s: float | None = None
) -> StepPrediction:
    """One process: ``model.time(predict, "fwd+bwd")`` (loss included) plus the optimizer step over the
    model's parameter tensors (:func:`~dcsim.parallel.optimizer_step.optimizer_step_time_s`) with
    ``per_tensor_s`` per tensor (default: the host CPU's measured
    :data:`~dcsim.parallel.optimizer_step.HOST_CPU_PER_TENSOR_S`, as these checks run on it)."""
    precision = _precision(model)
    shapes = param_shapes(model)
    if per_tensor_s is None:
        per_tensor_s = HOST_CPU_PER_TENSOR_S[optimizer] if optimizer in HOST_CPU_PER_TENSOR_S else 0.0
    return StepPrediction(
        fwd_bwd_s=model.time(predict, "fwd+bwd"),
        optimizer_s=optimizer_step_time_s(optimizer, shapes, predict, precision, per_tensor_s=per_tensor_s),
    )


def ring_allreduce_s(nbytes: float, ranks: int, latency_s: float, bandwidth_bytes_per_s: float) -> float:
    """Ring all-reduce of ``nbytes`` over ``ranks`` ranks: 2(n-1) latency-bound steps and 2(n-1)/n of the
    message over the bandwidth (reduce-scatter then all-gather)."""
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, not {ranks!r}")
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, not {nbytes!r}")
    if latency_s < 0 or bandwidth_bytes_per_s <= 0:
        raise ValueError("latency_s must be >= 0 and bandwidth_bytes_per_s > 0")
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * latency_s + 2 * (ranks - 1) / ranks * nbytes / bandwidth_bytes_per_s


def predict_dp_step(
    model: ModelOps,
    predict: Predict,
    ranks: int,
    latency_s: float,
    bandwidth_bytes_per_s: float,
    optimizer: str = "adamw",
    tensor_bytes: Sequence[float] | None = None,
    per_tensor_s: float | None = None,
) -> StepPrediction:
    """Data parallel, plain loop: each rank runs forward and backward, then one ring all-reduce per
    gradient tensor (``tensor_bytes``, default: the model's parameter tensors at its precision), then the
    optimizer (``per_tensor_s`` as in :func:`predict_single_step`). Nothing overlaps, so the parts add."""
    single = predict_single_step(model, predict, optimizer, per_tensor_s)
    if tensor_bytes is None:
        size = BYTES_PER_ELEMENT[_precision(model)]
        tensor_bytes = [_numel(shape) * size for shape in param_shapes(model)]
    comm = sum(ring_allreduce_s(b, ranks, latency_s, bandwidth_bytes_per_s) for b in tensor_bytes)
    return StepPrediction(single.fwd_bwd_s, single.optimizer_s, comm)


def per_tensor_slope_s(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of seconds over tensor count for (tensors, seconds) points: the fixed time per
    tensor of a per-tensor loop (how :data:`~dcsim.parallel.optimizer_step.HOST_CPU_PER_TENSOR_S` is
    measured, from measured-minus-predicted step times)."""
    if len(points) < 2:
        raise ValueError("per_tensor_slope_s needs at least two points")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("per_tensor_slope_s needs at least two different tensor counts")
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def _numel(shape: Shape) -> int:
    n = 1
    for size in shape:
        n *= size
    return n


def _precision(model: ModelOps) -> str:
    return model.layers[0].op.precision
