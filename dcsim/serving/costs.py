"""Iteration times and memory of one replica, from the calibrated cost model (cached per shape).

An iteration's time is the sum of its ops' predicted times on one accelerator of the replica (ops of one
tensor-parallel shard, :mod:`dcsim.models.inference`), plus the tensor-parallel all-reduces (two per layer,
each priced by NCCL's model on the node's intra-node interconnect, :func:`dcsim.network.collectives.nccl_model.tune`:
the tuner's algorithm, protocol and channels, with NCCL's latencies - tens of microseconds for the small
messages of a decode step) and, with ``pp`` pipeline stages, ``pp - 1`` activation sends, priced by NCCL's
point-to-point model (:mod:`dcsim.network.collectives.p2p_model`): over the intra-node interconnect between
stages on one node, and over the NICs and network between stages on different nodes (a replica spanning
nodes, :mod:`dcsim.serving.stagehop`).
Pipeline stages run one after another for one batch (no micro-batch overlap inside a replica), so ``pp``
splits memory, not time. The cost model call is the expensive part, so every piece is cached: the dense
layers by (tokens, sequences), decode attention by (batch, mean context rounded up to 16 tokens above 256),
prefill attention by (chunk, past tokens), an encoder's batched attention by (batch, root-mean-square length).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dcsim.compression.transforms import prune_heads
from dcsim.compute import predict_many
from dcsim.compute.ops import BYTES_PER_ELEMENT, Op
from dcsim.models.base import LayerOp, ModelOps
from dcsim.models.inference import (
    allreduce_bytes,
    decode_attention,
    dense_layers,
    dense_ops,
    kv_bytes_per_token,
    prefill_attention,
    weight_bytes,
)
from dcsim.models.transformer import TransformerConfig
from dcsim.network.collectives.nccl_model import CommTopology, node_topology, tune
from dcsim.serving.host_overhead import HostOverhead
from dcsim.serving.stagehop import StageHop

#: Fraction of an accelerator's TOTAL memory a server may use for weights, activations, workspace and KV
#: cache (vLLM 0.6.3, ``vllm/engine/arg_utils.py``: ``EngineArgs.gpu_memory_utilization = 0.90``); the rest
#: holds what vLLM allocates before it measures or after it sizes the cache: the CUDA context, CUDA graphs.
GPU_MEMORY_UTILIZATION = 0.9
#: Tokens per KV-cache block (vLLM 0.6.3, ``vllm/engine/arg_utils.py``: ``EngineArgs.block_size = 16``).
BLOCK_TOKENS = 16
#: cuBLAS workspace PyTorch keeps per GPU (PyTorch 2.4, the version vLLM 0.6.3 requires,
#: ``aten/src/ATen/cuda/CublasHandlePool.cpp``: 32 MiB on Hopper, ``4096 KiB x 2 + 16 KiB x 8`` = 8.125 MiB
#: before it; the larger is taken for every GPU, 24 MiB too much on an A100).
CUBLAS_WORKSPACE_BYTES = 32 * 2**20
#: NCCL receive buffers of one channel's connection, bytes: the Simple protocol's ``NCCL_BUFFSIZE`` default
#: 4 MiB (NCCL environment-variable documentation), LL128's ``120 elements x 640 threads x 8 steps x 8 bytes``
#: and LL's ``8 lines x 512 threads x 8 steps x 16 bytes`` (NCCL ``src/include/device.h`` defaults).
NCCL_CHANNEL_BUFFER_BYTES = 4 * 2**20 + 120 * 640 * 8 * 8 + 8 * 512 * 8 * 16
#: Channels of an NCCL communicator at most (NCCL ``MAXCHANNELS``, ``src/include/device.h``): the count NCCL
#: opens depends on the links; the most is taken, so the workspace is an upper bound of NCCL's share.
NCCL_MAX_CHANNELS = 32
#: NCCL communicators per GPU of a replica of several GPUs: vLLM 0.6.3's ``GroupCoordinator``
#: (``vllm/distributed/parallel_state.py``) holds PyTorch's NCCL group and its own ``PyNcclCommunicator``.
NCCL_COMMUNICATORS = 2
#: vLLM 0.6.3's custom all-reduce buffers per GPU under tensor parallelism
#: (``vllm/distributed/device_communicators/custom_all_reduce.py``: ``max_size`` 8 MiB of metadata-prefixed
#: buffer, 8 MiB of staging buffer and 8 MiB of ``rank_data``).
CUSTOM_ALLREDUCE_BYTES = 3 * 8 * 2**20
#: Live activation tensors of ``hidden`` width per token during a forward pass (residual, normed input,
#: attention output, projection output, and Q/K/V before they are cached), an estimate of the peak
#: activation memory vLLM reserves by profiling one forward pass of ``max_batch_tokens`` tokens.
LIVE_HIDDEN_TENSORS = 8
#: Token counts up to which iteration pieces are costed exactly; above, on a grid of this step.
GRID_EXACT = 256
GRID_STEP = 32
#: Decode-attention prices are cached per mean cache length, rounded up to a multiple of this many tokens
#: above ``GRID_EXACT`` (exact below)
KV_BUCKET_TOKENS = 16


def _kv_bucket(mean_kv: float) -> int:
    """The cache length (tokens) decode prices are cached at: ``mean_kv`` rounded up, to a multiple of
    :data:`KV_BUCKET_TOKENS` above :data:`GRID_EXACT`."""
    kv = int(mean_kv + 0.999)
    if kv > GRID_EXACT:
        kv = -(-kv // KV_BUCKET_TOKENS) * KV_BUCKET_TOKENS
    return kv


PredictMany = Callable[[Sequence[Op], str], np.ndarray]


@dataclass(frozen=True)
class ReplicaMemory:
    """Memory of one accelerator of a replica, bytes, and the KV capacity of the replica in blocks (each
    layer's cache lives on its stage; all stages hold every token).

    ``accelerator_bytes`` is the accelerator's whole memory; ``gpu_memory_utilization`` of it
    (:attr:`usable_bytes`) is shared by the weights, the activation reserve, the workspace and the KV cache
    (``kv_bytes``, what is left; 0 when nothing is), as vLLM sizes its cache."""

    accelerator_bytes: float
    weight_bytes: float
    activation_bytes: float
    kv_bytes: float
    kv_bytes_per_token: float
    capacity_blocks: int
    block_tokens: int
    workspace_bytes: float = 0.0
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION

    @property
    def fits(self) -> bool:
        """True if the weights and activations leave room for at least one block."""
        return self.capacity_blocks >= 1

    @property
    def usable_bytes(self) -> float:
        """``gpu_memory_utilization`` of the accelerator's memory: what the four terms share."""
        return self.accelerator_bytes * self.gpu_memory_utilization

    def summary(self) -> dict[str, float]:
        """Where one accelerator's memory goes, GB (10^9 bytes), and the replica's KV capacity in tokens."""
        gb = 1e-9
        return {
            "accelerator_gb": self.accelerator_bytes * gb,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "usable_gb": self.usable_bytes * gb,
            "weights_gb": self.weight_bytes * gb,
            "activations_gb": self.activation_bytes * gb,
            "workspace_gb": self.workspace_bytes * gb,
            "kv_gb": self.kv_bytes * gb,
            "kv_tokens": self.capacity_blocks * self.block_tokens if self.kv_bytes_per_token > 0 else 0,
        }


def workspace_bytes(tp: int = 1, pp: int = 1) -> float:
    """Memory a GPU of a replica of ``tp x pp`` GPUs gives to libraries outside the model, bytes: the cuBLAS
    workspace, and with more than one GPU the NCCL communicators' buffers, and with ``tp > 1`` vLLM's custom
    all-reduce buffers (see the constants' sources). vLLM 0.6.3 counts them in the peak it profiles
    (``vllm/worker/worker.py``, ``determine_num_available_blocks``: free memory after the CUDA context is made,
    minus free memory after a profile run of a full batch), so they come out of its KV cache. At tp > 1 it is
    0.68 GB per GPU whatever the model (4,100 of Llama-2-70B's KV tokens at TP 2), most of it NCCL's upper bound."""
    size = CUBLAS_WORKSPACE_BYTES
    if tp * pp > 1:
        size += NCCL_COMMUNICATORS * NCCL_MAX_CHANNELS * NCCL_CHANNEL_BUFFER_BYTES
    if tp > 1:
        size += CUSTOM_ALLREDUCE_BYTES
    return float(size)


def replica_memory(
    cfg: TransformerConfig,
    precision: str,
    accelerator_bytes: float,
    tp: int = 1,
    pp: int = 1,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 256,
    block_tokens: int = BLOCK_TOKENS,
    offload_fraction: float = 0.0,
    weight_factor: float = 1.0,
    kv_factor: float = 1.0,
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
    workspace: float | None = None,
) -> ReplicaMemory:
    """Weights, activations, workspace and KV capacity of a replica on accelerators of ``accelerator_bytes``
    bytes each (the catalog's :attr:`~dcsim.catalog.Accelerator.memory_bytes`: 80 GiB on an A100 80GB;
    ``offload_fraction`` of the weights live in host memory instead; a compressed model stores
    ``weight_factor`` of the dense weight bytes and ``kv_factor`` of the KV bytes per token).

    As vLLM 0.6.3 sizes its KV cache (``vllm/worker/worker.py``, ``determine_num_available_blocks``:
    ``total x gpu_memory_utilization - peak`` over the block size, the peak being the weights, the activations
    of a profile run of ``max_num_batched_tokens`` tokens in ``max_num_seqs`` sequences, and the libraries'
    allocations): the KV cache gets ``gpu_memory_utilization x accelerator_bytes`` minus the weights of one
    shard, minus the activation reserve of a ``max_batch_tokens`` forward pass (:data:`LIVE_HIDDEN_TENSORS`
    ``x hidden + 2 x ffn_hidden / tp`` elements per token, plus fp32 logits of ``max_batch_size`` rows), minus
    ``workspace`` bytes (default :func:`workspace_bytes` of ``tp`` and ``pp``; 0 for accelerators without
    CUDA libraries is the caller's to pass).

    An encoder keeps no KV cache (its K and V live inside each layer's forward pass, within the activation
    reserve) and computes no vocabulary logits: ``kv_bytes`` and ``kv_bytes_per_token`` are 0, and
    ``capacity_blocks`` counts the blocks of the tokens one iteration may hold (``max_batch_tokens``, or one
    input of up to ``max_seq_len`` tokens admitted alone, rounded up per sequence), so the KV blocks never
    limit a batch beyond ``max_batch_tokens``; it is 0 when the weights, activations and workspace do not fit."""
    if not 0.0 < gpu_memory_utilization <= 1.0:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1] (got {gpu_memory_utilization!r})")
    e = BYTES_PER_ELEMENT[precision]
    usable = accelerator_bytes * gpu_memory_utilization
    spare = workspace_bytes(tp, pp) if workspace is None else workspace
    weights = weight_bytes(cfg, precision, tp) / pp * (1.0 - offload_fraction) * weight_factor
    activations = max_batch_tokens * e * (LIVE_HIDDEN_TENSORS * cfg.hidden + 2 * cfg.ffn_hidden // tp)
    terms = (accelerator_bytes, weights)
    if cfg.family == "encoder":
        fits = weights + activations + spare <= usable
        tokens = max(max_batch_tokens, cfg.max_seq_len)
        blocks = -(-tokens // block_tokens) + max_batch_size if fits else 0
        return ReplicaMemory(*terms, activations, 0.0, 0.0, blocks, block_tokens, spare, gpu_memory_utilization)
    activations += max_batch_size * cfg.vocab // tp * 4.0  # fp32 logits of the sequences' last positions
    per_token = kv_bytes_per_token(cfg, precision, tp) / pp * kv_factor
    kv = max(0.0, usable - weights - activations - spare)
    blocks = int(kv // (per_token * block_tokens))
    return ReplicaMemory(*terms, activations, kv, per_token, blocks, block_tokens, spare, gpu_memory_utilization)


def kept_kv_heads(cfg: TransformerConfig, kept_heads: int) -> int:
    """Key-value heads left when ``kept_heads`` of the model's heads are kept (whole groups under GQA)."""
    return max(1, (cfg.kv_heads or cfg.heads) * kept_heads // cfg.heads)


def check_kept_heads(cfg: TransformerConfig, kept_heads: int, tp: int = 1) -> None:
    """ValueError unless ``kept_heads`` is whole key-value groups of the model that ``tp`` shards evenly."""
    kv = cfg.kv_heads or cfg.heads
    group = cfg.heads // kv
    if not 1 <= kept_heads <= cfg.heads or kept_heads % group:
        raise ValueError(f"kept heads ({kept_heads}) must be 1..{cfg.heads} whole groups of {group}")
    if kept_heads % tp or kept_kv_heads(cfg, kept_heads) % tp:
        raise ValueError(
            f"tp ({tp}) must divide the {kept_heads} heads and {kept_kv_heads(cfg, kept_heads)} KV heads kept"
        )


class IterationCost:
    """Seconds of iterations of one replica (``tp`` x ``pp`` accelerators of ``device_id``).

    ``link_bytes_per_s`` is the bandwidth of the intra-node interconnect the TP all-reduces and PP sends inside a
    node use (needed when ``tp`` > 1 or stages share a node); ``interconnect`` is its catalog id, with which they
    see the link's efficiency, PCIe or NVLink latencies and NVLS as NCCL would
    (:func:`~dcsim.network.collectives.nccl_model.node_topology`; without it the bandwidth is taken as given, on
    NVLink). Both are priced by the one communication model: the all-reduces by NCCL's tuner, the sends by its
    point-to-point model (:mod:`dcsim.network.collectives.p2p_model`). ``stage_hops`` are the replica's inter-node
    stage boundaries (a replica spanning nodes: one :class:`~dcsim.serving.stagehop.StageHop` per boundary between
    nodes; the other ``pp - 1 - len(stage_hops)`` boundaries are inside a node, each of the ``tp`` ranks sending its
    share over its own link). ``predict_many`` defaults to :func:`dcsim.compute.predict_many`. ``offload_s`` is the
    time to stream the weights kept in host memory to the accelerator once: they are streamed every iteration, layer
    by layer ahead of use (FlexGen / ZeRO-Inference style), so an iteration takes at least that long. ``transform``
    rewrites each op list before it is priced (a compression recipe: :mod:`dcsim.serving.compressed`).
    ``kept_heads`` (uniform head pruning) keeps that many of the model's attention heads per layer, whole key-value
    groups, at the same head width: every op list goes through :func:`dcsim.compression.transforms.prune_heads` (QKV
    and output projection, cache write, layout copy and attention cores shrink). ``kv_precision`` (a quantized KV
    cache) is the element type decode attention reads the cache in. ``host`` is the serving engine's host (CPU) time
    per iteration (:mod:`dcsim.serving.host_overhead`), a function of the iteration's sequence count: its serial
    part is added to every iteration and its overlapped part hides behind the accelerator work; None (the default
    here; scenarios resolve ``host_overhead``) adds none.
    """

    def __init__(
        self,
        cfg: TransformerConfig,
        precision: str,
        device_id: str,
        tp: int = 1,
        pp: int = 1,
        link_bytes_per_s: float | None = None,
        *,
        predict: PredictMany | None = None,
        offload_s: float = 0.0,
        transform: Callable[[list[tuple[Op, int]]], list[tuple[Op, int]]] | None = None,
        kept_heads: int | None = None,
        kv_precision: str | None = None,
        stage_hops: Sequence[StageHop] = (),
        host: HostOverhead | None = None,
        interconnect: str | None = None,
    ) -> None:
        if len(stage_hops) > pp - 1:
            raise ValueError(f"{len(stage_hops)} inter-node stage boundaries for pp ({pp}): at most pp - 1")
        if (tp > 1 or pp - 1 > len(stage_hops)) and not link_bytes_per_s:
            raise ValueError("tp or pp > 1 needs the interconnect bandwidth (the node type's intra_node)")
        self.stage_hops = tuple(stage_hops)
        dense_ops(cfg, 1, 1, tp, precision)  # validates tp against the shape
        if kept_heads is not None:
            check_kept_heads(cfg, kept_heads, tp)
        self.kept_heads, self.kv_precision = kept_heads, kv_precision
        self.cfg, self.precision, self.device_id, self.tp, self.pp = cfg, precision, device_id, tp, pp
        self.link_bytes_per_s = link_bytes_per_s or 0.0
        self.tp_topology: CommTopology | None = None
        if tp > 1:
            self.tp_topology = node_topology(device_id, interconnect, tp, self.link_bytes_per_s)
        # a stage boundary inside a node: each rank sends its share to its peer over its own link
        self.inside_hop: StageHop | None = None
        if pp - 1 > len(self.stage_hops):
            node = node_topology(device_id, interconnect, 2, self.link_bytes_per_s)
            self.inside_hop = StageHop(node.gpu_bytes_per_s, node.intra)
        self._predict = predict or predict_many
        self.offload_s = offload_s
        # seconds per cached token attended to for the part of the KV cache kept in host memory (offload
        # kv_fraction x KV bytes per token of a shard / host link bytes/s): it crosses the link every
        # iteration, on the same link as the streamed weights, overlapped with compute
        self.kv_offload_s_per_token = 0.0
        self._transform = transform
        self.host = host
        self._dense: dict[tuple[int, int], float] = {}
        self._decode_attn: dict[tuple[int, int], float] = {}
        self._prefill_attn: dict[tuple[int, int], float] = {}
        self._encoder_attn: dict[tuple[int, int], float] = {}
        self._decode: dict[tuple[int, int], float] = {}
        self._dense_body: dict[int, float] = {}
        self._prefill_exact: dict[tuple[int, int], float] = {}
        # prefill_attention_s per (chunk, past tokens rounded as it rounds them), for iteration_s's lookups
        self._prefill_pieces: dict[tuple[int, int], float] = {}
        self._encoder = cfg.family == "encoder"

    def _dense_pairs(self, tokens: int, sequences: int) -> list[tuple[Op, int]]:
        """The dense ops of an iteration as ``(op, count)``, heads pruned (the last two are the head)."""
        if self.kept_heads is None:
            return dense_ops(self.cfg, tokens, sequences, self.tp, self.precision)
        ops = dense_layers(self.cfg, tokens, sequences, self.tp, self.precision)
        ops = prune_heads(ops, self.cfg.heads, self.kept_heads)
        return [(layer.op, layer.count) for layer in ops.layers]

    def _attention(self, op: Op) -> Op:
        """An attention core with the kept heads (unchanged without head pruning)."""
        if self.kept_heads is None:
            return op
        pruned = prune_heads(ModelOps("attention", (LayerOp("attn.core", op),)), self.cfg.heads, self.kept_heads)
        return pruned.layers[0].op

    def _attention_s(self, op: Op, count: int) -> float:
        """Seconds of ``count`` attention cores ``op`` (one per layer), with the kept heads."""
        return float(self._predict([self._attention(op)], self.device_id)[0]) * count

    def _ops_s(self, ops: list[tuple[Op, int]]) -> float:
        if self._transform is not None:
            ops = self._transform(list(ops))
        times = self._predict([op for op, _ in ops], self.device_id)
        return float(sum(t * count for t, (_, count) in zip(times, ops, strict=True)))

    def comm_s(self, tokens: int) -> float:
        """Seconds of the TP all-reduces and PP transfers of one iteration over ``tokens`` tokens."""
        seconds = 0.0
        if self.tp_topology is not None:
            per_op = allreduce_bytes(self.cfg, tokens, self.precision) / (2 * self.cfg.layers)
            seconds += 2 * self.cfg.layers * tune("all_reduce", self.tp_topology, float(per_op)).time_s
        if self.pp > 1:
            activation = tokens * self.cfg.hidden * BYTES_PER_ELEMENT[self.precision]
            if self.inside_hop is not None:  # each rank sends its 1/tp of the activations to its peer
                seconds += (self.pp - 1 - len(self.stage_hops)) * self.inside_hop.seconds(activation / self.tp)
            for hop in self.stage_hops:
                seconds += hop.seconds(activation / self.tp)
        return seconds

    def _dense_exact(self, tokens: int) -> float:
        seconds = self._dense.get((tokens, 0))
        if seconds is None:
            body = self._dense_pairs(tokens, 1)[:-2]  # without the head
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
            ops = self._dense_pairs(sequences, sequences)[-2:]
            head = self._dense[(0, sequences)] = self._ops_s(ops)
        return body + head

    def decode_attention_s(self, batch: int, mean_kv: float) -> float:
        """Seconds of the decode attention of ``batch`` sequences holding ``mean_kv`` tokens on average
        (one op over the batch: its FLOPs and bytes are the sum over the sequences)."""
        kv = _kv_bucket(mean_kv)
        key = (batch, kv)
        seconds = self._decode_attn.get(key)
        if seconds is None:
            seconds = self._decode_attn[key] = self._attention_s(
                *decode_attention(self.cfg, kv, self.tp, self.precision, batch, self.kv_precision)
            )
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
            if q_len <= GRID_EXACT:
                self._price_prefill_block(q_len, past)
                seconds = self._prefill_attn[key]
            else:
                seconds = self._prefill_attn[key] = self._attention_s(
                    *prefill_attention(self.cfg, q_len, past, self.tp, self.precision)
                )
        return seconds

    def _price_prefill_block(self, q_len: int, past: int) -> None:
        """Price the prefill attention of every chunk length of ``q_len``'s aligned block of
        :data:`GRID_STEP` lengths (up to :data:`GRID_EXACT`) after ``past`` tokens in one cost-model call: a
        chunked prefill's leftover chunk lengths are arbitrary, and one call per length costs mostly the
        call (the prices are the same as one at a time)."""
        low = (q_len - 1) // GRID_STEP * GRID_STEP
        lengths = [
            q for q in range(low + 1, min(low + GRID_STEP, GRID_EXACT) + 1) if (q, past) not in self._prefill_attn
        ]
        pairs = [prefill_attention(self.cfg, q, past, self.tp, self.precision) for q in lengths]
        times = self._predict([self._attention(op) for op, _ in pairs], self.device_id)
        for q, (_, count), t in zip(lengths, pairs, times, strict=True):
            self._prefill_attn[(q, past)] = float(t) * count

    def encoder_attention_s(self, lengths: Sequence[int]) -> float:
        """Seconds of an encoder's bidirectional attention over a batch of inputs of ``lengths`` tokens, all
        layers: one kernel over the batch (FlashAttention's variable-length kernel runs every sequence of a
        batch in one launch, without padding), priced as ``Attention(batch=b, q_len=kv_len=L)`` with ``L``
        the root-mean-square length rounded up, so that its query-key pairs (FLOPs) are the batch's sum."""
        if not lengths:
            return 0.0
        b = len(lengths)
        squares = sum(q * q for q in lengths)
        rms = math.isqrt(squares // b)
        while rms * rms * b < squares:
            rms += 1
        key = (b, rms)
        seconds = self._encoder_attn.get(key)
        if seconds is None:
            seconds = self._encoder_attn[key] = self._attention_s(
                *prefill_attention(self.cfg, rms, 0, self.tp, self.precision, batch=b)
            )
        return seconds

    def ran_decode(self, positions: int) -> None:
        """A decode run of ``positions`` token positions priced by the last :meth:`decode_s` ended (nothing to
        tally here; :class:`~dcsim.serving.speculative.SpeculativeCost` counts its verify steps)."""

    def decode_s(self, batch: int, total_kv: float) -> float:
        """Seconds of one decode iteration of ``batch`` sequences whose caches hold ``total_kv`` tokens in
        all (the new tokens included), host time included."""
        kv = _kv_bucket(total_kv / batch)
        key = (batch, kv)
        seconds = self._decode.get(key)
        if seconds is None:
            seconds = self.dense_s(batch, batch) + self.decode_attention_s(batch, kv)
            seconds = max(seconds, self.offload_s + self.kv_offload_s_per_token * batch * kv)
            if self.host is not None:
                seconds = self.host.add(seconds, batch)
            self._decode[key] = seconds
        return seconds

    def iteration_s(
        self, decode_batch: int, decode_total_kv: float, chunks: Sequence[tuple[int, int]], emitting: int
    ) -> float:
        """Seconds of a mixed iteration: ``decode_batch`` decode tokens (caches of ``decode_total_kv`` tokens
        in all) and prefill ``chunks`` of (tokens, past tokens), ``emitting`` of which finish their prompt
        and need logits; host time included (for ``decode_batch + len(chunks)`` sequences)."""
        # hot (once per iteration with prompt chunks): the cached prices are looked up inline, each falling
        # back to its method on a miss; the sums are taken in the methods' order, so the result is the same
        tokens = decode_batch
        for q, _ in chunks:
            tokens += q
        rows = decode_batch + emitting
        if rows < 1:
            rows = 1
        body = self._dense_body.get(tokens)
        head = self._dense.get((0, rows))
        seconds = body + head if body is not None and head is not None else self.dense_s(tokens, rows)
        if decode_batch:
            kv = _kv_bucket(decode_total_kv / decode_batch)
            attention = self._decode_attn.get((decode_batch, kv))
            seconds += attention if attention is not None else self.decode_attention_s(decode_batch, kv)
        if self._encoder:
            seconds += self.encoder_attention_s([q for q, _ in chunks])
        else:
            pieces = self._prefill_pieces
            for q, past in chunks:
                if past > GRID_EXACT:  # as prefill_attention_s rounds it
                    past = (past + GRID_STEP // 2) // GRID_STEP * GRID_STEP
                attention = pieces.get((q, past))
                if attention is None:
                    attention = pieces[(q, past)] = self.prefill_attention_s(q, past)
                seconds += attention
        if self.kv_offload_s_per_token:  # cached tokens read, and new ones written, over the host link
            attended = decode_total_kv + sum(q + past for q, past in chunks)
            seconds = max(seconds, self.offload_s + self.kv_offload_s_per_token * attended)
        else:
            seconds = max(seconds, self.offload_s)
        if self.host is not None:
            seconds = self.host.add(seconds, decode_batch + len(chunks))
        return seconds
