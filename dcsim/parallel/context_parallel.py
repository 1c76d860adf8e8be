"""Context parallelism: each sequence split over ``cp`` ranks, attention computed as a ring.

Ring attention (Liu, Zaharia and Abbeel 2023, "Ring Attention with Blockwise Transformers for Near-Infinite
Context"), as Megatron-LM's context parallelism runs it (Megatron-Core ``context_parallel`` docs;
Transformer Engine's ``AttnFuncWithCPAndKVP2P``):

- Every rank of a CP group holds ``s/cp`` tokens of each sequence and runs every per-token op (norms, GEMMs,
  MLP, loss) on them alone: its op list is the model's at ``s/cp`` tokens.
- Attention needs every key: the group passes key/value chunks around a ring. In ``cp`` steps each rank
  computes its queries against one KV chunk (its own first) while it sends the chunk it holds to the next
  rank and receives the previous rank's: ``cp - 1`` hops per layer in the forward, each overlapped with one
  step's attention kernel. The backward passes KV and the accumulating KV gradients (twice the bytes) over
  ``cp - 1`` hops, each overlapped with one step's attention backward.
- Causal models balance the triangle (Megatron's load balancing): the sequence is cut into ``2*cp`` chunks
  and rank ``r`` holds chunks ``r`` and ``2*cp - 1 - r``. Step 0 is causal attention over the rank's own
  ``s/cp`` tokens; each later step is a full (unmasked) block of ``s/cp`` queries against half a chunk pair,
  ``s/(2*cp)`` keys (or half the queries against all ``s/cp`` keys: the same pairs), so every rank computes
  ``1/cp`` of the causal pairs. ``2*cp`` must divide ``seq_len``. Bidirectional models (encoders) run ``cp``
  unmasked ``s/cp x s/cp`` steps; ``cp`` must divide ``seq_len``.

A hop is a ``send_recv`` of the KV chunk (``2 x microbatch x s/cp x kv_heads/tp x head_dim`` elements) on
every ring at once, timed by :class:`~dcsim.parallel.comm.CommModel` on the ranks' accelerators, with the
rings of every data replica and tensor rank that share those servers running together. A hop shows only
where it outlasts the attention step it overlaps (exposed, per layer and pass). Selective and full
recompute re-run the forward ring in the backward.

Context-parallel ranks hold the same weights: gradients reduce and ZeRO shards over ``dp * cp`` ranks
(:class:`~dcsim.parallel.layout.RankLayout.dp_groups`). Activations per rank fall by ``cp``
(:mod:`dcsim.parallel.memory`). Ring attention needs fused (flash) attention kernels; eager attention is
refused with ``cp > 1``. Limits: the final hop that returns each KV gradient chunk to its owner is folded into
the ``cp - 1`` overlapped backward hops; models without a single stack of self-attention layers
(encoder-decoder, ViT, convolutional) take ``cp = 1``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypeGuard

from dcsim.compute import predict_many
from dcsim.compute.ops import Attention
from dcsim.models import ModelConfig, ModelOps, TransformerConfig
from dcsim.parallel.comm import CommModel
from dcsim.parallel.layout import RankLayout, sharing_servers
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.stages import step_ops

#: Layer-name suffix of the ring steps after the first (each against a KV chunk received from a neighbour).
RING_SUFFIX = ".ring"


def splits_sequences(model: ModelConfig) -> TypeGuard[TransformerConfig]:
    """Whether context parallelism applies to ``model``: one stack of self-attention layers over ``seq_len``
    tokens (decoders and encoders; not encoder-decoder, ViT or convolutional models)."""
    return isinstance(model, TransformerConfig)


def _causal(model: TransformerConfig) -> bool:
    return model.family == "decoder"


def check_context_parallel(
    model: ModelConfig, seq_len: int, plan: ParallelPlan, attention: str
) -> list[tuple[str, str]]:
    """Problems with ``plan.cp`` for ``model`` at ``seq_len`` with ``attention``, as (field, message)."""
    cp = plan.cp
    if cp == 1:
        return []
    name = model.name
    if not splits_sequences(model):
        return [("parallelism.cp", f"must be 1 for {name}: context parallelism splits one self-attention stack")]
    problems = []
    chunks = 2 * cp if _causal(model) else cp
    if seq_len % chunks:
        what = "2 * cp" if _causal(model) else "cp"
        why = ": a causal model's sequence is cut into 2 * cp chunks (load balancing)" if _causal(model) else ""
        problems.append(("parallelism.cp", f"{what} ({chunks}) must divide seq_len ({seq_len}){why}"))
    if attention != "flash":
        problems.append(
            ("parallelism.cp", f"ring attention runs on fused kernels: needs attention flash, not {attention}")
        )
    return problems


def ring_steps(local: Attention, cp: int) -> tuple[Attention, Attention]:
    """(step 0, each later step) of one layer's ring attention on a rank, given its attention over its own
    ``s/cp`` tokens (``local``, ``q_len == kv_len``). See the module docstring."""
    if not local.causal:
        return local, local
    later = replace(local, kv_len=max(1, local.kv_len // 2), causal=False)
    return local, later


def context_parallel_ops(
    model: ModelConfig, batch: int, seq_len: int, tp: int, precision: str, ep: int = 1, cp: int = 1
) -> ModelOps:
    """One microbatch's forward ops on one tensor- and context-parallel rank: the model's ops at ``seq_len //
    cp`` tokens, each self-attention core replaced by the ring's step 0 (same name) and ``cp - 1`` later steps
    (``RING_SUFFIX``, ``count`` times ``cp - 1``). ``cp = 1`` is :func:`~dcsim.parallel.stages.step_ops`."""
    ops = step_ops(model, batch, seq_len // cp, tp, precision, ep)
    if cp == 1:
        return ops
    layers = []
    for layer in ops.layers:
        op = layer.op
        if isinstance(op, Attention) and op.kind == "attention" and op.q_len == op.kv_len:
            first, later = ring_steps(op, cp)
            layers.append(replace(layer, op=first))
            layers.append(replace(layer, name=layer.name + RING_SUFFIX, op=later, count=layer.count * (cp - 1)))
        else:
            layers.append(layer)
    return ModelOps(ops.name, tuple(layers))


@dataclass(frozen=True)
class RingExposure:
    """One layer's ring-attention communication on a rank: seconds of one KV hop (``hop_s``) and of one
    backward hop (KV and its gradient, ``bwd_hop_s``), all rings together, and the part of them not hidden
    behind the attention steps, per layer, in the forward and the backward (recompute included)."""

    hop_s: float
    bwd_hop_s: float
    fwd_exposed_s: float
    bwd_exposed_s: float


def ring_exposure(
    model: ModelConfig,
    plan: ParallelPlan,
    seq_len: int,
    precision: str,
    device: str,
    element_bytes: float,
    layout: RankLayout,
    comm: CommModel,
    server_of: Mapping[str, str],
) -> RingExposure:
    """The ring's hops for ``plan`` on the accelerators of ``layout`` (see the module docstring): attention
    steps priced on ``device`` in ``precision``, KV chunks of ``element_bytes`` per element."""
    if plan.cp == 1:
        return RingExposure(0.0, 0.0, 0.0, 0.0)
    first, later = _step_ops(model, plan.microbatch_size, seq_len, plan.tp, precision, plan.ep, plan.cp)
    fwd0, fwd1, bwd0, bwd1 = (float(t) for t in _predict(device, first, later))
    kv_heads = first.kv_heads or first.heads
    kv_bytes = 2.0 * first.batch * first.kv_len * kv_heads * first.head_dim * element_bytes
    rings = sharing_servers(layout.cp_groups(0), dict(server_of))
    hop_s = comm.collective_s("send_recv", rings, kv_bytes)
    bwd_hop_s = comm.collective_s("send_recv", rings, 2.0 * kv_bytes)
    hops = plan.cp - 1  # hop j overlaps step j (step 0 is the local causal block)
    fwd = max(0.0, hop_s - fwd0) + (hops - 1) * max(0.0, hop_s - fwd1)
    bwd = max(0.0, bwd_hop_s - bwd0) + (hops - 1) * max(0.0, bwd_hop_s - bwd1)
    if plan.recompute in ("selective", "full"):  # the attention core's forward, ring included, runs again
        bwd += fwd
    return RingExposure(hop_s, bwd_hop_s, fwd, bwd)


@functools.lru_cache(maxsize=256)
def _step_ops(
    model: ModelConfig, batch: int, seq_len: int, tp: int, precision: str, ep: int, cp: int
) -> tuple[Attention, Attention]:
    for layer in step_ops(model, batch, seq_len // cp, tp, precision, ep).layers:
        op = layer.op
        if isinstance(op, Attention) and op.kind == "attention" and op.q_len == op.kv_len and layer.part == "block":
            return ring_steps(op, cp)
    raise ValueError(f"{model.name} has no self-attention for ring attention")


@functools.lru_cache(maxsize=256)
def _predict(device: str, first: Attention, later: Attention) -> tuple[float, ...]:
    ops = [first, later, first.backward(), later.backward()]
    return tuple(float(t) for t in predict_many(ops, device))
