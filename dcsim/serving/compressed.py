"""A compression recipe applied to a served model: its architecture, how its iterations are priced, and the
bytes of its weights and KV cache (:mod:`dcsim.compression` does the work; this is the serving side).

Serving op lists (:mod:`dcsim.models.inference`) are ``(op, count)`` pairs; the Linear layers of the repeated
blocks are the ``Matmul`` ops repeated once per layer. Those are what sparsity and quantization change (as
:func:`dcsim.compression.transforms.transform_ops` decides for the device); the embedding and the output head
keep the serving precision, as AWQ and GPTQ checkpoints do. KV-cache quantization shrinks the bytes of every
cached token (so the blocks that fit); the decode attention is still priced at the serving precision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dcsim.compression import CompressedModel, apply_recipe
from dcsim.compression.transforms import transform_ops
from dcsim.compute.ops import BYTES_PER_ELEMENT, Matmul, Op
from dcsim.models import LayerOp, ModelOps
from dcsim.models.inference import weight_bytes as dense_weight_bytes
from dcsim.models.transformer import TransformerConfig

OpList = list[tuple[Op, int]]


@dataclass(frozen=True)
class ServedCompression:
    """A recipe on a served decoder: ``config`` to serve, and per device the op transform and byte factors."""

    model: CompressedModel

    @property
    def config(self) -> TransformerConfig:
        """The architecture served (the student, fewer layers or channels)."""
        config: TransformerConfig = self.model.config
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

    def kv_factor(self, precision: str) -> float:
        """KV bytes per token relative to the serving precision (``quantization.kv_cache``)."""
        quant = self.model.recipe.quantization
        if quant is None or quant.kv_cache is None:
            return 1.0
        return BYTES_PER_ELEMENT[quant.kv_cache] / BYTES_PER_ELEMENT[precision]


def served_compression(
    config: TransformerConfig, recipe: Mapping[str, Any] | None, precision: str
) -> ServedCompression | None:
    """The recipe applied to a served model (None for an empty recipe). ValueError naming the recipe field,
    or what serving cannot do with it (pruned attention heads)."""
    if not recipe:
        return None
    model = apply_recipe(config, recipe, precision)
    if model.kept_heads is not None:
        raise ValueError("pruning.target: heads is not modelled for serving yet (channels or layers are)")
    if not isinstance(model.config, TransformerConfig) or model.config.family != "decoder":
        raise ValueError("distillation.student: serving needs a decoder transformer")
    return ServedCompression(model)
