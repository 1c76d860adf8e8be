"""Memory per accelerator for a training plan: weights, gradients, optimizer state and activations.

The figure reported is the most loaded rank's: every pipeline stage is evaluated and the largest total is
kept (stage 0 usually: it holds the most in-flight microbatches and the input embedding; the last stage
holds the output layer and its logits, and wins for large vocabularies on short stages).

Model state, per parameter held by the rank (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward
Training Trillion Parameter Models", Section 3.1): mixed-precision training (``bf16``/``fp16``) keeps
16-bit weights (2 bytes) and 16-bit gradients (2 bytes) plus ``K`` bytes of optimizer state that include
the fp32 master weights; fp32 training (``fp32``/``tf32``) keeps 4 + 4 bytes and no master copy.

============  ==========================================  ===========================================
optimizer     K, mixed precision                          K, fp32
============  ==========================================  ===========================================
``adamw``     12 (master 4 + m 4 + v 4)                   8 (m + v)
``sgd``       8 (master 4 + momentum 4)                   4 (momentum)
``adafactor`` 4 (master) + 4 x factored second moments    4 x factored second moments
============  ==========================================  ===========================================

Adafactor (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
Algorithm 4, no first moment: beta_1 = 0 by default) keeps, for an r x c matrix, r + c second-moment
statistics instead of r * c; vectors (biases, norm scales) keep a full-size second moment. Tensors of more
than two dimensions (convolution kernels) are factored over their last two dimensions, as the reference
implementations do.

ZeRO (ibid., Section 5, Figure 1) shards over the ``dp`` data-parallel ranks: stage 1 the optimizer state
(``2 + 2 + K/dp``), stage 2 also the gradients (``2 + (2 + K)/dp``), stage 3 (FSDP) also the weights
(``(2 + 2 + K)/dp``) bytes per parameter. Tensor parallelism divides the sharded matrices ``tp`` ways (norms
stay replicated, as in the op list), pipeline parallelism gives each stage its layers (the plan's split,
:func:`~dcsim.parallel.stages.chunk_layers`: even, explicit or balanced; the embedding on the first stage,
the output layer on the last; with tied embeddings and ``pp > 1`` the last stage keeps its own copy of the
table), and expert parallelism divides MoE expert weights ``ep`` ways (their ZeRO shards are
over the ``dp / ep`` replicas of each expert).

Activations of transformer layers (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models", Section 4, Eq. 1-2 and Table 2), bytes per layer for one microbatch of ``b`` sequences
of ``s`` tokens, hidden size ``h``, ``a`` heads, 16-bit activations, tensor-parallel size ``t``::

    no parallelism                    s*b*h*(34 + 5*a*s/h)            (Eq. 1)
    tensor parallel                   s*b*h*(10 + 24/t + 5*a*s/(h*t)) (Eq. 2)
    tensor + sequence parallel        s*b*h/t*(34 + 5*a*s/h)
    selective recompute               drops the 5*a*s/h term (the attention scores, softmax, dropout)
    full recompute                    2*s*b*h (the layer input; /t with sequence parallelism)

The paper's accounting is for unfused ("eager") attention. With ``attention="flash"`` (a fused, tiled kernel:
FlashAttention, Dao et al. 2022; see :mod:`dcsim.parallel.attention`) no ``s x s`` tensor is kept: the
backward recomputes the scores from Q, K, V, the output (the projection input, already counted) and the
softmax's fp32 log-sum-exp per head and query (``4*a*s*b/t`` bytes), and regenerates the dropout mask from
its seed. So without recompute a layer keeps the selective-recompute row plus the log-sum-exp,
``s*b*h*(10 + 24/t) + 4*a*s*b/t`` (``/t`` on the ``10`` with sequence parallelism): linear in ``s``.
Selective recompute with FlashAttention re-runs the kernel from Q, K and V and keeps no statistics.

Context parallelism (``cp`` ranks share each sequence, :mod:`dcsim.parallel.context_parallel`) gives every
rank ``s/cp`` tokens: every per-token term above is divided by ``cp`` (the input and output layers' too).
Eager attention would keep its ``s/cp`` queries' scores against all ``s`` keys, ``5*a*(s/cp)*s*b`` bytes;
plans refuse that combination (ring attention runs on fused kernels), the formula covers it for completeness.

The ``34`` is the paper's sum, generalised here term by term so that other shapes are counted, not
assumed: layer-norm inputs 2 x 2sbh, QKV input 2sbh, MLP input 2sbh and two dropout masks 2 x sbh (the
``10`` that tensor parallelism replicates); Q and K 2sb(h + h_kv), V 2sb*h_kv, the projection input 2sbh,
the MLP's activation input and second-linear input 2 x 2sbf (the ``24``, for h_kv = h and f = 4h); the
attention block's softmax output 2as^2b, dropout mask as^2b and dropout output 2as^2b (the ``5as/h``).
Grouped-query attention narrows K and V to h_kv; a gated (SwiGLU) MLP stores its fused gate-and-up output
(2 x 2sbf) and the second linear's input (2sbf); without dropout the masks and the dropout output vanish
(the scores term becomes 2as^2b). fp32 training stores 4-byte activations (masks stay 1 byte).

Section 4.3 of the paper adds the input and output layers: the embedding dropout mask (sbh per in-flight
microbatch on the first stage, /t with sequence parallelism) and, on the last stage, the final norm and
output-projection inputs (2 x 2sbh, /t with sequence parallelism) and the fp32 logits of the cross-entropy
(4sbv/t): 4sbh/t*(1 + v/h) with sequence parallelism.

In-flight microbatches (the factor on a stage's per-microbatch activations): 1 without pipelining; with
``pp`` stages, 1F1B keeps ``min(pp - i, m)`` on stage ``i`` (``pp`` on stage 0; Narayanan et al. 2021,
Section 2.2.1); the interleaved schedule keeps ``2*(pp - i - 1) + (v - 1)*pp + 1`` model chunks of
``1/v`` of the stage's layers (Megatron-LM's warm-up count), which on stage 0 is Korthikanti et al.'s
``pp*(1 + (pp - 1)/(pp*v))``; GPipe keeps all ``m`` microbatches.

Model state with context parallelism: the ``cp`` ranks of a sequence hold the same weights, so ZeRO shards
over ``dp * cp`` ranks (Megatron-LM's distributed optimizer over its data-parallel-with-context-parallel
group).

The closed form covers stacks of identical decoder or encoder layers (GPT, BERT, Llama, Mixtral, and ViT
with ``s`` = patches + class token; BERT's masked-LM head is counted as the decoder output layer above).
Other models (ResNet; encoder-decoder models such as T5 and Whisper, with cross-attention and two sequence
lengths) use their op list instead: the forward ops' ``allocations`` (every output a backward pass needs)
summed, times the microbatch size and the in-flight microbatches; a pipeline stage gets its layers' fraction of
the repeated layers' share (an average: ResNet stages differ in size). Recompute is modelled for the closed
form only. Not counted anywhere:
framework workspace, communication buffers, ZeRO-3's gathered working layer, the transient activations of
the layer being recomputed, and allocator fragmentation; ``fits`` takes a ``reserved_gb`` for them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dcsim.catalog import Accelerator
from dcsim.catalog.entries import BYTES_PER_GB
from dcsim.compute.ops import BYTES_PER_ELEMENT, Conv2d, Embedding, Matmul, Normalization
from dcsim.models import ModelConfig, TransformerConfig, ViTConfig, transformer_like
from dcsim.models.base import LayerOp
from dcsim.parallel.attention import check_attention
from dcsim.parallel.layer_memory import stack_activation_bytes, uses_layer_stack
from dcsim.parallel.optimizer_step import OPTIMIZERS
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.stages import PARTS, block_layers, chunk_layers, device_layers, layer_part, step_ops

#: Precisions the memory model covers: 16-bit mixed precision, or fp32 (tf32 computes on fp32 storage).
TRAINING_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
MIXED_PRECISIONS = ("bf16", "fp16")
MASK_BYTES = 1.0  # a dropout mask keeps one byte per element
LOGIT_BYTES = 4.0  # the cross-entropy keeps fp32 logits (Korthikanti et al. 2022, Section 4.3)
#: FlashAttention keeps the softmax's log-sum-exp per (batch, head, query) in fp32 for its backward
#: (flash-attention's ``softmax_lse``, shape batch x heads x seq_len, float32).
LSE_BYTES = 4.0


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes on the most loaded accelerator of a training plan (pipeline ``stage``).

    ``activations_bytes`` already includes the pipeline's ``in_flight_microbatches`` (the factor on
    ``activations_per_microbatch_bytes``, reported for inspection)."""

    stage: int
    weights_bytes: float
    gradients_bytes: float
    optimizer_state_bytes: float
    activations_bytes: float
    activations_per_microbatch_bytes: float
    in_flight_microbatches: float

    @property
    def model_state_bytes(self) -> float:
        """Weights, gradients and optimizer state."""
        return self.weights_bytes + self.gradients_bytes + self.optimizer_state_bytes

    @property
    def total_bytes(self) -> float:
        """Everything counted, bytes."""
        return self.model_state_bytes + self.activations_bytes

    def to_gb(self) -> dict[str, float]:
        """The breakdown in GB (10^9 bytes): weights, gradients, optimizer_state, activations, total."""
        return {
            "weights": self.weights_bytes / BYTES_PER_GB,
            "gradients": self.gradients_bytes / BYTES_PER_GB,
            "optimizer_state": self.optimizer_state_bytes / BYTES_PER_GB,
            "activations": self.activations_bytes / BYTES_PER_GB,
            "total": self.total_bytes / BYTES_PER_GB,
        }


