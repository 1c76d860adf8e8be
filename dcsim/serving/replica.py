"""One serving replica: a model on ``tp x pp`` accelerators running iterations over its batch.

Batching policies:

- ``continuous`` (Orca / vLLM): at every iteration boundary finished sequences leave and queued requests
  join (FIFO) while the batch has room (``max_batch_size`` sequences, ``max_batch_tokens`` tokens in the
  iteration) and the KV cache has blocks for their prompts; a joining prompt is prefilled whole in the
  iteration it joins, alongside the running sequences' decode tokens (a prompt longer than
  ``max_batch_tokens`` is admitted alone).
- ``chunked`` (Sarathi-style chunked prefill): as continuous, but prompts are split into chunks so that
  each iteration holds at most ``max_batch_tokens`` tokens, decode tokens first.
- ``static``: a batch of up to ``max_batch_size`` queued requests starts only when the replica is empty;
  it reserves KV blocks for every sequence's prompt and full output, and runs until its longest sequence
  finishes (finished sequences stay in the batch as padding, as in request-level batching).

KV cache (continuous, chunked): paged blocks taken on demand. When the running sequences need more blocks
than are free for the next iteration, the most recently admitted sequence is preempted by recompute
(vLLM's default): its blocks are freed and it rejoins the front of the queue; when readmitted, its prompt
and the tokens it had generated are prefilled again. A request whose prompt and output cannot fit in the
whole cache is dropped on arrival.

A prompt-only request (``output_tokens`` 0: an encoder's classification or embedding) is prefilled like a
prompt (batched with others under any policy) and completes at the end of that iteration: no token is
generated, its blocks are freed, and its first-token time is its end.

Events: a replica runs a *run* of ``k`` iterations as one SimPy timeout. With no prefill work, ``k`` is the
number of iterations until its first sequence finishes (or the KV cache fills); their total time is ``k``
times the time of the middle iteration (decode time is affine in the context held, which grows by one token
per sequence per iteration). An arrival during a run cuts it at the next iteration boundary, where the new
request joins.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy

from dcsim.serving.costs import IterationCost
from dcsim.serving.hostmem import HostMemory
from dcsim.serving.kvcache import KVCache
from dcsim.serving.records import RequestRecords, Status

if TYPE_CHECKING:
    from dcsim.serving.speculative import SpeculativeCost

_QUEUED, _RUNNING, _COMPLETED, _DROPPED = (
    int(Status.QUEUED),
    int(Status.RUNNING),
    int(Status.COMPLETED),
    int(Status.DROPPED),
)
POLICIES = ("continuous", "chunked", "static")
#: Longest run of decode iterations advanced in one event (keeps the middle-iteration approximation tight).
MAX_RUN = 256


@dataclass(frozen=True)
class Batching:
    """Batching policy and its limits (sequences per batch, tokens per iteration)."""

    policy: str = "continuous"
    max_batch_size: int = 256
    max_batch_tokens: int = 8192

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"batching policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")
        if self.max_batch_size < 1 or self.max_batch_tokens < 1:
            raise ValueError("max_batch_size and max_batch_tokens must be >= 1")


class Replica:
    """A replica on the SimPy environment ``env``. ``on_complete(replica, rid)`` is called when a request
    finishes or is dropped; ``sample_interval_s`` spaces the (time, batch, KV blocks) timeline samples."""

    def __init__(
        self,
        index: int,
        env: simpy.Environment,
        cost: IterationCost | SpeculativeCost,
        kv: KVCache,
        records: RequestRecords,
        batching: Batching,
        on_complete: Callable[[Replica, int], None],
        sample_interval_s: float = 0.0,
        accelerator: str = "",
        accelerators: int = 1,
    ) -> None:
        self.index = index
        self.env = env
        self.cost = cost
        self.kv = kv
        self.records = records
        self.batching = batching
        self.on_complete = on_complete
        self.sample_interval_s = sample_interval_s
        self.accelerator = accelerator
        self.accelerators = accelerators
        self.static = batching.policy == "static"
        self.chunked = batching.policy == "chunked"
        self.waiting: deque[int] = deque()
        # decoding sequences: rid -> [cached tokens at base_iter, base_iter, end_iter]; dict order = admission
        self.decoding: dict[int, list[int]] = {}
        self.prefilling: list[list[int]] = []  # [rid, tokens prefilled, tokens to prefill]
        self.heap: list[tuple[int, int]] = []  # (end_iter, rid) of decoding sequences
        self.iteration = 0
        self.sum_ctx = 0  # tokens cached by the decoding sequences at self.iteration
        self.active = 0  # decoding sequences not yet finished (static padding excluded)
        self.outstanding = 0  # requests routed here and not finished
        self.busy = False
        self.epoch = 0
        self.run_start_s = 0.0
        self.run_k = 0
        self.run_dt = 0.0
        self.run_chunks: list[tuple[int, int, int, bool]] = []  # (rid, tokens, past, finishes)
        self.busy_s = 0.0
        self.iterations_run = 0
        self.preemptions = 0
        self.samples: list[tuple[float, int, int, int, int]] = []
        self._last_sample_s = -math.inf
        self.prompt_only_done = 0  # prompt-only requests the last run finished (an encoder's batch size)
        self.accepting = True
        # disaggregated serving: "prefill" replicas hand each prefilled request to ``handoff``; "decode"
        # replicas take requests whose KV cache arrives (``accept_transfer``) straight into their batch
        self.role = "both"
        self.handoff: Callable[[Replica, int, int], None] | None = None
        self.transferred: dict[int, int] = {}  # KV cache here or in host memory: rejoin without prefill
        self.arrived_kv: set[int] = set()  # of those, the ones whose KV came from a prefill replica
        # swap preemption: host link bandwidth (bytes/s) and KV bytes per token of one shard
        self.swap_bytes_per_s = 0.0
        self.kv_bytes_per_token = 0.0
        self.pending_s = 0.0  # swap copies to add to the next iteration
        self.swapped_tokens = 0
        # the node's host memory the swapped-out KV caches take (None: not limited); a swap that does not
        # fit is a recompute preemption instead, counted in swap_fallbacks
        self.host: HostMemory | None = None
        self.swap_fallbacks = 0
        # speculative decoding: the cost that priced this replica's decode runs tallies their verify steps
        self.speculative: SpeculativeCost | None = None
        # cross-job contention on a replica spanning nodes: extra seconds per iteration of that many tokens
        # (None: not slowed; set by dcsim.run.serving_contention)
        self.network_extra_s: Callable[[int], float] | None = None

    # ------------------------------------------------------------------ arrivals
    def can_ever_fit(self, rid: int) -> bool:
        """True if the request's prompt and full output fit in the whole KV cache."""
        records = self.records
        return self.kv.blocks_for(records.prompt_tokens[rid] + records.output_tokens[rid]) <= self.kv.capacity

    def submit(self, rid: int) -> None:
        """A request routed to this replica (dropped if it can never fit)."""
        records = self.records
        records.replica[rid] = self.index
        if not self.can_ever_fit(rid):
            records.status[rid] = _DROPPED
            self.on_complete(self, rid)
            return
        records.status[rid] = _QUEUED
        self.outstanding += 1
        self.waiting.append(rid)
        self._wake()

    def accept_transfer(self, rid: int, cached: int) -> None:
        """A request prefilled elsewhere whose ``cached`` tokens of KV cache have arrived: it joins the batch
        at the next iteration boundary without a prefill (disaggregated serving)."""
        self.records.replica[rid] = self.index
        if not self.can_ever_fit(rid):  # a decode replica with a smaller cache than the prefill one
            self.records.status[rid] = _DROPPED
            self.on_complete(self, rid)
            return
        self.outstanding += 1
        self.transferred[rid] = cached
        self.arrived_kv.add(rid)
        self.waiting.append(rid)
        self._wake()

    def _wake(self) -> None:
        """A request joined the queue: start iterating if idle; else, with room in the batch, end a run of
        several iterations at its next boundary so the request joins there (never under static batching,
        which takes no one until its batch is done)."""
        if not self.busy:
            self.busy = True
            self.run_k = 0
            self.epoch += 1
            self.env.timeout(0.0, self.epoch).callbacks.append(self._boundary)
        elif (
            self.run_k > 1
            and not self.static
            and len(self.decoding) + len(self.prefilling) < self.batching.max_batch_size
        ):
            self._cut_run()

    def _cut_run(self) -> None:
        """End the current run at its next iteration boundary, so that a new request can join there."""
        if self.run_dt <= 0:
            return
        done = int((self.env.now - self.run_start_s) / self.run_dt)
        k = done + 1
        if k < self.run_k:
            self.run_k = k
            self.epoch += 1
            end = self.run_start_s + k * self.run_dt
            self.env.timeout(max(0.0, end - self.env.now), self.epoch).callbacks.append(self._boundary)

    # ------------------------------------------------------------------ iteration boundaries
    def _boundary(self, event: Any) -> None:
        if event.value != self.epoch:
            return  # a run cut short: this end was replaced
        now = self.env.now
        if self.run_k:
            self._finish_run(now)
        self._plan(now)

    def _finish_run(self, now: float) -> None:
        k, kv = self.run_k, self.kv
        iteration = self.iteration
        if self.speculative is not None and not self.run_chunks:
            self.speculative.ran_decode(k)  # a decode run of k token positions: k / E verify steps
        if not self.static:
            if k == 1:
                kv.allocate(kv._phase[-iteration % kv.block_tokens])
            else:
                kv.allocate(kv.growth(iteration, k))
        iteration = self.iteration = iteration + k
        self.sum_ctx += len(self.decoding) * k
        self.busy_s += k * self.run_dt
        self.iterations_run += k
        if self.run_chunks:
            self._finish_chunks(now, iteration)
        if self.heap and self.heap[0][0] <= iteration:
            self._retire(now)
        if now - self._last_sample_s >= self.sample_interval_s:
            self._last_sample_s = now
            batch = self.active + len(self.prefilling) + self.prompt_only_done
            self.samples.append((now, self.index, batch, kv.used, len(self.waiting)))
        self.prompt_only_done = 0

    def _finish_chunks(self, now: float, iteration: int) -> None:
        """Prefill chunks of the iteration just run: advance partial prefills, start finished ones decoding."""
        kv, records, static = self.kv, self.records, self.static
        generated_col, first_col, output_col = records.generated, records.first_token_s, records.output_tokens
        decoding, heap = self.decoding, self.heap
        phase, block = kv._phase, kv.block_tokens
        for rid, tokens, past, finishes in self.run_chunks:
            if not finishes:
                for entry in self.prefilling:
                    if entry[0] == rid:
                        entry[1] += tokens
                        break
                continue
            if self.prefilling:
                self.prefilling = [e for e in self.prefilling if e[0] != rid]
            cached = past + tokens
            if output_col[rid] == 0:  # prompt-only (an encoder): one forward pass, no token, no cache kept
                kv.release(-(-cached // block))
                first_col[rid] = now
                self.prompt_only_done += 1
                self._complete(rid, now)
                continue
            generated = generated_col[rid] + 1
            generated_col[rid] = generated
            if first_col[rid] != first_col[rid]:
                first_col[rid] = now
            remaining = output_col[rid] - generated
            if remaining <= 0 and not static:
                kv.release(-(-cached // block))
                self._complete(rid, now)
                continue
            if self.handoff is not None:  # a prefill replica: the KV cache moves to a decode replica
                kv.release(-(-cached // block))
                self.outstanding -= 1
                self.handoff(self, rid, cached)
                continue
            end_iter = iteration + remaining
            decoding[rid] = [cached, iteration, end_iter]
            self.sum_ctx += cached
            self.active += 1
            if not static:
                phase[(cached - iteration) % block] += 1
                kv.decoding += 1
            heapq.heappush(heap, (end_iter, rid))
        self.run_chunks = []

    def _retire(self, now: float) -> None:
        """Finish the sequences whose last token came out of the iteration just completed."""
        heap, iteration, decoding = self.heap, self.iteration, self.decoding
        records, kv = self.records, self.kv
        phase, block = kv._phase, kv.block_tokens
        static = self.static
        end_col, status_col, generated_col, output_col = (
            records.end_s,
            records.status,
            records.generated,
            records.output_tokens,
        )
        on_complete = self.on_complete
        while heap and heap[0][0] <= iteration:
            end_iter, rid = heapq.heappop(heap)
            state = decoding.get(rid)
            if state is None or state[2] != end_iter:
                continue  # preempted since: a stale entry
            generated_col[rid] = output_col[rid]
            self.active -= 1
            if not static:  # static: stays in the batch as padding until the batch ends
                cached = state[0] + iteration - state[1]
                del decoding[rid]
                self.sum_ctx -= cached
                phase[(cached - iteration) % block] -= 1
                kv.decoding -= 1
                kv.used -= -(-cached // block)
            end_col[rid] = now
            status_col[rid] = _COMPLETED
            self.outstanding -= 1
            on_complete(self, rid)
        if static and self.active == 0 and decoding:
            for rid in decoding:
                kv.release(kv.blocks_for(records.prompt_tokens[rid] + records.output_tokens[rid]))
            decoding.clear()
            self.sum_ctx = 0

    def _complete(self, rid: int, now: float) -> None:
        self.records.end_s[rid] = now
        self.records.status[rid] = _COMPLETED
        self.outstanding -= 1
        self.on_complete(self, rid)

    def _preempt_one(self) -> None:
        """Preempt the most recently admitted decoding sequence: by recompute (its blocks are dropped), or,
        with ``swap_bytes_per_s``, by swapping its KV cache out to host memory (it pays the copy now, and
        the copy back when it rejoins) if ``host`` has room for it (all shards: bytes per token of one
        shard x accelerators), else by recompute."""
        rid = next(reversed(self.decoding))
        cached, base, _ = self.decoding.pop(rid)
        iteration = self.iteration
        cached += iteration - base
        self.sum_ctx -= cached
        self.active -= 1
        self.kv.remove_decoding(cached, iteration)
        self.kv.release(self.kv.blocks_for(cached))
        records = self.records
        records.generated[rid] = cached - records.prompt_tokens[rid] + 1
        records.preemptions[rid] += 1
        records.status[rid] = _QUEUED
        self.preemptions += 1
        self.waiting.appendleft(rid)
        if self.swap_bytes_per_s:
            if self.host is not None and not self.host.reserve(cached * self.kv_bytes_per_token * self.accelerators):
                self.swap_fallbacks += 1  # host memory is full: recompute
                return
            self.transferred[rid] = cached
            self.pending_s += cached * self.kv_bytes_per_token / self.swap_bytes_per_s
            self.swapped_tokens += cached

    def _stuck(self, budget: int) -> bool:
        _, done, total = self.prefilling[0]
        q = min(total - done, budget)
        return self.kv.blocks_for(done + q) - self.kv.blocks_for(done) > self.kv.free

    def _restart_prefill(self) -> None:
        """Send the newest partial prefill back to the queue, freeing its blocks (it starts over)."""
        rid, done, _ = self.prefilling.pop()
        self.kv.release(self.kv.blocks_for(done))
        self.records.preemptions[rid] += 1
        self.records.status[rid] = _QUEUED
        self.preemptions += 1
        self.waiting.appendleft(rid)

    def _plan(self, now: float) -> None:
        """Choose the next run at an iteration boundary and schedule its end (or go idle)."""
        if self.static:
            self._plan_static(now)
            return
        kv, records, batching = self.kv, self.records, self.batching
        iteration = self.iteration
        phase, block = kv._phase, kv.block_tokens
        decoding = self.decoding
        # the running sequences' next token must fit: preempt (recompute) the newest until it does
        growth = phase[-iteration % block]
        while decoding and growth > kv.capacity - kv.used:
            self._preempt_one()
            growth = phase[-iteration % block]
        b = len(decoding)
        spare = kv.capacity - kv.used - growth
        budget = batching.max_batch_tokens - b
        prefilling = self.prefilling
        chunks: list[tuple[int, int, int, bool]] = []
        if prefilling:
            while not b and len(prefilling) > 1 and self._stuck(budget):
                self._restart_prefill()  # partial prefills hold the blocks the oldest one needs
            for rid, done, total in prefilling:  # chunked prefills in progress come first
                if budget <= 0:
                    break
                q = min(total - done, budget)
                need = -(-(done + q) // block) + (-done // block)
                if need > spare:
                    break
                spare -= need
                kv.allocate(need)
                budget -= q
                chunks.append((rid, q, done, done + q == total))
        waiting = self.waiting
        if waiting:
            slots = batching.max_batch_size - b - len(prefilling)
            chunked = self.chunked
            prompt_col, generated_col = records.prompt_tokens, records.generated
            status_col, scheduled_col = records.status, records.first_scheduled_s
            transferred = self.transferred
            while waiting and slots > 0 and (budget > 0 or not chunks):
                rid = waiting[0]
                if transferred and rid in transferred:  # KV already here: join the decode batch directly
                    cached = transferred[rid]
                    need = -(-cached // block) + (1 if cached % block == 0 else 0)
                    if need > spare or budget <= 0:
                        break
                    waiting.popleft()
                    del transferred[rid]
                    status_col[rid] = _RUNNING
                    if rid in self.arrived_kv:
                        self.arrived_kv.discard(rid)
                    else:  # swapped out earlier: copy its KV cache back from host memory
                        self.pending_s += cached * self.kv_bytes_per_token / self.swap_bytes_per_s
                        if self.host is not None:
                            self.host.release(cached * self.kv_bytes_per_token * self.accelerators)
                    spare -= need
                    kv.allocate(-(-cached // block))
                    budget -= 1
                    slots -= 1
                    remaining = records.output_tokens[rid] - generated_col[rid]
                    decoding[rid] = [cached, iteration, iteration + remaining]
                    self.sum_ctx += cached
                    self.active += 1
                    phase[(cached - iteration) % block] += 1
                    kv.decoding += 1
                    heapq.heappush(self.heap, (iteration + remaining, rid))
                    b += 1
                    continue
                total = prompt_col[rid] + generated_col[rid]
                q = min(total, budget) if chunked else total
                if q <= 0 or (not chunked and q > budget and chunks):
                    break
                need = -(-q // block)
                if need > spare:
                    break
                waiting.popleft()
                spare -= need
                kv.allocate(need)
                budget -= q
                slots -= 1
                status_col[rid] = _RUNNING
                if scheduled_col[rid] != scheduled_col[rid]:
                    scheduled_col[rid] = now
                if q < total:
                    prefilling.append([rid, 0, total])
                chunks.append((rid, q, 0, q == total))
        if chunks:
            emitting = 0
            pieces = []
            for c in chunks:
                pieces.append((c[1], c[2]))
                if c[3]:
                    emitting += 1
            dt = self.cost.iteration_s(b, self.sum_ctx + b, pieces, emitting) + self.pending_s
            self.pending_s = 0.0
            self._start_run(now, 1, dt, chunks)
            return
        if not b:
            self.busy = False
            self.run_k = 0
            return
        heap = self.heap
        while heap:
            state = decoding.get(heap[0][1])
            if state is not None and state[2] == heap[0][0]:
                break
            heapq.heappop(heap)  # drop stale entries of preempted sequences
        k = heap[0][0] - iteration
        if k > MAX_RUN:
            k = MAX_RUN
        if k > 1:
            k = kv.max_iterations(iteration, k, spare + growth)
        if self.pending_s:  # swap copies go into the next iteration alone
            k = 1
        dt = self.cost.decode_s(b, self.sum_ctx + b * (k + 1) / 2.0) + self.pending_s
        self.pending_s = 0.0
        self._start_run(now, k, dt, chunks)

    def _plan_static(self, now: float) -> None:
        kv, records = self.kv, self.records
        if self.decoding:
            k = min(self.heap[0][0] - self.iteration, MAX_RUN)
            b = len(self.decoding)
            self._start_run(now, k, self.cost.decode_s(b, self.sum_ctx + b * (k + 1) / 2.0), [])
            return
        chunks: list[tuple[int, int, int, bool]] = []
        while self.waiting and len(chunks) < self.batching.max_batch_size:
            rid = self.waiting[0]
            need = kv.blocks_for(records.prompt_tokens[rid] + records.output_tokens[rid])
            if need > kv.free:
                break
            self.waiting.popleft()
            kv.allocate(need)
            records.status[rid] = _RUNNING
            records.first_scheduled_s[rid] = now
            chunks.append((rid, records.prompt_tokens[rid], 0, True))
        if not chunks:
            self.busy = False
            self.run_k = 0
            return
        dt = self.cost.iteration_s(0, 0, [(c[1], 0) for c in chunks], len(chunks))
        self._start_run(now, 1, dt, chunks)

    def _start_run(self, now: float, k: int, dt: float, chunks: list[tuple[int, int, int, bool]]) -> None:
        if self.network_extra_s is not None:
            dt += self.network_extra_s(len(self.decoding) + sum(c[1] for c in chunks))
        self.busy = True
        self.run_start_s = now
        self.run_k = k
        self.run_dt = dt
        self.run_chunks = chunks
        self.epoch += 1
        self.env.timeout(k * dt, self.epoch).callbacks.append(self._boundary)

    # ------------------------------------------------------------------ state for routers and tests
    @property
    def batch_size(self) -> int:
        """Sequences in the batch now (decoding, finished padding excluded, and prefilling)."""
        return self.active + len(self.prefilling)
