"""``sarathi`` (aliases ``chunked``, ``chunked_prefill: true``): chunked prefill in a token budget shared
with the decodes, decodes first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsim.serving.batching.base import BatchPolicy, register_batch_policy

if TYPE_CHECKING:
    from dcsim.serving.replica import Chunk, Replica


@register_batch_policy("sarathi", "chunked")
class Sarathi(BatchPolicy):
    """Stall-free batching with chunked prefills (Sarathi-Serve, Agrawal et al., OSDI 2024, section 4 and
    Algorithm 1; the same policy as vLLM 0.6.3's ``enable_chunked_prefill``: ``vllm/core/scheduler.py``
    ``Scheduler._schedule_chunked_prefill``, which schedules the running decodes, then the chunked prefills
    in progress, then new prefills, in one token budget of ``max_num_batched_tokens``, default 512 there).

    Each iteration holds at most ``max_batch_tokens`` tokens: every decoding sequence's token first, then
    the next chunks of prompts being prefilled (oldest first), then new prompts (FIFO, ``max_batch_size``
    sequences at most), each cut to what is left of the budget; a chunk needs free KV blocks for its tokens.
    When the running sequences' next token does not fit, the newest is preempted by recompute; when nothing
    decodes and the partial prefills hold the blocks the oldest one needs, the newest partial prefill starts
    over (its blocks freed). Decodes never wait for a prefill, so a long prompt does not stall TPOT."""

    chunks_prompts = True

    def plan(self, replica: Replica, now: float) -> None:
        kv, decoding, prefilling = replica.kv, replica.decoding, replica.prefilling
        growth = kv.next_growth(replica.iteration)
        if growth > kv.capacity - kv.used and decoding:
            growth = replica.make_room()  # the next decode token does not fit: preempt
        b = len(decoding)
        spare = kv.capacity - kv.used - growth
        budget = self.max_batch_tokens - b
        chunks: list[Chunk] = []
        if prefilling:
            while not b and len(prefilling) > 1 and self._stuck(replica, budget):
                replica.restart_newest_prefill()  # partial prefills hold the blocks the oldest one needs
            block = kv.block_tokens
            for seq in prefilling:  # chunked prefills in progress come first
                if budget <= 0:
                    break
                done = seq.done
                q = seq.total - done
                if q > budget:
                    q = budget
                need = -(-(done + q) // block) + (-done // block)  # kv.blocks_to_extend, inlined: hot
                if need > spare:
                    break
                spare -= need
                budget -= q
                chunks.append(replica.extend(seq, q))
        waiting = replica.waiting
        if waiting:
            slots = self.max_batch_size - b - len(prefilling)
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
                total = prompt_col[rid] + generated_col[rid]
                q = total if total < budget else budget
                if q <= 0:
                    break
                need = -(-q // block)
                if need > spare:
                    break
                waiting.popleft()
                spare -= need
                budget -= q
                slots -= 1
                chunks.append(replica.admit(seq, q, total, now))
        if chunks:
            replica.run_iteration(now, chunks)
        elif decoding:
            replica.run_decodes(now, spare + growth)
        else:
            replica.idle()

    @staticmethod
    def _stuck(replica: Replica, budget: int) -> bool:
        """The oldest partial prefill's next chunk needs more blocks than are free."""
        seq = replica.prefilling[0]
        return replica.kv.blocks_to_extend(seq.done, min(seq.total - seq.done, budget)) > replica.kv.free
