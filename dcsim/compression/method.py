"""Compression methods: how a recipe section's compressed weights are found, and what finding them costs.

A **method** is the unit of extension of compression: the ``method:`` of a quantization (``gptq``, ``awq``,
``smoothquant``, ``rtn``, ``fp8``) or of a pruning (``magnitude``, ``sparsegpt``, ``wanda``), and the one
producer of a distillation. One class per method, registered in :data:`COMPRESSION_METHODS` with
``@register_compression_method("name")``; the recipe accepts every registered name of its section (or a
``module:Class`` reference to a subclass of the section's base). A method says:

- which recipe section it belongs to (its base class: :class:`QuantizationMethod`, :class:`PruningMethod`,
  :class:`DistillationMethod`);
- what it can make (a quantization method: the weight and activation formats; the recipe refuses others);
- what producing the model costs (:meth:`CompressionMethod.cost`: calibration passes over data, the per-Linear
  solve of second-order methods, or a distillation's training run), priced by the run's per-op cost model
  through a :class:`ProductionContext`;
- its accuracy lookup key: its registered name, which the rows of ``data/accuracy.yaml`` name.

How a model's ops change does not depend on the method but on the formats the section names (weights and
activations precision, sparsity pattern, storage format): :mod:`dcsim.compression.transforms` applies those.
The built-in methods are in :mod:`dcsim.compression.methods`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from dcsim.registry import Registry, load_class

if TYPE_CHECKING:
    from dcsim.compression.recipe import Quantization
    from dcsim.models import ModelConfig


class TrainingPlan(Protocol):
    """The part of a :class:`~dcsim.parallel.evaluate.PlanEvaluation` a distillation reads."""

    @property
    def world_size(self) -> int:
        """Accelerators of the plan."""
        ...


class TrainingEvaluation(Protocol):
    """A student's training plan evaluated (:class:`~dcsim.parallel.evaluate.PlanEvaluation`)."""

    @property
    def tokens_per_s(self) -> float:
        """Training tokens per second of the whole plan."""
        ...

    @property
    def plan(self) -> TrainingPlan:
        """The plan (its ``world_size``)."""
        ...


class ProductionContext(Protocol):
    """What a method's :meth:`~CompressionMethod.cost` reads: the models, the accelerator and the per-op cost
    model's times (:class:`dcsim.compression.production.Production` implements it)."""

    teacher: ModelConfig
    student: ModelConfig
    accelerator: str
    calibration_tokens: int
    training: TrainingEvaluation | None

    def per_token_s(self, model: ModelConfig) -> tuple[float, float]:
        """(forward, forward+backward) seconds per token of ``model`` on one accelerator (compute only)."""
        ...

    def linear_solve_s(self) -> float:
        """Seconds of the GPTQ/SparseGPT per-Linear work on the student over the calibration tokens: the
        Hessian ``X^T X`` and the column-by-column weight update of every compressible Linear, as GEMMs."""
        ...


@dataclass(frozen=True)
class MethodCost:
    """Accelerator-seconds a method adds to producing the model, by part, and how each was estimated."""

    teacher_forward_s: float = 0.0
    student_training_s: float = 0.0
    calibration_s: float = 0.0
    basis: tuple[str, ...] = ()


