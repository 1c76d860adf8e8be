"""What it costs to produce a compressed model: accelerator-seconds and dollars (COST's ``compression`` term).

The cost is the sum of what each method of the recipe (:meth:`dcsim.compression.recipe.Recipe.methods`: the
distillation, the quantization method, the pruning method) says it costs (:meth:`CompressionMethod.cost
<dcsim.compression.method.CompressionMethod.cost>`), priced through a :class:`Production` context. The
built-in methods (:mod:`dcsim.compression.methods`):

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
  ``rtn`` and magnitude pruning read no data and cost nothing.

Fine-tuning after structured pruning or layer dropping is not priced (it is a training run of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dcsim.catalog import load_catalog
from dcsim.compression.method import TrainingEvaluation
from dcsim.compression.recipe import Recipe
from dcsim.compression.transforms import compressible
from dcsim.compute import predict
from dcsim.compute.ops import Matmul
from dcsim.models import EncoderDecoderConfig, ModelConfig, TransformerConfig
from dcsim.parallel.stages import part_times, step_ops

SECONDS_PER_HOUR = 3600.0
#: GPTQ paper, Section 5: 128 random 2048-token segments of C4
CALIBRATION_TOKENS = 128 * 2048


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


class Production:
    """The :class:`~dcsim.compression.method.ProductionContext` of one production: the models, the
    accelerator, the calibration tokens and the per-op cost model's times (each computed once)."""

    def __init__(
        self,
        teacher: ModelConfig,
        student: ModelConfig,
        accelerator: str,
        precision: str,
        seq_len: int,
        microbatch: int,
        calibration_tokens: int,
        training: TrainingEvaluation | None,
    ) -> None:
        self.teacher, self.student, self.accelerator = teacher, student, accelerator
        self.precision, self.seq_len, self.microbatch = precision, seq_len, microbatch
        self.calibration_tokens, self.training = calibration_tokens, training
        self._per_token: dict[ModelConfig, tuple[float, float]] = {}
        self._solve_s: float | None = None

    def per_token_s(self, model: ModelConfig) -> tuple[float, float]:
        """(forward, forward+backward) seconds per token on one accelerator (compute only)."""
        if model not in self._per_token:
            ops = step_ops(model, self.microbatch, self.seq_len, 1, self.precision)
            times = part_times(ops, self.accelerator)
            fwd = sum(times.fwd_s.values())
            bwd = sum(times.bwd_s.values())
            tokens = self.microbatch * self.seq_len
            self._per_token[model] = (fwd / tokens, (fwd + bwd) / tokens)
        return self._per_token[model]

    def linear_solve_s(self) -> float:
        """GPTQ/SparseGPT per-Linear work on the student: Hessian accumulation and the column updates, as GEMMs."""
        if self._solve_s is None:
            precision, tokens = self.precision, self.calibration_tokens
            total = 0.0
            for layer in step_ops(self.student, 1, 1, 1, precision).layers:
                if compressible(layer) and isinstance(layer.op, Matmul):
                    k, n = layer.op.k, layer.op.n
                    hessian = Matmul(k, k, tokens, precision="fp32" if precision == "fp32" else precision)
                    update = Matmul(n, k, k, precision="fp32" if precision == "fp32" else precision)
                    total += (predict(hessian, self.accelerator) + predict(update, self.accelerator)) * layer.count
            self._solve_s = total
        return self._solve_s


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
    training: TrainingEvaluation | None = None,
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
    seq = min(seq_len, _max_seq_len(teacher, seq_len), _max_seq_len(student, seq_len))
    ctx = Production(teacher, student, accelerator, precision, seq, microbatch, calibration_tokens, training)
    basis: list[str] = []
    teacher_s = student_s = calibration_s = 0.0
    for method in recipe.methods():
        part = method.cost(ctx)
        teacher_s += part.teacher_forward_s
        student_s += part.student_training_s
        calibration_s += part.calibration_s
        basis.extend(part.basis)
    return ProductionCost(accelerator, teacher_s, student_s, calibration_s, price, tuple(basis))
