"""A plan evaluated: step time, memory, throughput and model FLOP utilization, for one placement."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from dcsim.catalog import load_catalog
from dcsim.parallel.comm import CommModel
from dcsim.parallel.flops import model_flops_per_sample
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.memory import MemoryBreakdown, fits, training_memory
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.step import (
    ACTIVATION_PRECISION,
    StepEstimate,
    TrainingSetup,
    estimate_step,
    layer_split,
    peak_flops,
)


@dataclass(frozen=True)
class PlanEvaluation:
    """One plan's step (:class:`StepEstimate`), memory on its most loaded accelerator and the figures of the
    contract derived from them. ``model_flops_per_step`` follows the contract's convention (6·N·tokens
    plus attention, no recompute) so MFU compares plans fairly; with a distillation teacher it adds the
    teacher's forward (2·N_teacher·tokens plus its attention), and the teacher's weights (16-bit, sharded
    like the student) count in the memory."""

    setup: TrainingSetup
    plan: ParallelPlan
    step: StepEstimate
    memory: MemoryBreakdown
    fits_in_memory: bool
    model_flops_per_step: float
    peak_flops_per_accelerator: float

    @property
    def step_time_s(self) -> float:
        """Seconds per training step."""
        return self.step.step_time_s

    @property
    def samples_per_step(self) -> int:
        """Sequences (or images) per step."""
        return self.setup.global_batch_size

    @property
    def tokens_per_step(self) -> int:
        """Tokens per step (samples for image models)."""
        return self.setup.tokens_per_step

    @property
    def tokens_per_s(self) -> float:
        """Training throughput in tokens per second."""
        return self.tokens_per_step / self.step_time_s

    @property
    def tflops_per_accelerator(self) -> float:
        """Model TFLOP/s achieved per accelerator."""
        return self.model_flops_per_step / self.step_time_s / self.plan.world_size / 1e12

    @property
    def mfu(self) -> float:
        """Model FLOP utilization: achieved model FLOP/s over the accelerators' dense peak."""
        return self.tflops_per_accelerator * 1e12 / self.peak_flops_per_accelerator

    def summary(self) -> dict[str, Any]:
        """The figures every plan report shows."""
        return {
            "step_time_s": self.step_time_s,
            "tokens_per_s": self.tokens_per_s,
            "tflops_per_accelerator": self.tflops_per_accelerator,
            "mfu": self.mfu,
            "memory_per_accelerator_gb": self.memory.total_bytes / 1e9,
            "fits_in_memory": self.fits_in_memory,
            "step_breakdown_s": self.step.breakdown(),
            "memory_breakdown_gb": self.memory.to_gb(),
            "microbatches": self.step.microbatches,
        }


def evaluate_plan(
    setup: TrainingSetup,
    plan: ParallelPlan,
    layout: RankLayout,
    comm: CommModel,
    server_of: dict[str, str],
    fidelity: str = "fast",
    memory: MemoryBreakdown | None = None,
) -> PlanEvaluation:
    """Step time, memory and utilization of ``plan`` on the accelerators of ``layout`` (``memory``: its
    :func:`plan_memory`, when the caller has it already)."""
    step = estimate_step(setup, plan, layout, comm, server_of, fidelity)
    memory = plan_memory(setup, plan) if memory is None else memory
    accelerator = load_catalog().accelerator(setup.accelerator)
    flops = model_flops_per_sample(setup.model, setup.seq_len) * setup.global_batch_size
    if setup.teacher is not None:  # the teacher's forward pass: a third of its 6·N (+ attention) convention
        flops += model_flops_per_sample(setup.teacher, setup.seq_len) * setup.global_batch_size / 3.0
    return PlanEvaluation(
        setup,
        plan,
        step,
        memory,
        fits(memory, accelerator),
        flops,
        peak_flops(setup.accelerator, setup.precision),
    )


def plan_memory(setup: TrainingSetup, plan: ParallelPlan) -> MemoryBreakdown:
    """Memory of the most loaded accelerator (see :func:`dcsim.parallel.memory.training_memory`), its stages
    holding the layers the step gives them (:func:`~dcsim.parallel.step.layer_split`), plus a distillation
    teacher's 16-bit weights, sharded like the student's."""
    precision = ACTIVATION_PRECISION[setup.precision]  # fp8 GEMMs keep bf16 weights and activations
    split = plan.layers_per_stage if plan.pp == 1 else layer_split(setup, plan)
    memory = training_memory(
        setup.model,
        replace(plan, layers_per_stage=split),
        seq_len=setup.seq_len,
        global_batch_size=setup.global_batch_size,
        precision=precision,
        optimizer=setup.optimizer,
        attention=str(setup.attention),
    )
    if setup.teacher is not None:
        teacher_bytes = setup.teacher.param_count() * setup.element_bytes / (plan.tp * plan.pp)
        memory = replace(memory, weights_bytes=memory.weights_bytes + teacher_bytes)
    return memory
