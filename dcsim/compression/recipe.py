"""A compression recipe, typed and validated: the ``compression:`` section of a workload.

``parse_recipe(mapping)`` turns the scenario mapping into a :class:`Recipe`; every problem is a ValueError
whose message starts with the field path (``quantization.weights: must be one of ...``), which the scenario
layer prefixes with ``workloads[i].compression.``::

    quantization:  {weights: int8|int4|fp8, activations: fp16|bf16|int8|fp8, method: gptq|awq|smoothquant|rtn|fp8,
                    kv_cache: int8|fp8|null, group_size: 128}
    pruning:       {sparsity: 0.5, pattern: unstructured|"2:4"|structured, target: heads|channels|layers,
                    format: dense|csr, method: magnitude|sparsegpt|wanda}
    distillation:  {student: <zoo id or inline architecture>, tokens: 2.0e9}
    layer_dropping: {layers: 4}

``activations`` fp16/bf16 means weight-only quantization (GPTQ/AWQ style): the GEMM runs in the model's own
precision reading low-bit weights. ``activations`` int8 (SmoothQuant W8A8) needs int8 weights, fp8 needs fp8
weights. ``pruning.format`` says how unstructured-sparse weights are stored: ``dense`` (zeros kept in place,
the default: no memory or time saved) or ``csr`` (values plus indices). ``pattern: "2:4"`` is 50% sparsity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WEIGHTS = ("int8", "int4", "fp8")
ACTIVATIONS = ("fp16", "bf16", "int8", "fp8")
METHODS = ("gptq", "awq", "smoothquant", "rtn", "fp8")
KV_CACHE = ("int8", "fp8")
PATTERNS = ("unstructured", "2:4", "structured")
TARGETS = ("heads", "channels", "layers")
FORMATS = ("dense", "csr")
PRUNING_METHODS = ("magnitude", "sparsegpt", "wanda")
SECTIONS = ("quantization", "pruning", "distillation", "layer_dropping")


@dataclass(frozen=True)
class Quantization:
    """Weights stored in ``weights``; GEMM inputs in ``activations`` (16-bit: weight-only); ``kv_cache``
    precision of the KV cache (None: the model's own); ``group_size`` weights share a scale (weight-only)."""

    weights: str
    activations: str = "fp16"
    method: str = "rtn"
    kv_cache: str | None = None
    group_size: int = 128

    @property
    def weight_only(self) -> bool:
        """True when activations stay 16-bit (GPTQ/AWQ style): the GEMM runs in the model's precision."""
        return self.activations in ("fp16", "bf16")


@dataclass(frozen=True)
class Pruning:
    """``sparsity`` is the fraction removed: of the weights (unstructured, 2:4) or of the ``target``
    (structured: heads, MLP channels or layers). ``format`` stores unstructured weights dense or in CSR."""

    sparsity: float
    pattern: str = "unstructured"
    target: str | None = None
    format: str = "dense"
    method: str | None = None


@dataclass(frozen=True)
class Distillation:
    """A ``student`` architecture (zoo id or inline mapping) trained on ``tokens`` tokens against the
    teacher (the workload's model)."""

    student: str | Mapping[str, Any]
    tokens: float = 0.0


@dataclass(frozen=True)
class LayerDropping:
    """Drop the last ``layers`` repeated layers (model cropping, early exit at a fixed depth)."""

    layers: int


@dataclass(frozen=True)
class Recipe:
    """Which techniques to apply (None: not used). See :mod:`dcsim.compression.transforms` for the order."""

    quantization: Quantization | None = None
    pruning: Pruning | None = None
    distillation: Distillation | None = None
    layer_dropping: LayerDropping | None = None

    @property
    def empty(self) -> bool:
        """True when no technique is used."""
        return not (self.quantization or self.pruning or self.distillation or self.layer_dropping)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: must be a mapping, not {type(value).__name__}")
    return value


def _unknown(raw: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown field (known: {', '.join(known)})")


def _choice(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str, default: Any = None) -> Any:
    value = raw.get(key, default)
    if value is None and default is None:
        return None
    if value not in allowed:
        raise ValueError(f"{where}.{key}: must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where}: must be a positive integer, not {value!r}")
    return value


def _quantization(raw: Mapping[str, Any]) -> Quantization:
    w = "quantization"
    _unknown(raw, ("weights", "activations", "method", "kv_cache", "group_size"), w)
    if "weights" not in raw:
        raise ValueError(f"{w}.weights: required (one of {', '.join(WEIGHTS)})")
    weights = _choice(raw, "weights", WEIGHTS, w)
    activations = _choice(raw, "activations", ACTIVATIONS, w, "fp16")
    method = _choice(raw, "method", METHODS, w, "fp8" if weights == "fp8" else "rtn")
    kv = _choice(raw, "kv_cache", KV_CACHE, w)
    group = _positive_int(raw.get("group_size", 128), f"{w}.group_size")
    if activations == "int8" and weights != "int8":
        raise ValueError(f"{w}.activations: int8 activations (W8A8) need weights: int8, not {weights}")
    if activations == "fp8" and weights != "fp8":
        raise ValueError(f"{w}.activations: fp8 activations need weights: fp8, not {weights}")
    if method == "smoothquant" and activations != "int8":
        raise ValueError(f"{w}.method: smoothquant quantizes activations: needs activations: int8, not {activations}")
    if method == "fp8" and weights != "fp8":
        raise ValueError(f"{w}.method: fp8 needs weights: fp8, not {weights}")
    if weights == "fp8" and method not in ("fp8", "rtn"):
        raise ValueError(f"{w}.method: fp8 weights are cast with method fp8 (or rtn), not {method}")
    return Quantization(weights, activations, method, kv, group)


def _pruning(raw: Mapping[str, Any]) -> Pruning:
    w = "pruning"
    _unknown(raw, ("sparsity", "pattern", "target", "format", "method"), w)
    pattern = _choice(raw, "pattern", PATTERNS, w, "unstructured")
    sparsity = raw.get("sparsity", 0.5 if pattern == "2:4" else None)
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0.0 < float(sparsity) < 1.0:
        raise ValueError(f"{w}.sparsity: must be a number between 0 and 1 (exclusive), not {sparsity!r}")
    if pattern == "2:4" and float(sparsity) != 0.5:
        raise ValueError(f"{w}.sparsity: the 2:4 pattern removes exactly half the weights (0.5), not {sparsity}")
    target = _choice(raw, "target", TARGETS, w)
    if pattern == "structured" and target is None:
        raise ValueError(f"{w}.target: required for pattern structured (one of {', '.join(TARGETS)})")
    if pattern != "structured" and target is not None:
        raise ValueError(f"{w}.target: only for pattern structured, not {pattern}")
    fmt = _choice(raw, "format", FORMATS, w, "dense")
    if fmt == "csr" and pattern != "unstructured":
        raise ValueError(f"{w}.format: csr stores unstructured sparsity only, not pattern {pattern}")
    method = _choice(raw, "method", PRUNING_METHODS, w)
    return Pruning(float(sparsity), pattern, target, fmt, method)


def _distillation(raw: Mapping[str, Any]) -> Distillation:
    w = "distillation"
    _unknown(raw, ("student", "tokens"), w)
    student = raw.get("student")
    if not isinstance(student, str | Mapping) or not student:
        raise ValueError(f"{w}.student: required: a zoo id or an inline architecture")
    tokens = raw.get("tokens", 0.0)
    if isinstance(tokens, bool) or not isinstance(tokens, int | float) or tokens < 0:
        raise ValueError(f"{w}.tokens: must be a number of training tokens >= 0, not {tokens!r}")
    return Distillation(student, float(tokens))


def _layer_dropping(raw: Mapping[str, Any]) -> LayerDropping:
    _unknown(raw, ("layers",), "layer_dropping")
    return LayerDropping(_positive_int(raw.get("layers"), "layer_dropping.layers"))


def parse_recipe(raw: Mapping[str, Any] | Recipe | None) -> Recipe:
    """A :class:`Recipe` from the ``compression:`` mapping (None or ``{}``: no compression)."""
    if isinstance(raw, Recipe):
        return raw
    if raw is None:
        return Recipe()
    raw = _mapping(raw, "compression")
    for key in raw:
        if key not in SECTIONS:
            raise ValueError(f"{key}: unknown compression technique (known: {', '.join(SECTIONS)})")
    sections: dict[str, Any] = {}
    parsers = {
        "quantization": _quantization,
        "pruning": _pruning,
        "distillation": _distillation,
        "layer_dropping": _layer_dropping,
    }
    for name, parse in parsers.items():
        value = raw.get(name)
        if value is not None:
            sections[name] = parse(_mapping(value, name))
    return Recipe(**sections)
