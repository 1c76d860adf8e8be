"""``vllm``: vLLM's default (v0) scheduler: prefill-only iterations while the decodes wait."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsim.serving.batching.base import BatchPolicy, register_batch_policy

if TYPE_CHECKING:
    from dcsim.serving.replica import Chunk, Replica

#: vLLM 0.6.3 ``BlockSpaceManagerV2(watermark=0.01)`` (``vllm/core/block_manager_v2.py``), the share of the
#: GPU blocks a prefill or swap-in must leave free.
VLLM_WATERMARK = 0.01


@register_batch_policy("vllm")
class Vllm(BatchPolicy):
    """vLLM v0's default scheduler, as in vLLM 0.6.3 ``vllm/core/scheduler.py`` ``Scheduler._schedule_default``
    (behaviour and figures read from the 0.6.3 wheel; no code taken):

    - ``_schedule_prefills`` first: waiting sequences FIFO, each prefilled whole (prompt, plus the tokens
      generated before a recompute preemption), while the iteration's tokens stay within
      ``max_num_batched_tokens`` (``max_batch_tokens``), the running plus new sequences within
      ``max_num_seqs`` (``max_batch_size``), and the KV cache keeps a watermark free after the prompt's blocks
      (``BlockSpaceManagerV2.can_allocate``: ``free - required >= watermark x total blocks``, watermark 0.01;
      else the queue waits: ``AllocStatus.LATER``);
    - if any prefill was scheduled, the iteration is prefill-only: the running sequences do not decode in it
      ("Don't schedule decodes if prefills are scheduled"), so every arrival stalls the decodes for a
      prefill iteration;
    - otherwise ``_schedule_running``: every running sequence decodes one token; when the blocks for the
      next token are not free, the newest running sequence is preempted (``running_queue.pop()``) by
      recompute (``PreemptionMode.RECOMPUTE``, the default for single-sequence requests) and goes back to
      the front of the waiting queue (``self.waiting.extendleft``); then, if nothing was preempted,
      swapped-out sequences are swapped back in (``_schedule_swapped``), watermark kept.

    A prompt longer than ``max_num_batched_tokens`` is refused (dropped on arrival: ``_get_prompt_limit``
    is ``min(max_model_len, max_num_batched_tokens)`` without chunked prefill). Defaults in vLLM 0.6.3:
    ``max_num_seqs`` 256 (``EngineArgs``), ``max_num_batched_tokens`` ``max(max_model_len, 2048)``
    (``SchedulerConfig``), block size 16 (``CacheConfig``). Simplifications: blocks are counted exactly per
    sequence (the v2 block manager's ``can_append_slots`` counts touched blocks); a sequence waiting with its
    cache swapped out or arrived from a prefill replica blocks the prefills behind it at the head of the
    queue (vLLM blocks all prefills while its swapped queue is non-empty); on an otherwise empty replica a
    sequence is admitted without the watermark or token-budget check (vLLM refuses one that can never fit,
    ``AllocStatus.NEVER``; here such requests are dropped on arrival when their prompt and output cannot
    fit the cache)."""

    def __init__(
        self,
        max_batch_size: int = 256,
        max_batch_tokens: int = 8192,
        chunked: bool = False,
        watermark: float = VLLM_WATERMARK,
    ) -> None:
        super().__init__(max_batch_size, max_batch_tokens, chunked, watermark)
        self.max_prompt_tokens = self.max_batch_tokens

    def plan(self, replica: Replica, now: float) -> None:
        kv, decoding, waiting = replica.kv, replica.decoding, replica.waiting
        watermark = int(self.watermark * kv.capacity)
        slots = self.max_batch_size - len(decoding)
        if waiting and not waiting[0].resident:
            records = replica.records
            prompt_col, generated_col = records.prompt_tokens, records.generated
            budget = self.max_batch_tokens
            free = kv.capacity - kv.used
            chunks: list[Chunk] = []
            while waiting and slots > 0:
                seq = waiting[0]
                if seq.resident:
                    break
                q = prompt_col[seq.rid] + generated_col[seq.rid]
                need = kv.blocks_for(q)
                alone = not chunks and not decoding
                if need > free or (free - need < watermark and not alone) or (q > budget and not alone):
                    break
                waiting.popleft()
                free -= need
                budget -= q
                slots -= 1
                chunks.append(replica.admit(seq, q, q, now))
            if chunks:
                replica.run_iteration(now, chunks, decodes=False)
                return
        preempted = kv.preemptions
        growth = replica.make_room()
        spare = kv.capacity - kv.used - growth
        if kv.preemptions == preempted:  # swap in (or take arrived caches) only when nothing was preempted
            block = kv.block_tokens
            while waiting and waiting[0].resident and slots > 0:
                cached = waiting[0].resident
                need = -(-cached // block) + (1 if cached % block == 0 else 0)
                if need > spare or (spare - need < watermark and decoding):
                    break
                replica.resume(waiting.popleft())
                spare -= need
                slots -= 1
        if decoding:
            replica.run_decodes(now, spare + growth)
        else:
            replica.idle()
