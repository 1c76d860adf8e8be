"""Training precision recipes: which ops of a training step run at which precision, and what fp8 adds.

``precision: fp8`` follows NVIDIA Transformer Engine (TE), the library Megatron-LM and NeMo train in fp8
with (TE 2.20.2: ``transformer_engine/common/recipe/__init__.py``, ``transformer_engine/pytorch/module/``;
Megatron-Core 0.16.1 for what Megatron builds from TE modules):

- Only the GEMMs of TE's modules run in fp8: the linear layers of every transformer layer (``Linear``,
  ``LayerNormLinear``, ``LayerNormMLP``, ``GroupedLinear``: QKV, attention output projection, MLP up and
  down, the experts of an MoE layer). Their forward multiplies E4M3 inputs by E4M3 weights; the two backward
  GEMMs (input and weight gradient) multiply E5M2 output gradients by E4M3 operands (``Format.HYBRID``: "FP8
  tensors in the forward pass are in e4m3 format, FP8 tensors in the backward pass are in e5m2 format", the
  default ``fp8_format`` of ``DelayedScaling``, whose other defaults are ``margin=0``,
  ``amax_history_len=1024``, ``amax_compute_algo="max"``, ``reduce_amax=True``).
- Everything else stays in bf16: the attention core (``DelayedScaling.fp8_dpa`` defaults to False), norms,
  activations, residual adds, softmax and loss, the embedding, the output head (Megatron's output layer is
  its own ``tensor_parallel.ColumnParallelLinear``, ``megatron/core/models/gpt/gpt_model.py``, not a TE
  module) and the MoE router (``router_gating_linear`` in the input's dtype or ``moe_router_dtype``,
  ``megatron/core/transformer/moe/router.py``).
- Weights, activations, gradients and communication stay bf16 (TE modules hold their weights in bf16 and
  cast them to fp8 for the GEMMs), so memory and traffic are those of bf16 training.
- Every fp8 GEMM's operands are quantized by TE's cast kernels: the input and the weight in the forward,
  the output gradient in the backward. Hopper's fp8 GEMMs take only the "TN" layout, so a tensor used
  column-wise in the backward gets a transposed fp8 copy as well (``_transpose``: ``inner_tensor_specs`` in
  ``transformer_engine/pytorch/tensor/float8_tensor.py``, mirroring ``csrc/quantizer.cpp``; Blackwell needs
  none): the cast reads the bf16
  tensor (2 bytes per element) and writes two fp8 copies (1 + 1 bytes), 4 bytes per element, the traffic
  of a bf16 copy. The per-tensor amax that sets the next scale is reduced inside the same kernel. Weights
  are cast once per step (TE's "FP8 weight caching (is_first_microbatch)", ``module/linear.py``: Megatron
  marks the first microbatch so later ones reuse the fp8 weights); inputs and output gradients every
  microbatch. dcsim prices each cast as a bf16 ``copy`` of the tensor on the device's measured copy curve (an
  upper bound: TE fuses some input casts into the preceding LayerNorm or activation kernel).

``fp8_attention: true`` (TE's ``fp8_dpa``) also runs the attention core in fp8, plus a cast of its Q, K and
V inputs in the forward and of its output gradient in the backward.

``tf32`` is fp32 training with TF32 tensor cores for the products (``torch.backends.cuda.matmul.allow_tf32``
and ``torch.backends.cudnn.allow_tf32``): every GEMM, batched product and convolution runs in tf32 (fp32
storage, 4 bytes per element), everything else in fp32; on a device without TF32 units it is fp32
(:meth:`PrecisionRecipe.for_device`). Mixed bf16 or fp16 and fp32 training build the op list at that
precision unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from dcsim.catalog import load_catalog
from dcsim.compute import Attention, Conv2d, Matmul, Pointwise, predict_many
from dcsim.models import LayerOp, ModelOps
from dcsim.parallel.stages import PARTS, PartTimes, layer_part

#: The precision a training precision builds its op list in (tf32 GEMMs read fp32 storage; fp8 training is
#: bf16 training whose transformer GEMMs the recipe then switches to fp8).
BASE_PRECISION = {"tf32": "fp32", "fp8": "bf16"}
#: Layer names whose GEMM stays bf16 under fp8: Megatron's MoE router is not a TE module
#: (``router_gating_linear``, ``megatron/core/transformer/moe/router.py``, Megatron-Core 0.16.1).
BF16_GEMM_SUFFIXES = ("router",)
#: The cast that quantizes a tensor for an fp8 GEMM is priced as this op over the tensor's elements: a bf16
#: ``copy`` moves 4 bytes per element, what ``cast_transpose`` moves (read 2, write 1 + 1; see the module
#: docstring).
CAST_KIND = "copy"
CAST_PRECISION = "bf16"


@dataclass(frozen=True)
class PrecisionRecipe:
    """What runs in which precision for a training ``precision`` (``fp32``, ``tf32``, ``bf16``, ``fp16``,
    ``fp8``); ``fp8_attention`` (fp8 only) runs the attention core in fp8 too."""

    precision: str
    fp8_attention: bool = False

    def __post_init__(self) -> None:
        if self.fp8_attention and self.precision != "fp8":
            raise ValueError(f"fp8_attention needs precision fp8 (got {self.precision!r})")

    @property
    def base_precision(self) -> str:
        """The precision the step's op list is built in."""
        return BASE_PRECISION.get(self.precision, self.precision)

    @property
    def fp8(self) -> bool:
        """True for Transformer Engine's fp8 recipe."""
        return self.precision == "fp8"

    def for_device(self, device: str) -> PrecisionRecipe:
        """The recipe as ``device`` runs it: tf32 where the catalog gives it no TF32 units (CPUs, V100, T4; a
        device known only by its profile) is fp32, as torch's ``allow_tf32`` flags do nothing there."""
        if self.precision == "tf32":
            accelerator = load_catalog().accelerators.get(device)
            if accelerator is None or accelerator.kind == "cpu" or "tf32" not in accelerator.peak_tflops:
                return PrecisionRecipe("fp32")
        return self

    def apply(self, ops: ModelOps) -> ModelOps:
        """``ops`` (built at :attr:`base_precision`) with the recipe's products switched: fp8's GEMMs (and
        attention core) to fp8, tf32's GEMMs and convolutions to tf32; other precisions unchanged."""
        if self.precision not in ("fp8", "tf32"):
            return ops
        layers = tuple(self._converted(layer) for layer in ops.layers)
        return ModelOps(ops.name.replace(f" {self.base_precision}", f" {self.precision}"), layers)

    def _converted(self, layer: LayerOp) -> LayerOp:
        if self.precision == "tf32":
            switch = isinstance(layer.op, Matmul | Conv2d)
        else:
            switch = is_fp8_gemm(layer) or (self.fp8_attention and _is_attention_core(layer))
        return dataclasses.replace(layer, op=layer.op.with_precision(self.precision)) if switch else layer


