"""How much of a training step's communication hides behind its compute.

Three mechanisms, each a closed form over times the cost model and the network model give (seconds):

**Tensor-parallel overlap** (``overlap: {tp: true}``). Transformer Engine's userbuffers, which Megatron-LM
turns on with ``--tp-comm-overlap``, split each sequence-parallel all-gather and reduce-scatter into chunks
and pipeline them with the GEMM next to them (TE 2.20.2, ``transformer_engine/pytorch/module/base.py``,
``initialize_ub``: the default ``methods`` and ``num_splits``). It needs sequence parallelism: every
``ub_overlap_*`` and ``ub_bulk_*`` flag of TE's ``Linear`` is ANDed with ``sequence_parallel``
(``module/linear.py``); without it the layer's collectives are all-reduces, which TE does not split. The
forward gathers the input of the QKV and MLP-up GEMMs by ring exchange in ``tp`` chunks (the local chunk
computes while the next arrives) and reduce-scatters the output of the projection and MLP-down GEMMs in a
pipeline of :data:`TE_PIPELINE_SPLITS` chunks (each chunk's reduction runs while the next chunk computes). For
a collective of ``C`` seconds next to a GEMM of ``G`` in ``n`` chunks:

- gather before the GEMM (ring exchange): exposed ``max(0, C - G (n-1)/n)``;
- reduce-scatter after it (pipeline): exposed ``max(C/n, C - G (n-1)/n)`` (the last chunk's reduction runs
  after the GEMM);
- "bulk" overlap (one collective beside a whole GEMM, TE's backward of QKV and MLP-up): ``max(0, C - G)``.

In the backward the gathers precede the data-gradient GEMMs of the projection and MLP-down (``proj_dgrad``,
``fc2_dgrad``: ring exchange beside their data gradient, half of the backward GEMM) and the reduce-scatters of
the QKV and MLP-up data gradients run in bulk beside their weight gradients (``qkv_wgrad``, ``fc1_wgrad``: the
other half). The pipeline method's GEMM gives up 16 SMs to the communication (``num_sm``,
``set_sm_margin``); dcsim does not slow the GEMM for it. A collective with no such GEMM in the op
list (MoE layers' experts, cross-attention) stays exposed, as do expert-parallel all-to-alls.

**Data-parallel bucketed overlap** (``parallelism.overlap_dp``, ``overlap.dp_bucket_mb``). DDP and Megatron's
distributed optimizer all-reduce the gradients in buckets as the backward produces them: a bucket starts when
its gradients are ready and the previous bucket's reduction is done (one communication stream). The default
bucket is torch DDP's default ``bucket_cap_mb`` of 25 MiB (:data:`DDP_BUCKET_MB`); Megatron-Core's DDP
defaults to ``max(40e6, 1e6 * dp)`` parameters per bucket (``megatron/core/distributed/
distributed_data_parallel.py``, Megatron-Core 0.16.1), 80 MB of bf16 gradients at dp <= 40. With the gradients
produced evenly over the last backward of the stage's device, the step waits for what is left after the
backward ends: at least the last bucket's reduction (:func:`bucketed_exposed_s`).

**ZeRO-3 / FSDP prefetch** contends with compute for memory bandwidth. While NCCL moves a collective it reads
every byte it sends from HBM and writes every byte it receives (``2 (n-1)/n`` of the message per rank for a
ring all-gather or reduce-scatter over ``n`` ranks); the compute it overlaps gets the rest of the bandwidth.
dcsim slows the overlapped compute by that share (:func:`hbm_share`: bytes NCCL moves through HBM per second
of the collective over the datasheet HBM bandwidth; an 8-GPU NVLink all-gather on an H100 takes about a
fifth, one over InfiniBand a few percent), so prefetch hides only part of the gathers
(:func:`contended_exposed_s`). NCCL's kernels also occupy SMs (one thread block per channel), which is not
modelled: the factor is a lower bound on the slowdown of compute-bound kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: torch DDP's default gradient bucket size, MiB (torch 2.13.0, ``torch/nn/parallel/distributed.py``:
#: ``_DEFAULT_BUCKET_CAP_MB = 25``, converted with ``_MB_TO_BYTES = 1024 * 1024``).
DDP_BUCKET_MB = 25.0
MIB = 1024 * 1024
#: Chunks of Transformer Engine's "pipeline" reduce-scatter overlap (``num_splits`` of ``initialize_ub``'s
#: default config for the non-ring-exchange methods, TE 2.20.2 ``transformer_engine/pytorch/module/base.py``).
#: Ring exchange splits in ``tp_size`` chunks.
TE_PIPELINE_SPLITS = 4
#: (collective, GEMM layer name, method, which part of the GEMM it overlaps) per layer, forward then backward.
#: ``ring``: split in ``tp`` chunks; ``pipeline``: in :data:`TE_PIPELINE_SPLITS`; ``bulk``: beside the whole
#: GEMM part. ``fwd`` is the forward GEMM, ``dgrad``/``wgrad`` each half of its backward.
TP_OVERLAP_FWD = (
    ("all_gather", "attn.qkv", "ring", "fwd"),
    ("reduce_scatter", "attn.proj", "pipeline", "fwd"),
    ("all_gather", "mlp.up", "ring", "fwd"),
    ("reduce_scatter", "mlp.down", "pipeline", "fwd"),
)
TP_OVERLAP_BWD = (
    ("all_gather", "mlp.down", "ring", "dgrad"),
    ("reduce_scatter", "mlp.up", "bulk", "wgrad"),
    ("all_gather", "attn.proj", "ring", "dgrad"),
    ("reduce_scatter", "attn.qkv", "bulk", "wgrad"),
)
#: The layer names of the GEMMs the tensor-parallel collectives overlap.
TP_OVERLAP_GEMMS = frozenset(name for table in (TP_OVERLAP_FWD, TP_OVERLAP_BWD) for _, name, _, _ in table)


@dataclass(frozen=True)
class OverlapOptions:
    """``tp``: overlap tensor-parallel collectives with their GEMMs (needs sequence parallelism);
    ``dp_bucket_mb``: gradient bucket size (MiB) of the data-parallel reduction overlapped with the backward."""

    tp: bool = False
    dp_bucket_mb: float = DDP_BUCKET_MB

    def __post_init__(self) -> None:
        if not self.dp_bucket_mb > 0 or not math.isfinite(self.dp_bucket_mb):
            raise ValueError(f"dp_bucket_mb must be a positive number (got {self.dp_bucket_mb!r})")

    @property
    def bucket_bytes(self) -> float:
        """Bytes of one gradient bucket."""
        return self.dp_bucket_mb * MIB


def gather_exposed_s(comm_s: float, gemm_s: float, splits: int) -> float:
    """Exposed seconds of a gather pipelined into the ``splits`` chunks of the GEMM after it (ring exchange)."""
    return max(0.0, comm_s - gemm_s * (splits - 1) / splits)


def scatter_exposed_s(comm_s: float, gemm_s: float, splits: int) -> float:
    """Exposed seconds of a reduce-scatter pipelined with the ``splits`` chunks of the GEMM before it."""
    return max(comm_s / splits, comm_s - gemm_s * (splits - 1) / splits)


def bulk_exposed_s(comm_s: float, gemm_s: float) -> float:
    """Exposed seconds of a collective run beside a whole GEMM."""
    return max(0.0, comm_s - gemm_s)


def tp_overlap_exposed_s(
    gather_s: float, scatter_s: float, gemms: Mapping[str, tuple[float, float]], tp: int
) -> tuple[float, float]:
    """(forward, backward) exposed seconds per layer of its sequence-parallel gathers (``gather_s`` each) and
    reduce-scatters (``scatter_s`` each) overlapped as the module docstring says; ``gemms`` maps a layer name
    to (forward, backward) seconds of one layer's GEMM. A collective whose GEMM is missing stays exposed."""

    def exposed(table: tuple[tuple[str, str, str, str], ...]) -> float:
        total = 0.0
        for collective, name, method, side in table:
            comm = gather_s if collective == "all_gather" else scatter_s
            if name not in gemms:
                total += comm
                continue
            fwd, bwd = gemms[name]
            gemm = fwd if side == "fwd" else bwd / 2.0
            if method == "bulk":
                total += bulk_exposed_s(comm, gemm)
            elif method == "ring":
                total += gather_exposed_s(comm, gemm, tp)
            else:
                total += scatter_exposed_s(comm, gemm, TE_PIPELINE_SPLITS)
        return total

    return exposed(TP_OVERLAP_FWD), exposed(TP_OVERLAP_BWD)


