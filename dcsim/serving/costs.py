"""Iteration times and memory of one replica, from the calibrated cost model (cached per shape).

An iteration's time is the sum of its ops' predicted times on one accelerator of the replica (ops of one
tensor-parallel shard, :mod:`dcsim.models.inference`), plus the tensor-parallel all-reduces (two per layer,
ring algorithm over the node's intra-node interconnect: ``2 (tp-1)/tp x bytes / bandwidth`` plus
``2 (tp-1)`` link latencies each) and, with ``pp`` pipeline stages, ``pp - 1`` activation transfers.
Pipeline stages run one after another for one batch (no micro-batch overlap inside a replica), so ``pp``
splits memory, not time. The cost model call is the expensive part, so every piece is cached: the dense
layers by (tokens, sequences), decode attention by (batch, mean context rounded up to 16 tokens above 256),
prefill attention by (chunk, past tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dcsim.compute import predict_many
from dcsim.compute.ops import BYTES_PER_ELEMENT, Op
from dcsim.models.inference import (
    allreduce_bytes,
    decode_attention,
    dense_ops,
    kv_bytes_per_token,
    prefill_attention,
    weight_bytes,
)
from dcsim.models.transformer import TransformerConfig

#: Fraction of accelerator memory a server may use (vLLM's ``gpu_memory_utilization`` default, 0.9:
#: vLLM engine arguments documentation); the rest is left to the CUDA context and fragmentation.
MEMORY_FRACTION = 0.9
#: Tokens per KV-cache block (vLLM's default ``block_size``, 16: vLLM engine arguments documentation).
BLOCK_TOKENS = 16
#: Live activation tensors of ``hidden`` width per token during a forward pass (residual, normed input,
#: attention output, projection output, and Q/K/V before they are cached), an estimate of the peak
#: activation memory vLLM reserves by profiling one forward pass of ``max_batch_tokens`` tokens.
LIVE_HIDDEN_TENSORS = 8
#: Token counts up to which iteration pieces are costed exactly; above, on a grid of this step.
GRID_EXACT = 256
GRID_STEP = 32

PredictMany = Callable[[Sequence[Op], str], np.ndarray]


@dataclass(frozen=True)
class ReplicaMemory:
    """Memory of one accelerator of a replica, bytes: weights, activation reserve, KV cache, and the KV
    capacity of the replica in blocks (each layer's cache lives on its stage; all stages hold every token)."""

    accelerator_bytes: float
    weight_bytes: float
    activation_bytes: float
    kv_bytes: float
    kv_bytes_per_token: float
    capacity_blocks: int
    block_tokens: int

    @property
    def fits(self) -> bool:
        """True if the weights and activations leave room for at least one block."""
        return self.capacity_blocks >= 1


def replica_memory(
    cfg: TransformerConfig,
    precision: str,
    memory_gb: float,
    tp: int = 1,
    pp: int = 1,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 256,
    block_tokens: int = BLOCK_TOKENS,
    offload_fraction: float = 0.0,
    weight_factor: float = 1.0,
    kv_factor: float = 1.0,
) -> ReplicaMemory:
    """Weights, activations and KV capacity of a replica on accelerators of ``memory_gb`` GB each
    (``offload_fraction`` of the weights live in host memory instead; a compressed model stores
    ``weight_factor`` of the dense weight bytes and ``kv_factor`` of the KV bytes per token)."""
    e = BYTES_PER_ELEMENT[precision]
    total = memory_gb * 1e9 * MEMORY_FRACTION
    weights = weight_bytes(cfg, precision, tp) / pp * (1.0 - offload_fraction) * weight_factor
    activations = max_batch_tokens * e * (LIVE_HIDDEN_TENSORS * cfg.hidden + 2 * cfg.ffn_hidden // tp)
    activations += max_batch_size * cfg.vocab // tp * 4.0  # fp32 logits of the sequences' last positions
    per_token = kv_bytes_per_token(cfg, precision, tp) / pp * kv_factor
    kv = max(0.0, total - weights - activations)
    blocks = int(kv // (per_token * block_tokens))
    return ReplicaMemory(memory_gb * 1e9, weights, activations, kv, per_token, blocks, block_tokens)


class IterationCost:
    """Seconds of iterations of one replica (``tp`` x ``pp`` accelerators of ``device_id``).

    ``link_bytes_per_s`` and ``link_latency_s`` describe the intra-node interconnect the TP all-reduces
    and PP transfers use (needed when ``tp`` or ``pp`` > 1). ``predict_many`` defaults to
    :func:`dcsim.compute.predict_many`. ``offload_s`` is the time to stream the weights kept in host memory
    to the accelerator once: they are streamed every iteration, layer by layer ahead of use (FlexGen /
    ZeRO-Inference style), so an iteration takes at least that long. ``transform`` rewrites each op list
    before it is priced (a compression recipe: :mod:`dcsim.serving.compressed`).
    """

    def __init__(
        self,
        cfg: TransformerConfig,
        precision: str,
        device_id: str,
        tp: int = 1,
        pp: int = 1,
        link_bytes_per_s: float | None = None,
        link_latency_s: float = 0.0,
        predict: PredictMany | None = None,
        offload_s: float = 0.0,
        transform: Callable[[list[tuple[Op, int]]], list[tuple[Op, int]]] | None = None,
    ) -> None:
        if (tp > 1 or pp > 1) and not link_bytes_per_s:
            raise ValueError("tp or pp > 1 needs the interconnect bandwidth (the node type's intra_node)")
        dense_ops(cfg, 1, 1, tp, precision)  # validates tp against the shape
        self.cfg, self.precision, self.device_id, self.tp, self.pp = cfg, precision, device_id, tp, pp
        self.link_bytes_per_s = link_bytes_per_s or 0.0
        self.link_latency_s = link_latency_s
        self._predict = predict or predict_many
        self.offload_s = offload_s
        self._transform = transform
        self._dense: dict[tuple[int, int], float] = {}
        self._decode_attn: dict[tuple[int, int], float] = {}
        self._prefill_attn: dict[tuple[int, int], float] = {}
        self._decode: dict[tuple[int, int], float] = {}
        self._dense_body: dict[int, float] = {}
        self._prefill_exact: dict[tuple[int, int], float] = {}

    def _ops_s(self, ops: list[tuple[Op, int]]) -> float:
        if self._transform is not None:
            ops = self._transform(list(ops))
        times = self._predict([op for op, _ in ops], self.device_id)
        return float(sum(t * count for t, (_, count) in zip(times, ops, strict=True)))

    def comm_s(self, tokens: int) -> float:
        """Seconds of the TP all-reduces and PP transfers of one iteration over ``tokens`` tokens."""
        seconds = 0.0
        if self.tp > 1:
            per_op = allreduce_bytes(self.cfg, tokens, self.precision) / (2 * self.cfg.layers)
            ring = (
                2.0 * (self.tp - 1) / self.tp * per_op / self.link_bytes_per_s + 2 * (self.tp - 1) * self.link_latency_s
            )
            seconds += 2 * self.cfg.layers * ring
        if self.pp > 1:
            activation = tokens * self.cfg.hidden * BYTES_PER_ELEMENT[self.precision]
            seconds += (self.pp - 1) * (activation / self.link_bytes_per_s + self.link_latency_s)
        return seconds

    def _dense_exact(self, tokens: int) -> float:
        seconds = self._dense.get((tokens, 0))
        if seconds is None:
            body = dense_ops(self.cfg, tokens, 1, self.tp, self.precision)[:-2]  # without the head
            seconds = self._dense[(tokens, 0)] = self._ops_s(body) + self.comm_s(tokens)
        return seconds

    def dense_s(self, tokens: int, sequences: int) -> float:
        """Seconds of every op but attention for ``tokens`` new tokens with logits for ``sequences`` rows,
        plus the iteration's communication. Above ``GRID_EXACT`` tokens the layers' time is interpolated
        linearly between multiples of ``GRID_STEP`` tokens (it is close to affine there)."""
        body = self._dense_body.get(tokens)
        if body is None:
            if tokens <= GRID_EXACT:
                body = self._dense_exact(tokens)
            else:
                low = tokens // GRID_STEP * GRID_STEP
                body = self._dense_exact(low)
                if low != tokens:
                    high = self._dense_exact(low + GRID_STEP)
                    body += (high - body) * (tokens - low) / GRID_STEP
            self._dense_body[tokens] = body
        head = self._dense.get((0, sequences))
        if head is None:
            ops = dense_ops(self.cfg, sequences, sequences, self.tp, self.precision)[-2:]
            head = self._dense[(0, sequences)] = self._ops_s(ops)
        return body + head

    def decode_attention_s(self, batch: int, mean_kv: float) -> float:
        """Seconds of the decode attention of ``batch`` sequences holding ``mean_kv`` tokens on average
        (one op over the batch: its FLOPs and bytes are the sum over the sequences)."""
        kv = int(mean_kv + 0.999)
        if kv > 256:
            kv = (kv + 15) & ~15
        key = (batch, kv)
        seconds = self._decode_attn.get(key)
        if seconds is None:
            op, count = decode_attention(self.cfg, kv, self.tp, self.precision, batch=batch)
            seconds = self._decode_attn[key] = float(self._predict([op], self.device_id)[0]) * count
        return seconds

    def prefill_attention_s(self, q_len: int, past: int = 0) -> float:
        """Seconds of the causal attention of a ``q_len``-token prefill chunk after ``past`` cached tokens
        (above ``GRID_EXACT`` tokens, ``q_len`` interpolated linearly between multiples of ``GRID_STEP`` and
        ``past`` rounded to one)."""
        cached = self._prefill_exact.get((q_len, past))
        if cached is not None:
            return cached
        if past > GRID_EXACT:
            past = (past + GRID_STEP // 2) // GRID_STEP * GRID_STEP
        if q_len > GRID_EXACT and q_len % GRID_STEP:
            low = q_len // GRID_STEP * GRID_STEP
            a, b = self.prefill_attention_s(low, past), self.prefill_attention_s(low + GRID_STEP, past)
            cached = self._prefill_exact[(q_len, past)] = a + (b - a) * (q_len - low) / GRID_STEP
            return cached
        key = (q_len, past)
        seconds = self._prefill_attn.get(key)
        if seconds is None:
            op, count = prefill_attention(self.cfg, q_len, past, self.tp, self.precision)
            seconds = self._prefill_attn[key] = float(self._predict([op], self.device_id)[0]) * count
        return seconds

    def decode_s(self, batch: int, total_kv: float) -> float:
        """Seconds of one decode iteration of ``batch`` sequences whose caches hold ``total_kv`` tokens in
        all (the new tokens included)."""
        mean = total_kv / batch
        kv = int(mean + 0.999)
        if kv > 256:
            kv = (kv + 15) & ~15
        key = (batch, kv)
        seconds = self._decode.get(key)
        if seconds is None:
            seconds = self.dense_s(batch, batch) + self.decode_attention_s(batch, kv)
            seconds = self._decode[key] = max(seconds, self.offload_s)
        return seconds

    def iteration_s(
        self, decode_batch: int, decode_total_kv: float, chunks: Sequence[tuple[int, int]], emitting: int
    ) -> float:
        """Seconds of a mixed iteration: ``decode_batch`` decode tokens (caches of ``decode_total_kv`` tokens
        in all) and prefill ``chunks`` of (tokens, past tokens), ``emitting`` of which finish their prompt
        and need logits."""
        tokens = decode_batch + sum(q for q, _ in chunks)
        seconds = self.dense_s(tokens, max(1, decode_batch + emitting))
        if decode_batch:
            seconds += self.decode_attention_s(decode_batch, decode_total_kv / decode_batch)
        for q, past in chunks:
            seconds += self.prefill_attention_s(q, past)
        return max(seconds, self.offload_s)
