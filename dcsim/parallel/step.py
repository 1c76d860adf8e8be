"""One training step of a parallel plan: compute, TP/PP/DP/EP communication, pipeline schedule, optimizer.

:func:`estimate_step` prices a step of ``global_batch_size`` sequences for a (model, plan, accelerator,
placement):

1. Each pipeline chunk's per-microbatch forward and backward seconds come from the calibrated cost model
   (:mod:`dcsim.parallel.stages`), with recompute added to the backward, the op list in the precision
   recipe's precisions (:mod:`dcsim.parallel.precision_recipe`: fp8 GEMMs and their casts) and, on GPUs, each
   pass at least its kernel launches times the launch floor (:mod:`dcsim.parallel.launch_floor`).
2. Megatron tensor parallelism adds, per layer, two all-reduces of the layer's activations
   (``microbatch * seq_len * hidden`` elements) in the forward and two in the backward (two more under full
   recompute); with sequence parallelism each becomes a reduce-scatter plus an all-gather (Korthikanti et al.
   2022, Section 4.2). They block compute (exposed) unless ``overlap.tp`` pipelines the sequence-parallel
   ones with their GEMMs (:mod:`dcsim.parallel.overlap`). Expert parallelism adds two all-to-alls per MoE layer
   and pass (:mod:`dcsim.parallel.moe`: flat, or DeepSeek's node-limited two-hop dispatch). Their times
   come from the flow-level network model on the ranks' actual accelerators, with every
   TP (or EP) group that shares those servers running at the same time (:class:`~dcsim.parallel.comm.CommModel`).
   Context parallelism (:mod:`dcsim.parallel.context_parallel`) gives each rank ``seq_len / cp`` tokens and
   passes KV chunks around a ring per layer; the hops not hidden behind the attention steps count here too.
3. Pipeline stages pass ``microbatch * seq_len * hidden / tp`` activations (Megatron's scatter-gather
   optimisation) between consecutive stages, timed on the network the same way, and run the schedule
   (:mod:`dcsim.parallel.pipeline`): ``fidelity="detailed"`` simulates it microbatch by microbatch in SimPy,
   ``"fast"`` uses the closed form (the two agree within a few percent; tests hold them to it).
4. Data parallelism all-reduces each stage's gradients (ZeRO 1/2: reduce-scatter plus all-gather, the same
   volume) across its data-parallel group, all tensor ranks of the stage together; with ``overlap_dp`` in
   buckets as the stage's last backward produces them. ZeRO-3 gathers the weights before each microbatch's
   forward and backward and reduce-scatters its gradients, overlapped with that microbatch's compute, which
   they slow by their share of the memory bandwidth (:mod:`dcsim.parallel.overlap`).
5. The optimizer step (:mod:`dcsim.parallel.optimizer_step`) over the rank's (ZeRO-sharded) parameters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

from dcsim.catalog import load_catalog
from dcsim.compute import BYTES_PER_ELEMENT, Op, Pointwise, predict_many
from dcsim.models import ModelConfig, TransformerConfig, transformer_like
from dcsim.parallel.attention import check_attention, default_attention
from dcsim.parallel.comm import CommModel
from dcsim.parallel.context_parallel import check_context_parallel, context_parallel_ops, ring_exposure
from dcsim.parallel.launch_floor import kernel_launches, launch_floor_s, with_launch_floor
from dcsim.parallel.layout import RankLayout, sharing_servers
from dcsim.parallel.moe import ep_layer_times
from dcsim.parallel.overlap import (
    TP_OVERLAP_GEMMS,
    OverlapOptions,
    bucketed_exposed_s,
    collective_hbm_bytes,
    contended_exposed_s,
    hbm_share,
    tp_overlap_exposed_s,
)
from dcsim.parallel.pipeline import PipelineTiming, analytic_pipeline, simulate_pipeline
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.precision_recipe import PrecisionRecipe, cast_ops, cast_times, spread_per_step, with_casts
from dcsim.parallel.stages import (
    StageCompute,
    block_layers,
    chunk_layers,
    layer_part,
    part_times,
    split_problems,
    stage_compute,
    stage_costs,
    step_ops,
)

FIDELITIES = ("fast", "detailed")
# Precisions a step's GEMMs run in -> the element type of its activations, gradients and comm traffic
ACTIVATION_PRECISION = {"fp32": "fp32", "tf32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "bf16"}


@dataclass(frozen=True)
class TrainingSetup:
    """What is trained, independent of the plan: a model config (zoo or inline), the accelerator type, the
    global batch (sequences per step), sequence length, training precision and optimizer; ``teacher`` (a
    model config) for knowledge distillation: its forward pass runs on every microbatch, sharded like the
    student (same tensor-parallel degree, its layers split over the same pipeline stages); ``attention`` the
    kernel (``flash`` | ``eager``, :mod:`dcsim.parallel.attention`; default: flash where the accelerator
    supports it). ``fp8_attention`` runs the attention core in fp8 too (:mod:`dcsim.parallel.precision_recipe`);
    ``overlap`` says which communication overlaps compute (:mod:`dcsim.parallel.overlap`); ``cuda_graphs``
    removes the per-kernel launch floor (:mod:`dcsim.parallel.launch_floor`)."""

    model: ModelConfig
    accelerator: str
    global_batch_size: int
    seq_len: int
    precision: str = "bf16"
    optimizer: str = "adamw"
    teacher: ModelConfig | None = None
    attention: str | None = None
    fp8_attention: bool = False
    overlap: OverlapOptions = field(default_factory=OverlapOptions)
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.attention is None:
            object.__setattr__(self, "attention", default_attention(self.accelerator))
        check_attention(str(self.attention))
        if self.precision not in ACTIVATION_PRECISION:
            raise ValueError(f"precision must be one of {', '.join(ACTIVATION_PRECISION)} (got {self.precision!r})")
        PrecisionRecipe(self.precision, self.fp8_attention)  # ValueError: fp8_attention without fp8
        if self.global_batch_size < 1 or self.seq_len < 1:
            raise ValueError("global_batch_size and seq_len must be >= 1")

    @property
    def tokens_per_step(self) -> int:
        """Tokens a step trains on (images for vision models: one per sample)."""
        return self.model.tokens_per_sample(self.seq_len) * self.global_batch_size

    @property
    def recipe(self) -> PrecisionRecipe:
        """Which ops run in which precision."""
        return PrecisionRecipe(self.precision, self.fp8_attention)

    @property
    def launch_floor_s(self) -> float:
        """Seconds per kernel launch the step's parts cannot beat (0 with CUDA graphs or on a CPU)."""
        return 0.0 if self.cuda_graphs else launch_floor_s(self.accelerator)

    @property
    def element_bytes(self) -> float:
        """Bytes of one activation or gradient element."""
        return BYTES_PER_ELEMENT[ACTIVATION_PRECISION[self.precision]]


