"""Model descriptions as op lists: what an architecture computes for one step, layer by layer.

A :class:`ModelOps` is a tuple of :class:`LayerOp` (a named op, how many times it repeats, and whether it
holds weights). Forward ops are listed; the backward pass is derived (each op's ``backward()``, in
reverse order). Parameter count, FLOPs and bytes all come from this one list, so they never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import Field, dataclass
from typing import Any, ClassVar, Protocol

from dcsim.compute.ops import Conv2d, Embedding, Matmul, Normalization, Op, SparseMatmul, WeightOnlyMatmul

PHASES = ("fwd", "bwd", "fwd+bwd")
#: Where an op sits: before the repeated layers (embeddings, stem, patchify), inside them, or after them
#: (final norm, head, loss). A pipeline puts ``pre`` on its first stage, ``post`` on its last and splits ``block``.
PARTS = ("pre", "block", "post")


@dataclass(frozen=True)
class LayerOp:
    """One forward op of a model: ``count`` identical copies (e.g. one per transformer layer).

    ``weights`` marks an op that owns parameters (a Linear's matrix, an embedding table, a norm's
    scale); ``bias`` adds the bias vector of a Linear or convolution to the parameter count (a tied
    output head has a bias but no matrix of its own).
    ``training_only`` ops (the loss) run only in a training step, not in inference;
    ``backward_only`` ops have no forward work and cost ``op.backward()`` in the backward pass (the
    accumulation of a tied weight's two gradients).
    ``expert`` marks the per-expert weights of a mixture-of-experts layer (``count`` = layers x experts
    held; expert parallelism shards these, data parallelism over ``dp / ep`` replicates them).
    ``part`` is ``pre``, ``block`` or ``post`` (see :data:`PARTS`). A transformer's ``block`` ops have
    ``count`` = the layers of their stack (one copy per layer; encoder-decoder models prefix the names with
    ``encoder.`` / ``decoder.``); a ResNet's are listed block by block with ``count`` 1.
    """

    name: str
    op: Op
    count: int = 1
    weights: bool = False
    bias: bool = False
    training_only: bool = False
    backward_only: bool = False
    part: str = "block"
    expert: bool = False

    def __post_init__(self) -> None:
        if self.part not in PARTS:
            raise ValueError(f"LayerOp.part must be one of {', '.join(PARTS)}, not {self.part!r}")

    @property
    def params(self) -> int:
        """Parameters of one copy (0 unless ``weights``)."""
        op = self.op
        # a tied head has no weight matrix of its own but may have a bias; compressed Linears count their
        # logical (k x n) weights
        if isinstance(op, Matmul | WeightOnlyMatmul | SparseMatmul):
            return (op.k * op.n if self.weights else 0) + (op.n if self.bias else 0)
        if not self.weights:
            return 0
        if isinstance(op, Embedding):
            return op.vocab * op.hidden
        if isinstance(op, Conv2d):
            return op.weight_count + (op.out_channels if self.bias else 0)
        if isinstance(op, Normalization):
            return op.cols * (1 if op.op_kind == "rmsnorm" else 2)
        raise TypeError(f"{type(op).__name__} ops hold no parameters")


@dataclass(frozen=True)
class ModelOps:
    """The forward ops of one model step at a given batch, size and sharding."""

    name: str
    layers: tuple[LayerOp, ...]

    @property
    def param_count(self) -> int:
        """Parameters held by this op list (per tensor-parallel shard if the ops are sharded)."""
        return sum(layer.params * layer.count for layer in self.layers)

    def part(self, *parts: str) -> ModelOps:
        """The ops of the given parts only (e.g. ``part("block")``), in order."""
        for part in parts:
            if part not in PARTS:
                raise ValueError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
        return ModelOps(self.name, tuple(layer for layer in self.layers if layer.part in parts))

    def steps(self, phase: str, training: bool | None = None) -> Iterator[tuple[LayerOp, Op]]:
        """(layer, op) in execution order for ``fwd``, ``bwd`` or ``fwd+bwd``.

        ``training`` (default: True unless ``phase`` is ``fwd``) includes the training-only ops.
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
        training = phase != "fwd" if training is None else training
        layers = [layer for layer in self.layers if training or not layer.training_only]
        if phase in ("fwd", "fwd+bwd"):
            yield from ((layer, layer.op) for layer in layers if not layer.backward_only)
        if phase in ("bwd", "fwd+bwd"):
            yield from ((layer, layer.op.backward()) for layer in reversed(layers))

    def ops(self, phase: str = "fwd") -> list[tuple[Op, int]]:
        """(op, count) pairs of a phase, ready to cost."""
        return [(op, layer.count) for layer, op in self.steps(phase)]

    def flops(self, phase: str = "fwd") -> float:
        """Total FLOPs of a phase."""
        return sum(op.flops * count for op, count in self.ops(phase))

    def time(self, predict: Callable[[Op], float], phase: str = "fwd") -> float:
        """Seconds for a phase: the sum of ``predict(op)`` over its ops (ops run one after another)."""
        return sum(predict(op) * count for op, count in self.ops(phase))

    def breakdown(self, predict: Callable[[Op], float], phase: str = "fwd") -> dict[str, float]:
        """Seconds per layer name (forward and backward of a layer summed), for inspection."""
        out: dict[str, float] = {}
        for layer, op in self.steps(phase):
            out[layer.name] = out.get(layer.name, 0.0) + predict(op) * layer.count
        return out


class ModelConfig(Protocol):
    """What every architecture config provides (:class:`~dcsim.models.TransformerConfig`,
    :class:`~dcsim.models.ViTConfig`, :class:`~dcsim.models.EncoderDecoderConfig`,
    :class:`~dcsim.models.ResNetConfig`): the training, serving and compression layers call only this, plus
    :class:`TransformerLike` where a model is a stack of attention layers (:func:`~dcsim.models.transformer_like`).

    Configs are frozen dataclasses (hashable: the cost caches key on them; ``dataclasses.replace`` makes a
    compressed variant). Images read ``seq_len`` as the image side in pixels."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def __hash__(self) -> int:
        """By value (frozen dataclasses): the cost caches key on configs."""
        ...

    @property
    def name(self) -> str:
        """The zoo id, or the inline name."""
        ...

    @property
    def block_layers(self) -> int:
        """Repeated layers a pipeline can split (encoder plus decoder layers; a ResNet's bottleneck blocks)."""
        ...

    @property
    def default_seq_len(self) -> int:
        """Tokens per sequence (image side in pixels) when a step does not say."""
        ...

    @property
    def experts(self) -> int:
        """Experts of each mixture-of-experts layer (dense models: 1)."""
        ...

    @property
    def experts_per_token(self) -> int:
        """Experts the router picks per token (dense models: 1)."""
        ...

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts (dense models: 0)."""
        ...

    def tokens_per_sample(self, seq_len: int | None = None) -> int:
        """Tokens one sample contributes to tokens/s (images: 1)."""
        ...

    def param_count(self, tp: int = 1, ep: int = 1) -> int:
        """Parameters per tensor-parallel shard and expert-parallel rank."""
        ...

    def active_param_count(self) -> int:
        """Parameters one token's (sample's) forward pass uses."""
        ...

    def step_ops(
        self, batch: int, seq_len: int | None = None, tp: int = 1, precision: str = "fp32", ep: int = 1
    ) -> ModelOps:
        """Forward ops of one step (``seq_len`` None: :attr:`default_seq_len`)."""
        ...


class TransformerLike(ModelConfig, Protocol):
    """A :class:`ModelConfig` built of attention layers (every config but ResNet): the shape the closed-form
    memory, FLOP and traffic models read. ``vocab`` is 0 for a ViT (a classifier, no token table)."""

    @property
    def layers(self) -> int:
        """Attention layers (encoder plus decoder ones for an encoder-decoder)."""
        ...

    @property
    def hidden(self) -> int:
        """Model width."""
        ...

    @property
    def heads(self) -> int:
        """Query heads."""
        ...

    @property
    def kv_heads(self) -> int:
        """Key/value heads (as many as ``heads`` without grouped-query attention)."""
        ...

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        ...

    @property
    def ffn_hidden(self) -> int:
        """MLP width (of each of a gated MLP's two up projections)."""
        ...

    @property
    def vocab(self) -> int:
        """Token vocabulary (0: none)."""
        ...

    @property
    def activation(self) -> str:
        """MLP activation (``swiglu``: a gated MLP)."""
        ...

    @property
    def tied_embeddings(self) -> bool:
        """Whether the token table is shared with the output head."""
        ...


class DenseAttentionShape:
    """Properties shared by dense (non-MoE) attention architectures that have ``hidden`` and ``heads``."""

    hidden: int
    heads: int

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads

    @property
    def experts(self) -> int:
        """Dense: 1."""
        return 1

    @property
    def experts_per_token(self) -> int:
        """Dense: 1."""
        return 1

    @property
    def moe_layers(self) -> int:
        """Dense: 0."""
        return 0
