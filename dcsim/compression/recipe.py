"""A compression recipe, typed and validated: the ``compression:`` section of a workload.

The recipe is a set of frozen pydantic models (:class:`Recipe` and one model per technique) nested in the
workload specs, so a scenario's recipe is validated once, when the scenario loads, and the same objects are
what the transforms, the accuracy lookup and the production cost read. ``parse_recipe(mapping)`` validates a
mapping outside a scenario; every problem is a one-line ValueError whose message starts with the field path
(``quantization.weights: must be one of ...``), which the scenario layer reports as
``workloads[i].compression: quantization.weights: ...``::

    quantization:  {weights: int8|int4|fp8, activations: fp16|bf16|int8|fp8, method: gptq|awq|smoothquant|rtn|fp8,
                    kv_cache: int8|fp8|null, group_size: 128}
    pruning:       {sparsity: 0.5, pattern: unstructured|"2:4"|structured, target: heads|channels|layers,
                    format: dense|csr, method: magnitude|sparsegpt|wanda}

A ``method`` is any registered compression method of its section (:mod:`dcsim.compression.methods`, or a
``module:Class`` reference to a :class:`~dcsim.compression.method.QuantizationMethod` /
:class:`~dcsim.compression.method.PruningMethod` subclass); the method's own rules (SmoothQuant needs int8
activations, ...) are checked with the section.
    distillation:  {student: <zoo id or inline architecture>, tokens: 2.0e9}
    layer_dropping: {layers: 4}

``activations`` fp16/bf16 means weight-only quantization (GPTQ/AWQ style): the GEMM runs in the model's own
precision reading low-bit weights. ``activations`` int8 (SmoothQuant W8A8) needs int8 weights, fp8 needs fp8
weights. ``pruning.format`` says how unstructured-sparse weights are stored: ``dense`` (zeros kept in place,
the default: no memory or time saved) or ``csr`` (values plus indices). ``pattern: "2:4"`` is 50% sparsity.
A recipe remembers the mapping it was written as (:attr:`Recipe.written`): summaries and dumps of the
scenario record that, not the defaults filled in.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic import model_serializer as _serializer

import dcsim.compression.methods  # noqa: F401  (registers the built-in methods)
from dcsim.compression.method import CompressionMethod, method_class

Weights = Literal["int8", "int4", "fp8"]
Activations = Literal["fp16", "bf16", "int8", "fp8"]
KVCache = Literal["int8", "fp8"]
Pattern = Literal["unstructured", "2:4", "structured"]
Target = Literal["heads", "channels", "layers"]
Format = Literal["dense", "csr"]

WEIGHTS = typing.get_args(Weights)
ACTIVATIONS = typing.get_args(Activations)
KV_CACHE = typing.get_args(KVCache)
PATTERNS = typing.get_args(Pattern)
TARGETS = typing.get_args(Target)
FORMATS = typing.get_args(Format)
SECTIONS = ("quantization", "pruning", "distillation", "layer_dropping")


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"must be a positive integer, not {value!r}")
    return value


def _open_fraction(value: Any) -> float:
    if not _real(value) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"must be a number between 0 and 1 (exclusive), not {value!r}")
    return float(value)


def _tokens(value: Any) -> float:
    if not _real(value) or value < 0:
        raise ValueError(f"must be a number of training tokens >= 0, not {value!r}")
    return float(value)


def _quantization_method(value: Any) -> str:
    method_class("quantization", value)
    return str(value)


def _pruning_method(value: Any) -> str | None:
    if value is not None:
        method_class("pruning", value)
    return value if value is None else str(value)


def _student(value: Any) -> Any:
    if not isinstance(value, str | Mapping) or not value:
        raise ValueError("required: a zoo id or an inline architecture")
    return value if isinstance(value, str) else dict(value)


#: A whole number >= 1 (not ``true``, not ``4.0``).
PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
#: A number strictly between 0 and 1.
OpenFraction = Annotated[float, BeforeValidator(_open_fraction)]
#: A number of tokens >= 0.
Tokens = Annotated[float, BeforeValidator(_tokens)]
#: A registered quantization method (``dcsim.compression.methods``) or ``module:Class``.
QuantizationMethodName = Annotated[str, BeforeValidator(_quantization_method)]
#: A registered pruning method or ``module:Class`` (None: any method, for the accuracy lookup).
PruningMethodName = Annotated[str | None, BeforeValidator(_pruning_method)]
#: A zoo id or an inline architecture mapping (resolved by :func:`dcsim.models.model_from_spec`).
Student = Annotated[str | dict[str, Any], BeforeValidator(_student)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantization(_Section):
    """Weights stored in ``weights``; GEMM inputs in ``activations`` (16-bit: weight-only); ``kv_cache``
    precision of the KV cache (None: the model's own); ``group_size`` weights share a scale (weight-only).
    ``method`` defaults to ``fp8`` for fp8 weights, else ``rtn`` (round to nearest)."""

    weights: Weights
    activations: Activations = "fp16"
    method: QuantizationMethodName = "rtn"
    kv_cache: KVCache | None = None
    group_size: PositiveInt = 128

    @model_validator(mode="before")
    @classmethod
    def _default_method(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "method" not in data and data.get("weights") == "fp8":
            return {**data, "method": "fp8"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Quantization:
        weights, activations = self.weights, self.activations
        if activations == "int8" and weights != "int8":
            raise ValueError(f"activations: int8 activations (W8A8) need weights: int8, not {weights}")
        if activations == "fp8" and weights != "fp8":
            raise ValueError(f"activations: fp8 activations need weights: fp8, not {weights}")
        problem = method_class("quantization", self.method).problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def weight_only(self) -> bool:
        """True when activations stay 16-bit (GPTQ/AWQ style): the GEMM runs in the model's precision."""
        return self.activations in ("fp16", "bf16")


class Pruning(_Section):
    """``sparsity`` is the fraction removed: of the weights (unstructured, 2:4; default 0.5 for 2:4) or of the
    ``target`` (structured: heads, MLP channels or layers). ``format`` stores unstructured weights dense or in
    CSR; ``method`` (optional) narrows the accuracy lookup."""

    sparsity: OpenFraction = Field(default=None, validate_default=True)
    pattern: Pattern = "unstructured"
    target: Target | None = None
    format: Format = "dense"
    method: PruningMethodName = None

    @model_validator(mode="before")
    @classmethod
    def _default_sparsity(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "sparsity" not in data and data.get("pattern") == "2:4":
            return {**data, "sparsity": 0.5}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Pruning:
        pattern = self.pattern
        if pattern == "2:4" and self.sparsity != 0.5:
            raise ValueError(f"sparsity: the 2:4 pattern removes exactly half the weights (0.5), not {self.sparsity}")
        if pattern == "structured" and self.target is None:
            raise ValueError(f"target: required for pattern structured (one of {', '.join(TARGETS)})")
        if pattern != "structured" and self.target is not None:
            raise ValueError(f"target: only for pattern structured, not {pattern}")
        if self.format == "csr" and pattern != "unstructured":
            raise ValueError(f"format: csr stores unstructured sparsity only, not pattern {pattern}")
        problem = method_class("pruning", self.method).problem(self) if self.method is not None else None
        if problem is not None:
            raise ValueError(problem)
        return self


class Distillation(_Section):
    """A ``student`` architecture (zoo id or inline mapping) trained on ``tokens`` tokens against the
    teacher (the workload's model)."""

    student: Student = Field(default=None, validate_default=True)
    tokens: Tokens = 0.0


class LayerDropping(_Section):
    """Drop the last ``layers`` repeated layers (model cropping, early exit at a fixed depth)."""

    layers: PositiveInt = Field(default=None, validate_default=True)


class Recipe(_Section):
    """Which techniques to apply (None: not used). See :mod:`dcsim.compression.transforms` for the order."""

    quantization: Quantization | None = None
    pruning: Pruning | None = None
    distillation: Distillation | None = None
    layer_dropping: LayerDropping | None = None
    _written: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_written(cls, data: Any, handler: Any) -> Recipe:
        recipe: Recipe = handler(data)
        if isinstance(data, Mapping):
            recipe._written = copy.deepcopy(dict(data))
        return recipe

    @_serializer
    def _as_written(self) -> dict[str, Any]:
        return self.written

    @property
    def written(self) -> dict[str, Any]:
        """The ``compression:`` mapping as the scenario wrote it (a copy; ``{}`` for no recipe)."""
        return copy.deepcopy(self._written)

    @property
    def empty(self) -> bool:
        """True when no technique is used."""
        return not (self.quantization or self.pruning or self.distillation or self.layer_dropping)

    def __bool__(self) -> bool:
        """True when a technique is used (``if spec.compression:``)."""
        return not self.empty

    def methods(self) -> list[CompressionMethod]:
        """The methods producing this recipe's model, in the order their costs are listed: the distillation,
        the quantization method, the pruning method (structured pruning and layer dropping name none)."""
        used: list[tuple[str, str, _Section]] = []
        if self.distillation is not None:
            used.append(("distillation", "distillation", self.distillation))
        if self.quantization is not None:
            used.append(("quantization", self.quantization.method, self.quantization))
        if self.pruning is not None and self.pruning.method is not None:
            used.append(("pruning", self.pruning.method, self.pruning))
        return [method_class(section, name)(settings, name) for section, name, settings in used]


def _choices(section: str, field: str) -> tuple[str, ...]:
    """The values a Literal field of a section accepts (empty for other fields)."""
    model = _MODELS.get(section)
    info = model.model_fields.get(field) if model is not None else None
    if info is None:
        return ()
    args = [a for a in typing.get_args(info.annotation) if a is not type(None)]
    literal = args[0] if len(args) == 1 else info.annotation
    return tuple(str(a) for a in typing.get_args(literal)) if typing.get_origin(literal) is Literal else ()


def _message(error: Any) -> str:
    """One recipe problem as ``path: what`` (the path inside the ``compression:`` section)."""
    loc = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    path = ".".join(loc)
    kind, got = error["type"], error.get("input")
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return f"{path}: unknown compression technique (known: {', '.join(SECTIONS)})"
        return f"{path}: unknown field (known: {', '.join(_MODELS[loc[0]].model_fields)})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: must be a mapping, not {type(got).__name__}"
    if kind == "value_error":
        text = str(error.get("ctx", {}).get("error", error["msg"]))
        # a model validator names the field itself ("activations: ..."), a field's own check does not
        return f"{path}.{text}" if len(loc) == 1 else f"{path}: {text}"
    choices = _choices(loc[0], loc[-1]) if len(loc) == 2 else ()
    if kind == "missing":
        return f"{path}: required (one of {', '.join(choices)})" if choices else f"{path}: required"
    if kind == "literal_error" and choices:
        return f"{path}: must be one of {', '.join(choices)}, not {got!r}"
    return f"{path}: {error['msg'][:1].lower()}{error['msg'][1:]}, not {got!r}"


def _first(errors: list[Any]) -> Any:
    """The error reported: unknown techniques first, then technique by technique: unknown fields, then the
    fields in the order they are checked (:data:`_CHECKED`), then the rules across fields."""

    def rank(error: Any) -> tuple[int, int, int, int]:
        loc = error["loc"]
        extra = error["type"] == "extra_forbidden"
        if len(loc) == 1 and extra:
            return (0, 0, 0, 0)
        section = SECTIONS.index(loc[0]) if loc and loc[0] in SECTIONS else len(SECTIONS)
        if extra:
            return (1, section, 0, 0)
        order = _CHECKED.get(str(loc[0]), ())
        field = order.index(loc[1]) if len(loc) > 1 and loc[1] in order else len(order)
        return (1, section, 1, field)

    return min(errors, key=rank)


def parse_recipe(raw: Mapping[str, Any] | Recipe | None) -> Recipe:
    """A :class:`Recipe` from the ``compression:`` mapping (None or ``{}``: no compression); a Recipe as it
    is. ValueError ``path: what`` for the first problem (unknown techniques first, then by technique)."""
    if isinstance(raw, Recipe):
        return raw
    if raw is None:
        return Recipe()
    if not isinstance(raw, Mapping):
        raise ValueError(f"compression: must be a mapping, not {type(raw).__name__}")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise ValueError(_message(_first(error.errors()))) from None


def recipe_field(value: Any) -> Any:
    """A workload's ``compression:`` value, parsed (for a ``BeforeValidator``); anything but a mapping with
    text keys is left to the field's type check (which names the bad key)."""
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return parse_recipe(value)
    return value


_MODELS: dict[str, type[_Section]] = {
    "quantization": Quantization,
    "pruning": Pruning,
    "distillation": Distillation,
    "layer_dropping": LayerDropping,
}

#: The order a section's fields are checked in, for the one error reported (a pruning's ``sparsity`` is
#: judged against its ``pattern``).
_CHECKED: dict[str, tuple[str, ...]] = {name: tuple(model.model_fields) for name, model in _MODELS.items()}
_CHECKED["pruning"] = ("pattern", "sparsity", "target", "format", "method")

#: The field type of a workload's ``compression:`` section: a mapping validated into a :class:`Recipe`
#: (errors ``technique.field: what``, one per recipe).
RecipeField = Annotated[Recipe, BeforeValidator(recipe_field)]
