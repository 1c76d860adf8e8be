"""Per-microbatch compute of each pipeline stage, from the calibrated cost model.

A model's forward op list (one tensor-parallel shard, one microbatch) is split into the ops before the
repeated layers (``pre``: embeddings, stem), the repeated layers (``block``) and the ops after them
(``post``: final norm, head, loss). A pipeline of ``pp`` stages with ``v`` virtual stages has ``pp * v``
chunks (chunk ``c`` on device ``c % pp``); the first chunk also runs ``pre`` and the last ``post``. How many
layers each chunk holds is the plan's ``layers_per_stage`` (:func:`chunk_layers`): given explicitly, split
evenly where ``pp * v`` divides the layers (Megatron-LM's default; DeepSpeed's ``partition_method="uniform"``),
or balanced on the predicted time of each device (:func:`balanced_split`).

Backward costs each op's ``backward()``. Activation recompute (Korthikanti et al. 2022) adds forward work
to the backward pass: ``full`` re-runs every layer's forward, ``selective`` re-runs only the attention core
(the softmax(QK^T)V part whose activations are the large ``5·a·s/h`` term).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from dcsim.compute import Op, predict_many
from dcsim.models import LayerOp, ModelConfig, ModelOps
from dcsim.parallel.plan import ParallelPlan

PARTS = ("pre", "block", "post")


def layer_part(layer: LayerOp) -> str:
    """``pre``, ``block`` or ``post`` for a :class:`~dcsim.models.LayerOp` (its ``part``, checked when the
    layer is made)."""
    return layer.part


def block_layers(model: ModelConfig) -> int:
    """Repeated layers a pipeline can split (encoder plus decoder layers for encoder-decoder models)."""
    count = model.block_layers
    if not count:
        raise ValueError(f"{model.name} has no repeated layers to split")
    return count


def step_ops(model: ModelConfig, batch: int, seq_len: int, tp: int, precision: str, ep: int = 1) -> ModelOps:
    """One microbatch's forward ops on one tensor-parallel shard (``model.step_ops``)."""
    return model.step_ops(batch, seq_len, tp=tp, precision=precision, ep=ep)


@dataclass(frozen=True)
class PartTimes:
    """Seconds of one microbatch's forward, backward and recompute work in each part (all layers of
    ``block`` together)."""

    fwd_s: dict[str, float]
    bwd_s: dict[str, float]
    attention_fwd_s: dict[str, float]
    flops_fwd: float

    def recompute_s(self, part: str, mode: str) -> float:
        """Extra backward seconds for activation recompute of ``part`` under ``mode``."""
        if mode == "full":
            return self.fwd_s[part] if part == "block" else 0.0
        if mode == "selective":
            return self.attention_fwd_s[part]
        return 0.0


def part_times(ops: ModelOps, device: str) -> PartTimes:
    """Per-part seconds of ``ops`` (one microbatch) on ``device``, from :func:`dcsim.compute.predict_many`."""
    return _part_times(ops, device)


@functools.lru_cache(maxsize=4096)
def _part_times(ops: ModelOps, device: str) -> PartTimes:
    fwd_ops: list[Op] = []
    bwd_ops: list[Op] = []
    for layer in ops.layers:
        fwd_ops.append(layer.op)
        bwd_ops.append(layer.op.backward())
    seconds = predict_many(fwd_ops + bwd_ops, device)
    n = len(fwd_ops)
    fwd = dict.fromkeys(PARTS, 0.0)
    bwd = dict.fromkeys(PARTS, 0.0)
    attention = dict.fromkeys(PARTS, 0.0)
    flops = 0.0
    for i, layer in enumerate(ops.layers):
        part = layer_part(layer)
        if not layer.backward_only:
            fwd[part] += float(seconds[i]) * layer.count
            flops += layer.op.flops * layer.count
            if layer.op.kind == "attention":
                attention[part] += float(seconds[i]) * layer.count
        bwd[part] += float(seconds[n + i]) * layer.count
    return PartTimes(fwd, bwd, attention, flops)


@dataclass(frozen=True)
class StageCompute:
    """Per-microbatch compute seconds of each virtual stage (``fwd_s[c]``, ``bwd_s[c]`` for chunk ``c`` of
    ``pp * virtual_stages``, in pipeline order); backward includes recompute."""

    fwd_s: tuple[float, ...]
    bwd_s: tuple[float, ...]
    recompute_s: tuple[float, ...]

    def device_s(self, pp: int) -> list[float]:
        """Forward plus backward seconds per microbatch on each of the ``pp`` devices (chunks summed)."""
        out = [0.0] * pp
        for index, (f, b) in enumerate(zip(self.fwd_s, self.bwd_s, strict=True)):
            out[index % pp] += f + b
        return out


