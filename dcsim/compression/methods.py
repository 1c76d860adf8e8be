"""The built-in compression methods (see :mod:`dcsim.compression.method` for what a method is).

Quantization: ``gptq``, ``awq``, ``smoothquant``, ``rtn``, ``fp8``. Pruning: ``magnitude``, ``sparsegpt``,
``wanda``. Distillation: ``distillation``. Registration order is the order the recipe's error messages list
them in. Calibration data (the tokens each pass reads) is the production cost's ``calibration_tokens``.
"""

from __future__ import annotations

from dcsim.compression.method import (
    DistillationMethod,
    MethodCost,
    ProductionContext,
    PruningMethod,
    QuantizationMethod,
    register_compression_method,
)

#: candidate scales per layer in AWQ's search (``n_grid = 20`` in the reference implementation's auto_scale)
AWQ_GRID = 20


@register_compression_method("gptq")
class Gptq(QuantizationMethod):
    """Second-order weight quantization: one forward pass collects each Linear's inputs, then its Hessian
    ``X^T X`` and a column-by-column update of the weights (Frantar et al., ICLR 2023, Algorithm 1)."""

    calibration_passes = 1
    solves_linears = True
    source = "Frantar et al., GPTQ, ICLR 2023, Section 4 and Algorithm 1"


@register_compression_method("awq")
class Awq(QuantizationMethod):
    """Activation-aware weight quantization: each layer evaluated at :data:`AWQ_GRID` candidate scales,
    one forward pass each (Lin et al., MLSys 2024; ``n_grid = 20`` in the reference code's auto_scale)."""

    calibration_passes = AWQ_GRID
    source = "Lin et al., AWQ, MLSys 2024; llm-awq auto_scale.py n_grid = 20"


@register_compression_method("smoothquant")
class SmoothQuant(QuantizationMethod):
    """W8A8: per-channel activation maxima from one forward pass move outliers into the weights (Xiao et al.,
    ICML 2023); int8 weights and int8 activations."""

    weights = ("int8",)
    activations = ("int8",)
    calibration_passes = 1
    source = "Xiao et al., SmoothQuant, ICML 2023, Section 4"


@register_compression_method("rtn")
class RoundToNearest(QuantizationMethod):
    """Round to nearest with per-group scales from the weights alone: no calibration data."""

    weights = ("int8", "int4", "fp8")
    source = "no data read (scales from the weights)"


@register_compression_method("fp8")
class Fp8Cast(QuantizationMethod):
    """fp8 (e4m3) with per-tensor scales from the activation maxima of one forward pass (NVIDIA Transformer
    Engine / TensorRT-LLM fp8 post-training quantization)."""

    weights = ("fp8",)
    calibration_passes = 1
    source = "NVIDIA Transformer Engine fp8 recipe: amax calibration over one pass"


@register_compression_method("magnitude")
class Magnitude(PruningMethod):
    """Remove the weights of smallest magnitude (Han et al., NeurIPS 2015): no calibration data."""

    source = "Han et al., Learning both Weights and Connections, NeurIPS 2015"


@register_compression_method("sparsegpt")
class SparseGpt(PruningMethod):
    """One-shot pruning with GPTQ's second-order update: one forward pass, then a Hessian and a weight update
    per Linear (Frantar and Alistarh, ICML 2023)."""

    calibration_passes = 1
    solves_linears = True
    source = "Frantar and Alistarh, SparseGPT, ICML 2023, Section 3"


@register_compression_method("wanda")
class Wanda(PruningMethod):
    """Prune by |weight| x input-activation norm: one forward pass for the norms, no update (Sun et al., ICLR
    2024)."""

    calibration_passes = 1
    source = "Sun et al., Wanda, ICLR 2024, Section 3"


@register_compression_method("distillation")
class Distillation(DistillationMethod):
    """A teacher forward pass and a student training step over ``distillation.tokens`` tokens. With a
    training plan (``ctx.training``) the student's time is ``tokens / tokens_per_s`` on that plan's
    accelerators; without one, the student's forward+backward per token on one accelerator, compute only
    (a lower bound). The teacher's forward is priced per token on one accelerator."""

    source = "per-op cost model of the training step (dcsim.parallel.stages)"

    def cost(self, ctx: ProductionContext) -> MethodCost:
        tokens = float(self.settings.tokens)
        if not tokens > 0:
            return MethodCost(basis=("distillation.tokens not given: no training cost counted",))
        teacher_forward, _ = ctx.per_token_s(ctx.teacher)
        basis = []
        if ctx.training is not None:
            student_s = tokens / float(ctx.training.tokens_per_s) * ctx.training.plan.world_size
            world = ctx.training.plan.world_size
            basis.append(f"student: {tokens:.3g} tokens on the given plan ({world} accelerators)")
        else:
            _, student_step = ctx.per_token_s(ctx.student)
            student_s = student_step * tokens
            basis.append(f"student: {tokens:.3g} tokens, per-op compute on one {ctx.accelerator} (lower bound)")
        basis.append(f"teacher: forward over {tokens:.3g} tokens, per-op compute on one {ctx.accelerator}")
        return MethodCost(teacher_forward_s=teacher_forward * tokens, student_training_s=student_s, basis=tuple(basis))
