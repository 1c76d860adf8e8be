"""What it costs to produce a compressed model: accelerator-seconds and dollars (COST's ``compression`` term).

- **Distillation**: a teacher forward pass and a student training step over ``distillation.tokens`` tokens.
  With ``training=`` (a :class:`~dcsim.parallel.evaluate.PlanEvaluation` of the student's parallel plan,
  from :func:`dcsim.parallel.evaluate.evaluate_plan`) the student's time is ``tokens / tokens_per_s`` on that
  plan's accelerators (communication, pipeline bubble and optimizer included). Without it, the student's
  forward+backward and the teacher's forward are priced per microbatch on one accelerator by the same
  per-op cost model the training step uses (:func:`dcsim.parallel.stages.part_times`): compute only, a lower
  bound (no communication, no optimizer step), labelled so in ``basis``.
- **Calibration** of post-training quantization or pruning over ``calibration_tokens`` tokens (default 128
  sequences of 2,048 tokens, the C4 calibration set of the GPTQ paper, Frantar et al. 2023, Section 5):
  ``gptq`` and ``sparsegpt`` run one forward pass over them plus, per Linear (k inputs, n outputs), the
  Hessian ``X^T X`` (a k x k x tokens GEMM) and the column-by-column weight update (about a k x k x n GEMM);
  ``awq`` evaluates each layer at 20 candidate scales (``n_grid = 20`` in the AWQ reference code), i.e. 20
  forward passes; ``smoothquant``, ``fp8`` and ``wanda`` need one forward pass for activation statistics;
  ``rtn`` and magnitude pruning need none.

Fine-tuning after structured pruning or layer dropping is not priced (it is a training run of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dcsim.catalog import load_catalog
from dcsim.compression.recipe import Recipe
from dcsim.compression.transforms import compressible
from dcsim.compute import predict
from dcsim.compute.ops import Matmul
from dcsim.models import EncoderDecoderConfig, ModelConfig, TransformerConfig
from dcsim.parallel.stages import part_times, step_ops

SECONDS_PER_HOUR = 3600.0
#: GPTQ paper, Section 5: 128 random 2048-token segments of C4
CALIBRATION_TOKENS = 128 * 2048
#: candidate scales per layer in AWQ's search (``n_grid = 20`` in the reference implementation's auto_scale)
AWQ_GRID = 20


@dataclass(frozen=True)
class ProductionCost:
    """Accelerator-seconds of each part and their price. ``basis`` says how each part was estimated."""

    accelerator: str
    teacher_forward_s: float
    student_training_s: float
    calibration_s: float
    usd_per_accelerator_s: float
    basis: tuple[str, ...]

    @property
    def accelerator_s(self) -> float:
        """Total accelerator-seconds."""
        return self.teacher_forward_s + self.student_training_s + self.calibration_s

    @property
    def accelerator_hours(self) -> float:
        """Total accelerator-hours."""
        return self.accelerator_s / SECONDS_PER_HOUR

    @property
    def usd(self) -> float:
        """Dollars: accelerator-seconds times the price per accelerator-second."""
        return self.accelerator_s * self.usd_per_accelerator_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "accelerator": self.accelerator,
            "teacher_forward_accelerator_s": self.teacher_forward_s,
            "student_training_accelerator_s": self.student_training_s,
            "calibration_accelerator_s": self.calibration_s,
            "accelerator_hours": self.accelerator_hours,
            "usd": self.usd,
            "basis": list(self.basis),
        }


def _per_token_s(
    model: ModelConfig, accelerator: str, precision: str, seq_len: int, microbatch: int
) -> tuple[float, float]:
    """(forward, forward+backward) seconds per token on one accelerator (compute only)."""
    ops = step_ops(model, microbatch, seq_len, 1, precision)
    times = part_times(ops, accelerator)
    fwd = sum(times.fwd_s.values())
    bwd = sum(times.bwd_s.values())
    tokens = microbatch * seq_len
    return fwd / tokens, (fwd + bwd) / tokens


def _solve_s(model: ModelConfig, accelerator: str, precision: str, tokens: int) -> float:
    """GPTQ/SparseGPT per-Linear work: Hessian accumulation and the column updates, as GEMMs."""
    total = 0.0
    for layer in step_ops(model, 1, 1, 1, precision).layers:
        if compressible(layer) and isinstance(layer.op, Matmul):
            k, n = layer.op.k, layer.op.n
            hessian = Matmul(k, k, tokens, precision="fp32" if precision == "fp32" else precision)
            update = Matmul(n, k, k, precision="fp32" if precision == "fp32" else precision)
            total += (predict(hessian, accelerator) + predict(update, accelerator)) * layer.count
    return total


def _max_seq_len(model: ModelConfig, default: int) -> int:
    """The longest sequence a token model takes (``max_seq_len``), else ``default`` (vision models)."""
    return model.max_seq_len if isinstance(model, TransformerConfig | EncoderDecoderConfig) else default


def usd_per_accelerator_s(accelerator: str, usd_per_accelerator_hour: float | None) -> float:
    """The given hourly price, else the catalog's reference price (ValueError naming
    ``usd_per_accelerator_hour`` where neither exists)."""
    if usd_per_accelerator_hour is not None:
        if usd_per_accelerator_hour < 0:
            raise ValueError(f"usd_per_accelerator_hour: must be >= 0, not {usd_per_accelerator_hour}")
        return usd_per_accelerator_hour / SECONDS_PER_HOUR
    price = load_catalog().accelerator(accelerator).usd_per_hour
    if price is None:
        raise ValueError(f"usd_per_accelerator_hour: the catalog has no reference price for {accelerator}; give one")
    return price / SECONDS_PER_HOUR


def production_cost(
    teacher: ModelConfig,
    student: ModelConfig,
    recipe: Recipe,
    accelerator: str,
    *,
    usd_per_accelerator_hour: float | None = None,
    training: Any = None,
    precision: str = "bf16",
    seq_len: int = 2048,
    microbatch: int = 1,
    calibration_tokens: int = CALIBRATION_TOKENS,
) -> ProductionCost:
    """Accelerator-seconds and dollars to produce ``student`` (the compressed architecture) from ``teacher``
    with ``recipe`` on ``accelerator`` (see the module docstring)."""
    price = usd_per_accelerator_s(accelerator, usd_per_accelerator_hour)
    if calibration_tokens < 0:
        raise ValueError(f"calibration_tokens: must be >= 0, not {calibration_tokens}")
    basis: list[str] = []
    teacher_s = student_s = calibration_s = 0.0
    seq = min(seq_len, _max_seq_len(teacher, seq_len), _max_seq_len(student, seq_len))
    if recipe.distillation is not None and recipe.distillation.tokens > 0:
        tokens = recipe.distillation.tokens
        teacher_fwd, _ = _per_token_s(teacher, accelerator, precision, seq, microbatch)
        teacher_s = teacher_fwd * tokens
        if training is not None:
            student_s = tokens / float(training.tokens_per_s) * training.plan.world_size
            basis.append(f"student: {tokens:.3g} tokens on the given plan ({training.plan.world_size} accelerators)")
        else:
            _, student_step = _per_token_s(student, accelerator, precision, seq, microbatch)
            student_s = student_step * tokens
            basis.append(f"student: {tokens:.3g} tokens, per-op compute on one {accelerator} (lower bound)")
        basis.append(f"teacher: forward over {tokens:.3g} tokens, per-op compute on one {accelerator}")
    elif recipe.distillation is not None:
        basis.append("distillation.tokens not given: no training cost counted")
    methods: list[str] = []
    if recipe.quantization is not None:
        methods.append(recipe.quantization.method)
    if recipe.pruning is not None and recipe.pruning.method in ("sparsegpt", "wanda"):
        methods.append(recipe.pruning.method)
    if methods and calibration_tokens:
        fwd, _ = _per_token_s(student, accelerator, precision, seq, microbatch)
        passes = {"gptq": 1, "sparsegpt": 1, "awq": AWQ_GRID, "smoothquant": 1, "fp8": 1, "wanda": 1, "rtn": 0}
        for method in methods:
            seconds = passes[method] * fwd * calibration_tokens
            if method in ("gptq", "sparsegpt"):
                seconds += _solve_s(student, accelerator, precision, calibration_tokens)
            calibration_s += seconds
            count = passes[method]
            basis.append(
                f"{method}: calibration over {calibration_tokens} tokens, {count} forward pass{'es' * (count != 1)}"
            )
    return ProductionCost(accelerator, teacher_s, student_s, calibration_s, price, tuple(basis))
