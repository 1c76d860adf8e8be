"""Inference op lists of a transformer: prefill and decode iterations of a decoder with a KV cache, and the
single forward pass of an encoder.

An iteration of an LLM server runs one forward pass over the tokens of every sequence in its batch:
prompt tokens being prefilled (all positions of a prompt, or a chunk of it) and one new token per sequence
being decoded. The dense layers (QKV, projection, MLP, norms, residuals) run once over all those tokens;
attention is per sequence: a prefill chunk of ``q`` tokens after ``past`` cached ones is
``Attention(q_len=q, kv_len=past + q, causal)``, a decode step is ``Attention(q_len=1, kv_len=context)``
(kind ``attention_decode``) against the sequence's cache. New keys and values are written to the cache
(``attn.kv_write``). The output head computes logits only at the last position of each sequence (as vLLM
does), so it runs over ``sequences`` rows, not over every token; the final norm before it runs over every
token (vLLM's model forward normalizes all hidden states; ``compute_logits`` then picks the last positions).
Rotary position embeddings (``positional: rope``) are not listed: serving engines rotate the new queries
and keys with one fused kernel in place (vLLM's ``rotary_embedding`` op, ``csrc/pos_encoding_kernels.cu``),
one read and one write of ``tokens x (heads + kv_heads) x head_dim`` elements per layer, under 1% of a prefill
on a CPU; GPU profiles time such a kernel at eager PyTorch's dispatch cost, which CUDA-graph engines do not
pay. Training code applies the rotation unfused, and :meth:`TransformerConfig.ops` lists it
(:func:`dcsim.models.transformer.rotary_training_ops`).

An encoder (``family: encoder``, BERT-style) serves a classification or embedding request in one forward
pass over its whole input: bidirectional attention (``causal=False``), no cache write, no decode step. Its
head is BERT's pooler (a ``hidden x hidden`` Linear and tanh on each sequence's first token, the input of
``BertForSequenceClassification``'s classifier; the tanh is priced as the calibrated GELU kernel, the
nearest elementwise class, and the classifier itself, ``hidden x labels`` with a handful of labels, is left
out). Its K and V live only inside each layer's forward pass, so it keeps no KV cache.

A mixture-of-experts decoder (Mixtral: ``experts`` E MLPs per layer, a router picking ``experts_per_token``
k of them per token) replaces each layer's MLP by the router, the dispatch of every token to its k experts,
the expert MLPs and the weighted combine. The expert GEMMs run for the tokens routed to them, and a GEMM
reads its expert's weights once, so an iteration reads the weights of the experts at least one of its tokens
uses: :func:`expected_active_experts` of them under uniform routing, rounded to a whole expert (batch-1
decode: k of E; a large batch or a prefill: all E), each over ``ceil(tokens x k / active)`` rows. Every
expert's weights are held (:func:`weight_bytes`); each expert's MLP is split ``tp`` ways like a dense MLP
(vLLM's tensor-parallel fused MoE).

Ops are for one tensor-parallel shard of ``tp`` (heads, QKV/MLP columns, vocabulary split ``tp`` ways, as in
:meth:`TransformerConfig.ops`); the all-reduces between shards are not ops here (see :func:`allreduce_bytes`).
:func:`dense_layers` names every op (``attn.qkv``, ``attn.kv_write``, ...), so op-list transforms such as
:func:`dcsim.compression.transforms.prune_heads` apply to serving iterations as they do to training steps.
"""

from __future__ import annotations

from collections.abc import Sequence

from dcsim.compute.ops import BYTES_PER_ELEMENT, Attention, Embedding, Matmul, Normalization, Op, Pointwise
from dcsim.models.base import LayerOp, ModelOps
from dcsim.models.mla import mla_kv_cache_elements_per_token
from dcsim.models.transformer import TransformerConfig

OpList = list[tuple[Op, int]]
#: Families that can be served: decoders (prefill + decode with a KV cache) and encoders (one forward pass).
SERVED_FAMILIES = ("decoder", "encoder")


