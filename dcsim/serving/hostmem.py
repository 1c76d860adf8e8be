"""A node's host memory (its DRAM, the scenario's node ``memory_gb``), shared by the serving replicas on it.

Two things live there: weights and KV cache offloaded at load time (``offload``), reserved once for as long
as the run lasts, and the KV caches of sequences swapped out by preemption (``batching.preemption: swap``),
taken when a sequence is swapped out and given back when it is swapped in. A swap that does not fit falls
back to recompute preemption (:class:`dcsim.serving.replica.Replica` counts it in ``swap_fallbacks``).
Bytes throughout; a node without ``memory_gb`` has unlimited host memory.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dcsim.models.inference import weight_bytes

if TYPE_CHECKING:
    from dcsim.models.transformer import TransformerConfig
    from dcsim.serving.costs import ReplicaMemory


class HostMemory:
    """``capacity_bytes`` of host memory (``math.inf``: not limited); ``used`` and ``peak`` in bytes."""

    def __init__(self, capacity_bytes: float = math.inf) -> None:
        if not capacity_bytes >= 0:
            raise ValueError("host memory capacity must be >= 0 bytes")
        self.capacity = float(capacity_bytes)
        self.used = 0.0
        self.peak = 0.0

    @property
    def free(self) -> float:
        """Bytes not held."""
        return self.capacity - self.used

    def reserve(self, nbytes: float) -> bool:
        """Take ``nbytes`` if they fit (True), else take nothing (False)."""
        if nbytes > self.capacity - self.used:
            return False
        self.used += nbytes
        if self.used > self.peak:
            self.peak = self.used
        return True

    def release(self, nbytes: float) -> None:
        """Give back ``nbytes`` taken by :meth:`reserve`."""
        self.used -= nbytes
        if self.used < -1e-6 * max(1.0, nbytes):
            raise ValueError("host memory released more bytes than it held")
        self.used = max(self.used, 0.0)


def offloaded_weight_bytes(
    cfg: TransformerConfig, precision: str, tp: int, pp: int, fraction: float, weight_factor: float = 1.0
) -> float:
    """Host bytes of one replica's offloaded weights: ``fraction`` of every accelerator's shard
    (``weight_bytes(tp) / pp`` each, times ``weight_factor`` for a compressed model) over its ``tp x pp``
    accelerators."""
    return fraction * weight_bytes(cfg, precision, tp) / pp * weight_factor * tp * pp


def offloaded_kv(memory: ReplicaMemory, fraction: float, accelerators: int) -> tuple[int, float]:
    """KV capacity (blocks) of a replica keeping ``fraction`` of every sequence's KV cache in host memory,
    and the host bytes that part takes: the accelerator's KV memory then holds ``1 - fraction`` of each
    block, so the capacity grows by ``1 / (1 - fraction)``; the host holds ``fraction`` of every block of
    every shard (``accelerators`` of them). Unchanged, with no host bytes, for a model without a KV cache."""
    if fraction <= 0 or memory.kv_bytes_per_token <= 0:
        return memory.capacity_blocks, 0.0
    block_bytes = memory.kv_bytes_per_token * memory.block_tokens
    blocks = int(memory.kv_bytes // (block_bytes * (1.0 - fraction)))
    return blocks, blocks * block_bytes * fraction * accelerators


class SpannedHostMemory(HostMemory):
    """The host memory of a replica spanning nodes: every byte it takes or gives back is split over the
    nodes' :class:`HostMemory` by ``shares`` (the fraction of the replica's accelerators on each node, which
    hold that fraction of its shards), all or nothing. ``free`` is what the replica could still take;
    ``peak`` is the fullest of its nodes' peaks, as of its last reservation."""

    def __init__(self, parts: list[tuple[HostMemory, float]]) -> None:
        super().__init__(math.inf)
        self.parts = parts
        self.capacity = min(part.capacity / share for part, share in parts)

    @property
    def free(self) -> float:
        """Bytes the replica could still take (its share on every node)."""
        return min(part.free / share for part, share in self.parts)

    def reserve(self, nbytes: float) -> bool:
        """Take ``nbytes``, each node its share, if every node has room for its share (True), else nothing."""
        if any(nbytes * share > part.free for part, share in self.parts):
            return False
        for part, share in self.parts:
            part.reserve(nbytes * share)
        self.used += nbytes
        self.peak = max(part.peak for part, _ in self.parts)
        return True

    def release(self, nbytes: float) -> None:
        """Give back ``nbytes`` taken by :meth:`reserve`, each node its share."""
        for part, share in self.parts:
            part.release(nbytes * share)
        self.used = max(self.used - nbytes, 0.0)
