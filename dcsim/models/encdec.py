"""Encoder-decoder transformers (T5, Whisper) as op lists: an encoder stack over the input (token
embeddings, or Whisper's two-convolution audio front end) and a decoder stack whose layers add
cross-attention over the encoder output. Both stacks run the block code of :class:`TransformerConfig`."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dcsim.compute.ops import Embedding, Matmul, Normalization, Pointwise
from dcsim.models.base import DenseAttentionShape, LayerOp, ModelOps
from dcsim.models.transformer import TransformerConfig

FRONTENDS = ("tokens", "audio")
#: Taps of each of Whisper's two audio convolutions (Radford et al. 2022, section 2.2: width-3 filters,
#: the second with stride 2).
AUDIO_KERNEL = 3


@dataclass(frozen=True)
class EncoderDecoderConfig(DenseAttentionShape):
    """An encoder-decoder: ``encoder_layers`` pre-norm encoder layers over ``encoder_seq_len`` positions
    and ``decoder_layers`` causal decoder layers (self-attention, cross-attention, MLP) over up to
    ``max_seq_len`` target tokens. ``frontend`` ``tokens`` embeds input tokens with the table the decoder
    shares (T5); ``audio`` runs two width-3 convolutions (GELU after each, the second with stride 2) over
    ``mel_bins`` log-mel channels of ``2 * encoder_seq_len`` frames (Whisper); they are priced as the
    GEMMs they lower to. ``positional`` / ``encoder_positional`` are the decoder's and encoder's position
    schemes (see :class:`TransformerConfig`); ``tied_embeddings`` shares the token table with the head.
    ``bias`` gives every Linear a bias (Whisper's key projections have none: its count is 122,880 over).
    Under tensor parallelism both stacks are split as a transformer's; the audio front end is replicated."""

    name: str
    encoder_layers: int
    decoder_layers: int
    hidden: int
    heads: int
    ffn_hidden: int
    vocab: int
    max_seq_len: int
    encoder_seq_len: int
    kv_heads: int = 0
    norm: str = "layernorm"
    activation: str = "gelu"
    positional: str = "learned"
    encoder_positional: str = "learned"
    bias: bool = True
    tied_embeddings: bool = True
    relative_buckets: int = 32
    frontend: str = "tokens"
    mel_bins: int = 80
    source: str = ""

    def __post_init__(self) -> None:
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {', '.join(FRONTENDS)}, not {self.frontend!r}")
        for name in ("encoder_layers", "decoder_layers", "encoder_seq_len", "mel_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not self.kv_heads:
            object.__setattr__(self, "kv_heads", self.heads)
        _ = self.encoder, self.decoder  # validates the shared fields

    def _stack(self, family: str) -> TransformerConfig:
        encoder = family == "encoder"
        return TransformerConfig(
            f"{self.name}.{family}",
            self.encoder_layers if encoder else self.decoder_layers,
            self.hidden,
            self.heads,
            self.ffn_hidden,
            self.vocab,
            self.encoder_seq_len if encoder else self.max_seq_len,
            family=family,
            kv_heads=self.kv_heads,
            norm=self.norm,
            activation=self.activation,
            positional=self.encoder_positional if encoder else self.positional,
            bias=self.bias,
            tied_embeddings=self.tied_embeddings,
            pre_norm=True,
            relative_buckets=self.relative_buckets,
        )

    @functools.cached_property
    def encoder(self) -> TransformerConfig:
        """The encoder stack."""
        return self._stack("encoder")

    @functools.cached_property
    def decoder(self) -> TransformerConfig:
        """The decoder stack (its layers also run cross-attention)."""
        return self._stack("decoder")

    # --- the uniform model interface -------------------------------------------------------------------

    @property
    def layers(self) -> int:
        """Encoder plus decoder layers."""
        return self.encoder_layers + self.decoder_layers

    @property
    def block_layers(self) -> int:
        """Encoder plus decoder layers (the repeated layers a pipeline can split)."""
        return self.layers

    @property
    def default_seq_len(self) -> int:
        """Decoder tokens per sample when a step does not say: :attr:`max_seq_len` (the encoder always
        takes :attr:`encoder_seq_len` positions)."""
        return self.max_seq_len

    def tokens_per_sample(self, seq_len: int | None = None) -> int:
        """Positions one sample contributes to tokens/s: the encoder's plus the decoder's."""
        return self.encoder_seq_len + (self.default_seq_len if seq_len is None else seq_len)

    def param_count(self, tp: int = 1, ep: int = 1) -> int:
        """Parameters (per TP shard), from the op list that is costed."""
        return self.ops(1, 1, tp, ep=ep, encoder_seq_len=1).param_count

    def active_param_count(self) -> int:
        """Parameters one sample's forward pass uses: all of them."""
        return self.param_count()

    def step_ops(
        self, batch: int, seq_len: int | None = None, tp: int = 1, precision: str = "fp32", ep: int = 1
    ) -> ModelOps:
        """Forward ops of one step: ``batch`` samples of :attr:`encoder_seq_len` encoder positions and
        ``seq_len`` decoder tokens (None: :attr:`default_seq_len`)."""
        return self.ops(batch, self.default_seq_len if seq_len is None else seq_len, tp, precision, ep)

    def ops(
        self,
        batch: int,
        seq_len: int,
        tp: int = 1,
        precision: str = "fp32",
        ep: int = 1,
        encoder_seq_len: int | None = None,
    ) -> ModelOps:
        """Forward ops over ``batch`` samples of ``encoder_seq_len`` (None: the configured length) encoder
        positions and ``seq_len`` decoder tokens, on one TP shard."""
        enc_len = self.encoder_seq_len if encoder_seq_len is None else encoder_seq_len
        if batch < 1 or seq_len < 1 or enc_len < 1 or tp < 1:
            raise ValueError("batch, seq_len, encoder_seq_len and tp must be >= 1")
        if self.positional == "learned" and seq_len > self.max_seq_len:
            raise ValueError(f"seq_len ({seq_len}) exceeds max_seq_len ({self.max_seq_len})")
        if self.encoder_positional in ("learned", "sinusoidal") and enc_len > self.encoder_seq_len:
            raise ValueError(f"encoder_seq_len ({enc_len}) exceeds the model's {self.encoder_seq_len} positions")
        encoder, decoder = self.encoder, self.decoder
        encoder.check_shard(tp, ep)
        d, p = self.hidden, precision
        pre = [*self._input_ops(batch, enc_len, seq_len, tp, p)]
        pre += encoder.position_ops(batch, enc_len, tp, p, prefix="encoder.")
        pre += decoder.position_ops(batch, seq_len, tp, p, prefix="decoder.")
        final_norm = Normalization(self.norm, batch * enc_len, d, p)
        blocks = [
            *encoder.block_ops(batch, enc_len, tp, p, prefix="encoder."),
            LayerOp("encoder.final_norm", final_norm, weights=True),
            *decoder.block_ops(batch, seq_len, tp, p, cross_len=enc_len, prefix="decoder."),
        ]
        post = decoder.head_ops(batch * seq_len, tp, p)
        name = f"{self.name} b{batch} enc{enc_len} s{seq_len} tp{tp} {precision}"
        return ModelOps(name, (*pre, *blocks, *post))

    def _input_ops(self, batch: int, enc_len: int, seq_len: int, tp: int, p: str) -> list[LayerOp]:
        """Encoder input (token lookup or audio convolutions) and the decoder's token lookup."""
        d, vocab = self.hidden, self.vocab // tp
        out: list[LayerOp] = []
        table_uses = (1 if self.frontend == "tokens" else 0) + 1 + (1 if self.tied_embeddings else 0)
        if table_uses > 1:  # the shared table's gradients are added last
            grad = Pointwise("add", vocab * d, p)
            out.append(LayerOp("embed.tied_grad", grad, table_uses - 1, backward_only=True, part="pre"))
        if self.frontend == "tokens":
            table = Embedding(batch * enc_len, vocab, d, p)
            out.append(LayerOp("encoder.embed.tokens", table, weights=True, part="pre"))
        else:
            frames, k = 2 * enc_len, AUDIO_KERNEL
            conv1 = Matmul(batch * frames, d, self.mel_bins * k, precision=p)
            conv2 = Matmul(batch * enc_len, d, d * k, precision=p)  # stride 2: half the frames
            out += [
                LayerOp("encoder.frontend.conv1", conv1, weights=True, bias=True, part="pre"),
                LayerOp("encoder.frontend.act1", Pointwise("gelu", batch * frames * d, p), part="pre"),
                LayerOp("encoder.frontend.conv2", conv2, weights=True, bias=True, part="pre"),
                LayerOp("encoder.frontend.act2", Pointwise("gelu", batch * enc_len * d, p), part="pre"),
            ]
        decoder_table = Embedding(batch * seq_len, vocab, d, p)
        owns_table = self.frontend != "tokens"  # T5's decoder looks up the encoder's (shared) table
        out.append(LayerOp("decoder.embed.tokens", decoder_table, weights=owns_table, part="pre"))
        return out
