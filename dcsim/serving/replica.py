"""One serving replica: a model on ``tp x pp`` accelerators running iterations over its batch.

What a replica runs at each iteration boundary is its batching policy's choice
(:mod:`dcsim.serving.batching`: ``static``, ``orca``, ``vllm``, ``sarathi``, ``trtllm`` or your own); the
replica provides the mechanics the policies share (the "policy API" methods below) and keeps each request it
holds in one slotted :class:`Sequence` record, from its arrival to its completion. Its KV cache
(:class:`~dcsim.serving.kvcache.KVCache`) owns the block accounting.

KV cache (all policies but ``static``): paged blocks taken on demand. When the running sequences need more
blocks than are free for the next iteration, :meth:`Replica.make_room` preempts the most recently admitted
sequence by recompute (vLLM's default): its blocks are freed and it rejoins the front of the queue; when
readmitted, its prompt and the tokens it had generated are prefilled again. With a :class:`KVSwap` its cache
is copied to host memory instead (and back when it rejoins, without a prefill). A request whose prompt and
output cannot fit in the whole cache, or whose prompt the policy refuses, is dropped on arrival.

Prefix caching (a :class:`~dcsim.serving.prefixcache.PrefixKVCache` as ``kv``): :meth:`Replica.admit` reuses a
sequence's cached leading blocks and prefills only the rest; a sequence's full blocks of its shared prefix are
cached when its prompt is prefilled and when it leaves. Where the books differ, a branch on ``self.prefix``
calls the cache's prefix-aware methods (``_admit_cached`` and ``_free`` under "prefix caching" below, and the
releases in ``_retire``, ``_preempt_one`` and ``restart_newest_prefill``); without it nothing else changes.

A prompt-only request (``output_tokens`` 0: an encoder's classification or embedding) is prefilled like a
prompt and completes at the end of that iteration: no token is generated, its blocks are freed, and its
first-token time is its end.

Events: a replica runs a *run* of ``k`` decode iterations as one SimPy timeout: ``k`` is the number of
iterations until its first sequence finishes (or the KV cache fills); their total time is ``k`` times the time
of the middle iteration (decode time is affine in the context held, which grows by one token per sequence per
iteration). An arrival during a run cuts it at the next iteration boundary, where the policy sees it.
``iteration`` counts decode iterations: every decoding sequence gains one token in each (the one place a
decode step's tokens per sequence is set: :meth:`Replica._finish_run`); a prefill-only iteration (vLLM's)
does not advance it.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import simpy

from dcsim.serving.batching.base import BatchPolicy
from dcsim.serving.costs import IterationCost
from dcsim.serving.kvcache import KVCache, KVSwap
from dcsim.serving.prefixcache import PrefixKVCache
from dcsim.serving.records import RequestRecords, Status

if TYPE_CHECKING:
    from dcsim.serving.speculative import SpeculativeCost

_QUEUED, _RUNNING, _COMPLETED, _DROPPED = (
    int(Status.QUEUED),
    int(Status.RUNNING),
    int(Status.COMPLETED),
    int(Status.DROPPED),
)
#: Longest run of decode iterations advanced in one event (keeps the middle-iteration approximation tight).
MAX_RUN = 256


@dataclass(slots=True, eq=False)
class Sequence:
    """A request on a replica. Decoding: ``cached`` tokens of KV cache at decode iteration ``base``, its last
    token out at iteration ``end``. Prefilling in chunks: ``done`` of ``total`` tokens prefilled. Waiting:
    ``resident`` tokens of KV cache kept (arrived from a prefill replica, or ``swapped`` out to host memory;
    0: none, it is prefilled). ``reserved``: KV blocks promised to it by a policy that never evicts.
    ``shared``: its leading KV blocks that are cached prefix blocks (:mod:`dcsim.serving.prefixcache`)."""

    rid: int
    cached: int = 0
    base: int = 0
    end: int = 0
    done: int = 0
    total: int = 0
    resident: int = 0
    swapped: bool = False
    reserved: int = 0
    shared: int = 0  # leading KV blocks held as references to cached prefix blocks (prefix caching)


#: A prefill chunk of an iteration: (sequence, tokens, tokens already prefilled, the prompt ends here).
Chunk = tuple[Sequence, int, int, bool]


@dataclass(slots=True)
class Run:
    """The iterations a replica is running: ``k`` of ``dt`` seconds each from ``start_s``, with prefill
    ``chunks`` (one iteration) and a decode token per decoding sequence if ``decodes``. ``epoch`` names the
    scheduled end (a cut run's old end is ignored); ``busy``: an end is scheduled; ``prompt_only_done``: the
    prompt-only requests it finished (an encoder's batch size, for the timeline); ``inline_end_s`` (>= 0):
    the end comes before any other scheduled event, so it is run without one (:meth:`Replica._boundary`)."""

    epoch: int = 0
    start_s: float = 0.0
    k: int = 0
    dt: float = 0.0
    chunks: list[Chunk] = field(default_factory=list)
    decodes: bool = True
    busy: bool = False
    prompt_only_done: int = 0
    inline_end_s: float = -1.0


@dataclass(slots=True)
class ReplicaStats:
    """Busy seconds, iterations run, and (time, replica, batch, KV blocks, queue) samples at most every
    ``interval_s``."""

    interval_s: float = 0.0
    busy_s: float = 0.0
    iterations: int = 0
    samples: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    last_sample_s: float = -math.inf


class Replica:
    """A replica on the SimPy environment ``env`` batching per ``policy``. ``on_complete(replica, rid)`` is
    called when a request finishes or is dropped; ``sample_interval_s`` spaces the timeline samples.

    Disaggregated serving: ``handoff`` set (a prefill replica), each prefilled request is handed to it with
    its cached tokens; a decode replica takes requests whose KV cache arrives (:meth:`accept_transfer`)
    straight into its batch. ``swap`` set, preemption swaps to host memory (its ``host``, the node's).

    Where a replica runs, its role and whether it takes requests are the runner's and the
    :class:`~dcsim.serving.system.ServingSystem`'s books, not the replica's."""

    def __init__(
        self,
        index: int,
        env: simpy.Environment,
        cost: IterationCost | SpeculativeCost,
        kv: KVCache,
        records: RequestRecords,
        policy: BatchPolicy,
        on_complete: Callable[[Replica, int], None],
        sample_interval_s: float = 0.0,
    ) -> None:
        self.index = index
        self.env = env
        self.cost = cost
        self.kv = kv
        self.records = records
        self.policy = policy
        self.on_complete = on_complete
        self.waiting: deque[Sequence] = deque()
        self.decoding: dict[int, Sequence] = {}  # rid -> sequence, in admission order
        self.prefilling: list[Sequence] = []  # prompts partly prefilled (chunked prefill)
        self.heap: list[tuple[int, int]] = []  # (end iteration, rid) of decoding sequences (stale after preemption)
        self.iteration = 0
        self.sum_ctx = 0  # tokens cached by the decoding sequences at self.iteration
        self.outstanding = 0  # requests routed here and not finished
        self.handoff: Callable[[Replica, int, int], None] | None = None
        self.swap: KVSwap | None = None
        self.run = Run()
        self.stats = ReplicaStats(sample_interval_s)
        # cross-job contention on a replica spanning nodes: extra seconds per iteration of that many tokens
        # (None: not slowed; set by dcsim.run.serving_contention)
        self.network_extra_s: Callable[[int], float] | None = None
        # prefix caching: the cache that shares prefix blocks (None: off; see "prefix caching" below)
        self.prefix: PrefixKVCache | None = kv if isinstance(kv, PrefixKVCache) else None

    # ------------------------------------------------------------------ figures for the runner and routers
    @property
    def batch_size(self) -> int:
        """Sequences in the batch now (decoding, finished padding excluded, and prefilling)."""
        return self.kv.decoding + len(self.prefilling)

    @property
    def busy_s(self) -> float:
        """Seconds spent running iterations."""
        return self.stats.busy_s

    @property
    def iterations_run(self) -> int:
        """Iterations run (a run of ``k`` counts ``k``)."""
        return self.stats.iterations

    @property
    def samples(self) -> list[tuple[float, int, int, int, int]]:
        """Timeline samples: (time s, replica, batch, KV blocks held, queued)."""
        return self.stats.samples

    @property
    def preemptions(self) -> int:
        """Sequences preempted (decoding ones evicted, partial prefills restarted)."""
        return self.kv.preemptions

    @property
    def swapped_tokens(self) -> int:
        """Tokens of KV cache swapped out to host memory."""
        return self.swap.swapped_tokens if self.swap is not None else 0

    @property
    def swap_fallbacks(self) -> int:
        """Swaps that did not fit in host memory (recomputed instead)."""
        return self.swap.fallbacks if self.swap is not None else 0

    # ------------------------------------------------------------------ arrivals
    def can_ever_fit(self, rid: int) -> bool:
        """True if the request's prompt and full output fit in the whole KV cache."""
        records = self.records
        return self.kv.blocks_for(records.prompt_tokens[rid] + records.output_tokens[rid]) <= self.kv.capacity

    def submit(self, rid: int) -> None:
        """A request routed to this replica (dropped if it can never fit or the policy refuses its prompt)."""
        records, kv = self.records, self.kv
        records.replica[rid] = self.index
        prompt = records.prompt_tokens[rid]
        if -(-(prompt + records.output_tokens[rid]) // kv.block_tokens) > kv.capacity or (
            prompt > self.policy.max_prompt_tokens
        ):  # it can never fit (can_ever_fit, inlined: hot), or the engine refuses its prompt
            records.status[rid] = _DROPPED
            self.on_complete(self, rid)
            return
        records.status[rid] = _QUEUED
        self.outstanding += 1
        self.waiting.append(Sequence(rid))
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
        self.waiting.append(Sequence(rid, resident=cached))
        self._wake()

    def _wake(self) -> None:
        """A request joined the queue: start iterating if idle; else, with room in the batch, end a run of
        several iterations at its next boundary so the request joins there (never under a policy that takes
        no one until its batch is done)."""
        run = self.run
        if not run.busy:
            run.busy = True
            run.k = 0
            run.epoch += 1
            self.env.timeout(0.0, run.epoch).callbacks.append(self._boundary)
        elif (
            run.k > 1
            and self.policy.joins_mid_run
            and len(self.decoding) + len(self.prefilling) < self.policy.max_batch_size
        ):
            self._cut_run()

    def _cut_run(self) -> None:
        """End the current run at its next iteration boundary, so that a new request can join there."""
        run = self.run
        if run.dt <= 0:
            return
        k = int((self.env.now - run.start_s) / run.dt) + 1
        if k < run.k:
            run.k = k
            run.epoch += 1
            end = run.start_s + k * run.dt
            self.env.timeout(max(0.0, end - self.env.now), run.epoch).callbacks.append(self._boundary)

    # ------------------------------------------------------------------ iteration boundaries
    def _boundary(self, event: Any) -> None:
        run = self.run
        if event.value != run.epoch:
            return  # a run cut short: this end was replaced
        env = self.env
        now = env.now
        while True:
            if run.k:
                self._finish_run(now)
            self.policy.plan(self, now)
            now = run.inline_end_s
            if now < 0:
                return
            # the run just planned ends before any other scheduled event: nothing can happen in between, so
            # its end is processed here, as its timeout would be, without the event (SimPy's clock is moved
            # to it: Environment.step does the same with the time of the event it pops)
            run.inline_end_s = -1.0
            env._now = now

    def _end_run_in(self, delay_s: float) -> None:
        """The run just started ends in ``delay_s`` seconds: at the next boundary, inline when that comes
        strictly before every other scheduled event (the queue's earliest: an arrival, another replica's
        boundary, the end of the simulation), else by a timeout event.

        A replica's end that was replaced (a run cut short) stays queued and does nothing when it comes;
        those at the front of SimPy's queue before ``end`` are dropped here so they do not stop the inline
        path (the clock passes them either way: nothing is processed at their time)."""
        env = self.env
        end = env.now + delay_s
        queue = env._queue
        while queue:
            when, _, _, event = queue[0]
            if end < when:
                break
            callbacks = event.callbacks
            owner: Any = getattr(callbacks[0], "__self__", None) if len(callbacks) == 1 else None
            if (
                when < end
                and isinstance(owner, Replica)
                and callbacks[0] == owner._boundary
                and event._value != owner.run.epoch
            ):
                heapq.heappop(queue)  # a replaced end: a no-op when processed
                continue
            env.timeout(delay_s, self.run.epoch).callbacks.append(self._boundary)
            return
        self.run.inline_end_s = end

    def _finish_run(self, now: float) -> None:
        run, kv, stats = self.run, self.kv, self.stats
        k = run.k
        iteration = self.iteration
        if run.decodes and not run.chunks:
            self.cost.ran_decode(k)  # speculative decoding tallies the verify steps of k token positions
        if run.decodes:  # every decoding sequence gained one token per iteration
            if not self.policy.whole_batch:
                kv.grow(iteration, k)
            iteration = self.iteration = iteration + k
            self.sum_ctx += len(self.decoding) * k
        stats.busy_s += k * run.dt
        stats.iterations += k
        if run.chunks:
            self._finish_chunks(now, iteration)
        if self.heap and self.heap[0][0] <= iteration:
            self._retire(now)
        if now - stats.last_sample_s >= stats.interval_s:
            stats.last_sample_s = now
            batch = kv.decoding + len(self.prefilling) + run.prompt_only_done
            stats.samples.append((now, self.index, batch, kv.used, len(self.waiting)))
        run.prompt_only_done = 0

    def _finish_chunks(self, now: float, iteration: int) -> None:
        """Prefill chunks of the iteration just run: advance partial prefills, start finished ones decoding."""
        kv, records, run = self.kv, self.records, self.run
        whole = self.policy.whole_batch
        generated_col, first_col, output_col = records.generated, records.first_token_s, records.output_tokens
        decoding, heap, heappush = self.decoding, self.heap, heapq.heappush
        for seq, tokens, past, finishes in run.chunks:
            if not finishes:
                seq.done += tokens
                continue
            if seq.total:
                self.prefilling.remove(seq)
                seq.total = 0
            rid = seq.rid
            cached = past + tokens
            if self.prefix is not None:
                seq.shared = self.prefix.promote(rid, seq.shared, cached)
            if output_col[rid] == 0:  # prompt-only (an encoder): one forward pass, no token, no cache kept
                self._free(seq, cached)
                self._leave(seq)
                first_col[rid] = now
                run.prompt_only_done += 1
                self._complete(rid, now)
                continue
            generated = generated_col[rid] + 1
            generated_col[rid] = generated
            if first_col[rid] != first_col[rid]:
                first_col[rid] = now
            remaining = output_col[rid] - generated
            if remaining <= 0 and not whole:
                self._free(seq, cached)
                self._leave(seq)
                self._complete(rid, now)
                continue
            if self.handoff is not None:  # a prefill replica: the KV cache moves to a decode replica
                self._free(seq, cached)
                self._leave(seq)
                self.outstanding -= 1
                self.handoff(self, rid, cached)
                continue
            end = iteration + remaining  # joins the decode batch (as _join_decoding, inlined: hot)
            seq.cached = cached
            seq.base = iteration
            seq.end = end
            decoding[rid] = seq
            self.sum_ctx += cached
            kv.add_decoding(cached, iteration)
            heappush(heap, (end, rid))
        run.chunks = []

    def _join_decoding(self, seq: Sequence, cached: int, end: int) -> None:
        iteration = self.iteration
        seq.cached = cached
        seq.base = iteration
        seq.end = end
        self.decoding[seq.rid] = seq
        self.sum_ctx += cached
        self.kv.add_decoding(cached, iteration)
        heapq.heappush(self.heap, (end, seq.rid))

    def _leave(self, seq: Sequence) -> None:
        """A sequence with a KV promise leaves the batch: give the promise back."""
        if seq.reserved:
            self.kv.unreserve(seq.reserved)
            seq.reserved = 0

    def _retire(self, now: float) -> None:
        """Finish the sequences whose last token came out of the iteration just completed."""
        heap, iteration, decoding = self.heap, self.iteration, self.decoding
        records, kv = self.records, self.kv
        whole = self.policy.whole_batch
        end_col, status_col, generated_col, output_col = (
            records.end_s,
            records.status,
            records.generated,
            records.output_tokens,
        )
        on_complete = self.on_complete
        while heap and heap[0][0] <= iteration:
            end, rid = heapq.heappop(heap)
            seq = decoding.get(rid)
            if seq is None or seq.end != end:
                continue  # preempted since: a stale entry
            generated_col[rid] = output_col[rid]
            cached = seq.cached + iteration - seq.base
            if whole:  # stays in the batch as padding (its blocks held) until the batch ends
                kv.remove_decoding(cached, iteration)
            else:
                del decoding[rid]
                self.sum_ctx -= cached
                if self.prefix is None:
                    kv.finish_decoding(cached, iteration)
                else:
                    self.prefix.finish_shared(rid, seq.shared, cached, iteration)
                    seq.shared = 0
                if seq.reserved:
                    self._leave(seq)
            end_col[rid] = now
            status_col[rid] = _COMPLETED
            self.outstanding -= 1
            on_complete(self, rid)
        if whole and kv.decoding == 0 and decoding:
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
        with ``swap``, by swapping its KV cache out to host memory if there is room (else by recompute)."""
        seq = self.decoding.pop(next(reversed(self.decoding)))
        iteration = self.iteration
        cached = seq.cached + iteration - seq.base
        self.sum_ctx -= cached
        if self.prefix is None:
            self.kv.evict(cached, iteration)
        else:
            self.prefix.finish_shared(seq.rid, seq.shared, cached, iteration, preempted=True)
            seq.shared = 0
        self._leave(seq)
        records, rid = self.records, seq.rid
        records.generated[rid] = cached - records.prompt_tokens[rid] + 1
        records.preemptions[rid] += 1
        records.status[rid] = _QUEUED
        self.waiting.appendleft(seq)
        if self.swap is not None and self.swap.swap_out(cached):
            seq.resident = cached
            seq.swapped = True

    # ------------------------------------------------------------------ policy API
    def make_room(self) -> int:
        """Preempt the newest decoding sequences until the next decode iteration's new blocks fit; returns
        those blocks."""
        kv, iteration = self.kv, self.iteration
        growth = kv.next_growth(iteration)
        while self.decoding and growth > kv.capacity - kv.used:
            self._preempt_one()
            growth = kv.next_growth(iteration)
        return growth

    def resume(self, seq: Sequence) -> None:
        """A waiting sequence (taken off the queue by the policy) whose KV cache is resident joins the decode
        batch: its cache arrived from a prefill replica, or is copied back from host memory (cost added to
        the next iteration). The caller checked that its blocks are free."""
        cached = seq.resident
        seq.resident = 0
        self.records.status[seq.rid] = _RUNNING
        if seq.swapped:
            seq.swapped = False
            assert self.swap is not None
            self.swap.swap_in(cached)
        self.kv.allocate(self.kv.blocks_for(cached))
        remaining = self.records.output_tokens[seq.rid] - self.records.generated[seq.rid]
        self._join_decoding(seq, cached, self.iteration + remaining)

    def admit(self, seq: Sequence, tokens: int, total: int, now: float) -> Chunk:
        """Start prefilling a waiting sequence (taken off the queue by the policy) with the first ``tokens`` of
        its ``total`` (its prompt plus the tokens it generated before a preemption): takes their blocks (the
        caller checked they are free); a partial prefill goes on in :attr:`prefilling`."""
        records, rid = self.records, seq.rid
        if self.prefix is not None:
            return self._admit_cached(seq, tokens, total, now)
        self.kv.allocate(-(-tokens // self.kv.block_tokens))
        records.status[rid] = _RUNNING
        scheduled = records.first_scheduled_s
        if scheduled[rid] != scheduled[rid]:
            scheduled[rid] = now
        if tokens < total:
            seq.done = 0
            seq.total = total
            self.prefilling.append(seq)
        return (seq, tokens, 0, tokens == total)

    # ------------------------------------------------------------------ prefix caching (self.prefix set)
    def _admit_cached(self, seq: Sequence, tokens: int, total: int, now: float) -> Chunk:
        """:meth:`admit` with prefix caching: the sequence's cached leading blocks are reused and its prefill
        starts after them (the chunk prices the uncached tokens attending over the cached prefix as past
        tokens); the policy's ``tokens`` (and its budget) still count the prompt's cached tokens, as vLLM
        0.6.3's scheduler does (it learns of the hit only in the model runner)."""
        prefix, records, rid = self.prefix, self.records, seq.rid
        assert prefix is not None
        shared, q = prefix.admit(rid, total, tokens)
        seq.shared = shared
        past = shared * prefix.block_tokens
        records.status[rid] = _RUNNING
        scheduled = records.first_scheduled_s
        if scheduled[rid] != scheduled[rid]:
            scheduled[rid] = now
        if past + q < total:
            seq.done = past
            seq.total = total
            self.prefilling.append(seq)
        return (seq, q, past, past + q == total)

    def _free(self, seq: Sequence, tokens: int) -> None:
        """A sequence holding ``tokens`` tokens of KV cache leaves after its prefill: its blocks are freed
        (with prefix caching, its cached ones released)."""
        if self.prefix is None:
            self.kv.release(-(-tokens // self.kv.block_tokens))
        else:
            self.prefix.leave(seq.rid, seq.shared, tokens)
            seq.shared = 0

    def extend(self, seq: Sequence, tokens: int) -> Chunk:
        """Prefill the next ``tokens`` of a partly prefilled sequence (the caller checked the blocks)."""
        done = seq.done
        block = self.kv.block_tokens
        self.kv.allocate(-(-(done + tokens) // block) + (-done // block))  # blocks_to_extend, inlined: hot
        return (seq, tokens, done, done + tokens == seq.total)

    def admit_whole(self, seq: Sequence, now: float) -> Chunk:
        """Request-level batching: take the blocks of the sequence's prompt and whole output now and prefill
        its prompt (the caller checked the blocks are free)."""
        records, rid = self.records, seq.rid
        self.kv.allocate(self.kv.blocks_for(records.prompt_tokens[rid] + records.output_tokens[rid]))
        records.status[rid] = _RUNNING
        records.first_scheduled_s[rid] = now
        return (seq, records.prompt_tokens[rid], 0, True)

    def restart_newest_prefill(self) -> None:
        """Send the newest partial prefill back to the queue, freeing its blocks (it starts over)."""
        seq = self.prefilling.pop()
        if self.prefix is None:
            self.kv.drop_prefill(seq.done)
        else:
            self.prefix.drop_prefill_shared(seq.rid, seq.shared, seq.done)
            seq.shared = 0
        self._leave(seq)
        seq.total = seq.done = 0
        self.records.preemptions[seq.rid] += 1
        self.records.status[seq.rid] = _QUEUED
        self.waiting.appendleft(seq)

    def run_iteration(self, now: float, chunks: list[Chunk], decodes: bool = True) -> None:
        """Run one iteration of the prefill ``chunks``, with a decode token for every decoding sequence if
        ``decodes`` (else they wait: a prefill-only iteration)."""
        b = len(self.decoding) if decodes else 0
        emitting = 0
        pieces = []
        for c in chunks:
            pieces.append((c[1], c[2]))
            if c[3]:
                emitting += 1
        dt = self.cost.iteration_s(b, self.sum_ctx + b if decodes else 0, pieces, emitting)
        if self.swap is not None:
            dt += self.swap.take_pending_s()
        if self.network_extra_s is not None:
            dt += self.network_extra_s(b + sum(piece[0] for piece in pieces))
        run = self.run
        run.busy = True
        run.start_s = now
        run.k = 1
        run.dt = dt
        run.chunks = chunks
        run.decodes = decodes
        run.epoch += 1
        self._end_run_in(dt)

    def run_decodes(self, now: float, blocks: int | None) -> None:
        """Run decode-only iterations until the first decoding sequence finishes, at most :data:`MAX_RUN`,
        and (``blocks`` not None) as many as ``blocks`` new KV blocks allow; one iteration if a swap copy is
        pending (it goes into the next iteration alone)."""
        heap, decoding = self.heap, self.decoding
        while heap:
            seq = decoding.get(heap[0][1])
            if seq is not None and seq.end == heap[0][0]:
                break
            heapq.heappop(heap)  # drop stale entries of preempted sequences
        iteration = self.iteration
        k = heap[0][0] - iteration
        if k > MAX_RUN:
            k = MAX_RUN
        if blocks is not None and k > 1:
            k = self.kv.max_iterations(iteration, k, blocks)
        pending = 0.0
        if self.swap is not None and self.swap.pending_s:
            k = 1
            pending = self.swap.take_pending_s()
        b = len(decoding)
        dt = self.cost.decode_s(b, self.sum_ctx + b * (k + 1) / 2.0) + pending
        if self.network_extra_s is not None:
            dt += self.network_extra_s(b)
        run = self.run
        run.busy = True
        run.start_s = now
        run.k = k
        run.dt = dt
        run.chunks = []
        run.decodes = True
        run.epoch += 1
        self._end_run_in(k * dt)

    def idle(self) -> None:
        """Nothing to run: wait for the next arrival."""
        self.run.busy = False
        self.run.k = 0
