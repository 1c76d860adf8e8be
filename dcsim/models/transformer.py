"""Transformer architectures (decoder, encoder) as op lists: GPT-2/GPT-3, BERT and, through the
options, Llama-style models (RMSNorm, SwiGLU, grouped-query attention, rotary positions) and
mixture-of-experts models (Mixtral: a router and ``experts_per_token`` of ``experts`` MLPs per token;
DeepSeek-V3: multi-head latent attention, fine-grained routed experts, shared experts, leading dense
layers and group-limited routing).

:meth:`TransformerConfig.ops` lists one step's forward ops for ``batch`` sequences of ``seq_len``
tokens on one tensor-parallel shard of ``tp`` (Megatron-style: attention heads, the QKV/first-MLP
output columns, the projection/second-MLP input rows and the vocabulary are split ``tp`` ways; norms,
residual adds, position embeddings and the MoE router are replicated) and one expert-parallel rank of
``ep`` (each rank holds ``experts / ep`` experts).

The block code (:meth:`TransformerConfig.block_ops`) is shared by the ViT and encoder-decoder
configurations (:mod:`dcsim.models.vit`, :mod:`dcsim.models.encdec`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcsim.compute.ops import Attention, Embedding, Matmul, Normalization, Op, Pointwise
from dcsim.models.base import LayerOp, ModelOps
from dcsim.models.mla import check_mla_fields, mla_attention_ops

FAMILIES = ("decoder", "encoder")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "silu", "swiglu", "relu")
POSITIONALS = ("learned", "rope", "none", "relative", "sinusoidal")


def rotary_training_ops(tokens: int, heads: int, kv_heads: int, head_dim: int, precision: str) -> list[tuple[str, Op]]:
    """(name, op) of one layer's rotary position embedding as training code applies it: Hugging Face
    ``transformers``' ``apply_rotary_pos_emb`` (``models/llama/modeling_llama.py``, 4.5x) computes
    ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = cat(-x2, x1)`` for the queries and then the
    keys, five elementwise kernels each: the negation of half the elements, the concatenation (a copy),
    two multiplies and an add (the cos/sin table, ``seq x head_dim``, is computed once per forward pass
    and is left out: four kernels of a few thousand elements)."""
    out: list[tuple[str, Op]] = []
    for tensor, count in (("q", heads), ("k", kv_heads)):
        numel = tokens * count * head_dim
        out += [
            (f"attn.rope_{tensor}.negate", Pointwise("copy", numel // 2, precision)),  # unary: a copy's traffic
            (f"attn.rope_{tensor}.rotate", Pointwise("copy", numel, precision)),
            (f"attn.rope_{tensor}.cos", Pointwise("mul", numel, precision)),
            (f"attn.rope_{tensor}.sin", Pointwise("mul", numel, precision)),
            (f"attn.rope_{tensor}.add", Pointwise("add", numel, precision)),
        ]
    return out


@dataclass(frozen=True)
class TransformerConfig:
    """A transformer's shape. ``family`` is ``decoder`` (causal, LM head) or ``encoder`` (bidirectional,
    post-norm, masked-LM head as in BERT). ``kv_heads`` < ``heads`` is grouped-query attention (0 or None:
    as many as ``heads``; after construction always an int); ``activation`` ``swiglu`` uses a gated MLP
    (gate and up projections fused, ``ffn_hidden`` wide each); ``positional`` ``learned`` adds a
    position-embedding table of ``max_seq_len`` rows, ``relative`` a T5 bucketed bias table
    (``relative_buckets`` x heads, added to every layer's attention scores), ``sinusoidal`` a fixed table
    (no parameters), ``rope`` no table but the rotation of every layer's queries and keys
    (:func:`rotary_training_ops`), ``none`` nothing. ``bias`` gives Linear layers a bias vector;
    ``tied_embeddings`` shares the token table with the output head (the head's matmul still runs).
    ``pre_norm`` (default: True for decoders, False for encoders, as in BERT) puts the norms before the
    attention and MLP. ``experts`` > 1 makes every MLP a mixture of experts: a router picks
    ``experts_per_token`` of them per token (the parameter count holds every expert).

    DeepSeek-style models (DeepSeek-V3 Technical Report, arXiv 2412.19437, sections 2.1.1-2.1.2; the field
    names follow ``transformers``' ``DeepseekV3Config``): ``attention_kind`` ``mla`` is multi-head latent
    attention with ``q_lora_rank`` (0: uncompressed queries), ``kv_lora_rank``, ``qk_nope_head_dim``,
    ``qk_rope_head_dim`` and ``v_head_dim`` (:mod:`dcsim.models.mla`; HF ``q_lora_rank`` ...);
    ``moe_ffn_hidden`` is one expert's MLP width (0: ``ffn_hidden``; HF ``moe_intermediate_size``), which
    ``ffn_hidden`` keeps for the ``first_dense_layers`` dense layers (HF ``first_k_dense_replace``);
    ``shared_experts`` (HF ``n_shared_experts``) MLPs of that width run on every token next to the routed
    ones; the experts form ``expert_groups`` contiguous groups (HF ``n_group``) and a token's experts come
    from at most ``expert_groups_per_token`` of them (HF ``topk_group``; 0: any). Placed one group per node,
    that is DeepSeek's node-limited routing (:mod:`dcsim.parallel.moe`)."""

    name: str
    layers: int
    hidden: int
    heads: int
    ffn_hidden: int
    vocab: int
    max_seq_len: int
    family: str = "decoder"
    kv_heads: int = 0
    norm: str = "layernorm"
    activation: str = "gelu"
    positional: str = "learned"
    bias: bool = True
    tied_embeddings: bool = False
    token_types: int = 0
    source: str = ""
    experts: int = 1
    experts_per_token: int = 1
    pre_norm: bool | None = None
    relative_buckets: int = 32
    attention_kind: str = "mha"
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    moe_ffn_hidden: int = 0
    shared_experts: int = 0
    first_dense_layers: int = 0
    expert_groups: int = 1
    expert_groups_per_token: int = 0

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "ffn_hidden", "vocab", "max_seq_len", "experts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")
        if not self.kv_heads:
            object.__setattr__(self, "kv_heads", self.heads)
        if not isinstance(self.kv_heads, int) or self.kv_heads < 1 or self.heads % self.kv_heads:
            raise ValueError(f"kv_heads ({self.kv_heads}) must divide heads ({self.heads})")
        if not isinstance(self.experts_per_token, int) or not 1 <= self.experts_per_token <= self.experts:
            raise ValueError(
                f"experts_per_token ({self.experts_per_token}) must be between 1 and experts ({self.experts})"
            )
        if self.positional == "relative" and self.relative_buckets < 1:
            raise ValueError(f"relative_buckets must be >= 1, not {self.relative_buckets}")
        check_mla_fields(self)
        self._check_moe_fields()
        checks = {"family": FAMILIES, "norm": NORMS, "activation": ACTIVATIONS, "positional": POSITIONALS}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")

    def _check_moe_fields(self) -> None:
        """ValueError naming the field for inconsistent DeepSeek-style MoE settings."""
        names = ("moe_ffn_hidden", "shared_experts", "first_dense_layers", "expert_groups", "expert_groups_per_token")
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        if self.experts == 1:
            for name in names:
                if getattr(self, name) != (1 if name == "expert_groups" else 0):
                    raise ValueError(f"{name} needs a mixture of experts (experts > 1)")
            return
        if self.first_dense_layers >= self.layers:
            raise ValueError(f"first_dense_layers ({self.first_dense_layers}) must be below layers ({self.layers})")
        groups = self.expert_groups
        if groups < 1 or self.experts % groups:
            raise ValueError(f"expert_groups ({groups}) must divide experts ({self.experts})")
        if self.expert_groups_per_token > groups:
            raise ValueError(
                f"expert_groups_per_token ({self.expert_groups_per_token}) must be <= expert_groups ({groups})"
            )
        if self.experts_per_token > self.routed_groups * (self.experts // groups):
            raise ValueError(
                f"experts_per_token ({self.experts_per_token}) exceeds the experts of expert_groups_per_token "
                f"({self.routed_groups}) groups"
            )

    # --- the uniform model interface -------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads

    @property
    def routed_groups(self) -> int:
        """Expert groups one token's experts may come from (``expert_groups_per_token``; 0: every group)."""
        return self.expert_groups_per_token or self.expert_groups

    @property
    def expert_ffn_hidden(self) -> int:
        """Width of one routed (and one shared) expert's MLP: ``moe_ffn_hidden``, else ``ffn_hidden``."""
        return self.moe_ffn_hidden or self.ffn_hidden

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts: all but the ``first_dense_layers`` (0 when dense)."""
        return self.layers - self.first_dense_layers if self.experts > 1 else 0

    @property
    def is_pre_norm(self) -> bool:
        """Whether norms come before attention and MLP (``pre_norm``, else by family)."""
        return self.family == "decoder" if self.pre_norm is None else self.pre_norm

    @property
    def block_layers(self) -> int:
        """Repeated layers a pipeline can split."""
        return self.layers

    @property
    def default_seq_len(self) -> int:
        """Tokens per sequence when a step does not say: the maximum context."""
        return self.max_seq_len

    def tokens_per_sample(self, seq_len: int | None = None) -> int:
        """Tokens one sequence contributes to tokens/s."""
        return self.default_seq_len if seq_len is None else seq_len

    def param_count(self, tp: int = 1, ep: int = 1) -> int:
        """Parameters (per TP shard and EP rank; every expert at ``ep`` 1), from the op list that is costed."""
        return self.ops(1, 1, tp, ep=ep).param_count

    def active_param_count(self) -> int:
        """Parameters one token's forward pass uses: all but the routed experts the router did not pick
        (shared experts and the leading dense layers' MLPs always run)."""
        total = 0
        for layer in self.ops(1, 1).layers:
            if layer.expert:  # count = MoE layers x every expert: keep k of them
                total += layer.params * layer.count * self.experts_per_token // self.experts
            else:
                total += layer.params * layer.count
        return total

    def step_ops(
        self, batch: int, seq_len: int | None = None, tp: int = 1, precision: str = "fp32", ep: int = 1
    ) -> ModelOps:
        """Forward ops of one step (``seq_len`` None: :attr:`default_seq_len`)."""
        return self.ops(batch, self.default_seq_len if seq_len is None else seq_len, tp, precision, ep)

    def ops(self, batch: int, seq_len: int, tp: int = 1, precision: str = "fp32", ep: int = 1) -> ModelOps:
        """Forward ops of one step over ``batch`` sequences of ``seq_len`` tokens on one TP shard / EP rank."""
        if batch < 1 or seq_len < 1 or tp < 1 or ep < 1:
            raise ValueError("batch, seq_len, tp and ep must be >= 1")
        if self.positional == "learned" and seq_len > self.max_seq_len:
            raise ValueError(f"seq_len ({seq_len}) exceeds max_seq_len ({self.max_seq_len})")
        self.check_shard(tp, ep)
        tokens = batch * seq_len
        layers = [
            *self.embedding_ops(tokens, seq_len, tp, precision),
            *self.block_ops(batch, seq_len, tp, precision, ep),
            *self.head_ops(tokens, tp, precision),
        ]
        return ModelOps(f"{self.name} b{batch} s{seq_len} tp{tp} {precision}", tuple(layers))

    # --- building blocks, shared with the ViT and encoder-decoder configurations -----------------------

    def check_shard(self, tp: int, ep: int = 1) -> None:
        """ValueError unless ``tp`` divides the heads and MLP width and ``ep`` divides the experts."""
        sizes = [("heads", self.heads), ("kv_heads", self.kv_heads), ("ffn_hidden", self.ffn_hidden)]
        if self.moe_ffn_hidden:
            sizes.append(("moe_ffn_hidden", self.moe_ffn_hidden))
        for what, size in sizes:
            if size % tp:
                raise ValueError(f"tp ({tp}) must divide {what} ({size})")
        if self.experts % ep:
            raise ValueError(f"ep ({ep}) must divide experts ({self.experts})")

    def position_ops(self, batch: int, seq_len: int, tp: int, precision: str, prefix: str = "") -> list[LayerOp]:
        """The position information added to (or, ``relative``, computed for) the token activations."""
        d, tokens, p = self.hidden, batch * seq_len, precision
        if self.positional == "learned":
            table = Embedding(seq_len, self.max_seq_len, d, p)
            return [
                LayerOp(f"{prefix}embed.positions", table, weights=True, part="pre"),
                LayerOp(f"{prefix}embed.positions.add", Pointwise("add", tokens * d, p), part="pre"),
            ]
        if self.positional == "sinusoidal":  # a fixed table: the add, no parameters
            return [LayerOp(f"{prefix}embed.positions.add", Pointwise("add", tokens * d, p), part="pre")]
        if self.positional == "relative":  # one bias per (query, key) bucket and head, shared by the layers
            table = Embedding(seq_len * seq_len, self.relative_buckets, self.heads // tp, p)
            return [LayerOp(f"{prefix}embed.relative_bias", table, weights=True, part="pre")]
        return []

    def embedding_ops(self, tokens: int, seq_len: int, tp: int, precision: str) -> list[LayerOp]:
        """Token (and position, segment) embeddings: the ``pre`` ops."""
        d = self.hidden
        out = []
        if self.tied_embeddings:  # the table's two gradients (output head, lookup) are added last
            grad = Pointwise("add", self.vocab // tp * d, precision)
            out.append(LayerOp("embed.tied_grad", grad, backward_only=True, part="pre"))
        table = Embedding(tokens, self.vocab // tp, d, precision)
        out.append(LayerOp("embed.tokens", table, weights=True, part="pre"))
        out += self.position_ops(tokens // seq_len, seq_len, tp, precision)
        if self.token_types:
            types = Embedding(tokens, self.token_types, d, precision)
            out.append(LayerOp("embed.token_types", types, weights=True, part="pre"))
            out.append(LayerOp("embed.token_types.add", Pointwise("add", tokens * d, precision), part="pre"))
        if self.family == "encoder" and not self.is_pre_norm:
            norm = Normalization(self.norm, tokens, d, precision)
            out.append(LayerOp("embed.norm", norm, weights=True, part="pre"))
        return out

    def block_ops(
        self,
        batch: int,
        seq_len: int,
        tp: int,
        precision: str,
        ep: int = 1,
        *,
        cross_len: int | None = None,
        prefix: str = "",
    ) -> list[LayerOp]:
        """One layer's ops, ``count`` = :attr:`layers` (pre-norm or post-norm). ``cross_len`` adds a
        cross-attention sub-layer over that many encoder positions (an encoder-decoder's decoder)."""
        tokens, d, p, n = batch * seq_len, self.hidden, precision, self.layers
        heads, kv, hd = self.heads // tp, self.kv_heads // tp, self.head_dim

        def op(name: str, value: Op, weights: bool = False, bias: bool = False) -> LayerOp:
            return LayerOp(f"{prefix}{name}", value, n, weights=weights, bias=bias)

        def norm(name: str) -> LayerOp:
            return op(name, Normalization(self.norm, tokens, d, p), weights=True)

        if self.attention_kind == "mla":
            attn = mla_attention_ops(self, batch, seq_len, tp, p, prefix)
        else:
            attn = self._mha_ops(batch, seq_len, tp, p, prefix)
        cross: list[LayerOp] = []
        if cross_len is not None:
            memory = batch * cross_len
            cross = [
                op("xattn.q", Matmul(tokens, heads * hd, d, precision=p), weights=True, bias=self.bias),
                op("xattn.kv", Matmul(memory, 2 * kv * hd, d, precision=p), weights=True, bias=self.bias),
                op("xattn.core", Attention(batch, heads, seq_len, cross_len, hd, False, kv, p)),
                op("xattn.layout", Pointwise("copy", tokens * heads * hd, p)),
                op("xattn.proj", Matmul(tokens, d, heads * hd, precision=p), weights=True, bias=self.bias),
                op("xattn.residual", Pointwise("add", tokens * d, p)),
            ]
        mlp = self._mlp_ops(batch * seq_len, tp, ep, precision, prefix)
        if not self.is_pre_norm:
            return [*attn, norm("attn.norm"), *cross, *([norm("xattn.norm")] if cross else []), *mlp, norm("mlp.norm")]
        return [norm("attn.norm"), *attn, *([norm("xattn.norm")] if cross else []), *cross, norm("mlp.norm"), *mlp]

    def _mha_ops(self, batch: int, seq_len: int, tp: int, p: str, prefix: str) -> list[LayerOp]:
        """Multi-head (grouped-query) self-attention of one layer, fused QKV to the residual add."""
        tokens, d, n = batch * seq_len, self.hidden, self.layers
        heads, kv, hd = self.heads // tp, self.kv_heads // tp, self.head_dim

        def op(name: str, value: Op, weights: bool = False, bias: bool = False) -> LayerOp:
            return LayerOp(f"{prefix}{name}", value, n, weights=weights, bias=bias)

        attn = [op("attn.qkv", Matmul(tokens, (heads + 2 * kv) * hd, d, precision=p), weights=True, bias=self.bias)]
        if self.positional == "relative":  # the shared bias is added to every layer's scores
            attn.append(op("attn.position_bias", Pointwise("add", batch * heads * seq_len * seq_len, p)))
        if self.positional == "rope":
            attn += [op(name, value) for name, value in rotary_training_ops(tokens, heads, kv, hd, p)]
        causal = self.family == "decoder"
        return [
            *attn,
            op("attn.core", Attention(batch, heads, seq_len, seq_len, hd, causal, kv, p)),
            op("attn.layout", Pointwise("copy", tokens * heads * hd, p)),
            op("attn.proj", Matmul(tokens, d, heads * hd, precision=p), weights=True, bias=self.bias),
            op("attn.residual", Pointwise("add", tokens * d, p)),
        ]

    def _mlp_ops(self, tokens: int, tp: int, ep: int, precision: str, prefix: str) -> list[LayerOp]:
        """The MLP sub-layer: dense in every layer of a dense model and in the ``first_dense_layers`` of a
        mixture of experts, a mixture of experts (with its ``shared_experts``) in the other layers."""
        dense = self.layers - self.moe_layers
        out = self._dense_mlp_ops("mlp", tokens, self.ffn_hidden // tp, dense, precision, prefix) if dense else []
        if self.moe_layers:
            out += self._moe_ops(tokens, tp, ep, precision, prefix)
        return out

    def _dense_mlp_ops(
        self, name: str, tokens: int, ffn: int, count: int, p: str, prefix: str, residual: bool = True
    ) -> list[LayerOp]:
        """A dense MLP ``ffn`` wide (per shard) over ``tokens`` rows in ``count`` layers (``name.up`` ...)."""
        d = self.hidden
        up_width = 2 * ffn if self.activation == "swiglu" else ffn
        act = "silu" if self.activation == "swiglu" else self.activation
        mlp = [
            LayerOp(f"{prefix}{name}.up", Matmul(tokens, up_width, d, precision=p), count, True, self.bias),
            LayerOp(f"{prefix}{name}.act", Pointwise(act, tokens * ffn, p), count),
        ]
        if self.activation == "swiglu":
            mlp.append(LayerOp(f"{prefix}{name}.gate", Pointwise("mul", tokens * ffn, p), count))
        mlp.append(LayerOp(f"{prefix}{name}.down", Matmul(tokens, d, ffn, precision=p), count, True, self.bias))
        if residual:
            mlp.append(LayerOp(f"{prefix}mlp.residual", Pointwise("add", tokens * d, p), count))
        return mlp

    def _moe_ops(self, tokens: int, tp: int, ep: int, precision: str, prefix: str) -> list[LayerOp]:
        """One mixture-of-experts layer (``count`` = :attr:`moe_layers`): router, dispatch, the held routed
        experts, the shared experts (every token, DeepSeek-style), combine and residual."""
        d, p, n = self.hidden, precision, self.moe_layers
        ffn = self.expert_ffn_hidden // tp
        up_width = 2 * ffn if self.activation == "swiglu" else ffn
        act = "silu" if self.activation == "swiglu" else self.activation
        # Balanced routing: the EP group's tokens x top-k assignments are spread evenly over the experts;
        # this rank holds experts / ep of them, so it computes the same tokens x k expert-MLP rows as
        # without EP (its share of the group's ep x tokens x k), rounded up per expert. Every held expert is
        # listed (its weights are held); with fewer assignments than experts (small decode batches) each
        # still runs one row, which overprices those steps.
        k, local = self.experts_per_token, self.experts // ep
        rows = math.ceil(tokens * k * ep / self.experts)
        e, bias = n * local, self.bias
        experts = [
            LayerOp(f"{prefix}moe.expert.up", Matmul(rows, up_width, d, precision=p), e, True, bias, expert=True),
            LayerOp(f"{prefix}moe.expert.act", Pointwise(act, rows * ffn, p), e, expert=True),
        ]
        if self.activation == "swiglu":
            experts.append(LayerOp(f"{prefix}moe.expert.gate", Pointwise("mul", rows * ffn, p), e, expert=True))
        experts.append(
            LayerOp(f"{prefix}moe.expert.down", Matmul(rows, d, ffn, precision=p), e, True, bias, expert=True)
        )
        shared: list[LayerOp] = []
        if self.shared_experts:  # one MLP shared_experts x expert_ffn_hidden wide over every token (HF: n_shared)
            width = self.shared_experts * self.expert_ffn_hidden // tp
            shared = self._dense_mlp_ops("moe.shared", tokens, width, n, p, prefix, residual=False)
            shared.append(LayerOp(f"{prefix}moe.shared.add", Pointwise("add", tokens * d, p), n))
        return [
            LayerOp(f"{prefix}moe.router", Matmul(tokens, self.experts, d, precision=p), n, weights=True),
            LayerOp(f"{prefix}moe.route", Normalization("softmax", tokens, self.experts, p), n),
            LayerOp(f"{prefix}moe.dispatch", Pointwise("copy", tokens * k * d, p), n),
            *experts,
            LayerOp(f"{prefix}moe.combine", Pointwise("mul", tokens * k * d, p), n),
            *shared,
            LayerOp(f"{prefix}mlp.residual", Pointwise("add", tokens * d, p), n),
        ]

    def head_ops(self, tokens: int, tp: int, precision: str, prefix: str = "") -> list[LayerOp]:
        """Final norm, output head and loss: the ``post`` ops."""
        d, p, vocab = self.hidden, precision, self.vocab // tp
        out = []
        if self.family == "encoder" and not self.is_pre_norm:  # BERT masked-LM head transform
            dense = Matmul(tokens, d, d, precision=p)
            out += [
                LayerOp(f"{prefix}head.dense", dense, weights=True, bias=self.bias, part="post"),
                LayerOp(f"{prefix}head.act", Pointwise("gelu", tokens * d, p), part="post"),
            ]
        out.append(LayerOp(f"{prefix}head.norm", Normalization(self.norm, tokens, d, p), weights=True, part="post"))
        weights = not self.tied_embeddings
        bias = self.bias and self.family == "encoder"
        logits = Matmul(tokens, vocab, d, precision=p)
        out.append(LayerOp(f"{prefix}head.logits", logits, weights=weights, bias=bias, part="post"))
        loss = Normalization("softmax", tokens, vocab, p)  # cross-entropy = log-softmax + gather
        out.append(LayerOp(f"{prefix}head.loss", loss, training_only=True, part="post"))
        return out
