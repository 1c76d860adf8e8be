"""Transformer architectures (decoder, encoder) as op lists: GPT-2/GPT-3, BERT and, through the
options, Llama-style models (RMSNorm, SwiGLU, grouped-query attention, rotary positions).

:meth:`TransformerConfig.ops` lists one step's forward ops for ``batch`` sequences of ``seq_len``
tokens on one tensor-parallel shard of ``tp`` (Megatron-style: attention heads, the QKV/first-MLP
output columns, the projection/second-MLP input rows and the vocabulary are split ``tp`` ways; norms,
residual adds and position embeddings are replicated).
"""

from __future__ import annotations

from dataclasses import dataclass

from dcsim.compute.ops import Attention, Embedding, Matmul, Normalization, Pointwise
from dcsim.models.base import LayerOp, ModelOps


@dataclass(frozen=True)
class TransformerConfig:
    """A transformer's shape. ``family`` is ``decoder`` (causal, LM head) or ``encoder`` (bidirectional,
    post-norm, masked-LM head as in BERT). ``kv_heads`` < ``heads`` is grouped-query attention;
    ``activation`` ``swiglu`` uses a gated MLP (gate and up projections fused, ``ffn_hidden`` wide each);
    ``positional`` ``learned`` adds a position-embedding table of ``max_seq_len`` rows, ``rope`` and
    ``none`` add no table. ``bias`` gives Linear layers a bias vector; ``tied_embeddings`` shares the
    token table with the output head (the head's matmul still runs)."""

    name: str
    layers: int
    hidden: int
    heads: int
    ffn_hidden: int
    vocab: int
    max_seq_len: int
    family: str = "decoder"
    kv_heads: int | None = None
    norm: str = "layernorm"
    activation: str = "gelu"
    positional: str = "learned"
    bias: bool = True
    tied_embeddings: bool = False
    token_types: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "ffn_hidden", "vocab", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"TransformerConfig.{name} must be >= 1")
        if self.hidden % self.heads:
            raise ValueError(f"TransformerConfig.heads ({self.heads}) must divide hidden ({self.hidden})")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"TransformerConfig.kv_heads ({self.kv_heads}) must divide heads ({self.heads})")
        checks = {
            "family": ("decoder", "encoder"),
            "norm": ("layernorm", "rmsnorm"),
            "activation": ("gelu", "silu", "swiglu"),
            "positional": ("learned", "rope", "none"),
        }
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TransformerConfig.{name} must be one of {', '.join(allowed)}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads

    def _check_shard(self, tp: int) -> None:
        kv = self.kv_heads or self.heads
        for what, size in (("heads", self.heads), ("kv_heads", kv), ("ffn_hidden", self.ffn_hidden)):
            if size % tp:
                raise ValueError(f"tp ({tp}) must divide {what} ({size})")

    def _embedding(self, tokens: int, seq_len: int, tp: int, precision: str) -> list[LayerOp]:
        d = self.hidden
        out = []
        if self.tied_embeddings:  # the table's two gradients (output head, lookup) are added last
            out.append(
                LayerOp("embed.tied_grad", Pointwise("add", self.vocab // tp * d, precision), backward_only=True)
            )
        out.append(LayerOp("embed.tokens", Embedding(tokens, self.vocab // tp, d, precision), weights=True))
        extra = []
        if self.positional == "learned":
            extra.append(("embed.positions", Embedding(seq_len, self.max_seq_len, d, precision)))
        if self.token_types:
            extra.append(("embed.token_types", Embedding(tokens, self.token_types, d, precision)))
        for name, table in extra:
            out.append(LayerOp(name, table, weights=True))
            out.append(LayerOp(f"{name}.add", Pointwise("add", tokens * d, precision)))
        if self.family == "encoder":
            out.append(LayerOp("embed.norm", Normalization(self.norm, tokens, d, precision), weights=True))
        return out

    def _block(self, batch: int, seq_len: int, tp: int, precision: str) -> list[LayerOp]:
        """One layer's ops (pre-norm for decoders, post-norm for encoders)."""
        tokens, d, p, n = batch * seq_len, self.hidden, precision, self.layers
        heads, kv = self.heads // tp, (self.kv_heads or self.heads) // tp
        hd = self.head_dim
        qkv_width = (heads + 2 * kv) * hd
        ffn = self.ffn_hidden // tp
        up_width = 2 * ffn if self.activation == "swiglu" else ffn
        causal = self.family == "decoder"

        def norm(name: str) -> LayerOp:
            return LayerOp(name, Normalization(self.norm, tokens, d, p), count=n, weights=True)

        attn = [
            LayerOp("attn.qkv", Matmul(tokens, qkv_width, d, precision=p), n, weights=True, bias=self.bias),
            LayerOp("attn.core", Attention(batch, heads, seq_len, seq_len, hd, causal, kv, p), n),
            LayerOp("attn.layout", Pointwise("copy", tokens * heads * hd, p), n),
            LayerOp("attn.proj", Matmul(tokens, d, heads * hd, precision=p), n, weights=True, bias=self.bias),
            LayerOp("attn.residual", Pointwise("add", tokens * d, p), n),
        ]
        act = "silu" if self.activation == "swiglu" else self.activation
        mlp = [
            LayerOp("mlp.up", Matmul(tokens, up_width, d, precision=p), n, weights=True, bias=self.bias),
            LayerOp("mlp.act", Pointwise(act, tokens * ffn, p), n),
        ]
        if self.activation == "swiglu":
            mlp.append(LayerOp("mlp.gate", Pointwise("mul", tokens * ffn, p), n))
        mlp += [
            LayerOp("mlp.down", Matmul(tokens, d, ffn, precision=p), n, weights=True, bias=self.bias),
            LayerOp("mlp.residual", Pointwise("add", tokens * d, p), n),
        ]
        if self.family == "encoder":
            return [*attn, norm("attn.norm"), *mlp, norm("mlp.norm")]
        return [norm("attn.norm"), *attn, norm("mlp.norm"), *mlp]

    def _head(self, tokens: int, tp: int, precision: str) -> list[LayerOp]:
        d, p, vocab = self.hidden, precision, self.vocab // tp
        out = []
        if self.family == "encoder":  # BERT masked-LM head transform
            out += [
                LayerOp("head.dense", Matmul(tokens, d, d, precision=p), weights=True, bias=self.bias),
                LayerOp("head.act", Pointwise("gelu", tokens * d, p)),
            ]
        out.append(LayerOp("head.norm", Normalization(self.norm, tokens, d, p), weights=True))
        weights = not self.tied_embeddings
        bias = self.bias and self.family == "encoder"
        out.append(LayerOp("head.logits", Matmul(tokens, vocab, d, precision=p), weights=weights, bias=bias))
        loss = Normalization("softmax", tokens, vocab, p)  # cross-entropy = log-softmax + gather
        out.append(LayerOp("head.loss", loss, training_only=True))
        return out

    def ops(self, batch: int, seq_len: int, tp: int = 1, precision: str = "fp32") -> ModelOps:
        """Forward ops of one step over ``batch`` sequences of ``seq_len`` tokens on one TP shard."""
        if batch < 1 or seq_len < 1 or tp < 1:
            raise ValueError("batch, seq_len and tp must be >= 1")
        if self.positional == "learned" and seq_len > self.max_seq_len:
            raise ValueError(f"seq_len ({seq_len}) exceeds max_seq_len ({self.max_seq_len})")
        self._check_shard(tp)
        tokens = batch * seq_len
        layers = [
            *self._embedding(tokens, seq_len, tp, precision),
            *self._block(batch, seq_len, tp, precision),
            *self._head(tokens, tp, precision),
        ]
        return ModelOps(f"{self.name} b{batch} s{seq_len} tp{tp} {precision}", tuple(layers))

    def param_count(self, tp: int = 1) -> int:
        """Parameters (per TP shard), from the same op list that is costed."""
        return self.ops(1, 1, tp).param_count
