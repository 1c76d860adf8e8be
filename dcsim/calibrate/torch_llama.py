"""A Llama-style decoder in PyTorch, written as current training and serving code writes it, for the
end-to-end check of dcsim's description of such models (``norm: rmsnorm``, ``activation: swiglu``,
``positional: rope``, grouped-query attention, no biases).

Layer for layer as Hugging Face ``transformers`` (``models/llama/modeling_llama.py``, 4.5x) and torchtitan
write it:

- ``nn.RMSNorm`` before attention and MLP, and before the output head;
- separate ``q``, ``k``, ``v`` and ``o`` projections (``nn.Linear``, no bias);
- rotary position embeddings: one cos/sin table of ``seq x head_dim`` per forward pass (``inv_freq``
  outer positions, concatenated with itself, cos and sin), applied to the queries and keys of every layer
  as ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = cat(-x2, x1)``: per layer and per tensor
  a negation of half the elements, a concatenation (copy) and two multiplies and an add over all of them;
- ``F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)`` on the ``kv_heads`` keys and
  values (``transformers`` passes ``enable_gqa`` instead of repeating K and V when there is no mask and torch
  is 2.5 or newer), then the heads back to ``(tokens, hidden)`` (a copy);
- SwiGLU MLP: ``down(silu(gate(x)) * up(x))`` with separate gate and up Linears;
- an output head over the vocabulary, tied to the token embedding or not.

:meth:`TorchLlama.forward` computes logits at every position (a training step); :meth:`TorchLlama.prefill`
is a serving engine's prompt pass: it writes each layer's keys (after the rotation) and values into a
preallocated KV cache, normalizes every position and computes logits for the last position of each
sequence only (vLLM's ``logits_indices``; ``transformers``' ``logits_to_keep=1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcsim.models import TransformerConfig

#: RMSNorm epsilon and RoPE base of Llama 2/3 configs (``rms_norm_eps``, ``rope_theta`` of Llama 2); they
#: change no op's cost.
RMS_EPS = 1e-5
ROPE_BASE = 10000.0


def is_llama_style(cfg: TransformerConfig) -> bool:
    """Whether :class:`TorchLlama` builds ``cfg``: a pre-norm decoder with RMSNorm, SwiGLU and rotary
    positions, dense (no experts), without biases."""
    return (
        cfg.family == "decoder"
        and cfg.norm == "rmsnorm"
        and cfg.activation == "swiglu"
        and cfg.positional == "rope"
        and cfg.experts == 1
        and not cfg.bias
        and cfg.is_pre_norm
    )


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``cat(-x2, x1)`` of the two halves of the last dimension (``transformers``' ``rotate_half``)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RotaryTable(nn.Module):
    """cos and sin of ``positions x inv_freq`` (``seq x head_dim``), computed once per forward pass."""

    inv_freq: torch.Tensor

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
        self.register_buffer("inv_freq", 1.0 / ROPE_BASE**exponents, persistent=False)

    def forward(self, seq: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each (seq, head_dim)."""
        positions = torch.arange(seq, dtype=torch.float32, device=self.inv_freq.device)
        freqs = torch.outer(positions, self.inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x * cos + rotate_half(x) * sin`` for ``x`` of (batch, heads, seq, head_dim)."""
    return x * cos + rotate_half(x) * sin


class LlamaBlock(nn.Module):
    """One decoder layer: RMSNorm, GQA attention with rotary positions, RMSNorm, SwiGLU MLP."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d, hd = cfg.hidden, cfg.head_dim
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, hd
        self.attn_norm = nn.RMSNorm(d, eps=RMS_EPS)
        self.q = nn.Linear(d, cfg.heads * hd, bias=False)
        self.k = nn.Linear(d, cfg.kv_heads * hd, bias=False)
        self.v = nn.Linear(d, cfg.kv_heads * hd, bias=False)
        self.o = nn.Linear(cfg.heads * hd, d, bias=False)
        self.mlp_norm = nn.RMSNorm(d, eps=RMS_EPS)
        self.gate = nn.Linear(d, cfg.ffn_hidden, bias=False)
        self.up = nn.Linear(d, cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, d, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """The layer's output for ``x`` (batch, seq, hidden); with ``cache`` (keys, values of (batch,
        kv_heads, capacity, head_dim)), this pass's keys and values are written into its first positions."""
        b, s, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            cache[0][:, :, :s].copy_(k)
            cache[1][:, :, :s].copy_(v)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv_heads != self.heads)
        x = x + self.o(y.transpose(1, 2).reshape(b, s, self.heads * self.head_dim))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class TorchLlama(nn.Module):
    """A Llama-style decoder matching a :class:`~dcsim.models.TransformerConfig` that
    :func:`is_llama_style` accepts (``tied_embeddings``: the head shares the token table)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if not is_llama_style(cfg):
            raise ValueError(f"{cfg.name}: not a Llama-style decoder (RMSNorm, SwiGLU, rope, no bias, dense)")
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab, cfg.hidden)
        self.rotary = RotaryTable(cfg.head_dim)
        self.blocks = nn.ModuleList(LlamaBlock(cfg) for _ in range(cfg.layers))
        self.head_norm = nn.RMSNorm(cfg.hidden, eps=RMS_EPS)
        self.logits = nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        if cfg.tied_embeddings:
            self.logits.weight = self.tokens.weight

    def _hidden(self, ids: torch.Tensor, caches: list[tuple[torch.Tensor, torch.Tensor]] | None) -> torch.Tensor:
        x = self.tokens(ids)
        cos, sin = self.rotary(ids.shape[1], x.dtype)
        for index, block in enumerate(self.blocks):
            x = block(x, cos, sin, None if caches is None else caches[index])
        return self.head_norm(x)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (batch, seq, vocab) at every position of token ids (batch, seq): a training step's."""
        return self.logits(self._hidden(ids, None))

    def new_cache(self, batch: int, capacity: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """An empty KV cache of ``capacity`` positions per sequence: (keys, values) per layer, each
        (batch, kv_heads, capacity, head_dim), in the model's dtype."""
        weight = self.tokens.weight
        shape = (batch, self.cfg.kv_heads, capacity, self.cfg.head_dim)
        return [(weight.new_zeros(shape), weight.new_zeros(shape)) for _ in range(self.cfg.layers)]

    def prefill(self, ids: torch.Tensor, caches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Logits (batch, vocab) of the last position of each prompt in ``ids`` (batch, seq), writing every
        layer's keys and values into ``caches`` (from :meth:`new_cache`)."""
        return self.logits(self._hidden(ids, caches)[:, -1])


def param_count(model: nn.Module) -> int:
    """Distinct parameters of a torch module (a tied head's table counted once)."""
    return sum(p.numel() for p in model.parameters())
