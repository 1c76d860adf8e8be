"""Per-microbatch compute of each pipeline stage, from the calibrated cost model.

A model's forward op list (one tensor-parallel shard, one microbatch) is split into the ops before the
repeated layers (``pre``: embeddings, stem), the repeated layers (``block``) and the ops after them
(``post``: final norm, head, loss). A pipeline of ``pp`` stages with ``v`` virtual stages each holds
``layers / (pp * v)`` layers per chunk; the first chunk also runs ``pre`` and the last ``post``.

Backward costs each op's ``backward()``. Activation recompute (Korthikanti et al. 2022) adds forward work
to the backward pass: ``full`` re-runs every layer's forward, ``selective`` re-runs only the attention core
(the softmax(QK^T)V part whose activations are the large ``5·a·s/h`` term).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from dcsim.compute import Op, predict_many
from dcsim.models import ModelOps
from dcsim.parallel.plan import ParallelPlan

PARTS = ("pre", "block", "post")


def layer_part(layer: Any) -> str:
    """``pre``, ``block`` or ``post`` for a :class:`~dcsim.models.LayerOp`."""
    part = getattr(layer, "part", None)
    if part in PARTS:
        return str(part)
    name = str(layer.name)
    if name.startswith(("embed", "stem")):
        return "pre"
    if name.startswith(("head", "classifier", "final", "pool")):
        return "post"
    return "block"


def block_layers(model: Any) -> int:
    """Repeated layers a pipeline can split (encoder plus decoder layers for encoder-decoder models)."""
    count = getattr(model, "block_layers", None)
    if count is None:
        count = getattr(model, "layers", None)
    if count is None:
        count = sum(getattr(model, "blocks", ()))
    if not count:
        raise ValueError(f"{getattr(model, 'name', type(model).__name__)} has no repeated layers to split")
    return int(count)


def step_ops(model: Any, batch: int, seq_len: int, tp: int, precision: str, ep: int = 1) -> ModelOps:
    """One microbatch's forward ops on one tensor-parallel shard (``model.step_ops`` when the config has it)."""
    if hasattr(model, "step_ops"):
        ops: ModelOps = model.step_ops(batch, seq_len, tp=tp, precision=precision, ep=ep)
        return ops
    if hasattr(model, "heads"):
        return model.ops(batch, seq_len, tp, precision)
    if tp != 1 or ep != 1:
        raise ValueError(
            f"tp ({tp}) and ep ({ep}) must be 1 for {model.name}: they split transformer layers and experts"
        )
    return model.ops(batch, seq_len, precision=precision)


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


def stage_compute(times: PartTimes, layers: int, plan: ParallelPlan) -> StageCompute:
    """Split per-part times over the plan's ``pp * virtual_stages`` chunks of ``layers / (pp * v)`` layers."""
    chunks = plan.pp * plan.virtual_stages
    if layers % chunks:
        what = "pp * virtual_stages" if plan.virtual_stages > 1 else "pp"
        raise ValueError(f"{what} ({chunks}) must divide the model's layers ({layers})")
    share = 1.0 / chunks
    mode = plan.recompute
    fwd, bwd, rec = [], [], []
    for c in range(chunks):
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