@dataclass(frozen=True)
class StepEstimate:
    """One step's time (s) and its breakdown on the busiest device: ``compute_s`` (forward, backward and
    recompute of all its microbatches), ``tp_exposed_s`` (tensor-, expert- and context-parallel communication,
    which blocks compute), ``pp_bubble_s`` (pipeline fill, drain and sends), ``dp_exposed_s`` (gradient reduction
    not hidden behind the backward, ZeRO-3 gathers included) and ``optimizer_s``. They add up to
    ``step_time_s``. ``layers_per_chunk``: the transformer layers of each pipeline chunk (pipeline order)."""

    step_time_s: float
    compute_s: float
    tp_exposed_s: float
    pp_bubble_s: float
    dp_exposed_s: float
    optimizer_s: float
    microbatches: int
    fidelity: str
    comm_s: dict[str, float] = field(default_factory=dict)
    layers_per_chunk: tuple[int, ...] = ()

    def breakdown(self) -> dict[str, float]:
        """The five parts of the step, seconds."""
        return {
            "compute_s": self.compute_s,
            "tp_exposed_s": self.tp_exposed_s,
            "pp_bubble_s": self.pp_bubble_s,
            "dp_exposed_s": self.dp_exposed_s,
            "optimizer_s": self.optimizer_s,
        }


