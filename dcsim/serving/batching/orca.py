"""``orca`` (alias ``continuous``): iteration-level batching of whole prompts with the decodes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsim.serving.batching.base import BatchPolicy, register_batch_policy

if TYPE_CHECKING:
    from dcsim.serving.replica import Chunk, Replica


@register_batch_policy("orca", "continuous")
class Orca(BatchPolicy):
    """Iteration-level scheduling (Orca, Yu et al., OSDI 2022, sections 3.1-3.3 and 4.2, without its
    selective batching limits): at every iteration boundary finished sequences leave and queued requests join
    first-come first-served while the batch has room (``max_batch_size`` sequences, ``max_batch_tokens``
    tokens in the iteration: the decodes' one token each plus the joining prompts) and the KV cache has free
    blocks for their prompts; a joining prompt is prefilled whole in the iteration it joins, alongside the
    running sequences' decode tokens (a prompt longer than the token budget is admitted alone). KV blocks are
    paged and taken as tokens arrive (vLLM's PagedAttention, Kwon et al. SOSP 2023) rather than Orca's
    reservation of the maximum length; when the next decode token does not fit, the newest sequence is
    preempted (:meth:`~dcsim.serving.replica.Replica.make_room`)."""

    def plan(self, replica: Replica, now: float) -> None:
        kv, decoding = replica.kv, replica.decoding
        growth = kv.next_growth(replica.iteration)
        if growth > kv.capacity - kv.used and decoding:
            growth = replica.make_room()  # the next decode token does not fit: preempt
        b = len(decoding)
        spare = kv.capacity - kv.used - growth
        budget = self.max_batch_tokens - b
        chunks: list[Chunk] = []
        waiting = replica.waiting
        if waiting:
            slots = self.max_batch_size - b - len(replica.prefilling)
            records, block = replica.records, kv.block_tokens
            prompt_col, generated_col = records.prompt_tokens, records.generated
            while waiting and slots > 0 and (budget > 0 or not chunks):
                seq = waiting[0]
                cached = seq.resident
                if cached:  # KV cache here or in host memory: join the decode batch directly
                    need = -(-cached // block) + (1 if cached % block == 0 else 0)
                    if need > spare or budget <= 0:
                        break
                    replica.resume(waiting.popleft())
                    spare -= need
                    budget -= 1
                    slots -= 1
                    continue
                rid = seq.rid
                q = prompt_col[rid] + generated_col[rid]
                if q <= 0 or (q > budget and chunks):
                    break
                need = -(-q // block)
                if need > spare:
                    break
                waiting.popleft()
                spare -= need
                budget -= q
                slots -= 1
                chunks.append(replica.admit(seq, q, q, now))
        if chunks:
            replica.run_iteration(now, chunks)
        elif decoding:
            replica.run_decodes(now, spare + growth)
        else:
            replica.idle()