def fits(memory: MemoryBreakdown, accelerator_memory_gb: float | Accelerator, reserved_gb: float = 0.0) -> bool:
    """True when ``memory`` plus ``reserved_gb`` GB (10^9 bytes: runtime context, buffers, fragmentation) fits
    the accelerator's memory: a number of GB (10^9 bytes) or a catalog :class:`~dcsim.catalog.Accelerator`
    (its :attr:`~dcsim.catalog.Accelerator.memory_bytes`, the capacity serving reads too: 80 GiB on an A100)."""
    if isinstance(accelerator_memory_gb, Accelerator):
        capacity_bytes = accelerator_memory_gb.memory_bytes
    else:
        capacity_bytes = accelerator_memory_gb * BYTES_PER_GB
    if not capacity_bytes > 0:
        raise ValueError(f"accelerator_memory_gb must be positive (got {accelerator_memory_gb!r})")
    if reserved_gb < 0:
        raise ValueError(f"reserved_gb must be >= 0 (got {reserved_gb!r})")
    return memory.total_bytes <= capacity_bytes - reserved_gb * BYTES_PER_GB


def state_bytes_per_param(optimizer: str, precision: str) -> tuple[float, float, float]:
    """(weights, gradients, optimizer state) bytes per parameter without ZeRO (ZeRO's 2 + 2 + K).

    For ``adafactor`` the optimizer figure is the master copy only; its factored statistics are counted
    per matrix (:func:`training_memory`)."""
    _check_choice("optimizer", optimizer, OPTIMIZERS)
    _check_choice("precision", precision, TRAINING_PRECISIONS)
    mixed = precision in MIXED_PRECISIONS
    element = BYTES_PER_ELEMENT[precision]
    master = 4.0 if mixed else 0.0
    state = {"adamw": 8.0, "sgd": 4.0, "adafactor": 0.0}[optimizer]
    return element, element, master + state