def check_plan(setup: TrainingSetup, plan: ParallelPlan) -> list[tuple[str, str]]:
    """Problems with a plan for a setup, as (field, message): tp must divide heads, the pipeline must divide
    the layers, the global batch must split into microbatches that cover the pipeline, ... Empty if valid."""
    model = setup.model
    problems: list[tuple[str, str]] = []
    shape = transformer_like(model)
    if shape is None:
        if plan.tp > 1:
            problems.append(("parallelism.tp", f"must be 1 for {model.name}: tensor parallelism splits attention"))
        if plan.pp > 1:
            problems.append(("parallelism.pp", f"must be 1 for {model.name}: pipelines split transformer layers"))
    else:
        # DeepSeek-style expert width
        expert_ffn = model.expert_ffn_hidden if isinstance(model, TransformerConfig) else shape.ffn_hidden
        sizes = (
            ("heads", shape.heads),
            ("kv_heads", shape.kv_heads),
            ("ffn_hidden", shape.ffn_hidden),
            ("moe_ffn_hidden", expert_ffn),
        )
        for what, size in sizes:
            if size % plan.tp:
                problems.append(("parallelism.tp", f"must divide {what} ({size})"))
                break
    problems += [(f"parallelism.{name}", message) for name, message in split_problems(plan, block_layers(model))]
    experts = model.experts
    if plan.ep > 1 and experts % plan.ep:
        problems.append(("parallelism.ep", f"must divide the experts ({experts})"))
    problems += check_context_parallel(model, setup.seq_len, plan, str(setup.attention))
    per_replica = plan.dp * plan.microbatch_size
    if setup.global_batch_size % per_replica:
        problems.append(
            (
                "global_batch_size",
                f"{setup.global_batch_size} is not a multiple of dp * microbatch_size ({per_replica})",
            )
        )
    else:
        m = setup.global_batch_size // per_replica
        if plan.pp > 1 and m < plan.pp:
            problems.append(
                ("parallelism.microbatch_size", f"gives {m} microbatches, fewer than the pipeline's {plan.pp} stages")
            )
        if plan.schedule == "interleaved" and m % plan.pp:
            problems.append(
                ("parallelism.schedule", f"interleaved needs microbatches ({m}) to be a multiple of pp ({plan.pp})")
            )
    accelerator = load_catalog().accelerators.get(setup.accelerator)
    computes_in = setup.recipe.for_device(setup.accelerator).precision
    if accelerator is not None and computes_in not in accelerator.peak_tflops:
        supported = ", ".join(sorted(accelerator.peak_tflops))
        problems.append(("precision", f"{accelerator.id} has no {computes_in} units (supported: {supported})"))
    if setup.overlap.tp and plan.tp > 1 and not plan.sequence_parallel:
        problems.append(("overlap.tp", "needs parallelism.sequence_parallel: true (it splits the SP collectives)"))
    return problems


@dataclass(frozen=True)
class _ModelSlice:
    """Per-microbatch facts of the plan's op list on one shard."""

    times: Any
    layers: int
    params_by_part: dict[str, int]
    hidden: int | None
    flops_fwd: float
    weight_cast_s: float = 0.0
    gemm_s: dict[str, tuple[float, float]] = field(default_factory=dict)


