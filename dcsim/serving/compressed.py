"""A compression recipe applied to a served model: its architecture, how its iterations are priced, and the
bytes of its weights and KV cache (:mod:`dcsim.compression` does the work; this is the serving side).

Serving op lists (:mod:`dcsim.models.inference`) are ``(op, count)`` pairs; the Linear layers of the repeated
blocks are the ``Matmul`` ops repeated once per layer. Those are what sparsity and quantization change (as
:func:`dcsim.compression.transforms.transform_ops` decides for the device); the embedding and the output head
keep the serving precision, as AWQ and GPTQ checkpoints do. KV-cache quantization shrinks the bytes of every
cached token (so the blocks that fit) and the bytes decode attention reads (:attr:`ServedCompression.kv_precision`,
passed to :class:`~dcsim.serving.costs.IterationCost`). Uniform head pruning (``pruning: {pattern: structured,
target: heads}``) keeps :attr:`ServedCompression.kept_heads` heads per layer, whole key-value groups:
``IterationCost`` applies :func:`dcsim.compression.transforms.prune_heads` to every op list, and the KV bytes
per token shrink with the key-value heads kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dcsim.compression import CompressedModel, apply_recipe
from dcsim.compression.recipe import Recipe
from dcsim.compression.transforms import transform_ops
from dcsim.compute.ops import BYTES_PER_ELEMENT, Matmul, Op
from dcsim.models import LayerOp, ModelOps
from dcsim.models.inference import weight_bytes as dense_weight_bytes
from dcsim.models.transformer import TransformerConfig
from dcsim.serving.costs import kept_kv_heads

OpList = list[tuple[Op, int]]


@dataclass(frozen=True)
class ServedCompression:
    """A recipe on a served decoder: ``config`` to serve, and per device the op transform and byte factors."""

    model: CompressedModel

    @property
    def config(self) -> TransformerConfig:
        """The architecture served (the student, fewer layers or channels)."""
        config = self.model.config
        if not isinstance(config, TransformerConfig):  # served_compression admits transformer students only
            raise TypeError(f"a served model is a transformer, not a {type(config).__name__}")
        return config

    def transform(self, device: str) -> Callable[[OpList], OpList]:
        """``(op, count)`` list -> the same with the blocks' Linear layers compressed for ``device``."""
        recipe = self.model.recipe
        layers = self.config.layers
        cache: dict[tuple[Op, int], tuple[Op, int]] = {}

        def apply(ops: OpList) -> OpList:
            todo = [(op, count) for op, count in ops if (op, count) not in cache]
            if todo:
                listed = tuple(
                    LayerOp(
                        f"op{i}",
                        op,
                        count,
                        weights=isinstance(op, Matmul) and op.batch == 1 and count == layers,
                        part="block" if count == layers else "post",
                    )
                    for i, (op, count) in enumerate(todo)
                )
                new, _notes = transform_ops(ModelOps("serving", listed), recipe, device)
                for (op, count), layer in zip(todo, new.layers, strict=True):
                    cache[(op, count)] = (layer.op, count)
            return [cache[item] for item in ops]

        return apply

    def weight_factor(self, device: str, precision: str) -> float:
        """Stored weight bytes on ``device`` over the dense bytes of the served architecture."""
        return self.model.weight_bytes(device) / dense_weight_bytes(self.config, precision, 1)

    @property
    def kv_precision(self) -> str | None:
        """Element type of a quantized KV cache (``quantization.kv_cache``), None when it is not quantized."""
        quant = self.model.recipe.quantization
        return None if quant is None else quant.kv_cache

    @property
    def kept_heads(self) -> int | None:
        """Attention heads per layer kept by head pruning (None: all)."""
        return self.model.kept_heads

    def kv_factor(self, precision: str) -> float:
        """KV bytes per token relative to the served architecture at the serving precision: the KV precision's
        bytes (``quantization.kv_cache``) times the fraction of key-value heads kept by head pruning."""
        factor = 1.0
        if self.kv_precision is not None:
            factor = BYTES_PER_ELEMENT[self.kv_precision] / BYTES_PER_ELEMENT[precision]
        if self.kept_heads is not None:
            factor *= kept_kv_heads(self.config, self.kept_heads) / (self.config.kv_heads or self.config.heads)
        return factor


def served_compression(
    config: TransformerConfig, recipe: Recipe | Mapping[str, Any] | None, precision: str
) -> ServedCompression | None:
    """The recipe (a validated :class:`~dcsim.compression.recipe.Recipe`, used as it is, or a mapping, parsed)
    applied to a served model (None for an empty recipe). ValueError naming the recipe field, or what serving
    cannot do with it (a student of another family)."""
    if not recipe:
        return None
    model = apply_recipe(config, recipe, precision)
    if not isinstance(model.config, TransformerConfig) or model.config.family != config.family:
        raise ValueError(f"distillation.student: must be a transformer of family {config.family}, as the served model")
    return ServedCompression(model)