def is_fp8_gemm(layer: LayerOp) -> bool:
    """True for a GEMM Transformer Engine runs in fp8: a dense ``nn.Linear``-style product (kind ``matmul``)
    inside the repeated layers, other than the MoE router."""
    op = layer.op
    return (
        isinstance(op, Matmul)
        and op.kind == "matmul"
        and layer_part(layer) == "block"
        and not layer.name.endswith(BF16_GEMM_SUFFIXES)
    )


def _is_attention_core(layer: LayerOp) -> bool:
    return isinstance(layer.op, Attention) and layer_part(layer) == "block"


@dataclass(frozen=True)
class CastOp:
    """One quantizing cast of a step: ``op`` priced ``count`` times, in ``phase`` (``fwd`` per microbatch,
    ``bwd`` per microbatch, ``step``: once per step, the weights), in ``part`` of the model."""

    part: str
    phase: str
    op: Pointwise
    count: int


def cast_ops(ops: ModelOps) -> list[CastOp]:
    """The casts an fp8 op list (after :meth:`PrecisionRecipe.apply`) runs: per fp8 GEMM of ``m x k`` input
    and ``k x n`` weight, the input (``m*k``) each forward, the weight (``k*n``) once per step and the output
    gradient (``m*n``) each backward; per fp8 attention core, its Q, K and V each forward and its output
    gradient each backward."""
    out: list[CastOp] = []
    for layer in ops.layers:
        op = layer.op
        if op.precision != "fp8" or layer.backward_only:
            continue
        part = layer_part(layer)
        sizes: tuple[tuple[str, int], ...]
        if isinstance(op, Matmul):
            sizes = (("fwd", op.m * op.k), ("step", op.k * op.n), ("bwd", op.m * op.n))
        elif isinstance(op, Attention):
            kv = op.kv_heads or op.heads
            qkv = op.batch * op.head_dim * (op.heads * op.q_len + 2 * kv * op.kv_len)
            sizes = (("fwd", qkv), ("bwd", op.batch * op.heads * op.q_len * op.head_dim))
        else:
            continue
        out += [CastOp(part, phase, Pointwise(CAST_KIND, n, CAST_PRECISION), layer.count) for phase, n in sizes]
    return out