class CompressionMethod:
    """One way of producing a recipe section's compressed model. An instance holds ``settings``, the section
    (a :class:`~dcsim.compression.recipe.Quantization`, ...), and ``reference``, the method as the recipe names
    it (its registered ``name``, or a ``module:Class`` reference). ``source`` cites its cost figures."""

    #: the registered name (set by :func:`register_compression_method`)
    name: ClassVar[str] = ""
    #: the recipe section (``quantization``, ``pruning``, ``distillation``)
    section: ClassVar[str] = ""
    #: forward passes of the student over the calibration tokens (activation statistics, a search over scales)
    calibration_passes: ClassVar[int] = 0
    #: True for second-order methods (GPTQ, SparseGPT): a Hessian and a weight update per Linear
    solves_linears: ClassVar[bool] = False
    source: ClassVar[str] = ""

    def __init__(self, settings: Any, reference: str | None = None) -> None:
        self.settings = settings
        self.reference = reference or self.name

    @classmethod
    def problem(cls, settings: Any) -> str | None:
        """Why this method cannot make the section ``settings`` (``field: what``, the field inside the
        section), else None."""
        return None

    def cost(self, ctx: ProductionContext) -> MethodCost:
        """Calibration: :attr:`calibration_passes` forward passes of the student over the calibration tokens,
        plus the per-Linear solve where :attr:`solves_linears`; nothing for a method that reads no data."""
        passes, tokens = self.calibration_passes, ctx.calibration_tokens
        if not tokens or not (passes or self.solves_linears):
            return MethodCost()
        forward, _ = ctx.per_token_s(ctx.student)
        seconds = passes * forward * tokens
        if self.solves_linears:
            seconds += ctx.linear_solve_s()
        line = f"{self.reference}: calibration over {tokens} tokens, {passes} forward pass{'es' * (passes != 1)}"
        return MethodCost(calibration_s=seconds, basis=(line,))


class QuantizationMethod(CompressionMethod):
    """A ``quantization.method``: ``weights`` the formats it stores weights in; ``activations`` the GEMM input
    formats it needs (None: any)."""

    section = "quantization"
    weights: ClassVar[tuple[str, ...]] = ("int8", "int4")
    activations: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def problem(cls, settings: Quantization) -> str | None:
        method, weights, activations = settings.method, settings.weights, settings.activations
        if cls.activations is not None and activations not in cls.activations:
            needed = " or ".join(cls.activations)
            return f"method: {method} quantizes activations: needs activations: {needed}, not {activations}"
        if weights in cls.weights:
            return None
        if len(cls.weights) == 1:
            return f"method: {method} needs weights: {cls.weights[0]}, not {weights}"
        # name the methods that make these weights, the dedicated ones (making one format) first
        makers = [(n, c) for n, c in COMPRESSION_METHODS.items() if issubclass(c, QuantizationMethod)]
        names = [n for n, c in sorted(makers, key=lambda nc: len(nc[1].weights)) if weights in c.weights]
        made = f"{names[0]} (or {', '.join(names[1:])})" if len(names) > 1 else ", ".join(names)
        return f"method: {weights} weights are cast with method {made}, not {method}"


class PruningMethod(CompressionMethod):
    """A ``pruning.method``: how the weights to remove are chosen (it also narrows the accuracy lookup)."""

    section = "pruning"


class DistillationMethod(CompressionMethod):
    """How a distillation's student is trained (a distillation section has one producer, ``distillation``)."""

    section = "distillation"


#: Every compression method, by registered name (quantization, pruning and distillation methods together).
COMPRESSION_METHODS: Registry[CompressionMethod] = Registry("compression method", CompressionMethod)

M = TypeVar("M", bound=type[CompressionMethod])

#: The base class of each section's methods.
SECTION_BASES: dict[str, type[CompressionMethod]] = {
    "quantization": QuantizationMethod,
    "pruning": PruningMethod,
    "distillation": DistillationMethod,
}


def register_compression_method(name: str) -> Callable[[M], M]:
    """Class decorator registering a method under ``name`` (ValueError on a taken name)."""

    def add(cls: M) -> M:
        COMPRESSION_METHODS.add(name, cls)
        cls.name = name
        return cls

    return add


def method_names(section: str) -> tuple[str, ...]:
    """Registered names of ``section``'s methods, in registration order."""
    base = SECTION_BASES[section]
    return tuple(name for name, cls in COMPRESSION_METHODS.items() if issubclass(cls, base))


def method_class(section: str, reference: object) -> type[CompressionMethod]:
    """The class of a registered name of ``section`` or of a ``module:Class`` reference to a subclass of the
    section's base (ValueError ``must be one of ...`` naming the section's methods)."""
    base = SECTION_BASES[section]
    if isinstance(reference, str) and reference in COMPRESSION_METHODS:
        cls = COMPRESSION_METHODS[reference]
        if issubclass(cls, base):
            return cls
    elif isinstance(reference, str) and ":" in reference:
        return load_class(reference, base, f"{section} method")
    raise ValueError(f"must be one of {', '.join(method_names(section))}, not {reference!r}")