def bucketed_exposed_s(
    total_bytes: float, bucket_bytes: float, window_s: float, reduce_s: Callable[[float], float]
) -> tuple[float, float]:
    """(exposed seconds, seconds of all buckets' reductions) of ``total_bytes`` of gradients reduced in buckets
    of ``bucket_bytes``, produced evenly over a backward of ``window_s``; ``reduce_s(nbytes)`` prices one
    bucket. Bucket ``i`` is ready at ``t_i`` and reduced after the one before: the last finishes at
    ``max_i (t_i + sum of the reductions from i on)``, the first or the last bucket's term (the sum is linear in
    ``i``). The last bucket holds the rest and is priced as a full one (an upper bound: one network query per
    bucket size instead of two); gradients that fit one bucket are one reduction after the backward."""
    if total_bytes <= 0:
        return 0.0, 0.0
    if total_bytes <= bucket_bytes:
        last = reduce_s(total_bytes)
        return last, last
    buckets = math.ceil(total_bytes / bucket_bytes)
    one = reduce_s(bucket_bytes)
    first_ready = window_s * bucket_bytes / total_bytes
    finish = max(first_ready + buckets * one, window_s + one)
    return finish - window_s, buckets * one


def collective_hbm_bytes(nbytes: float, ranks: int) -> float:
    """Bytes a ring all-gather or reduce-scatter of ``nbytes`` (the full buffer) moves through one rank's
    memory: it reads the ``(n-1)/n`` it sends and writes the ``(n-1)/n`` it receives."""
    return 2.0 * (ranks - 1) / ranks * nbytes if ranks > 1 else 0.0


def hbm_share(hbm_bytes: float, comm_s: float, bandwidth_bytes_per_s: float) -> float:
    """Share of the device's memory bandwidth a collective takes while it runs: the ``hbm_bytes`` it moves
    through memory over its ``comm_s``, over the datasheet bandwidth (at most 1)."""
    if comm_s <= 0 or bandwidth_bytes_per_s <= 0:
        return 0.0
    return min(1.0, hbm_bytes / comm_s / bandwidth_bytes_per_s)


def contended_exposed_s(comm_s: float, compute_s: float, share: float) -> float:
    """Exposed seconds of ``comm_s`` of communication overlapped with ``compute_s`` of compute that runs at
    ``1 - share`` of its speed while the communication runs: ``max(comm - compute, share * comm)`` (the
    compute finishes inside the communication, or it finishes after it, ``share * comm`` late)."""
    if comm_s <= 0:
        return 0.0
    return max(comm_s - compute_s, share * comm_s)