@functools.lru_cache(maxsize=1024)
def _slice(
    model: ModelConfig,
    mbs: int,
    seq_len: int,
    tp: int,
    ep: int,
    recipe: PrecisionRecipe,
    device: str,
    floor_s: float = 0.0,
    cp: int = 1,
) -> _ModelSlice:
    """One microbatch on one shard (``seq_len / cp`` tokens of it under context parallelism) under ``recipe``:
    part times with the fp8 casts and the launch floor (``floor_s`` per kernel), the once-per-step weight
    casts, and one layer's (forward, backward) seconds of each GEMM tensor-parallel communication can
    overlap."""
    ops = recipe.apply(context_parallel_ops(model, mbs, seq_len, tp, recipe.base_precision, ep, cp))
    params = dict.fromkeys(("pre", "block", "post"), 0)
    gemms = []
    for layer in ops.layers:
        params[layer_part(layer)] += layer.params * layer.count
        if layer.name in TP_OVERLAP_GEMMS:
            gemms.append(layer)
    casts = cast_times(ops, device)
    times = with_casts(part_times(ops, device), casts)
    if floor_s > 0:
        extra = [(c.part, c.phase, c.count) for c in cast_ops(ops) if c.phase != "step"]
        times = with_launch_floor(times, kernel_launches(ops, extra), floor_s)
    gemm_s: dict[str, tuple[float, float]] = {}
    if gemms:
        seconds = predict_many([g.op for g in gemms] + [g.op.backward() for g in gemms], device)
        gemm_s = {g.name: (float(seconds[i]), float(seconds[len(gemms) + i])) for i, g in enumerate(gemms)}
    shape = transformer_like(model)
    hidden = None if shape is None else shape.hidden
    return _ModelSlice(times, block_layers(model), params, hidden, times.flops_fwd, casts.weights_total_s, gemm_s)


def _setup_slice(setup: TrainingSetup, plan: ParallelPlan) -> _ModelSlice:
    """The slice ``estimate_step`` prices for ``plan``: the precision recipe, the launch floor and ``cp``."""
    recipe, floor_s = setup.recipe.for_device(setup.accelerator), setup.launch_floor_s
    return _slice(
        setup.model, plan.microbatch_size, setup.seq_len, plan.tp, plan.ep, recipe, setup.accelerator, floor_s, plan.cp
    )


def layer_split(setup: TrainingSetup, plan: ParallelPlan) -> tuple[int, ...]:
    """Transformer layers of each of the plan's ``pp * virtual_stages`` chunks (pipeline order): the plan's
    list, an even split, or one balanced on the predicted compute (forward, backward and recompute) of a
    microbatch (:func:`~dcsim.parallel.stages.chunk_layers`). Blocking TP/EP communication is per layer, so
    leaving it out moves only the embedding's and the head's weight against a layer's; it keeps the split a
    function of the model and plan alone, so memory can be checked before the step is priced."""
    sl = _setup_slice(setup, plan)
    return chunk_layers(plan, sl.layers, stage_costs(sl.times, sl.layers, plan.recompute))


def stage_params(slice_: _ModelSlice, plan: ParallelPlan, split: tuple[int, ...] | None = None) -> list[int]:
    """Parameters held by each pipeline device (per TP shard; its chunks' layers, ``split[c]`` in chunk ``c``
    (default :func:`~dcsim.parallel.stages.chunk_layers`), plus the embedding on the first device and the
    head on the last)."""
    chunks = plan.pp * plan.virtual_stages
    split = chunk_layers(plan, slice_.layers) if split is None else split
    out = [0] * plan.pp
    for c in range(chunks):
        device = c % plan.pp
        out[device] += slice_.params_by_part["block"] * split[c] // slice_.layers
        if c == 0:
            out[device] += slice_.params_by_part["pre"]
        if c == chunks - 1:
            out[device] += slice_.params_by_part["post"]
    return out


#: Above this many parameters an optimizer step on an accelerator is priced as linear in the parameter
#: count: every kernel streams the tensors through memory (bandwidth-bound), so time per parameter is
#: constant there.
LINEAR_OPTIMIZER_PARAMS = 2**25


def fused_adamw_ops(params: int, master_weights: bool) -> list[tuple[Op, int]]:
    """A fused AdamW step (``torch.optim.AdamW(fused=True)``, Apex/Megatron ``FusedAdam``: one multi-tensor
    kernel) as the traffic it moves: it reads the fp32 weights (or master weights), gradients, first and
    second moments and writes weights and both moments, 7 fp32 elements per parameter (28 bytes); in mixed
    precision it reads 16-bit gradients and also writes the 16-bit weights, again 28 bytes. Priced as two
    fp32 ``add`` passes (3 elements each) plus one 16-bit ``copy`` (2 elements): 28 bytes per parameter."""
    del master_weights  # the same 28 bytes either way (see above)
    return [(Pointwise("add", params, "fp32"), 2), (Pointwise("copy", params, "bf16"), 1)]


