"""Activation memory of DeepSeek-style layer stacks: multi-head latent attention, routed plus shared
experts, and leading dense layers.

:func:`dcsim.parallel.memory.transformer_layer_activation_bytes` is Korthikanti et al. 2022's per-layer
closed form (Eq. 1-2, Table 2) for a stack of identical layers with multi-head attention. A DeepSeek-V3
stack (arXiv 2412.19437, section 2.1) differs in three ways, and :func:`stack_activation_bytes` adds up
the same kinds of terms (every tensor a layer's backward reads, ``bytes_per_element`` each, dropout masks
1 byte) over its layers:

- **MLA** (:mod:`dcsim.models.mla`) keeps, per token, the latent path: the query down-projection's output
  and its norm's output (``q_lora_rank`` each), the KV down-projection's output (``kv_lora_rank +
  qk_rope_head_dim``) and its norm's output (``kv_lora_rank``), replicated on every tensor rank as the
  down-projections are; and per head the attention inputs Q and K (``qk_nope + qk_rope`` wide), V and the
  output-projection input (``v_head_dim`` wide), split over the tensor ranks. The score matrices are the
  same ``a s^2 b`` term as multi-head attention when they are kept (``recompute: none``).
- **MoE layers** keep, per token, the router's scores (``experts`` wide), the ``k`` permuted copies of
  the input the routed experts' up-projections read (``k x hidden``, as Megatron-Core's token dispatcher
  stores them), and each expert MLP's intermediate activations (``3 x k x moe_ffn_hidden`` gated, as the
  dense MLP's ``3 x ffn_hidden``), plus the shared experts' (``3 x shared x moe_ffn_hidden``).
- the ``first_dense_layers`` keep a dense MLP's terms.

The replicated terms (norm inputs, attention and MLP inputs, dropout masks) and the recompute modes are
those of the closed form: ``full`` keeps each layer's input only, ``selective`` drops the scores.
"""

from __future__ import annotations

from typing import TypeGuard

from dcsim.models import ModelConfig, TransformerConfig

#: Bytes of one dropout-mask element (as in dcsim.parallel.memory).
MASK_BYTES = 1.0


def uses_layer_stack(model: ModelConfig) -> TypeGuard[TransformerConfig]:
    """Whether ``model`` needs :func:`stack_activation_bytes` (MLA, shared experts, leading dense layers or
    an expert width of its own) rather than the identical-layer closed form."""
    if not isinstance(model, TransformerConfig):
        return False
    return model.attention_kind == "mla" or any((model.shared_experts, model.first_dense_layers, model.moe_ffn_hidden))


def stack_activation_bytes(
    model: TransformerConfig,
    seq_len: int,
    batch: int,
    tp: int = 1,
    *,
    sequence_parallel: bool = False,
    recompute: str = "none",
    dropout: bool = True,
    bytes_per_element: float = 2.0,
    keep_scores: bool | None = None,
) -> float:
    """Activation bytes all of ``model``'s layers keep for the backward pass, per microbatch of ``batch``
    sequences of ``seq_len`` tokens on one tensor rank of ``tp`` (module docstring). ``keep_scores``: whether
    the attention score matrices are kept (None: only under ``recompute: none``; a fused attention kernel
    keeps none)."""
    if recompute not in ("none", "selective", "full"):
        raise ValueError(f"recompute must be one of none, selective, full (got {recompute!r})")
    s, b, h, t, e = seq_len, batch, int(model.hidden), tp, bytes_per_element
    sb = float(s * b)
    split = t if sequence_parallel else 1
    layers = int(model.layers)
    if recompute == "full":
        return layers * e * sb * h / split
    masks = 2 * MASK_BYTES * sb * h if dropout else 0.0
    replicated = (4 * e * sb * h + masks) / split
    scores = recompute == "none" if keep_scores is None else keep_scores
    attention = _attention_bytes(model, s, b, t, e, scores, dropout)
    gated = model.activation == "swiglu"
    per_row = 3 if gated else 2  # the up (gate and up) outputs and the activation's output
    dense_mlp = per_row * e * sb * int(model.ffn_hidden) / t
    moe_layers = model.moe_layers
    total = (layers - moe_layers) * (replicated + attention + dense_mlp)
    if moe_layers:
        k, width = int(model.experts_per_token), int(model.expert_ffn_hidden)
        routed = e * sb * (int(model.experts) + k * h) + per_row * e * sb * k * width / t
        shared = per_row * e * sb * model.shared_experts * width / t
        total += moe_layers * (replicated + attention + routed + shared)
    return total


def _attention_bytes(model: TransformerConfig, s: int, b: int, t: int, e: float, scores: bool, dropout: bool) -> float:
    """One layer's attention activations (module docstring), tensor-parallel rank of ``t``."""
    sb, heads, h = float(s * b), int(model.heads), int(model.hidden)
    if model.attention_kind == "mla":
        qk = int(model.qk_nope_head_dim) + int(model.qk_rope_head_dim)
        latent = 2 * int(model.q_lora_rank) + 2 * int(model.kv_lora_rank) + int(model.qk_rope_head_dim)
        sharded = e * sb * heads * (2 * qk + 2 * int(model.v_head_dim)) / t
        kept = e * sb * latent + sharded
    else:
        kv = model.kv_heads * (h // heads)
        kept = e * sb * (h + kv + kv + h) / t  # Q, K, V, output-projection input
    if scores:
        per_score = (2 * e + MASK_BYTES) if dropout else e
        kept += per_score * heads * s * s * b / t
    return kept
