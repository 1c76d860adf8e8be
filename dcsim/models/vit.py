"""Vision Transformer (Dosovitskiy et al. 2021) as an op list: a patch-embedding convolution, a class
token and learned positions, a pre-norm encoder (the block code of :class:`TransformerConfig`) and a
linear classifier on the class token."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dcsim.compute.ops import Conv2d, Embedding, Matmul, Normalization, Pointwise
from dcsim.models.base import DenseAttentionShape, LayerOp, ModelOps
from dcsim.models.transformer import TransformerConfig


@dataclass(frozen=True)
class ViTConfig(DenseAttentionShape):
    """A ViT: ``layers`` pre-norm encoder layers of width ``hidden`` (LayerNorm, GELU MLP ``ffn_hidden``
    wide, biases) over the ``(image_size / patch_size)^2`` patches of an image plus a class token, and a
    ``num_classes`` classifier. The position table has one row per token at ``image_size``; a step at
    another image size uses that many rows of it (no interpolation is priced). Under tensor parallelism
    the encoder is split as a transformer's; the patch embedding and classifier are replicated."""

    name: str
    layers: int
    hidden: int
    heads: int
    ffn_hidden: int
    image_size: int = 224
    patch_size: int = 16
    channels: int = 3
    num_classes: int = 1000
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "channels", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size ({self.patch_size}) must divide image_size ({self.image_size})")
        _ = self.encoder  # validates layers, hidden, heads, ffn_hidden

    @functools.cached_property
    def encoder(self) -> TransformerConfig:
        """The encoder stack (its block code is what the layers run)."""
        return TransformerConfig(
            f"{self.name}.encoder",
            self.layers,
            self.hidden,
            self.heads,
            self.ffn_hidden,
            vocab=self.num_classes,
            max_seq_len=self.patches(self.image_size) + 1,
            family="encoder",
            positional="none",
            pre_norm=True,
        )

    def patches(self, image_size: int) -> int:
        """Patches of one ``image_size`` x ``image_size`` image."""
        return (image_size // self.patch_size) ** 2

    # --- the uniform model interface (images: the "sequence length" is the image side in pixels) -------

    @property
    def kv_heads(self) -> int:
        """Key/value heads (as many as query heads)."""
        return self.heads

    @property
    def vocab(self) -> int:
        """No token vocabulary: 0 (the classifier has :attr:`num_classes` outputs)."""
        return 0

    @property
    def activation(self) -> str:
        """The MLP's activation: GELU (not gated)."""
        return "gelu"

    @property
    def tied_embeddings(self) -> bool:
        """No token table to share with the classifier: False."""
        return False

    @property
    def block_layers(self) -> int:
        """Encoder layers."""
        return self.layers

    @property
    def default_seq_len(self) -> int:
        """Image side in pixels when a step does not say: :attr:`image_size`."""
        return self.image_size

    def tokens_per_sample(self, seq_len: int | None = None) -> int:
        """Samples count as one each (images, not tokens)."""
        return 1

    def param_count(self, tp: int = 1, ep: int = 1) -> int:
        """Parameters (per TP shard), from the op list that is costed."""
        return self.step_ops(1, tp=tp, ep=ep).param_count

    def active_param_count(self) -> int:
        """Parameters one image's forward pass uses: all of them."""
        return self.param_count()

    def step_ops(
        self, batch: int, seq_len: int | None = None, tp: int = 1, precision: str = "fp32", ep: int = 1
    ) -> ModelOps:
        """Forward ops of one step over ``batch`` images of ``seq_len`` pixels a side (None: image_size)."""
        return self.ops(batch, self.image_size if seq_len is None else seq_len, tp, precision, ep)

    def ops(self, batch: int, image_size: int, tp: int = 1, precision: str = "fp32", ep: int = 1) -> ModelOps:
        """Forward ops over ``batch`` images of ``image_size`` x ``image_size`` pixels on one TP shard."""
        if batch < 1 or tp < 1:
            raise ValueError("batch and tp must be >= 1")
        if image_size < self.patch_size or image_size % self.patch_size:
            raise ValueError(f"image size ({image_size}) must be a multiple of patch_size ({self.patch_size})")
        if image_size > self.image_size:
            raise ValueError(f"image size ({image_size}) exceeds image_size ({self.image_size}): no position rows")
        if ep != 1:
            raise ValueError(f"ep ({ep}) must be 1 for {self.name}: it has no experts")
        encoder = self.encoder
        encoder.check_shard(tp)
        d, p = self.hidden, precision
        patches = self.patches(image_size)
        seq = patches + 1
        tokens = batch * seq
        patchify = Conv2d(
            batch, self.channels, d, image_size, image_size, self.patch_size, self.patch_size, precision=p
        )
        pre = [
            LayerOp("embed.patches", patchify, weights=True, bias=True, part="pre"),
            LayerOp("embed.patches.layout", Pointwise("copy", batch * patches * d, p), part="pre"),
            LayerOp("embed.cls", Embedding(batch, 1, d, p), weights=True, part="pre"),  # one learned row per image
            LayerOp("embed.concat", Pointwise("copy", tokens * d, p), part="pre"),
            LayerOp("embed.positions", Embedding(seq, encoder.max_seq_len, d, p), weights=True, part="pre"),
            LayerOp("embed.positions.add", Pointwise("add", tokens * d, p), part="pre"),
        ]
        post = [
            LayerOp("head.norm", Normalization("layernorm", tokens, d, p), weights=True, part="post"),
            LayerOp("head.fc", Matmul(batch, self.num_classes, d, precision=p), weights=True, bias=True, part="post"),
            LayerOp("head.loss", Normalization("softmax", batch, self.num_classes, p), training_only=True, part="post"),
        ]
        layers = (*pre, *encoder.block_ops(batch, seq, tp, p), *post)
        return ModelOps(f"{self.name} b{batch} {image_size}px tp{tp} {precision}", layers)