def zero_model_state_bytes(
    params: float, dp: int = 1, zero_stage: int = 0, optimizer: str = "adamw", precision: str = "bf16"
) -> tuple[float, float, float]:
    """(weights, gradients, optimizer state) bytes on one rank holding ``params`` parameters (before ZeRO),
    with ZeRO ``zero_stage`` sharding over ``dp`` ranks (Rajbhandari et al. 2020, Section 5, Figure 1:
    stage 1 ``2 + 2 + K/dp``, stage 2 ``2 + (2 + K)/dp``, stage 3 ``(2 + 2 + K)/dp`` bytes per parameter for
    mixed precision). Adafactor's factored statistics are not per parameter and are not included here."""
    if params < 0:
        raise ValueError(f"params must be >= 0 (got {params!r})")
    if not isinstance(dp, int) or dp < 1:
        raise ValueError(f"dp must be a positive integer (got {dp!r})")
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0, 1, 2 or 3 (got {zero_stage!r})")
    w, g, k = state_bytes_per_param(optimizer, precision)
    return (
        _shard(w * params, dp, zero_stage >= 3),
        _shard(g * params, dp, zero_stage >= 2),
        _shard(k * params, dp, zero_stage >= 1),
    )


def _shard(value: float, ways: int, on: bool) -> float:
    return value / ways if on else value