def even_split(layers: int, chunks: int) -> tuple[int, ...]:
    """``layers`` over ``chunks`` as evenly as possible, the earlier chunks taking one more layer each
    (``numpy.array_split``'s rule): the naive split, blind to the embedding and the head."""
    base, extra = divmod(layers, chunks)
    return tuple(base + (1 if c < extra else 0) for c in range(chunks))


def split_problems(plan: ParallelPlan, layers: int) -> list[tuple[str, str]]:
    """(field of the plan, message) for each reason ``plan``'s pipeline cannot hold ``layers`` repeated
    layers; empty if it can. Every chunk needs a layer, except that an explicit list may leave the first
    stage (the embedding) or the last (the head and loss) without any."""
    chunks = plan.pp * plan.virtual_stages
    split = plan.layers_per_stage
    if isinstance(split, str):
        if chunks > layers:
            what = "pp * virtual_stages" if plan.virtual_stages > 1 else "pp"
            return [("pp", f"{what} ({chunks}) must not exceed the model's layers ({layers})")]
        return []
    if len(split) not in (plan.pp, chunks):
        counts = f"pp ({plan.pp})" if chunks == plan.pp else f"pp ({plan.pp}) or pp * virtual_stages ({chunks})"
        return [("layers_per_stage", f"needs {counts} entries, one per stage in pipeline order (got {len(split)})")]
    problems = []
    if sum(split) != layers:
        problems.append(("layers_per_stage", f"sums to {sum(split)}, not the model's {layers} layers"))
    for i, count in enumerate(split):
        if len(split) < chunks and count < plan.virtual_stages:
            least, why = plan.virtual_stages, f"each of the stage's {plan.virtual_stages} virtual stages needs a layer"
        elif 0 < i < len(split) - 1 and count < 1:
            least, why = 1, "a stage between the first and the last needs a layer"
        else:
            continue
        problems.append((f"layers_per_stage[{i}]", f"must be >= {least} (got {count}): {why}"))
    return problems


@functools.lru_cache(maxsize=4096)
def balanced_split(layers: int, pp: int, v: int, layer_s: float, first_s: float, last_s: float) -> tuple[int, ...]:
    """Layers per chunk (``pp * v``, pipeline order) that minimise the slowest device's time per microbatch,
    ``extra_d + n_d * layer_s``, where the first device also runs the embedding (``first_s``) and the last
    the head and loss (``last_s``), every chunk keeping at least one layer.

    Megatron-LM lets a user set this by hand (``--decoder-first-pipeline-num-layers``,
    ``--decoder-last-pipeline-num-layers``; ``--account-for-embedding-in-pipeline-split`` and
    ``--account-for-loss-in-pipeline-split`` count the embedding and the loss as a layer each), DeepSpeed
    approximates it on parameter counts (``PipelineModule(partition_method="parameters")``); Llama 3 405B's
    126 layers on 16 stages took one layer off the first and the last stage for this reason (Dubey et al.
    2024, "The Llama 3 Herd of Models", Section 3.3.2, "Imbalanced pipeline stages").

    The smallest bound on a device's time is found by bisection over the values ``extra_d + n * layer_s``;
    layers the bound leaves free are then taken, one at a time, from the device holding the most in-flight
    activations (``n_d * (pp - d)``: 1F1B keeps ``pp - d`` microbatches on device ``d``), so memory evens out
    too. Each device's layers spread over its ``v`` chunks as evenly as possible (:func:`spread_over_chunks`)."""
    if layers < pp * v:
        raise ValueError(f"{pp * v} pipeline chunks need at least as many layers (got {layers})")
    if pp == 1 or layer_s <= 0:
        return even_split(layers, pp * v)
    extra = [0.0] * pp
    extra[0] += max(first_s, 0.0)
    extra[-1] += max(last_s, 0.0)

    def capacities(bound: float) -> list[int]:
        return [min(layers, math.floor((bound - e) / layer_s + 1e-9)) for e in extra]

    def feasible(bound: float) -> bool:
        caps = capacities(bound)
        return min(caps) >= v and sum(caps) >= layers

    bounds = sorted({e + n * layer_s for e in set(extra) for n in range(v, layers + 1)})
    lo, hi = 0, len(bounds) - 1  # the largest bound puts every layer anywhere: feasible
    while lo < hi:
        mid = (lo + hi) // 2
        if feasible(bounds[mid]):
            hi = mid
        else:
            lo = mid + 1
    counts = capacities(bounds[lo])
    for _ in range(sum(counts) - layers):
        d = max((d for d in range(pp) if counts[d] > v), key=lambda d: (counts[d] * (pp - d), -d))
        counts[d] -= 1
    return spread_over_chunks(counts, pp, v)


