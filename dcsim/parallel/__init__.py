"""Parallel training plans: DP/TP/PP/EP/ZeRO layouts, memory per accelerator, pipeline schedules."""

from dcsim.parallel.flops import (
    attention_flops_per_token,
    megatron_flops_per_iteration,
    megatron_model_flops,
    model_flops_per_sample,
    model_flops_per_token,
    training_flops,
)
from dcsim.parallel.memory import (
    OPTIMIZERS,
    MemoryBreakdown,
    fits,
    in_flight_microbatches,
    training_memory,
    transformer_layer_activation_bytes,
    zero_model_state_bytes,
)
from dcsim.parallel.plan import RECOMPUTE, SCHEDULES, ParallelPlan
from dcsim.parallel.scaling import LossTargetEstimate, estimate_tokens_to_loss, load_scaling_laws

__all__ = [
    "OPTIMIZERS",
    "RECOMPUTE",
    "SCHEDULES",
    "LossTargetEstimate",
    "MemoryBreakdown",
    "ParallelPlan",
    "attention_flops_per_token",
    "estimate_tokens_to_loss",
    "fits",
    "in_flight_microbatches",
    "load_scaling_laws",
    "megatron_flops_per_iteration",
    "megatron_model_flops",
    "model_flops_per_sample",
    "model_flops_per_token",
    "training_flops",
    "training_memory",
    "transformer_layer_activation_bytes",
    "zero_model_state_bytes",
]
