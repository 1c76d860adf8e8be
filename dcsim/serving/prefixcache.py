"""Automatic prefix caching: full KV blocks of an identical token prefix shared between requests, kept after
their last user leaves and evicted least recently used when space is needed.

Behaviour follows vLLM 0.6.3's ``PrefixCachingBlockAllocator`` (``vllm/core/block/prefix_caching_block.py``)
and ``LRUEvictor`` (``vllm/core/evictor_v2.py``), read from the 0.6.3 wheel (no code taken):

- only *full* blocks are cached, each named by a hash of its tokens and of every token before it, so a block
  matches only when the whole prefix up to its end matches (here: the block's index in its request's
  prefix group, ``(group, j)``);
- a new prompt's full blocks are looked up in order; the leading run found is reused (reference counted)
  and not computed again, but never the prompt's last block (``get_computed_block_ids`` skips it: at least
  one token of a prompt is computed, for its logits);
- a block a sequence filled becomes cached (``promote_to_immutable_block``); if the same block is already
  cached, the sequence's copy is freed and the cached one shared;
- a cached block whose last user leaves stays cached but counts as free (``get_num_free_blocks`` adds the
  evictor's blocks); a new block is taken from the never-used ones first, then by evicting the least
  recently used cached block, among blocks last used at the same time the one with the most tokens before
  it (the deepest, so a shared prefix is shortened from its end);
- the hit rate is vLLM's ``CacheMetricData``: the share of full prompt blocks looked up that were cached.

Prefix identity comes from the traffic: request ``rid``'s first ``stream_tokens[rid]`` tokens (prompt, then
output) are the first tokens of its group ``group[rid]``'s token stream (-1: no group). A shared system
prompt of ``T`` tokens is a stream of ``T`` tokens; a conversation's turns share one stream that each turn
extends by its prompt and output (see :mod:`dcsim.serving.traffic`).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from dcsim.serving.kvcache import KVCache


class PrefixKVCache(KVCache):
    """A :class:`KVCache` whose full blocks of shared prefixes are shared and kept (see the module docstring).

    ``used`` counts the blocks held by sequences (a shared block once), ``evictable`` the cached blocks no
    sequence holds; both together never exceed ``capacity``, and ``free`` (``capacity - used``) includes the
    evictable ones, taken back (LRU) when a sequence needs them. A sequence holds its ``shared`` leading
    blocks as references to cached blocks and the rest privately; the replica passes ``shared`` back on
    every call (it lives in the sequence's record)."""

    __slots__ = (
        "_lru",
        "_refs",
        "evicted",
        "group",
        "hit_blocks",
        "looked_up_blocks",
        "prompt_tokens",
        "saved_tokens",
        "stream",
    )

    def __init__(self, capacity_blocks: int, block_tokens: int, group: np.ndarray, stream_tokens: np.ndarray) -> None:
        super().__init__(capacity_blocks, block_tokens)
        self.group = [int(g) for g in group]
        self.stream = [int(s) for s in stream_tokens]
        self._refs: dict[tuple[int, int], int] = {}  # cached block (group, index) -> sequences holding it
        self._lru: OrderedDict[tuple[int, int], None] = OrderedDict()  # cached blocks held by none, oldest first
        self.looked_up_blocks = 0  # full prompt blocks looked up at admissions
        self.hit_blocks = 0  # of those, found cached and reused
        self.prompt_tokens = 0  # tokens admissions had to prefill (prompt plus recomputed output)
        self.saved_tokens = 0  # of those, found in the cache and not computed
        self.evicted = 0  # cached blocks evicted to make room

    @property
    def evictable(self) -> int:
        """Cached blocks no sequence holds (free, kept until their room is needed)."""
        return len(self._lru)

    @property
    def cached(self) -> int:
        """Cached blocks, held or not."""
        return len(self._refs)

    def _take(self, blocks: int) -> None:
        """Hold ``blocks`` new blocks, evicting the least recently used cached blocks they need."""
        used = self.used + blocks
        if used > self.capacity:
            raise ValueError(f"KV cache overflow: {blocks} blocks asked, {self.capacity - self.used} free")
        lru, refs = self._lru, self._refs
        for _ in range(used + len(lru) - self.capacity):
            key, _ = lru.popitem(last=False)
            del refs[key]
            self.evicted += 1
        self.used = used
        if used > self.peak:
            self.peak = used

    def allocate(self, blocks: int) -> None:
        self._take(blocks)

    def grow(self, iteration: int, k: int) -> None:
        self._take(self._phase[-iteration % self.block_tokens] if k == 1 else self.growth(iteration, k))

    def admit(self, rid: int, total: int, tokens: int) -> tuple[int, int]:
        """A sequence starts prefilling ``total`` tokens (prompt plus recomputed output) with a first chunk of
        ``tokens`` for which the policy found ``ceil(tokens / block_tokens)`` blocks free: it reuses its cached
        leading blocks (never its last block), and computes the next tokens in private blocks. Reused blocks
        that no sequence holds count against the chunk's blocks: a whole prompt always has room for them; a
        chunk reuses them only while a block is left to compute in, and computes fewer tokens for each one.
        Returns ``(shared, computed)``: the blocks reused (the first ``shared x block_tokens`` tokens are not
        computed) and the tokens the chunk computes after them."""
        b = self.block_tokens
        self.prompt_tokens += total
        self.looked_up_blocks += total // b
        g = self.group[rid]
        limit = min(self.stream[rid] // b, (total - 1) // b) if g >= 0 else 0
        promise = -(-tokens // b)
        refs, lru = self._refs, self._lru
        shared = revived = 0
        while shared < limit:
            count = refs.get((g, shared))
            if count is None or (count == 0 and revived + 1 >= promise):
                break
            if count == 0:
                revived += 1
            shared += 1
        for j in range(shared):
            key = (g, j)
            count = refs[key]
            if count == 0:
                del lru[key]
            refs[key] = count + 1
        computed = min(tokens, (promise - revived) * b, total - shared * b)
        self.hit_blocks += shared
        self.saved_tokens += shared * b
        self._take(revived + -(-computed // b))
        return shared, computed

    def is_cached(self, group: int, index: int) -> bool:
        """True if block ``index`` of prefix group ``group``'s stream is cached (held or evictable)."""
        return (group, index) in self._refs

    @property
    def references(self) -> int:
        """References sequences hold to cached blocks (the sum of their ``shared``)."""
        return sum(self._refs.values())

    def promote(self, rid: int, shared: int, tokens: int) -> int:
        """A sequence holding ``tokens`` tokens, the first ``shared`` blocks of them cached: its full blocks in
        its group's stream become cached (a block already cached is shared instead of its copy, which is
        freed). Returns the new ``shared``."""
        g = self.group[rid]
        if g < 0:
            return shared
        top = min(self.stream[rid], tokens) // self.block_tokens
        refs, lru = self._refs, self._lru
        for j in range(shared, top):
            key = (g, j)
            count = refs.get(key)
            if count is None:
                refs[key] = 1  # its own block, now cached
                continue
            if count == 0:
                del lru[key]  # the cached copy goes back to use, its own is freed: used unchanged
            else:
                self.used -= 1  # its own copy freed, the cached one shared
            refs[key] = count + 1
        return max(shared, top)

    def leave(self, rid: int, shared: int, tokens: int) -> None:
        """A sequence holding ``tokens`` tokens (``shared`` leading blocks cached) leaves: its full stream
        blocks are cached first (:meth:`promote`), its private blocks freed, its cached ones released (kept,
        evictable once no sequence holds them; the deepest first, as vLLM's evictor breaks ties)."""
        shared = self.promote(rid, shared, tokens)
        self.used -= -(-tokens // self.block_tokens) - shared
        g = self.group[rid]
        refs, lru = self._refs, self._lru
        for j in range(shared - 1, -1, -1):
            key = (g, j)
            count = refs[key] - 1
            refs[key] = count
            if count == 0:
                lru[key] = None
                self.used -= 1
        if self.used < 0:
            raise ValueError("KV cache released more blocks than it held")

    def finish_shared(self, rid: int, shared: int, tokens: int, iteration: int, preempted: bool = False) -> None:
        """A decoding sequence finished (or was ``preempted`` by recompute): as :meth:`KVCache.finish_decoding`
        (:meth:`KVCache.evict`) for a sequence holding cached blocks."""
        self._phase[(tokens - iteration) % self.block_tokens] -= 1
        self.decoding -= 1
        self.leave(rid, shared, tokens)
        if preempted:
            self.preemptions += 1

    def drop_prefill_shared(self, rid: int, shared: int, tokens: int) -> None:
        """A partly prefilled sequence holding ``tokens`` tokens is preempted: as :meth:`KVCache.drop_prefill`
        for a sequence holding cached blocks (its full computed stream blocks stay cached)."""
        self.leave(rid, shared, tokens)
        self.preemptions += 1

    def summary(self) -> dict[str, float | int]:
        """Hit rate (share of full prompt blocks looked up that were cached), prefill tokens saved (and their
        share of the prefill tokens asked), cached blocks evicted, and the cached blocks left at the end."""
        return {
            "hit_rate": self.hit_blocks / self.looked_up_blocks if self.looked_up_blocks else 0.0,
            "prefill_tokens_saved": self.saved_tokens,
            "prefill_tokens": self.prompt_tokens,
            "saved_share": self.saved_tokens / self.prompt_tokens if self.prompt_tokens else 0.0,
            "blocks_looked_up": self.looked_up_blocks,
            "blocks_hit": self.hit_blocks,
            "blocks_evicted": self.evicted,
            "blocks_cached_at_end": self.cached,
        }
