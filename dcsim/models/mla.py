"""Multi-head latent attention (MLA, DeepSeek-V2/V3) as training ops, its parameters and its KV cache.

MLA (DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv 2412.19437, section 2.1.1, Eq. 1-11; the layer
as Hugging Face ``transformers`` implements it, ``models/deepseek_v3/modeling_deepseek_v3.py``,
``DeepseekV3Attention``, 5.25) compresses keys and values into a per-token latent:

- queries: ``q_a_proj`` (hidden -> ``q_lora_rank``), an RMSNorm, ``q_b_proj`` (``q_lora_rank`` ->
  heads x (``qk_nope_head_dim`` + ``qk_rope_head_dim``)); with ``q_lora_rank`` 0 one ``q_proj``
  (hidden -> heads x qk_head_dim), as DeepSeek-V2-Lite;
- keys and values: ``kv_a_proj_with_mqa`` (hidden -> ``kv_lora_rank`` + ``qk_rope_head_dim``: the latent
  and one rotary key shared by all heads), an RMSNorm of the latent, ``kv_b_proj`` (``kv_lora_rank`` ->
  heads x (``qk_nope_head_dim`` + ``v_head_dim``));
- the rotary embedding of the queries' and the shared key's ``qk_rope_head_dim`` parts, the concatenation
  of each head's no-position and rotary parts, attention over qk_head_dim = nope + rope, values of
  ``v_head_dim``, and ``o_proj`` (heads x ``v_head_dim`` -> hidden).

A serving engine caches only the latent and the rotary key: ``kv_lora_rank + qk_rope_head_dim`` elements
per token and layer (section 2.1.1: "only the blue-boxed vectors need to be cached"),
:func:`mla_kv_cache_elements_per_token`.

Tensor parallelism splits the heads (``q_b_proj``/``kv_b_proj`` columns, ``o_proj`` rows); the two
down-projections and their norms are replicated on every tensor rank (Megatron-Core's MLA keeps them
unsplit). The fused attention kernel is priced as one :class:`~dcsim.compute.Attention` with head width
``(qk_head_dim + v_head_dim) / 2``: its FLOPs (``2 pairs qk + 2 pairs v`` per head) and the bytes it moves
(Q and K of qk_head_dim, V and O of v_head_dim) are exactly those of the real shapes (an odd sum rounds
down). The projections carry no bias (DeepSeek-V3: ``attention_bias`` false).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsim.compute.ops import Attention, Matmul, Normalization, Op, Pointwise
from dcsim.models.base import LayerOp

if TYPE_CHECKING:
    from dcsim.models.transformer import TransformerConfig

#: Attention kinds of a :class:`~dcsim.models.transformer.TransformerConfig`: ``mha`` (multi-head, with
#: grouped-query attention when ``kv_heads`` < ``heads``) and ``mla`` (multi-head latent attention).
ATTENTION_KINDS = ("mha", "mla")
MLA_FIELDS = ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")


def check_mla_fields(cfg: TransformerConfig) -> None:
    """ValueError naming the field when an ``mla`` config lacks a dimension or an ``mha`` one sets one."""
    if cfg.attention_kind not in ATTENTION_KINDS:
        raise ValueError(f"attention_kind must be one of {', '.join(ATTENTION_KINDS)}, not {cfg.attention_kind!r}")
    for name in (*MLA_FIELDS, "q_lora_rank"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    if cfg.attention_kind == "mla":
        for name in MLA_FIELDS:
            if getattr(cfg, name) < 1:
                raise ValueError(f"{name} must be >= 1 for attention_kind mla")
        if cfg.positional != "rope":
            raise ValueError(
                f"attention_kind mla needs positional: rope (its decoupled rotary key), not {cfg.positional!r}"
            )
        if cfg.qk_rope_head_dim % 2:
            raise ValueError(f"qk_rope_head_dim ({cfg.qk_rope_head_dim}) must be even (rotary pairs)")
    elif any(getattr(cfg, name) for name in (*MLA_FIELDS, "q_lora_rank")):
        raise ValueError("q_lora_rank, kv_lora_rank and the *_head_dim fields need attention_kind: mla")


def mla_params_per_layer(
    hidden: int,
    heads: int,
    q_lora_rank: int,
    kv_lora_rank: int,
    qk_nope_head_dim: int,
    qk_rope_head_dim: int,
    v_head_dim: int,
) -> int:
    """Parameters of one MLA sub-layer (without the pre-attention norm; no biases), the closed form of
    ``DeepseekV3Attention``'s Linear and RMSNorm shapes (module docstring)."""
    qk = qk_nope_head_dim + qk_rope_head_dim
    if q_lora_rank:
        query = hidden * q_lora_rank + q_lora_rank + q_lora_rank * heads * qk
    else:
        query = hidden * heads * qk
    kv = (
        hidden * (kv_lora_rank + qk_rope_head_dim)
        + kv_lora_rank
        + kv_lora_rank * heads * (qk_nope_head_dim + v_head_dim)
    )
    return query + kv + heads * v_head_dim * hidden


