"""Property-test kit for batching policies (ours and users'): draw a serving case, run a policy on it with
an audit at every completion, and check the conservation invariants.

- :func:`serving_cases`: a hypothesis strategy of :class:`ServingCase` (plain data: arrivals, prompt and
  output lengths, replicas, KV blocks, batch limits, router, optional disaggregation and swap);
- :func:`simulate_batching`: run a policy (registered name, ``module:Class`` or a
  :class:`~dcsim.serving.batching.BatchPolicy` subclass) on a case, on Llama-2-7B fp16 A100 replicas;
- :func:`check_serving_invariants`: the violations of a run (an empty list when it conserved everything).

The invariants: mid-run every request is pending, queued, running, completed or dropped (none lost, the
pending ones exactly those not yet arrived); at every completion each replica's KV cache holds no more
blocks than its capacity (nor promises more), and at least the blocks its sequences hold; at the end every
request completed or was dropped, once, a completed one with all its output tokens, and every KV block
(and every byte of host memory a swap took) was returned.

``tests/test_batching_properties.py`` runs every registered policy through them; to test your own::

    @given(case=serving_cases())
    def test_my_policy_conserves(case):
        assert check_serving_invariants(simulate_batching("mymodule:MyPolicy", case)) == []
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy
from hypothesis import strategies as st

from dcsim.models import TransformerConfig, get_model
from dcsim.models.inference import kv_bytes_per_token
from dcsim.serving import (
    IterationCost,
    KVCache,
    Replica,
    RequestRecords,
    ServingSystem,
    Status,
    Traffic,
    resolve_router,
)
from dcsim.serving.batching import BatchPolicy, resolve_batch_policy
from dcsim.serving.hostmem import HostMemory
from dcsim.serving.kvcache import KVSwap
from dcsim.serving.prefixcache import PrefixKVCache

ROUTERS = ("round_robin", "least_loaded", "random", "power_of_two")


@dataclass(frozen=True)
class ServingCase:
    """A drawn serving setup: requests arriving at ``arrival_s`` with ``prompt_tokens`` and
    ``output_tokens`` (0: prompt-only), on ``replicas`` replicas of ``kv_blocks`` blocks of ``block_tokens``
    each; the first ``prefill_replicas`` only prefill (disaggregated; 0: colocated); ``swap``: preempt by
    swapping into ``host_bytes`` of host memory (None: unlimited); ``horizon_s``: when the mid-run check
    looks. ``prefix_group`` and ``prefix_tokens`` (empty: none) give the requests' shared prefixes
    (:class:`~dcsim.serving.traffic.Traffic`); ``prefix_caching``: replicas share and keep their blocks
    (:class:`~dcsim.serving.prefixcache.PrefixKVCache`)."""

    arrival_s: tuple[float, ...]
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    replicas: int = 1
    kv_blocks: int = 200
    block_tokens: int = 16
    max_batch_size: int = 32
    max_batch_tokens: int = 1024
    chunked: bool = False
    router: str = "least_loaded"
    prefill_replicas: int = 0
    swap: bool = False
    host_bytes: float | None = None
    horizon_s: float = 1.0
    prefix_group: tuple[int, ...] = ()
    prefix_tokens: tuple[int, ...] = ()
    prefix_caching: bool = False


@st.composite
def serving_cases(
    draw: st.DrawFn, max_requests: int = 60, disaggregation: bool = True, swap: bool = True, prefixes: bool = False
) -> ServingCase:
    """Cases small enough to run in milliseconds but tight enough to preempt: 1-60 requests over a few
    seconds, prompts of 1-900 tokens, outputs of 1-300 (or all 0, prompt-only), 40-400 KV blocks, batches
    of 1-32 sequences and 64-4096 tokens. ``prefixes``: prefix caching on, decoders only, no
    disaggregation or swap; requests in 1-3 prefix groups (or none) sharing streams of 0 to prompt plus
    output tokens."""
    n = draw(st.integers(1, max_requests))
    gaps = draw(st.lists(st.floats(0.0, 0.5), min_size=n, max_size=n))
    arrivals = tuple(float(x) for x in np.cumsum(gaps))
    prompts = tuple(draw(st.lists(st.integers(1, 900), min_size=n, max_size=n)))
    if draw(st.integers(0, 9)) == 0:  # an encoder's prompt-only requests (all of them, as Traffic requires)
        outputs: tuple[int, ...] = (0,) * n
    else:
        outputs = tuple(draw(st.lists(st.integers(1, 300), min_size=n, max_size=n)))
    replicas = draw(st.integers(1, 3))
    groups: tuple[int, ...] = ()
    streams: tuple[int, ...] = ()
    if prefixes:
        disaggregation = swap = False
        if outputs[0] == 0:
            outputs = tuple(draw(st.lists(st.integers(1, 300), min_size=n, max_size=n)))
        groups = tuple(draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n)))
        streams = tuple(
            draw(st.integers(0, p + o)) if g >= 0 else 0 for g, p, o in zip(groups, prompts, outputs, strict=True)
        )
    return ServingCase(
        arrival_s=arrivals,
        prompt_tokens=prompts,
        output_tokens=outputs,
        replicas=replicas,
        kv_blocks=draw(st.integers(40, 400)),
        block_tokens=draw(st.sampled_from([8, 16, 32])),
        max_batch_size=draw(st.integers(1, 32)),
        max_batch_tokens=draw(st.sampled_from([64, 256, 1024, 4096])),
        chunked=draw(st.booleans()),
        router=draw(st.sampled_from(ROUTERS)),
        prefill_replicas=1 if disaggregation and replicas > 1 and draw(st.booleans()) else 0,
        swap=swap and draw(st.booleans()),
        host_bytes=draw(st.sampled_from([None, 2e8, 2e9])),
        horizon_s=draw(st.floats(1e-3, arrivals[-1] + 1.0)),
        prefix_group=groups,
        prefix_tokens=streams,
        prefix_caching=prefixes,
    )


@dataclass
class ServingRun:
    """What a run left behind: its records and system, the completions per request, the violations the
    audit saw during the run, and the status counts at ``horizon_s``."""

    case: ServingCase
    records: RequestRecords
    system: ServingSystem
    completions: np.ndarray
    violations: list[str] = field(default_factory=list)
    midrun_counts: dict[str, int] = field(default_factory=dict)


def _llama() -> TransformerConfig:
    cfg = get_model("llama2-7b")
    assert isinstance(cfg, TransformerConfig)
    return cfg


def simulate_batching(policy: str | type[BatchPolicy], case: ServingCase) -> ServingRun:
    """Run ``policy`` on ``case`` (Llama-2-7B fp16 on A100 replicas), auditing every completion. A policy
    that refuses a configuration (a whole-batch policy with disaggregation or swap) is run without it."""
    cls = resolve_batch_policy(policy) if isinstance(policy, str) else policy
    cfg = _llama()
    env = simpy.Environment()
    n = len(case.arrival_s)
    traffic = Traffic(np.asarray(case.arrival_s), np.asarray(case.prompt_tokens), np.asarray(case.output_tokens))
    group = np.asarray(case.prefix_group or (-1,) * n, dtype=np.int64)
    stream = np.asarray(case.prefix_tokens or (0,) * n, dtype=np.int64)
    records = RequestRecords(traffic)
    cost = IterationCost(cfg, "fp16", "a100-sxm-80gb")
    whole = cls.whole_batch
    host = HostMemory(case.host_bytes if case.host_bytes is not None else math.inf)
    pool = []
    for i in range(case.replicas):
        limits: dict[str, Any] = {
            "max_batch_size": case.max_batch_size,
            "max_batch_tokens": case.max_batch_tokens,
            "chunked": case.chunked,
        }
        kv = (
            PrefixKVCache(case.kv_blocks, case.block_tokens, group, stream)
            if case.prefix_caching and not whole
            else KVCache(case.kv_blocks, case.block_tokens)
        )
        replica = Replica(i, env, cost, kv, records, cls(**limits), print)
        if case.swap and not whole:
            replica.swap = KVSwap(31.5e9, kv_bytes_per_token(cfg, "fp16"), 1, host)
        pool.append(replica)
    route = resolve_router(case.router)
    prefill = case.prefill_replicas if not whole else 0
    if prefill:
        system = ServingSystem(
            env,
            pool[:prefill],
            route(np.random.default_rng(0)),
            records,
            decode_replicas=pool[prefill:],
            decode_router=route(np.random.default_rng(1)),
            transfer_s=lambda tokens: 1e-3 + 1e-6 * tokens,
        )
    else:
        system = ServingSystem(env, pool, route(np.random.default_rng(0)), records)
    run = ServingRun(case, records, system, np.zeros(n, dtype=int))
    inner = system._completed

    def audited(replica: Replica, rid: int) -> None:
        run.completions[rid] += 1
        if records.status[rid] == Status.COMPLETED and records.generated[rid] != records.output_tokens[rid]:
            run.violations.append(
                f"request {rid} completed with {records.generated[rid]} of {records.output_tokens[rid]} tokens"
            )
        for rep in system.replicas:
            kv = rep.kv
            if not 0 <= kv.used <= kv.capacity:
                run.violations.append(f"replica {rep.index}: {kv.used} KV blocks held of {kv.capacity}")
            if kv.reserved > kv.capacity:
                run.violations.append(f"replica {rep.index}: {kv.reserved} KV blocks promised of {kv.capacity}")
            if rep.prefix is not None:
                run.violations += _prefix_violations(rep)
            if not rep.policy.whole_batch and (rep.run.k == 0 or not rep.run.chunks):
                held = sum(kv.blocks_for(s.cached + rep.iteration - s.base) - s.shared for s in rep.decoding.values())
                held += sum(kv.blocks_for(s.done) - s.shared for s in rep.prefilling)
                if rep.prefix is not None:
                    held += rep.prefix.cached - rep.prefix.evictable  # shared blocks, counted once
                if held > kv.used:
                    run.violations.append(
                        f"replica {rep.index}: sequences hold {held} blocks, the cache counts {kv.used}"
                    )
        inner(replica, rid)

    for replica in system.replicas:
        replica.on_complete = audited
    system.start()
    env.run(until=case.horizon_s)
    run.midrun_counts = records.counts()
    env.run()  # to the last event: a policy that strands requests leaves ``done`` untriggered
    if not system.done.triggered:
        run.violations.append(f"the run stalled at {env.now:g} s with requests outstanding")
    return run


def _prefix_violations(replica: Replica) -> list[str]:
    """Prefix caching's books: held and cached blocks within capacity, and the references the cache counts
    are those its sequences hold."""
    kv = replica.prefix
    assert kv is not None
    problems = []
    if kv.used + kv.evictable > kv.capacity:
        problems.append(f"replica {replica.index}: {kv.used} held + {kv.evictable} cached blocks of {kv.capacity}")
    holders = {id(s): s for s in replica.decoding.values()}
    holders.update((id(s), s) for s in replica.prefilling)
    holders.update((id(c[0]), c[0]) for c in replica.run.chunks)  # prompts being prefilled now
    shared = sum(s.shared for s in holders.values())
    if shared != kv.references:
        problems.append(f"replica {replica.index}: sequences hold {shared} cached blocks, the cache {kv.references}")
    return problems


def check_serving_invariants(run: ServingRun) -> list[str]:
    """Violations of the conservation invariants in ``run`` (see the module docstring)."""
    problems = list(run.violations)
    records, case = run.records, run.case
    n = len(records)
    arrivals = np.asarray(case.arrival_s)
    mid = run.midrun_counts
    if sum(mid.values()) != n:
        problems.append(f"mid-run: {sum(mid.values())} requests accounted of {n}")
    if not np.sum(arrivals > case.horizon_s) <= mid.get("pending", 0) <= np.sum(arrivals >= case.horizon_s):
        problems.append(f"mid-run: {mid.get('pending', 0)} pending at {case.horizon_s} s")
    counts = records.counts()
    if counts["completed"] + counts["dropped"] != n:
        problems.append(f"end: {counts} of {n} requests (some lost)")
    twice = np.flatnonzero(run.completions != 1)
    if len(twice):
        problems.append(f"requests completed {run.completions[twice[0]]} times: {twice[:5].tolist()}")
    completed = records.column("status") == Status.COMPLETED
    short = np.flatnonzero(completed & (records.column("generated") != records.column("output_tokens")))
    if len(short):
        problems.append(f"completed without all their tokens: {short[:5].tolist()}")
    for replica in run.system.replicas:
        kv = replica.kv
        if kv.used or kv.reserved or kv.decoding:
            problems.append(f"replica {replica.index} ends holding {kv.used} blocks, {kv.reserved} promised")
        if replica.prefix is not None:
            problems += _prefix_violations(replica)
        if kv.peak > kv.capacity:
            problems.append(f"replica {replica.index}: peak {kv.peak} blocks of {kv.capacity}")
        if replica.waiting or replica.decoding or replica.prefilling:
            problems.append(f"replica {replica.index} ends with sequences left")
        host = replica.swap.host if replica.swap is not None else None
        if host is not None and abs(host.used) > 1.0:
            problems.append(f"replica {replica.index}: {host.used} bytes of host memory not returned")
    return problems
