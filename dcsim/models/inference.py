"""Inference op lists of a decoder transformer: prefill and decode iterations with a KV cache.

An iteration of an LLM server runs one forward pass over the tokens of every sequence in its batch:
prompt tokens being prefilled (all positions of a prompt, or a chunk of it) and one new token per sequence
being decoded. The dense layers (QKV, projection, MLP, norms, residuals) run once over all those tokens;
attention is per sequence: a prefill chunk of ``q`` tokens after ``past`` cached ones is
``Attention(q_len=q, kv_len=past + q, causal)``, a decode step is ``Attention(q_len=1, kv_len=context)``
(kind ``attention_decode``) against the sequence's cache. New keys and values are written to the cache
(``attn.kv_write``). The output head computes logits only at the last position of each sequence (as vLLM
does), so it runs over ``sequences`` rows, not over every token.

Ops are for one tensor-parallel shard of ``tp`` (heads, QKV/MLP columns, vocabulary split ``tp`` ways, as in
:meth:`TransformerConfig.ops`); the all-reduces between shards are not ops here (see :func:`allreduce_bytes`).
"""

from __future__ import annotations

from collections.abc import Sequence

from dcsim.compute.ops import BYTES_PER_ELEMENT, Attention, Embedding, Matmul, Normalization, Op, Pointwise
from dcsim.models.transformer import TransformerConfig

OpList = list[tuple[Op, int]]


def _check(cfg: TransformerConfig, tp: int) -> None:
    if cfg.family != "decoder":
        raise ValueError(f"model {cfg.name!r} is an {cfg.family}: serving needs a decoder")
    if getattr(cfg, "experts", 1) > 1:
        raise ValueError(f"model {cfg.name!r} is a mixture of experts: its serving ops are not modelled yet")
    kv = cfg.kv_heads or cfg.heads
    for what, size in (("heads", cfg.heads), ("kv_heads", kv), ("ffn_hidden", cfg.ffn_hidden)):
        if tp < 1 or size % tp:
            raise ValueError(f"tp ({tp}) must divide {what} ({size})")


def kv_bytes_per_token(cfg: TransformerConfig, precision: str, tp: int = 1) -> float:
    """Bytes of KV cache one token occupies on one TP shard: 2 (K and V) x layers x kv_heads/tp x head_dim
    x bytes per element."""
    _check(cfg, tp)
    kv = (cfg.kv_heads or cfg.heads) // tp
    return 2.0 * cfg.layers * kv * cfg.head_dim * BYTES_PER_ELEMENT[precision]


def weight_bytes(cfg: TransformerConfig, precision: str, tp: int = 1) -> float:
    """Bytes of the weights held by one TP shard (parameters from the same op list that is costed)."""
    _check(cfg, tp)
    return cfg.param_count(tp) * BYTES_PER_ELEMENT[precision]


def allreduce_bytes(cfg: TransformerConfig, tokens: int, precision: str) -> float:
    """Bytes all-reduced across the TP group in one iteration over ``tokens`` tokens: two per layer (after
    the attention projection and after the MLP, Megatron-style), each ``tokens x hidden`` activations."""
    return 2.0 * cfg.layers * tokens * cfg.hidden * BYTES_PER_ELEMENT[precision]


def dense_ops(cfg: TransformerConfig, tokens: int, sequences: int, tp: int = 1, precision: str = "fp16") -> OpList:
    """Every op of an iteration but the attention cores: embeddings over ``tokens`` new tokens, the layers'
    GEMMs, norms, activations, residuals and cache writes, and the head over ``sequences`` last positions."""
    _check(cfg, tp)
    if tokens < 1 or sequences < 1 or sequences > tokens:
        raise ValueError(f"need 1 <= sequences ({sequences}) <= tokens ({tokens})")
    d, p, n = cfg.hidden, precision, cfg.layers
    heads, kv = cfg.heads // tp, (cfg.kv_heads or cfg.heads) // tp
    hd = cfg.head_dim
    ffn = cfg.ffn_hidden // tp
    up_width = 2 * ffn if cfg.activation == "swiglu" else ffn
    act = "silu" if cfg.activation == "swiglu" else cfg.activation
    ops: OpList = [(Embedding(tokens, cfg.vocab // tp, d, p), 1)]
    if cfg.positional == "learned":
        ops += [(Embedding(tokens, cfg.max_seq_len, d, p), 1), (Pointwise("add", tokens * d, p), 1)]
    ops += [
        (Normalization(cfg.norm, tokens, d, p), n),
        (Matmul(tokens, (heads + 2 * kv) * hd, d, precision=p), n),
        (Pointwise("copy", tokens * 2 * kv * hd, p), n),  # attn.kv_write: new keys and values into the cache
        (Pointwise("copy", tokens * heads * hd, p), n),  # attn.layout
        (Matmul(tokens, d, heads * hd, precision=p), n),
        (Pointwise("add", tokens * d, p), n),
        (Normalization(cfg.norm, tokens, d, p), n),
        (Matmul(tokens, up_width, d, precision=p), n),
        (Pointwise(act, tokens * ffn, p), n),
    ]
    if cfg.activation == "swiglu":
        ops.append((Pointwise("mul", tokens * ffn, p), n))
    ops += [
        (Matmul(tokens, d, ffn, precision=p), n),
        (Pointwise("add", tokens * d, p), n),
        (Normalization(cfg.norm, sequences, d, p), 1),
        (Matmul(sequences, cfg.vocab // tp, d, precision=p), 1),
    ]
    return ops


def prefill_attention(
    cfg: TransformerConfig, q_len: int, past: int = 0, tp: int = 1, precision: str = "fp16", batch: int = 1
) -> tuple[Op, int]:
    """The attention core of prefilling ``q_len`` prompt tokens after ``past`` cached ones, per layer."""
    _check(cfg, tp)
    heads, kv = cfg.heads // tp, (cfg.kv_heads or cfg.heads) // tp
    return Attention(batch, heads, q_len, past + q_len, cfg.head_dim, True, kv, precision), cfg.layers


def decode_attention(
    cfg: TransformerConfig, kv_len: int, tp: int = 1, precision: str = "fp16", batch: int = 1
) -> tuple[Op, int]:
    """The attention core of one decode step of ``batch`` sequences with ``kv_len`` cached tokens each
    (the new token included), per layer: ``Attention(q_len=1, kv_len=kv_len)``."""
    _check(cfg, tp)
    heads, kv = cfg.heads // tp, (cfg.kv_heads or cfg.heads) // tp
    return Attention(batch, heads, 1, kv_len, cfg.head_dim, False, kv, precision), cfg.layers


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