def optimizer_seconds(setup: TrainingSetup, params: int, device: str) -> float:
    """Seconds of one optimizer step over ``params`` of the model's parameters on ``device``.

    On GPUs and TPUs AdamW is the fused kernel (:func:`fused_adamw_ops`), SGD and Adafactor the foreach
    kernels of :mod:`dcsim.parallel.optimizer_step`; on a CPU torch loops over the model's tensors one by
    one, so the step is priced per tensor (with the host's measured per-tensor Python cost) and scaled to
    the rank's share of the parameters."""
    master = setup.precision in ("bf16", "fp16", "fp8")
    weights = ACTIVATION_PRECISION[setup.precision]
    if load_catalog().accelerator(device).kind == "cpu":
        total = setup.model.param_count()
        step_s = _cpu_model_optimizer_s(setup.model, setup.seq_len, setup.optimizer, weights, master, device)
        return step_s * params / total
    if params > LINEAR_OPTIMIZER_PARAMS:
        base = _optimizer_seconds(setup.optimizer, LINEAR_OPTIMIZER_PARAMS, weights, master, device)
        return base * params / LINEAR_OPTIMIZER_PARAMS
    return _optimizer_seconds(setup.optimizer, params, weights, master, device)


@functools.lru_cache(maxsize=4096)
def _optimizer_seconds(optimizer: str, params: int, weights: str, master: bool, device: str) -> float:
    from dcsim.parallel.optimizer_step import optimizer_step_ops

    if optimizer == "adamw":
        ops = fused_adamw_ops(params, master)
    else:
        ops = optimizer_step_ops(optimizer, params, weights, master_weights=master, foreach=True)
    seconds = predict_many([op for op, _ in ops], device)
    return float(sum(float(s) * count for s, (_, count) in zip(seconds, ops, strict=True)))


@functools.lru_cache(maxsize=64)
def _cpu_model_optimizer_s(
    model: ModelConfig, seq_len: int, optimizer: str, weights: str, master: bool, device: str
) -> float:
    from dcsim.parallel.optimizer_step import HOST_CPU_PER_TENSOR_S, optimizer_step_time_s
    from dcsim.parallel.validation import param_shapes

    shapes = param_shapes(step_ops(model, 1, seq_len, 1, "fp32"))
    per_tensor_s = HOST_CPU_PER_TENSOR_S.get(optimizer, 0.0) if device == "host-cpu" else 0.0

    def predict(op: Op) -> float:
        return float(predict_many([op], device)[0])

    return optimizer_step_time_s(optimizer, shapes, predict, weights, master, per_tensor_s=per_tensor_s)