@dataclass(frozen=True)
class CastTimes:
    """Seconds of an fp8 step's casts by part: ``fwd_s`` and ``bwd_s`` per microbatch, ``weights_s`` per step."""

    fwd_s: dict[str, float]
    bwd_s: dict[str, float]
    weights_s: dict[str, float]

    @property
    def weights_total_s(self) -> float:
        """The weight casts of every part, seconds per step."""
        return sum(self.weights_s.values())


NO_CASTS = CastTimes(dict.fromkeys(PARTS, 0.0), dict.fromkeys(PARTS, 0.0), dict.fromkeys(PARTS, 0.0))


def cast_times(ops: ModelOps, device: str) -> CastTimes:
    """The casts of ``ops`` (:func:`cast_ops`) priced by the cost model on ``device``."""
    return _cast_times(ops, device)


@functools.lru_cache(maxsize=1024)
def _cast_times(ops: ModelOps, device: str) -> CastTimes:
    casts = cast_ops(ops)
    if not casts:
        return NO_CASTS
    seconds = predict_many([c.op for c in casts], device)
    by_phase: dict[str, dict[str, float]] = {phase: dict.fromkeys(PARTS, 0.0) for phase in ("fwd", "bwd", "step")}
    for cast, s in zip(casts, seconds, strict=True):
        by_phase[cast.phase][cast.part] += float(s) * cast.count
    return CastTimes(by_phase["fwd"], by_phase["bwd"], by_phase["step"])


def with_casts(times: PartTimes, casts: CastTimes) -> PartTimes:
    """``times`` with the per-microbatch casts added to each part's forward and backward (the weights' casts,
    once per step, are added by :func:`spread_per_step`)."""
    if casts is NO_CASTS:
        return times
    fwd = {p: times.fwd_s[p] + casts.fwd_s[p] for p in PARTS}
    bwd = {p: times.bwd_s[p] + casts.bwd_s[p] for p in PARTS}
    return dataclasses.replace(times, fwd_s=fwd, bwd_s=bwd)


def spread_per_step(fwd_s: Iterable[float], seconds: float, microbatches: int) -> list[float]:
    """Chunk forward seconds with ``seconds`` of once-per-step work (the weights' casts) added, spread over
    the ``microbatches`` and over the chunks in proportion to their forward time (each device casts the
    weights it holds, whose share follows its layers)."""
    chunks = list(fwd_s)
    total = sum(chunks)
    if seconds <= 0 or total <= 0:
        return chunks
    return [f + seconds * f / total / microbatches for f in chunks]
