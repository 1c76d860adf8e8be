"""A paged KV cache (vLLM-style blocks of ``block_tokens`` tokens) with exact block accounting for runs of
decode iterations.

Every decoding sequence appends one token per iteration and needs a new block when its cached tokens are a
multiple of ``block_tokens``. A sequence holding ``c`` tokens at replica iteration ``I`` has the phase
``(c - I) mod block_tokens``, which does not change while it decodes (both grow by one per iteration); so
the blocks that all decoding sequences need over the next ``k`` iterations follow from a count of sequences
per phase, without visiting the sequences: ``(k // B) * b`` for whole cycles plus the phases hit by the
remaining ``k % B`` iterations.
"""

from __future__ import annotations


class KVCache:
    """``capacity_blocks`` blocks of ``block_tokens`` tokens; ``used`` is the blocks held now."""

    def __init__(self, capacity_blocks: int, block_tokens: int = 16) -> None:
        if capacity_blocks < 1 or block_tokens < 1:
            raise ValueError("capacity_blocks and block_tokens must be >= 1")
        self.capacity = int(capacity_blocks)
        self.block_tokens = int(block_tokens)
        self.used = 0
        self.peak = 0
        self.decoding = 0
        self._phase = [0] * block_tokens

    @property
    def free(self) -> int:
        """Blocks not held by any sequence."""
        return self.capacity - self.used

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens of one sequence."""
        return -(-tokens // self.block_tokens)

    def allocate(self, blocks: int) -> None:
        """Take ``blocks`` (ValueError if they are not free: callers check first)."""
        if blocks > self.capacity - self.used:
            raise ValueError(f"KV cache overflow: {blocks} blocks asked, {self.capacity - self.used} free")
        self.used += blocks
        if self.used > self.peak:
            self.peak = self.used

    def release(self, blocks: int) -> None:
        """Return ``blocks``."""
        self.used -= blocks
        if self.used < 0:
            raise ValueError("KV cache released more blocks than it held")

    def add_decoding(self, tokens: int, iteration: int) -> None:
        """A sequence holding ``tokens`` cached tokens starts decoding at replica iteration ``iteration``."""
        self._phase[(tokens - iteration) % self.block_tokens] += 1
        self.decoding += 1

    def remove_decoding(self, tokens: int, iteration: int) -> None:
        """A decoding sequence holding ``tokens`` tokens at ``iteration`` leaves (done or preempted)."""
        self._phase[(tokens - iteration) % self.block_tokens] -= 1
        self.decoding -= 1

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
