"""``static``: request-level batching."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcsim.serving.batching.base import BatchPolicy, register_batch_policy

if TYPE_CHECKING:
    from dcsim.serving.replica import Chunk, Replica


@register_batch_policy("static")
class Static(BatchPolicy):
    """Request-level (static) batching, as a server without iteration-level scheduling runs (e.g.
    FasterTransformer, or Hugging Face ``generate`` on a padded batch; the baseline of Orca, Yu et al. OSDI
    2022, section 2): a batch of up to ``max_batch_size`` queued requests (FIFO) starts only when the replica
    is empty; it takes the KV blocks of every sequence's prompt and full output at once, prefills the prompts
    in one iteration and decodes until its longest sequence finishes (finished sequences stay as padding)."""

    whole_batch = True
    joins_mid_run = False

    def plan(self, replica: Replica, now: float) -> None:
        if replica.decoding:
            replica.run_decodes(now, None)
            return
        kv, records, waiting = replica.kv, replica.records, replica.waiting
        chunks: list[Chunk] = []
        while waiting and len(chunks) < self.max_batch_size:
            rid = waiting[0].rid
            if kv.blocks_for(records.prompt_tokens[rid] + records.output_tokens[rid]) > kv.free:
                break
            chunks.append(replica.admit_whole(waiting.popleft(), now))
        if not chunks:
            replica.idle()
            return
        replica.run_iteration(now, chunks)