def _check(cfg: TransformerConfig, tp: int) -> None:
    if cfg.family not in SERVED_FAMILIES:
        raise ValueError(f"model {cfg.name!r} is an {cfg.family}: serving needs a decoder or an encoder")
    if cfg.experts > 1 and cfg.family != "decoder":
        raise ValueError(f"model {cfg.name!r} is a mixture-of-experts {cfg.family}: serving models MoE decoders")
    if not servable(cfg):
        raise ValueError(
            f"model {cfg.name!r}: serving prices multi-head attention and uniform MoE layers; multi-head latent "
            "attention, shared experts and leading dense layers are modelled for training only"
        )
    kv = cfg.kv_heads or cfg.heads
    for what, size in (("heads", cfg.heads), ("kv_heads", kv), ("ffn_hidden", cfg.ffn_hidden)):
        if tp < 1 or size % tp:
            raise ValueError(f"tp ({tp}) must divide {what} ({size})")


def servable(cfg: TransformerConfig) -> bool:
    """Whether these op lists describe ``cfg``: not for DeepSeek-style models (MLA attention, shared experts,
    leading dense layers, an expert width of their own), whose iterations they would misprice."""
    deepseek = (cfg.shared_experts, cfg.first_dense_layers, cfg.moe_ffn_hidden)
    return cfg.attention_kind == "mha" and not any(deepseek)


def expected_active_experts(experts: int, per_token: int, tokens: int) -> float:
    """Expected number of distinct experts (of ``experts`` E) that ``tokens`` tokens use when each picks
    ``per_token`` k of them: ``E x (1 - (1 - k/E)^tokens)``. Assumes uniform, independent routing (every
    expert equally likely for every token, as an auxiliary load-balancing loss aims for; real routers are
    skewed, which leaves more experts idle in a small batch): an expert is skipped by one token with
    probability ``1 - k/E``. One token uses exactly k; many use all E."""
    if not 1 <= per_token <= experts or tokens < 0:
        raise ValueError(f"need 1 <= per_token ({per_token}) <= experts ({experts}) and tokens ({tokens}) >= 0")
    return experts * (1.0 - (1.0 - per_token / experts) ** tokens)


def active_experts(cfg: TransformerConfig, tokens: int) -> int:
    """Experts whose weights an iteration over ``tokens`` tokens reads, per layer:
    :func:`expected_active_experts` rounded to the nearest whole expert, at least k (1 for a dense model)."""
    if cfg.experts == 1:
        return 1
    expected = expected_active_experts(cfg.experts, cfg.experts_per_token, tokens)
    return min(cfg.experts, max(cfg.experts_per_token, round(expected)))


def kv_bytes_per_token(cfg: TransformerConfig, precision: str, tp: int = 1) -> float:
    """Bytes of KV cache one token occupies on one TP shard: 2 (K and V) x layers x kv_heads/tp x head_dim
    x bytes per element; 0 for an encoder, which keeps no cache. Multi-head latent attention caches its
    latent and rotary key instead, whole on every TP shard (:func:`dcsim.models.mla.mla_kv_cache_elements_per_token`,
    layers x (kv_lora_rank + qk_rope_head_dim) elements), though such models are not served (:func:`servable`)."""
    if cfg.attention_kind == "mla":
        per_layer = mla_kv_cache_elements_per_token(cfg.kv_lora_rank, cfg.qk_rope_head_dim)
        return float(cfg.layers * per_layer * BYTES_PER_ELEMENT[precision])
    _check(cfg, tp)
    if cfg.family == "encoder":
        return 0.0
    kv = (cfg.kv_heads or cfg.heads) // tp
    return 2.0 * cfg.layers * kv * cfg.head_dim * BYTES_PER_ELEMENT[precision]


def weight_bytes(cfg: TransformerConfig, precision: str, tp: int = 1) -> float:
    """Bytes of the weights held by one TP shard (parameters from the same op list that is costed; for an
    encoder that list ends in BERT's masked-LM head transform, ``hidden x hidden`` plus a norm, about the
    size of the pooler it serves with)."""
    _check(cfg, tp)
    return cfg.param_count(tp) * BYTES_PER_ELEMENT[precision]


def allreduce_bytes(cfg: TransformerConfig, tokens: int, precision: str) -> float:
    """Bytes all-reduced across the TP group in one iteration over ``tokens`` tokens: two per layer (after
    the attention projection and after the MLP, Megatron-style), each ``tokens x hidden`` activations."""
    return 2.0 * cfg.layers * tokens * cfg.hidden * BYTES_PER_ELEMENT[precision]


