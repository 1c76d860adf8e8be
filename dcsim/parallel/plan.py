"""A training parallel plan: how a model's work is split over accelerators.

Rank layout (Megatron-LM's default order, ``tp-cp-ep-dp-pp``): tensor-parallel ranks are innermost
(consecutive accelerators, so a TP group sits inside one node by default), then context-parallel ranks,
then data-parallel replicas, then pipeline stages outermost (the heavy data-parallel gradient traffic stays
between nearby nodes; stages exchange only activations). Expert parallelism (MoE) shards the experts over
``ep`` ranks taken from the data-parallel dimension. Context parallelism (:mod:`dcsim.parallel.context_parallel`)
splits each sequence over ``cp`` ranks that hold the same weights, so gradients reduce and ZeRO shards over
the ``dp * cp`` ranks of a stage and tensor rank (Megatron-LM's data-parallel-with-context-parallel group).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULES = ("1f1b", "interleaved", "gpipe")
RECOMPUTE = ("none", "selective", "full")
#: How a pipeline's layers are split when no explicit list is given (see :mod:`dcsim.parallel.stages`)
STAGE_SPLITS = ("auto", "balanced")


@dataclass(frozen=True)
class ParallelPlan:
    """Degrees of data (``dp``), tensor (``tp``), pipeline (``pp``), expert (``ep``) and context (``cp``:
    ring attention over a sequence split ``cp`` ways) parallelism, the microbatch size in sequences, the
    pipeline ``schedule`` (``interleaved`` with ``virtual_stages`` model chunks per stage), the ZeRO stage
    (0: none; 1: optimizer state; 2: + gradients; 3: + weights, i.e. FSDP full sharding), activation
    ``recompute`` (none | selective | full, Korthikanti et al. 2022), Megatron ``sequence_parallel`` (norms
    and dropout sharded over the TP group), whether the data-parallel gradient reduction overlaps the
    backward pass (``overlap_dp``) and the transformer layers of each pipeline stage (``layers_per_stage``:
    ``pp`` or ``pp * virtual_stages`` counts in pipeline order, or ``auto``/``balanced``; see
    :func:`dcsim.parallel.stages.chunk_layers`)."""

    dp: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    microbatch_size: int = 1
    schedule: str = "1f1b"
    virtual_stages: int = 1
    zero_stage: int = 0
    recompute: str = "none"
    sequence_parallel: bool = False
    overlap_dp: bool = True
    cp: int = 1
    layers_per_stage: tuple[int, ...] | str = "auto"

    def __post_init__(self) -> None:
        for name in ("dp", "tp", "pp", "ep", "cp", "microbatch_size", "virtual_stages"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer (got {value!r})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})")
        if self.recompute not in RECOMPUTE:
            raise ValueError(f"recompute must be one of {', '.join(RECOMPUTE)} (got {self.recompute!r})")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"zero_stage must be 0, 1, 2 or 3 (got {self.zero_stage!r})")
        if self.virtual_stages > 1 and self.schedule != "interleaved":
            raise ValueError("virtual_stages > 1 needs schedule: interleaved")
        if self.dp % self.ep:
            raise ValueError(f"ep ({self.ep}) must divide dp ({self.dp})")
        split = self.layers_per_stage
        if isinstance(split, str):
            if split not in STAGE_SPLITS:
                raise ValueError(f"layers_per_stage must be a list or one of {', '.join(STAGE_SPLITS)} (got {split!r})")
        else:
            split = tuple(split)
            if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in split):
                raise ValueError(f"layers_per_stage must be whole numbers >= 0 (got {list(split)!r})")
            object.__setattr__(self, "layers_per_stage", split)  # a list given: hashable like the rest

    @property
    def world_size(self) -> int:
        """Accelerators the plan uses: dp * tp * cp * pp."""
        return self.dp * self.tp * self.cp * self.pp

    @property
    def dp_cp(self) -> int:
        """Ranks of one stage and tensor rank that hold the same weights (dp * cp): gradients reduce over
        them and ZeRO shards over them."""
        return self.dp * self.cp

    def microbatches(self, global_batch_size: int) -> int:
        """Microbatches per step on each pipeline (gradient-accumulation steps when ``pp`` is 1).

        Raises ValueError when ``global_batch_size`` is not a multiple of dp * microbatch_size."""
        per_replica = self.dp * self.microbatch_size
        if global_batch_size % per_replica:
            raise ValueError(
                f"global_batch_size ({global_batch_size}) must be a multiple of dp * microbatch_size ({per_replica})"
            )
        return global_batch_size // per_replica

    def rank(self, dp: int, pp: int, tp: int, cp: int = 0) -> int:
        """Global rank of a (data, pipeline, tensor, context) coordinate; TP innermost, then CP, DP, PP."""
        return ((pp * self.dp + dp) * self.cp + cp) * self.tp + tp