def estimate_step(
    setup: TrainingSetup,
    plan: ParallelPlan,
    layout: RankLayout,
    comm: CommModel,
    server_of: dict[str, str],
    fidelity: str = "fast",
) -> StepEstimate:
    """One step of ``plan`` on the accelerators of ``layout`` (see the module docstring). Raises ValueError
    naming the problem for an invalid plan."""
    if fidelity not in FIDELITIES:
        raise ValueError(f"fidelity must be one of {', '.join(FIDELITIES)} (got {fidelity!r})")
    problems = check_plan(setup, plan)
    if problems:
        raise ValueError(f"{problems[0][0]}: {problems[0][1]}")
    m = plan.microbatches(setup.global_batch_size)
    recipe, floor_s = setup.recipe.for_device(setup.accelerator), setup.launch_floor_s
    sl = _setup_slice(setup, plan)
    split = layer_split(setup, plan)
    stages = stage_compute(sl.times, sl.layers, plan, split)
    if sl.weight_cast_s:  # fp8: the weights are cast once per step
        stages = replace(stages, fwd_s=tuple(spread_per_step(stages.fwd_s, sl.weight_cast_s, m)))
    chunks = plan.pp * plan.virtual_stages
    if setup.teacher is not None:  # distillation: the teacher's forward per microbatch, split like the layers
        teacher = _slice(
            setup.teacher, plan.microbatch_size, setup.seq_len, plan.tp, 1, recipe, setup.accelerator, floor_s, plan.cp
        )
        extra = sum(teacher.times.fwd_s.values())
        teacher_fwd = tuple(
            f + (extra / (sl.layers / n) if n else 0.0) for f, n in zip(stages.fwd_s, split, strict=True)
        )
        stages = StageCompute(teacher_fwd, stages.bwd_s, stages.recompute_s)
    elem = setup.element_bytes
    act_bytes = plan.microbatch_size * (setup.seq_len // plan.cp) * (sl.hidden or 0) * elem  # this rank's tokens
    comm_s: dict[str, float] = {}

    # tensor (and expert) parallel communication per layer, blocking compute
    tp_fwd = tp_bwd = 0.0
    if plan.tp > 1:
        groups = sharing_servers(layout.tp_groups(0), server_of)
        if plan.sequence_parallel:
            one = comm.collective_s("reduce_scatter", groups, act_bytes) + comm.collective_s(
                "all_gather", groups, act_bytes
            )
        else:
            one = comm.collective_s("all_reduce", groups, act_bytes)
        comm_s["tp_collective_s"] = one
        tp_fwd = 2 * one
        tp_bwd = (4 if plan.recompute == "full" else 2) * one
        if setup.overlap.tp and plan.sequence_parallel:  # chunked and pipelined with the adjacent GEMMs
            gather = comm.collective_s("all_gather", groups, act_bytes)
            scatter = comm.collective_s("reduce_scatter", groups, act_bytes)
            tp_fwd, tp_bwd = tp_overlap_exposed_s(gather, scatter, sl.gemm_s, plan.tp)
            tp_bwd += tp_fwd if plan.recompute == "full" else 0.0
    experts = setup.model.experts
    if experts > 1 and plan.ep > 1:  # dispatch + combine, flat or node-limited (dcsim.parallel.moe)
        groups = sharing_servers(layout.ep_groups(0), server_of)
        ep = ep_layer_times(comm, setup.model, groups, server_of, act_bytes / plan.tp, setup.precision)
        comm_s["ep_all_to_all_s"] = ep.combine_s
        share = setup.model.moe_layers / sl.layers  # spread over all layers
        tp_fwd += ep.forward_s * share
        tp_bwd += (ep.backward_s + (ep.forward_s if plan.recompute == "full" else 0.0)) * share
    if plan.cp > 1:  # ring attention: KV hops not hidden behind the attention steps, per layer
        ring = ring_exposure(
            setup.model, plan, setup.seq_len, recipe.base_precision, setup.accelerator, elem, layout, comm, server_of
        )
        comm_s["cp_ring_hop_s"] = ring.hop_s
        tp_fwd += ring.fwd_exposed_s
        tp_bwd += ring.bwd_exposed_s
    fwd = [f + tp_fwd * n for f, n in zip(stages.fwd_s, split, strict=True)]
    bwd = [b + tp_bwd * n for b, n in zip(stages.bwd_s, split, strict=True)]

    # ZeRO-3: gather weights for forward and backward, reduce-scatter gradients, every microbatch
    params = stage_params(sl, plan, split)
    zero3_exposed = [0.0] * plan.pp
    if plan.zero_stage == 3 and plan.dp_cp > 1:
        bandwidth = load_catalog().accelerator(setup.accelerator).memory_bandwidth_gb_per_s * 1e9
        for d in range(plan.pp):
            groups = layout.dp_groups([d])
            nbytes = params[d] * elem
            gather = comm.collective_s("all_gather", groups, nbytes)
            scatter = comm.collective_s("reduce_scatter", groups, nbytes)
            busy = sum(fwd[c] + bwd[c] for c in range(d, chunks, plan.pp))
            total = 2 * gather + scatter
            # the prefetch slows the compute it overlaps: it takes a share of the memory bandwidth (overlap.py)
            share = hbm_share(3 * collective_hbm_bytes(nbytes, plan.dp), total, bandwidth)
            zero3_exposed[d] = contended_exposed_s(total, busy, share)
            comm_s[f"zero3_stage{d}_s"] = total
        for c in range(chunks):  # the exposed part lengthens every microbatch on that device
            bwd[c] += zero3_exposed[c % plan.pp] / plan.virtual_stages

    send_s = 0.0
    if plan.pp > 1:
        send_s = comm.send_s(layout.stage_pairs(0), act_bytes / plan.tp)
        comm_s["pp_send_s"] = send_s
    timing: PipelineTiming
    if fidelity == "detailed":
        timing = simulate_pipeline(fwd, bwd, m, plan.schedule if plan.pp > 1 else "gpipe", plan.pp, send_s)
    else:
        timing = analytic_pipeline(fwd, bwd, m, plan.pp, send_s, plan.schedule)

    # data-parallel gradient reduction at the end of each device's backward
    ends = list(timing.device_end_s)
    if plan.dp_cp > 1 and plan.zero_stage < 3:
        for d, nbytes in _distinct_stage_bytes(params, elem):
            groups = layout.dp_groups([d])

            def reduce(size: float, groups: Any = groups) -> float:
                return comm.collective_s("all_reduce", groups, size)

            for dev in _same_bytes(params, d):
                if plan.overlap_dp:  # buckets reduced as its last backward (its first chunk's) produces them
                    exposed, reduce_s = bucketed_exposed_s(nbytes, setup.overlap.bucket_bytes, bwd[dev], reduce)
                else:
                    exposed = reduce_s = reduce(nbytes)
                ends[dev] += exposed
            comm_s[f"dp_stage{d}_s"] = reduce_s
    pipeline_end = max(ends)

    sharded = plan.dp_cp if plan.zero_stage >= 1 else 1
    opt_s = max(optimizer_seconds(setup, max(1, p // sharded), setup.accelerator) for p in params)

    per_device = [0.0] * plan.pp
    comm_device = [0.0] * plan.pp
    for c in range(chunks):
        per_device[c % plan.pp] += stages.fwd_s[c] + stages.bwd_s[c]
        comm_device[c % plan.pp] += (tp_fwd + tp_bwd) * split[c]
    busiest = max(range(plan.pp), key=lambda d: per_device[d] + comm_device[d] + zero3_exposed[d])
    compute_s = m * per_device[busiest]
    tp_s = m * comm_device[busiest]
    zero3_s = m * zero3_exposed[busiest]
    bubble_s = timing.makespan_s - compute_s - tp_s - zero3_s
    bubble_s = bubble_s if bubble_s > 1e-9 * timing.makespan_s else 0.0  # rounding of a sum, not idle time
    dp_s = pipeline_end - timing.makespan_s + zero3_s
    return StepEstimate(
        step_time_s=pipeline_end + opt_s,
        compute_s=compute_s,
        tp_exposed_s=tp_s,
        pp_bubble_s=bubble_s,
        dp_exposed_s=dp_s,
        optimizer_s=opt_s,
        microbatches=m,
        fidelity=fidelity,
        comm_s=comm_s,
        layers_per_chunk=split,
    )


def _distinct_stage_bytes(params: list[int], elem: float) -> list[tuple[int, float]]:
    """(a representative device, gradient bytes) for each distinct per-device parameter count."""
    seen: dict[int, int] = {}
    for d, p in enumerate(params):
        seen.setdefault(p, d)
    return [(d, p * elem) for p, d in seen.items()]


def _same_bytes(params: list[int], device: int) -> list[int]:
    return [d for d, p in enumerate(params) if p == params[device]]


def peak_flops(accelerator: str, precision: str) -> float:
    """The catalog's dense peak FLOP/s of ``accelerator`` in ``precision``."""
    return float(load_catalog().accelerator(accelerator).peak_flops(precision))
