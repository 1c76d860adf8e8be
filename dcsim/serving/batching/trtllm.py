"""``trtllm``: TensorRT-LLM's in-flight batching under ``max_num_tokens``, optionally with chunked context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsim.serving.batching.base import BatchPolicy, register_batch_policy

if TYPE_CHECKING:
    from dcsim.serving.replica import Chunk, Replica


@register_batch_policy("trtllm")
class TrtLlm(BatchPolicy):
    """TensorRT-LLM's batch manager (in-flight batching), as its documentation describes it for v0.12
    (the scheduler is C++ in a multi-gigabyte wheel, not read here): the docs' "In-flight Batching",
    "Best Practices for Tuning the Performance" (``max_batch_size``, ``max_num_tokens``) and "Chunked
    Context" (``enable_chunked_context``) pages, and the executor API's ``SchedulerConfig`` whose default
    capacity policy is ``GUARANTEED_NO_EVICT``.

    - Capacity (``GUARANTEED_NO_EVICT``): a request starts only if the KV blocks of its prompt and its whole
      output can be promised beside those promised to the requests in flight; blocks are still taken as
      tokens arrive, but no request is ever evicted (this policy never preempts).
    - Micro-batch: every generation request (one token each) and then context requests in arrival order,
      at most ``max_batch_size`` requests and ``max_num_tokens`` (``max_batch_tokens``) tokens per
      iteration, the generation tokens included. Without chunked context a context that does not fit in
      what is left of ``max_num_tokens`` waits (one longer than ``max_num_tokens`` runs alone on an idle
      replica; TensorRT-LLM requires ``max_input_len <= max_num_tokens`` then). With chunked context
      (``chunked_prefill: true``) contexts are split to fill the budget, every chunk but a context's last a
      whole number of KV blocks ("the size of the context chunk needs to be an integer multiple of the
      kv-cache block size"), chunks in progress first.

    Simplifications: one forward pass per iteration of the whole micro-batch (no pipelining of
    micro-batches), and TensorRT-LLM's ``max_num_tokens`` default (8192) is this field's default too."""

    def plan(self, replica: Replica, now: float) -> None:
        kv, decoding, prefilling = replica.kv, replica.decoding, replica.prefilling
        growth = kv.next_growth(replica.iteration)
        if growth > kv.capacity - kv.used and decoding:  # promises leave room for every token: this never preempts
            growth = replica.make_room()  # the next decode token does not fit: preempt
        b = len(decoding)
        spare = kv.capacity - kv.used - growth
        budget = self.max_batch_tokens - b
        unit = kv.block_tokens
        chunks: list[Chunk] = []
        for seq in prefilling:  # chunked contexts in progress
            left = seq.total - seq.done
            q = min(left, budget)
            if q < left:
                q -= q % unit  # whole blocks but for the last chunk
            if q <= 0:
                if chunks or b:
                    break
                q = min(left, budget)  # a budget under one block: the chunk cannot be whole
            need = kv.blocks_to_extend(seq.done, q)
            if need > spare:
                break
            spare -= need
            budget -= q
            chunks.append(replica.extend(seq, q))
        waiting = replica.waiting
        if waiting:
            slots = self.max_batch_size - b - len(prefilling)
            records = replica.records
            prompt_col, generated_col, output_col = records.prompt_tokens, records.generated, records.output_tokens
            while waiting and slots > 0 and budget > 0:
                seq = waiting[0]
                rid = seq.rid
                promise = kv.blocks_for(prompt_col[rid] + output_col[rid])
                if kv.reserved + promise > kv.capacity:
                    break
                cached = seq.resident
                if cached:  # KV cache arrived from a prefill replica (or swapped out): join the generation batch
                    need = kv.blocks_for(cached) + (1 if cached % unit == 0 else 0)
                    if need > spare:
                        break
                    replica.resume(waiting.popleft())
                    kv.reserve(promise)
                    seq.reserved = promise
                    spare -= need
                    budget -= 1
                    slots -= 1
                    continue
                total = prompt_col[rid] + generated_col[rid]
                if self.chunked:
                    q = min(total, budget)
                    if q < total:
                        q -= q % unit  # whole blocks but for the last chunk
                    if q <= 0:
                        if chunks or decoding:
                            break
                        q = min(total, budget)  # a budget under one block: the chunk cannot be whole
                else:
                    q = total
                    if q > budget and (chunks or decoding):
                        break
                need = kv.blocks_for(q)
                if need > spare:
                    break
                waiting.popleft()
                kv.reserve(promise)
                seq.reserved = promise
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
