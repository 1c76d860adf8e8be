"""A paged KV cache (vLLM-style blocks of ``block_tokens`` tokens) with exact block accounting for runs of
decode iterations. The cache owns its accounting: admission (:meth:`KVCache.allocate`), growth
(:meth:`KVCache.grow`), decoding sequences joining and leaving (:meth:`KVCache.add_decoding`,
:meth:`KVCache.finish_decoding`), preemption (:meth:`KVCache.evict`), release and the reservations of
policies that promise never to evict (:meth:`KVCache.reserve`); no other class writes its fields.

Every decoding sequence appends one token per iteration and needs a new block when its cached tokens are a
multiple of ``block_tokens``. A sequence holding ``c`` tokens at replica iteration ``I`` has the phase
``(c - I) mod block_tokens``, which does not change while it decodes (both grow by one per iteration); so
the blocks that all decoding sequences need over the next ``k`` iterations follow from a count of sequences
per phase, without visiting the sequences: ``(k // B) * b`` for whole cycles plus the phases hit by the
remaining ``k % B`` iterations.

Swap preemption (:class:`KVSwap`) copies an evicted sequence's cache to host memory and back.
"""

from __future__ import annotations

from dcsim.serving.hostmem import HostMemory


class KVCache:
    """``capacity_blocks`` blocks of ``block_tokens`` tokens; ``used`` is the blocks held now, ``peak`` the
    most ever held, ``decoding`` the decoding sequences, ``reserved`` the blocks promised to sequences (their
    prompt and full output) by a policy that never evicts, ``preemptions`` the sequences evicted."""

    __slots__ = ("_phase", "block_tokens", "capacity", "decoding", "peak", "preemptions", "reserved", "used")

    def __init__(self, capacity_blocks: int, block_tokens: int = 16) -> None:
        if capacity_blocks < 1 or block_tokens < 1:
            raise ValueError("capacity_blocks and block_tokens must be >= 1")
        self.capacity = int(capacity_blocks)
        self.block_tokens = int(block_tokens)
        self.used = 0
        self.peak = 0
        self.decoding = 0
        self.reserved = 0
        self.preemptions = 0
        self._phase = [0] * block_tokens

    @property
    def free(self) -> int:
        """Blocks not held by any sequence."""
        return self.capacity - self.used

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens of one sequence."""
        return -(-tokens // self.block_tokens)

    def blocks_to_extend(self, held: int, tokens: int) -> int:
        """New blocks a sequence holding ``held`` tokens needs to hold ``tokens`` more."""
        b = self.block_tokens
        return -(-(held + tokens) // b) + (-held // b)

    def allocate(self, blocks: int) -> None:
        """Take ``blocks`` (ValueError if they are not free: callers check first)."""
        used = self.used + blocks
        if used > self.capacity:
            raise ValueError(f"KV cache overflow: {blocks} blocks asked, {self.capacity - self.used} free")
        self.used = used
        if used > self.peak:
            self.peak = used

    def release(self, blocks: int) -> None:
        """Return ``blocks``."""
        self.used -= blocks
        if self.used < 0:
            raise ValueError("KV cache released more blocks than it held")

    def reserve(self, blocks: int) -> None:
        """Promise ``blocks`` to a sequence (its prompt and full output); callers check ``reserved`` first."""
        self.reserved += blocks

    def unreserve(self, blocks: int) -> None:
        """A sequence holding a promise of ``blocks`` left."""
        self.reserved -= blocks

    def add_decoding(self, tokens: int, iteration: int) -> None:
        """A sequence holding ``tokens`` cached tokens starts decoding at replica iteration ``iteration``."""
        self._phase[(tokens - iteration) % self.block_tokens] += 1
        self.decoding += 1

    def remove_decoding(self, tokens: int, iteration: int) -> None:
        """A decoding sequence holding ``tokens`` tokens at ``iteration`` leaves (its blocks stay held)."""
        self._phase[(tokens - iteration) % self.block_tokens] -= 1
        self.decoding -= 1

    def finish_decoding(self, tokens: int, iteration: int) -> None:
        """A decoding sequence holding ``tokens`` tokens at ``iteration`` finished: its blocks are freed."""
        b = self.block_tokens
        self._phase[(tokens - iteration) % b] -= 1
        self.decoding -= 1
        self.used -= -(-tokens // b)
        if self.used < 0:
            raise ValueError("KV cache released more blocks than it held")

    def evict(self, tokens: int, iteration: int) -> None:
        """Preempt a decoding sequence holding ``tokens`` tokens at ``iteration``: its blocks are freed."""
        self.finish_decoding(tokens, iteration)
        self.preemptions += 1

    def drop_prefill(self, tokens: int) -> None:
        """Preempt a partly prefilled sequence holding ``tokens`` tokens: its blocks are freed."""
        self.release(-(-tokens // self.block_tokens))
        self.preemptions += 1

    def next_growth(self, iteration: int) -> int:
        """New blocks the decoding sequences need to run iteration ``iteration``."""
        return self._phase[-iteration % self.block_tokens]

    def grow(self, iteration: int, k: int) -> None:
        """Take the blocks the decoding sequences filled running iterations ``iteration .. iteration+k-1``."""
        blocks = self._phase[-iteration % self.block_tokens] if k == 1 else self.growth(iteration, k)
        used = self.used + blocks
        if used > self.capacity:
            raise ValueError(f"KV cache overflow: {blocks} blocks asked, {self.capacity - self.used} free")
        self.used = used
        if used > self.peak:
            self.peak = used

    def growth(self, iteration: int, k: int) -> int:
        """New blocks the decoding sequences need to run iterations ``iteration`` .. ``iteration + k - 1``."""
        b, phase = self.block_tokens, self._phase
        total = (k // b) * self.decoding
        for j in range(iteration, iteration + k % b):
            total += phase[-j % b]
        return total

    def max_iterations(self, iteration: int, limit: int, spare: int | None = None) -> int:
        """The most decode iterations (at most ``limit``) whose growth fits in ``spare`` blocks (default: the
        free ones)."""
        budget = self.capacity - self.used if spare is None else spare
        n, b, phase = self.decoding, self.block_tokens, self._phase
        if n == 0:
            return limit
        cycles = min(limit // b, budget // n)
        k = cycles * b
        budget -= cycles * n
        while k < limit:
            need = phase[-(iteration + k) % b]
            if need > budget:
                break
            budget -= need
            k += 1
        return k


class KVSwap:
    """Swap preemption: an evicted sequence's KV cache is copied to ``host`` memory over a link of
    ``bytes_per_s`` (each of the replica's ``accelerators`` copies its shard of ``kv_bytes_per_token`` bytes
    per token in parallel) and back when it rejoins; a copy that does not fit in ``host`` (None: not
    limited) is a recompute preemption instead, counted in ``fallbacks``. ``pending_s`` is the copy time the
    next iteration pays; ``swapped_tokens`` the tokens swapped out."""

    __slots__ = (
        "accelerators",
        "bytes_per_s",
        "fallbacks",
        "host",
        "kv_bytes_per_token",
        "pending_s",
        "swapped_tokens",
    )

    def __init__(
        self, bytes_per_s: float, kv_bytes_per_token: float, accelerators: int = 1, host: HostMemory | None = None
    ) -> None:
        self.bytes_per_s = bytes_per_s
        self.kv_bytes_per_token = kv_bytes_per_token
        self.accelerators = accelerators
        self.host = host
        self.pending_s = 0.0
        self.swapped_tokens = 0
        self.fallbacks = 0

    def swap_out(self, tokens: int) -> bool:
        """Copy ``tokens`` of cache out; False (a fallback to recompute) if host memory cannot hold them."""
        if self.host is not None and not self.host.reserve(tokens * self.kv_bytes_per_token * self.accelerators):
            self.fallbacks += 1
            return False
        self.pending_s += tokens * self.kv_bytes_per_token / self.bytes_per_s
        self.swapped_tokens += tokens
        return True

    def swap_in(self, tokens: int) -> None:
        """Copy ``tokens`` of cache back from host memory."""
        self.pending_s += tokens * self.kv_bytes_per_token / self.bytes_per_s
        if self.host is not None:
            self.host.release(tokens * self.kv_bytes_per_token * self.accelerators)

    def take_pending_s(self) -> float:
        """The copy time owed by the next iteration (and clear it)."""
        pending, self.pending_s = self.pending_s, 0.0
        return pending