def dense_layers(cfg: TransformerConfig, tokens: int, sequences: int, tp: int = 1, precision: str = "fp16") -> ModelOps:
    """Every op of an iteration but the attention cores, named: embeddings over ``tokens`` new tokens, the
    layers' GEMMs, norms, activations, residuals and (decoder) cache writes, and the head (decoder: the
    final norm over every token, as vLLM's ``LlamaModel.forward`` applies it before ``compute_logits`` picks
    the last positions, and the logits of the last position of each of the ``sequences``; encoder: the pooler
    of the first positions). The last two ops are always the head."""
    _check(cfg, tp)
    if tokens < 1 or sequences < 1 or sequences > tokens:
        raise ValueError(f"need 1 <= sequences ({sequences}) <= tokens ({tokens})")
    d, p, n = cfg.hidden, precision, cfg.layers
    heads, kv = cfg.heads // tp, (cfg.kv_heads or cfg.heads) // tp
    hd = cfg.head_dim
    ffn = cfg.ffn_hidden // tp
    up_width = 2 * ffn if cfg.activation == "swiglu" else ffn
    act = "silu" if cfg.activation == "swiglu" else cfg.activation
    decoder = cfg.family == "decoder"

    def pre(name: str, op: Op) -> LayerOp:
        return LayerOp(name, op, part="pre")

    def block(name: str, op: Op) -> LayerOp:
        return LayerOp(name, op, n)

    ops = [pre("embed.tokens", Embedding(tokens, cfg.vocab // tp, d, p))]
    if cfg.positional == "learned":
        ops += [
            pre("embed.positions", Embedding(tokens, cfg.max_seq_len, d, p)),
            pre("embed.positions.add", Pointwise("add", tokens * d, p)),
        ]
    if not decoder and cfg.token_types:
        ops += [
            pre("embed.token_types", Embedding(tokens, cfg.token_types, d, p)),
            pre("embed.token_types.add", Pointwise("add", tokens * d, p)),
        ]
    if not decoder and not cfg.is_pre_norm:
        ops.append(pre("embed.norm", Normalization(cfg.norm, tokens, d, p)))
    ops += [
        block("attn.norm", Normalization(cfg.norm, tokens, d, p)),
        block("attn.qkv", Matmul(tokens, (heads + 2 * kv) * hd, d, precision=p)),
    ]
    if decoder:  # new keys and values into the cache
        ops.append(block("attn.kv_write", Pointwise("copy", tokens * 2 * kv * hd, p)))
    ops += [
        block("attn.layout", Pointwise("copy", tokens * heads * hd, p)),
        block("attn.proj", Matmul(tokens, d, heads * hd, precision=p)),
        block("attn.residual", Pointwise("add", tokens * d, p)),
        block("mlp.norm", Normalization(cfg.norm, tokens, d, p)),
    ]
    if cfg.experts > 1:
        ops += _moe_ops(cfg, tokens, ffn, up_width, act, p)
    else:
        ops += [
            block("mlp.up", Matmul(tokens, up_width, d, precision=p)),
            block("mlp.act", Pointwise(act, tokens * ffn, p)),
        ]
        if cfg.activation == "swiglu":
            ops.append(block("mlp.gate", Pointwise("mul", tokens * ffn, p)))
        ops.append(block("mlp.down", Matmul(tokens, d, ffn, precision=p)))
    ops.append(block("mlp.residual", Pointwise("add", tokens * d, p)))
    if decoder:
        ops += [
            LayerOp("head.norm", Normalization(cfg.norm, tokens, d, p), part="post"),
            LayerOp("head.logits", Matmul(sequences, cfg.vocab // tp, d, precision=p), part="post"),
        ]
    else:
        if cfg.is_pre_norm:  # a pre-norm encoder normalizes its last layer's output
            ops.append(LayerOp("final.norm", Normalization(cfg.norm, tokens, d, p), part="post"))
        ops += [
            LayerOp("head.pooler", Matmul(sequences, d, d, precision=p), part="post"),
            LayerOp("head.pooler.act", Pointwise("gelu", sequences * d, p), part="post"),  # tanh, GELU-priced
        ]
    return ModelOps(f"{cfg.name} serving t{tokens} s{sequences} tp{tp} {p}", tuple(ops))


def _moe_ops(cfg: TransformerConfig, tokens: int, ffn: int, up_width: int, act: str, p: str) -> list[LayerOp]:
    """One layer's mixture of experts over ``tokens`` tokens (per layer, one TP shard): the router's logits and
    softmax (replicated on every shard), the copy of each token to its k experts, the :func:`active_experts`
    experts' MLPs over their share of the ``tokens x k`` rows, and the weighted sum of the k outputs."""
    d, n, k = cfg.hidden, cfg.layers, cfg.experts_per_token
    active = active_experts(cfg, tokens)
    rows = -(-tokens * k // active)
    ops = [
        LayerOp("moe.router", Matmul(tokens, cfg.experts, d, precision=p), n),
        LayerOp("moe.route", Normalization("softmax", tokens, cfg.experts, p), n),
        LayerOp("moe.dispatch", Pointwise("copy", tokens * k * d, p), n),
        LayerOp("moe.expert.up", Matmul(rows, up_width, d, precision=p), n * active, expert=True),
        LayerOp("moe.expert.act", Pointwise(act, rows * ffn, p), n * active, expert=True),
    ]
    if cfg.activation == "swiglu":
        ops.append(LayerOp("moe.expert.gate", Pointwise("mul", rows * ffn, p), n * active, expert=True))
    ops += [
        LayerOp("moe.expert.down", Matmul(rows, d, ffn, precision=p), n * active, expert=True),
        LayerOp("moe.combine", Pointwise("mul", tokens * k * d, p), n),
    ]
    return ops


def dense_ops(cfg: TransformerConfig, tokens: int, sequences: int, tp: int = 1, precision: str = "fp16") -> OpList:
    """:func:`dense_layers` as ``(op, count)`` pairs (the last two are the head)."""
    return [(layer.op, layer.count) for layer in dense_layers(cfg, tokens, sequences, tp, precision).layers]


def prefill_attention(
    cfg: TransformerConfig, q_len: int, past: int = 0, tp: int = 1, precision: str = "fp16", batch: int = 1
) -> tuple[Op, int]:
    """The attention core of prefilling ``q_len`` prompt tokens after ``past`` cached ones, per layer
    (causal for a decoder; bidirectional over the whole input, ``past`` 0, for an encoder)."""
    _check(cfg, tp)
    heads, kv = cfg.heads // tp, (cfg.kv_heads or cfg.heads) // tp
    causal = cfg.family == "decoder"
    if not causal and past:
        raise ValueError(f"an encoder attends over its whole input at once: past must be 0, not {past}")
    return Attention(batch, heads, q_len, past + q_len, cfg.head_dim, causal, kv, precision), cfg.layers


def decode_attention(
    cfg: TransformerConfig,
    kv_len: int,
    tp: int = 1,
    precision: str = "fp16",
    batch: int = 1,
    kv_precision: str | None = None,
) -> tuple[Op, int]:
    """The attention core of one decode step of ``batch`` sequences with ``kv_len`` cached tokens each
    (the new token included), per layer: ``Attention(q_len=1, kv_len=kv_len)``. ``kv_precision`` is the
    KV cache's element type when it is quantized (the kernel reads K and V at that width)."""
    _check(cfg, tp)
    if cfg.family != "decoder":
        raise ValueError(f"model {cfg.name!r} is an {cfg.family}: it has no decode step")
    heads, kv = cfg.heads // tp, (cfg.kv_heads or cfg.heads) // tp
    op = Attention(batch, heads, 1, kv_len, cfg.head_dim, False, kv, precision, kv_precision=kv_precision)
    return op, cfg.layers


def prefill_ops(cfg: TransformerConfig, prompt_lens: Sequence[int], tp: int = 1, precision: str = "fp16") -> OpList:
    """Ops of one iteration prefilling whole prompts of ``prompt_lens`` tokens (attention by each length)."""
    if not prompt_lens or min(prompt_lens) < 1:
        raise ValueError("prompt_lens must be a non-empty list of positive token counts")
    ops = dense_ops(cfg, sum(prompt_lens), len(prompt_lens), tp, precision)
    return ops + [prefill_attention(cfg, length, 0, tp, precision) for length in prompt_lens]


def decode_ops(cfg: TransformerConfig, contexts: Sequence[int], tp: int = 1, precision: str = "fp16") -> OpList:
    """Ops of one decode iteration: one new token for each sequence, whose cache (new token included) holds
    ``contexts[i]`` tokens; attention per sequence by its own context."""
    if not contexts or min(contexts) < 1:
        raise ValueError("contexts must be a non-empty list of positive token counts")
    ops = dense_ops(cfg, len(contexts), len(contexts), tp, precision)
    return ops + [decode_attention(cfg, context, tp, precision) for context in contexts]