def transformer_layer_activation_bytes(
    seq_len: int,
    batch: int,
    hidden: int,
    heads: int,
    tp: int = 1,
    *,
    sequence_parallel: bool = False,
    recompute: str = "none",
    ffn_hidden: int | None = None,
    kv_hidden: int | None = None,
    gated_mlp: bool = False,
    experts_per_token: int = 1,
    dropout: bool = True,
    bytes_per_element: float = 2.0,
    attention: str = "flash",
    cp: int = 1,
) -> float:
    """Activation bytes one transformer layer keeps for the backward pass on one rank (Korthikanti et al. 2022,
    Eq. 1-2, Table 2, generalised term by term; see the module docstring). ``ffn_hidden`` defaults to
    ``4*hidden`` and ``kv_hidden`` (the K/V width, kv_heads * head_dim) to ``hidden``; a mixture-of-experts
    layer keeps the MLP activations of its ``experts_per_token`` experts for every token. ``attention``
    ``eager`` keeps the ``s x s`` scores per head, ``flash`` only the softmax statistics; ``cp`` context-
    parallel ranks each keep ``seq_len / cp`` tokens. With ``attention="eager"``, ``dropout`` and 2-byte
    elements this reproduces the paper's ``s*b*h*(10 + 24/t + 5*a*s/(h*t))`` exactly."""
    checks = (("seq_len", seq_len), ("batch", batch), ("hidden", hidden), ("heads", heads), ("tp", tp), ("cp", cp))
    for name, value in (*checks, ("experts_per_token", experts_per_token)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer (got {value!r})")
    _check_choice("recompute", recompute, ("none", "selective", "full"))
    check_attention(attention)
    if seq_len % cp:
        raise ValueError(f"cp ({cp}) must divide seq_len ({seq_len})")
    s, b, h, a, t, e = seq_len // cp, batch, hidden, heads, tp, bytes_per_element  # s: this rank's tokens
    f = 4 * h if ffn_hidden is None else ffn_hidden
    h_kv = h if kv_hidden is None else kv_hidden
    sbh = float(s * b * h)
    split_replicated = t if sequence_parallel else 1
    if recompute == "full":
        return e * sbh / split_replicated
    masks = 2 * MASK_BYTES * sbh if dropout else 0.0
    replicated = 4 * e * sbh + masks  # two norm inputs, the QKV and MLP inputs; two dropout masks
    mlp = (3 if gated_mlp else 2) * e * s * b * f * experts_per_token  # MoE: each token runs k experts
    sharded = e * s * b * (h + h_kv) + e * s * b * h_kv + e * sbh + mlp  # Q, K; V; projection input; MLP
    scores = 0.0
    if recompute == "none" and attention == "eager":
        per_score = (2 * e + MASK_BYTES) if dropout else e  # softmax output (+ dropout mask and output)
        scores = per_score * a * s * seq_len * b  # this rank's queries against every key
    elif recompute == "none":
        scores = LSE_BYTES * a * s * b  # FlashAttention's fp32 log-sum-exp per head and query
    return replicated / split_replicated + (sharded + scores) / t


def in_flight_microbatches(plan: ParallelPlan, stage: int = 0, microbatches: int | None = None) -> float:
    """Microbatches whose activations pipeline ``stage`` holds at its peak, in units of the stage's whole
    set of layers (see the module docstring). ``microbatches`` (per step and pipeline) caps the count and is
    required for ``gpipe``."""
    p, v = plan.pp, plan.virtual_stages
    if not 0 <= stage < p:
        raise ValueError(f"stage must be in 0..{p - 1} (got {stage!r})")
    if microbatches is not None and (not isinstance(microbatches, int) or microbatches < 1):
        raise ValueError(f"microbatches must be a positive integer (got {microbatches!r})")
    if p == 1:
        return 1.0
    if plan.schedule == "gpipe":
        if microbatches is None:
            raise ValueError("global_batch_size is needed for schedule gpipe (it keeps every microbatch in flight)")
        return float(microbatches)
    if plan.schedule == "1f1b" or v == 1:
        held = p - stage
        return float(held if microbatches is None else min(held, microbatches))
    chunks = 2 * (p - stage - 1) + (v - 1) * p + 1
    if microbatches is not None:
        chunks = min(chunks, microbatches * v)
    return chunks / v


@dataclass(frozen=True)
class _Part:
    """Parameters (dense and expert), Adafactor second-moment elements and forward allocations of one part."""

    params: float = 0.0
    expert_params: float = 0.0
    factored: float = 0.0
    expert_factored: float = 0.0

    def __add__(self, other: _Part) -> _Part:
        return _Part(
            self.params + other.params,
            self.expert_params + other.expert_params,
            self.factored + other.factored,
            self.expert_factored + other.expert_factored,
        )

    def scaled(self, factor: float) -> _Part:
        return _Part(
            self.params * factor,
            self.expert_params * factor,
            self.factored * factor,
            self.expert_factored * factor,
        )


def training_memory(
    model: ModelConfig,
    plan: ParallelPlan,
    *,
    seq_len: int | None = None,
    global_batch_size: int | None = None,
    precision: str = "bf16",
    optimizer: str = "adamw",
    dropout: bool = True,
    stage: int | None = None,
    attention: str = "flash",
) -> MemoryBreakdown:
    """Memory of pipeline ``stage`` (default: the most loaded stage) for training ``model`` under ``plan``.

    ``model`` is a zoo config (a transformer with ``layers``, ``hidden``, ``heads``, ``ffn_hidden``,
    ``vocab``; or an op-list model such as ResNet, whose ``seq_len`` is the image size). ``seq_len`` defaults
    to the model's ``default_seq_len`` or ``max_seq_len``; ``global_batch_size`` (sequences per step) gives
    the microbatch count that caps the in-flight microbatches (required for ``gpipe``). ``dropout`` follows
    the paper (GPT-3, BERT); set it False for models trained without dropout (Llama). ``attention`` is
    ``flash`` (fused kernels, no ``s x s`` scores) or ``eager`` (see the module docstring); op-list models
    count their op list's fused attention either way. ``plan.cp`` splits each sequence over context-parallel
    ranks (closed-form models only). Stage ``i`` holds the layers the plan's split gives it
    (:func:`~dcsim.parallel.stages.chunk_layers` without predicted times: a ``balanced`` split here counts the
    embedding and the loss as a layer each; ``evaluate_plan`` passes the split the step was priced with).
    """
    _check_choice("precision", precision, TRAINING_PRECISIONS)
    check_attention(attention)
    _check_choice("optimizer", optimizer, OPTIMIZERS)
    stack = _korthikanti_stack(model)
    closed_form = stack is not None
    if seq_len is None:
        seq_len = model.default_seq_len
    if not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer (got {seq_len!r})")
    microbatches = None if global_batch_size is None else plan.microbatches(global_batch_size)
    if not closed_form and plan.recompute != "none":
        raise ValueError(
            f"recompute {plan.recompute!r} is modelled for decoder/encoder transformer layers only "
            f"(model {model.name}: use recompute none)"
        )
    if not closed_form and plan.cp > 1:
        raise ValueError(f"cp is modelled for decoder/encoder transformer layers only (model {model.name}: use cp 1)")
    layers = block_layers(model)
    held_layers = device_layers(chunk_layers(plan, layers), plan.pp)  # ValueError for a split that does not fit
    parts, allocations = _model_parts(model, plan.tp, plan.ep, seq_len, precision)
    if stack is not None:
        tokens = _sequence_tokens(stack, seq_len)
        activations = _transformer_activations(stack, plan, tokens, precision, dropout, attention)
    else:  # the op list's forward allocations, linear in the batch
        activations = {part: size * plan.microbatch_size for part, size in allocations.items()}
    stages = range(plan.pp) if stage is None else [stage]
    if stage is not None and not 0 <= stage < plan.pp:
        raise ValueError(f"stage must be in 0..{plan.pp - 1} (got {stage!r})")
    results = [
        _stage_memory(model, plan, i, held_layers[i] / layers, parts, activations, microbatches, precision, optimizer)
        for i in stages
    ]
    return max(results, key=lambda m: (m.total_bytes, -m.stage))


def _stage_memory(
    model: ModelConfig,
    plan: ParallelPlan,
    stage: int,
    share: float,
    parts: Mapping[str, _Part],
    activations: Mapping[str, float],
    microbatches: int | None,
    precision: str,
    optimizer: str,
) -> MemoryBreakdown:
    first, last = stage == 0, stage == plan.pp - 1
    held = parts["block"].scaled(share)
    if first:
        held = held + parts["pre"]
    if last:
        held = held + parts["post"]
        if plan.pp > 1 and _tied_embeddings(model):
            held = held + parts["tied"]
    replicas = plan.dp_cp  # ranks holding the same weights: ZeRO shards over them
    dense = zero_model_state_bytes(held.params, replicas, plan.zero_stage, optimizer, precision)
    expert = zero_model_state_bytes(held.expert_params, replicas // plan.ep, plan.zero_stage, optimizer, precision)
    weights, gradients, optimizer_bytes = (a + b for a, b in zip(dense, expert, strict=True))
    if optimizer == "adafactor":  # fp32 factored statistics, sharded like the rest of the optimizer state
        optimizer_bytes += 4.0 * (
            _shard(held.factored, replicas, plan.zero_stage >= 1)
            + _shard(held.expert_factored, replicas // plan.ep, plan.zero_stage >= 1)
        )
    in_flight = in_flight_microbatches(plan, stage, microbatches)
    body = activations["block"] * share * in_flight
    per_microbatch = activations["block"] * share
    if first:
        body += activations["pre"] * in_flight
        per_microbatch += activations["pre"]
    if last:
        body += activations["post"] * in_flight
        per_microbatch += activations["post"]
    return MemoryBreakdown(stage, weights, gradients, optimizer_bytes, body, per_microbatch, in_flight)


def _transformer_activations(
    model: TransformerConfig | ViTConfig,
    plan: ParallelPlan,
    seq_len: int,
    precision: str,
    dropout: bool,
    attention: str,
) -> dict[str, float]:
    """Per-microbatch activation bytes of the ``pre``, all ``block`` layers and ``post`` parts on one rank."""
    b, h, t = plan.microbatch_size, int(model.hidden), plan.tp
    heads = int(model.heads)
    kv_heads = model.kv_heads
    e = BYTES_PER_ELEMENT[precision]
    per_layer = transformer_layer_activation_bytes(
        seq_len,
        b,
        h,
        heads,
        t,
        sequence_parallel=plan.sequence_parallel,
        recompute=plan.recompute,
        ffn_hidden=int(model.ffn_hidden),
        kv_hidden=kv_heads * (h // heads),
        gated_mlp=model.activation == "swiglu",
        experts_per_token=model.experts_per_token,
        dropout=dropout,
        bytes_per_element=e,
        attention=attention,
        cp=plan.cp,
    )
    s = seq_len // plan.cp  # this rank's tokens of each sequence
    split = t if plan.sequence_parallel else 1
    sbh = float(s * b * h)
    pre = MASK_BYTES * sbh / split if dropout else 0.0
    vocab = model.vocab
    post = 2 * e * sbh / split  # final norm input and output-projection input
    if vocab:
        post += LOGIT_BYTES * s * b * vocab / t
    block = per_layer * block_layers(model)
    if uses_layer_stack(model):  # MLA, shared experts, leading dense layers: term by term per layer kind
        block = stack_activation_bytes(
            model,
            s,
            b,
            t,
            sequence_parallel=plan.sequence_parallel,
            recompute=plan.recompute,
            dropout=dropout,
            bytes_per_element=e,
            keep_scores=recompute_keeps_scores(plan.recompute, attention),
        )
    return {"pre": pre, "block": block, "post": post}


def recompute_keeps_scores(recompute: str, attention: str) -> bool:
    """Whether a layer keeps its attention score matrices for the backward: only an eager kernel without
    recompute does (a fused FlashAttention kernel keeps none; selective and full recompute drop them)."""
    return recompute == "none" and attention == "eager"


@functools.lru_cache(maxsize=256)
def _model_parts_cached(model: ModelConfig, tp: int, ep: int, seq_len: int, precision: str) -> tuple[Any, ...]:
    ops = step_ops(model, 1, seq_len, tp, precision, ep)
    parts = dict.fromkeys(PARTS, _Part())
    allocations = dict.fromkeys(PARTS, 0.0)
    for layer in ops.layers:
        part = layer_part(layer)
        if not layer.backward_only:
            allocations[part] += sum(layer.op.allocations) * layer.count
        if layer.params:
            count = layer.params * layer.count
            factored = _factored_elements(layer) * layer.count
            if _is_expert(layer):
                parts[part] = parts[part] + _Part(expert_params=count, expert_factored=factored)
            else:
                parts[part] = parts[part] + _Part(params=count, factored=factored)
    tied = _Part()
    shape = transformer_like(model)
    if shape is not None and shape.tied_embeddings and shape.vocab:
        vocab, hidden = shape.vocab // tp, shape.hidden
        tied = _Part(params=vocab * hidden, factored=vocab + hidden)
    return tuple((*parts.items(), ("tied", tied))), tuple(allocations.items())


def _model_parts(
    model: ModelConfig, tp: int, ep: int, seq_len: int, precision: str
) -> tuple[dict[str, _Part], dict[str, float]]:
    parts, allocations = _model_parts_cached(model, tp, ep, seq_len, precision)
    return dict(parts), dict(allocations)


def _is_expert(layer: LayerOp) -> bool:
    return layer.expert or "expert" in layer.name


def _factored_elements(layer: LayerOp) -> float:
    """Adafactor second-moment elements of one copy of ``layer``'s parameters."""
    op = layer.op
    bias = 0.0
    if isinstance(op, Matmul):
        bias = float(op.n) if layer.bias else 0.0
        return (float(op.k + op.n) if layer.weights else 0.0) + bias
    if isinstance(op, Embedding):
        return float(op.vocab + op.hidden)
    if isinstance(op, Conv2d):
        kernel_rows = op.out_channels * (op.in_channels // op.groups)  # (out, in, kh, kw): factor kh x kw
        bias = float(op.out_channels) if layer.bias else 0.0
        return float(kernel_rows * op.kernel * 2) + bias
    if isinstance(op, Normalization):
        return float(layer.params)
    return float(layer.params)


def _korthikanti_stack(model: ModelConfig) -> TransformerConfig | ViTConfig | None:
    """``model`` where it is a stack of identical decoder or encoder layers (GPT, BERT, Llama, Mixtral; ViT's
    encoder): the closed form. None for encoder-decoder models (cross-attention) and convolutional ones,
    which use their op list."""
    return model if isinstance(model, TransformerConfig | ViTConfig) else None


def _tied_embeddings(model: ModelConfig) -> bool:
    shape = transformer_like(model)
    return shape is not None and shape.tied_embeddings


def _sequence_tokens(model: TransformerConfig | ViTConfig, seq_len: int) -> int:
    """Tokens per sequence: ``seq_len``, or for a ViT (whose ``seq_len`` is the image side) the patches
    plus the class token."""
    return model.patches(seq_len) + 1 if isinstance(model, ViTConfig) else seq_len


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