def spread_over_chunks(device_layers: Sequence[int], pp: int, v: int) -> tuple[int, ...]:
    """Layers per chunk (pipeline order: chunk ``j * pp + d`` is device ``d``'s ``j``-th) from layers per
    device, each device's spread over its ``v`` chunks as evenly as possible, its earlier chunks taking one
    more."""
    out = [0] * (pp * v)
    for d, count in enumerate(device_layers):
        base, extra = divmod(count, v)
        for j in range(v):
            out[j * pp + d] = base + (1 if j < extra else 0)
    return tuple(out)


def device_layers(chunk_layers: Sequence[int], pp: int) -> list[int]:
    """Layers held by each of the ``pp`` devices, from layers per chunk."""
    out = [0] * pp
    for c, count in enumerate(chunk_layers):
        out[c % pp] += count
    return out


#: Without predicted times the embedding and the loss each count as one layer when balancing, as Megatron-LM's
#: ``--account-for-embedding-in-pipeline-split`` and ``--account-for-loss-in-pipeline-split`` count them
#: (megatron/core/transformer/transformer_config.py).
LAYERS_PER_EMBEDDING = 1.0
LAYERS_PER_LOSS = 1.0


def chunk_layers(plan: ParallelPlan, layers: int, costs: tuple[float, float, float] | None = None) -> tuple[int, ...]:
    """Layers of each of the plan's ``pp * virtual_stages`` chunks (pipeline order).

    ``plan.layers_per_stage`` decides: a list of ``pp * v`` counts is taken as is, one of ``pp`` counts is
    spread over each device's chunks (:func:`spread_over_chunks`); ``auto`` splits evenly where ``pp * v``
    divides the layers (Megatron-LM's default) and balances otherwise; ``balanced`` always
    balances (:func:`balanced_split`) on ``costs`` = (seconds of one layer, of the embedding, of the head and
    loss) per microbatch, or without them on layer counts with the embedding and the loss as one layer each.
    Raises ValueError (``field: message``) when the plan's list does not fit the model."""
    problems = split_problems(plan, layers)
    if problems:
        name, message = problems[0]
        raise ValueError(message if name == "pp" else f"{name}: {message}")
    chunks = plan.pp * plan.virtual_stages
    split = plan.layers_per_stage
    if not isinstance(split, str):
        return split if len(split) == chunks else spread_over_chunks(split, plan.pp, plan.virtual_stages)
    if split == "auto" and layers % chunks == 0:
        return even_split(layers, chunks)
    layer_s, first_s, last_s = costs if costs is not None else (1.0, LAYERS_PER_EMBEDDING, LAYERS_PER_LOSS)
    return balanced_split(layers, plan.pp, plan.virtual_stages, layer_s, first_s, last_s)


def stage_costs(times: PartTimes, layers: int, mode: str, comm_per_layer_s: float = 0.0) -> tuple[float, float, float]:
    """(one layer, the embedding, the head and loss): forward plus backward plus ``mode``'s recompute seconds
    per microbatch, the layer's with ``comm_per_layer_s`` of blocking communication: what
    :func:`balanced_split` balances."""

    def total(part: str) -> float:
        return times.fwd_s[part] + times.bwd_s[part] + times.recompute_s(part, mode)

    return total("block") / layers + comm_per_layer_s, total("pre"), total("post")


def stage_compute(
    times: PartTimes, layers: int, plan: ParallelPlan, split: Sequence[int] | None = None
) -> StageCompute:
    """Split per-part times over the plan's ``pp * virtual_stages`` chunks, ``split[c]`` layers in chunk ``c``
    (default: :func:`chunk_layers` balanced on ``times``)."""
    if split is None:
        split = chunk_layers(plan, layers, stage_costs(times, layers, plan.recompute))
    chunks = plan.pp * plan.virtual_stages
    if len(split) != chunks or sum(split) != layers:
        raise ValueError(f"split needs {chunks} chunk counts summing to {layers} (got {list(split)})")
    mode = plan.recompute
    fwd, bwd, rec = [], [], []
    for c in range(chunks):
        share = split[c] / layers
        f = times.fwd_s["block"] * share
        r = times.recompute_s("block", mode) * share
        b = times.bwd_s["block"] * share
        for part, on in (("pre", c == 0), ("post", c == chunks - 1)):
            if on:
                f += times.fwd_s[part]
                b += times.bwd_s[part]
                r += times.recompute_s(part, mode)
        fwd.append(f)
        bwd.append(b + r)
        rec.append(r)
    return StageCompute(tuple(fwd), tuple(bwd), tuple(rec))