def mla_kv_cache_elements_per_token(kv_lora_rank: int, qk_rope_head_dim: int) -> int:
    """Elements one token adds to one layer's MLA cache: the compressed latent and the shared rotary key
    (DeepSeek-V3 Technical Report, section 2.1.1). Not split by tensor parallelism: every rank needs the
    whole latent to expand its heads."""
    return kv_lora_rank + qk_rope_head_dim


def mla_attention_ops(
    cfg: TransformerConfig, batch: int, seq_len: int, tp: int, precision: str, prefix: str = ""
) -> list[LayerOp]:
    """One layer's MLA ops (``count`` = the config's layers), from the attention norm's output to the
    residual add, on one tensor-parallel shard of ``tp``."""
    from dcsim.models.transformer import rotary_training_ops

    tokens, d, p, n = batch * seq_len, cfg.hidden, precision, cfg.layers
    heads = cfg.heads // tp
    nope, rope, v = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
    qk, latent = nope + rope, cfg.kv_lora_rank

    def op(name: str, value: Op, weights: bool = False) -> LayerOp:
        return LayerOp(f"{prefix}{name}", value, n, weights=weights)

    if cfg.q_lora_rank:
        r = cfg.q_lora_rank
        query = [
            op("attn.q_down", Matmul(tokens, r, d, precision=p), weights=True),
            op("attn.q_norm", Normalization("rmsnorm", tokens, r, p), weights=True),
            op("attn.q_up", Matmul(tokens, heads * qk, r, precision=p), weights=True),
        ]
    else:
        query = [op("attn.q", Matmul(tokens, heads * qk, d, precision=p), weights=True)]
    out = [
        *query,
        op("attn.kv_down", Matmul(tokens, latent + rope, d, precision=p), weights=True),
        op("attn.kv_norm", Normalization("rmsnorm", tokens, latent, p), weights=True),
        op("attn.kv_up", Matmul(tokens, heads * (nope + v), latent, precision=p), weights=True),
    ]
    out += [op(name, value) for name, value in rotary_training_ops(tokens, heads, 1, rope, p)]
    out += [
        # each head's query and key assembled from their no-position and rotary parts (torch.cat / copies)
        op("attn.qk_concat", Pointwise("copy", 2 * tokens * heads * qk, p)),
        op("attn.core", Attention(batch, heads, seq_len, seq_len, (qk + v) // 2, cfg.family == "decoder", heads, p)),
        op("attn.layout", Pointwise("copy", tokens * heads * v, p)),
        op("attn.proj", Matmul(tokens, d, heads * v, precision=p), weights=True),
        op("attn.residual", Pointwise("add", tokens * d, p)),
    ]
    return out
