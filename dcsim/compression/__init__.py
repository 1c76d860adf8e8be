"""Model compression: quantization, pruning, distillation and layer dropping, with accuracy and production cost.

A recipe (the workload's ``compression:`` section, :mod:`dcsim.compression.recipe`) applied to a model config::

    from dcsim.compression import apply_recipe

    cm = apply_recipe(get_model("llama2-7b"), {"quantization": {"weights": "int4", "method": "awq"}}, precision="fp16")
    cm.config                                  # the architecture after distillation / structured pruning / dropping
    ops = cm.step_ops(batch, seq_len, tp=1, precision="fp16")   # its op list (head pruning applied)
    fast, notes = cm.transform_ops(ops, "h100-sxm")             # sparsity and quantization, per device rules
    cm.weight_bytes("h100-sxm")                # stored weight bytes (None: every format assumed usable)
    cm.kv_bytes_per_token_factor               # KV-cache bytes per token relative to the model's precision
    cm.accuracy                                # AccuracyEstimate: nearest published point, or unknown
    cm.production_cost("h100-sxm", training=plan_evaluation)    # ProductionCost: accelerator-s and dollars

Where the lead wires it in: ``dcsim/parallel/stages.py`` and ``dcsim/models/inference.py`` build op lists with
``config.step_ops``; with compression they call ``cm.step_ops`` and then ``cm.transform_ops(ops, device)[0]``
before pricing; memory uses ``cm.weight_bytes(device)`` in place of params x bytes per element and multiplies KV
bytes per token by ``cm.kv_bytes_per_token_factor``; COST's ``compression`` term is
``cm.production_cost(...).usd``. The order of the transforms and the device rules are in
:mod:`dcsim.compression.transforms`; the accuracy data in ``data/accuracy.yaml``. See ``docs/compression.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dcsim.compression.accuracy import (
    AccuracyEstimate,
    AccuracyPoint,
    estimate_accuracy,
    load_accuracy_points,
)
from dcsim.compression.production import ProductionCost, production_cost
from dcsim.compression.recipe import Recipe, parse_recipe
from dcsim.compression.transforms import (
    ORDER,
    compress_architecture,
    prune_heads,
    storage_recipe,
    transform_ops,
    weight_bytes,
)
from dcsim.compute.ops import BYTES_PER_ELEMENT
from dcsim.models import ModelConfig, ModelOps, transformer_like

__all__ = [
    "ORDER",
    "AccuracyEstimate",
    "AccuracyPoint",
    "CompressedModel",
    "ProductionCost",
    "Recipe",
    "apply_recipe",
    "estimate_accuracy",
    "load_accuracy_points",
    "parse_recipe",
]

#: Activation (and KV-cache) precisions a serving precision implies.
_SERVING = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class CompressedModel:
    """A model config with a recipe applied (see the module docstring). ``original`` is the uncompressed
    config, ``config`` the compressed architecture, ``kept_heads`` the heads per layer kept by head pruning
    (None: all), ``precision`` the serving precision of what is not quantized."""

    original: ModelConfig
    config: ModelConfig
    recipe: Recipe
    precision: str
    kept_heads: int | None = None

    def step_ops(
        self, batch: int, seq_len: int | None = None, tp: int = 1, precision: str | None = None, ep: int = 1
    ) -> ModelOps:
        """The compressed architecture's forward ops, as ``config.step_ops`` (head pruning applied; sparsity and
        quantization not yet: see :meth:`transform_ops`)."""
        ops = self.config.step_ops(batch, seq_len, tp=tp, precision=precision or self.precision, ep=ep)
        shape = transformer_like(self.config)
        if self.kept_heads is not None and shape is not None:  # heads are pruned only where there are heads
            ops = prune_heads(ops, shape.heads, self.kept_heads)
        return ops

    def transform_ops(self, ops: ModelOps, device: str | None) -> tuple[ModelOps, dict[str, str]]:
        """Sparsity and quantization of ``ops`` for ``device`` (None: storage only): (new ops, a note per
        changed layer saying what was applied or why not)."""
        return transform_ops(ops, self.recipe, device)

    def weight_bytes(self, device: str | None = None) -> float:
        """Bytes of the stored weights (whole model, one copy) on ``device`` (None: every format usable)."""
        ops, _ = transform_ops(self.step_ops(1, 1), storage_recipe(self.recipe, device), None)
        return weight_bytes(ops)

    def param_count(self) -> int:
        """Parameters of the compressed architecture (sparsity keeps the count: zeros are parameters)."""
        return self.step_ops(1, 1).param_count

    @property
    def kv_bytes_per_token_factor(self) -> float:
        """KV-cache bytes per token relative to the uncompressed model at ``precision``: the KV precision's
        bytes over the serving precision's, times the fraction of key-value heads and layers kept."""
        quant = self.recipe.quantization
        factor = 1.0
        if quant is not None and quant.kv_cache is not None:
            factor = BYTES_PER_ELEMENT[quant.kv_cache] / BYTES_PER_ELEMENT[self.precision]
        return factor * _kv_width(self) / _kv_width_of(self.original)

    @property
    def accuracy(self) -> AccuracyEstimate:
        """The nearest published accuracy point for this recipe on the original model, or ``unknown``."""
        return estimate_accuracy(self.original, self.recipe)

    def production_cost(self, accelerator: str, **kwargs: Any) -> ProductionCost:
        """Accelerator-seconds and dollars to produce this model (see
        :func:`dcsim.compression.production.production_cost` for the keyword arguments)."""
        kwargs.setdefault("precision", "bf16" if self.precision == "fp16" else self.precision)
        return production_cost(self.original, self.config, self.recipe, accelerator, **kwargs)


def _kv_width_of(config: ModelConfig, kept_heads: int | None = None) -> float:
    """Key-value elements per token per model: layers x KV heads x head width (1 for non-transformers)."""
    shape = transformer_like(config)
    if shape is None:
        return 1.0
    heads, kv = shape.heads, shape.kv_heads
    if kept_heads is not None:
        kv = max(1, kv * kept_heads // heads)
    return float(shape.layers * kv * (shape.hidden // heads))


def _kv_width(model: CompressedModel) -> float:
    return _kv_width_of(model.config, model.kept_heads)


def apply_recipe(
    model_config: ModelConfig, recipe: Recipe | Mapping[str, Any] | None, precision: str = "fp16"
) -> CompressedModel:
    """Apply a recipe (a :class:`Recipe` or the ``compression:`` mapping) to a model config; ``precision`` is
    the serving precision of everything not quantized. ValueError naming the recipe field on a bad recipe."""
    if precision not in _SERVING:
        raise ValueError(f"precision: must be one of {', '.join(_SERVING)}, not {precision!r}")
    parsed = parse_recipe(recipe)
    config, kept = compress_architecture(model_config, parsed)
    return CompressedModel(model_config, config, parsed, precision, kept)
