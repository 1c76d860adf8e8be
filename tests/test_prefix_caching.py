"""Prefix caching: shared full KV blocks, prefill of the uncached suffix only, LRU eviction, the hit rate, and
conservation under every iteration-level policy.

Hand-worked cases use KV blocks of 4 tokens and a stub cost that records what each iteration prices."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
import simpy
from hypothesis import HealthCheck, given, settings

from dcsim.serving import Replica, RequestRecords, ServingSystem, Traffic, resolve_router
from dcsim.serving.batching import BATCH_POLICIES, make_batch_policy
from dcsim.serving.prefixcache import PrefixKVCache
from dcsim.testing.serving import ServingCase, check_serving_invariants, serving_cases, simulate_batching

NAMES = "ABCD"


class RecordingCost:
    """Every iteration takes 1 s; prefill iterations are recorded as their (tokens, past tokens) chunks."""

    def __init__(self) -> None:
        self.prefills: list[list[tuple[int, int]]] = []

    def iteration_s(self, batch: int, total_kv: float, chunks: list[tuple[int, int]], emitting: int) -> float:
        self.prefills.append(list(chunks))
        return 1.0

    def decode_s(self, *args: Any) -> float:
        return 1.0

    def ran_decode(self, positions: int) -> None:
        pass


def serve(
    policy: str,
    arrivals: list[float],
    prompts: list[int],
    outputs: list[int],
    groups: list[int],
    streams: list[int],
    blocks: int = 20,
    **limits: Any,
) -> tuple[RecordingCost, RequestRecords, PrefixKVCache]:
    """One replica with prefix caching under ``policy``: the prefills it priced, its records and cache."""
    env = simpy.Environment()
    traffic = Traffic(np.array(arrivals), np.array(prompts), np.array(outputs), np.array(groups), np.array(streams))
    records = RequestRecords(traffic)
    kv = PrefixKVCache(blocks, 4, np.array(groups), np.array(streams))
    cost = RecordingCost()
    replica = Replica(0, env, cast(Any, cost), kv, records, make_batch_policy(policy, **limits), print)
    system = ServingSystem(env, [replica], resolve_router("round_robin")(np.random.default_rng(0)), records)
    system.start()
    env.run(until=system.done)
    return cost, records, kv


@pytest.mark.parametrize("policy", ["vllm", "sarathi", "orca", "trtllm"])
def test_a_fully_shared_prefix_costs_only_the_suffix(policy: str) -> None:
    # A (prompt 10, output 2) and, after A is done, B (prompt 10, output 2) share a 8-token system prompt:
    # B's two full prefix blocks are reused, its prefill is the 2-token suffix after 8 cached tokens
    cost, records, kv = serve(policy, [0.0, 5.0], [10, 10], [2, 2], [0, 0], [8, 8])
    assert cost.prefills == [[(10, 0)], [(2, 8)]]
    assert list(records.column("generated")) == [2, 2]
    assert (kv.prompt_tokens, kv.saved_tokens, kv.looked_up_blocks, kv.hit_blocks) == (20, 8, 4, 2)
    assert kv.used == 0 and kv.evictable == 2  # the stream's two full blocks stay cached, held by none
    assert [kv.is_cached(0, j) for j in range(3)] == [True, True, False]


def test_without_a_shared_prefix_every_token_is_prefilled() -> None:
    cost, _, kv = serve("vllm", [0.0, 5.0], [10, 10], [2, 2], [0, 1], [8, 8])
    assert cost.prefills == [[(10, 0)], [(10, 0)]]
    assert kv.saved_tokens == 0 and kv.hit_blocks == 0


def test_the_last_block_of_a_prompt_is_always_computed() -> None:
    # a prompt of exactly two blocks wholly in the stream: only its first block is reused (vLLM skips the
    # last block so that a prompt always computes a token)
    cost, _, kv = serve("vllm", [0.0, 5.0], [8, 8], [1, 1], [0, 0], [8, 8])
    assert cost.prefills == [[(8, 0)], [(4, 4)]]
    assert kv.saved_tokens == 4


def test_the_hit_rate_on_a_hand_worked_case() -> None:
    # a 12-token system prompt (3 blocks) before prompts of 14, 17 and 9 tokens, one after another; C has
    # another prefix. Full blocks looked up: A 26//4 = 6, B 29//4 = 7, C 9//4 = 2 -> 15; hits: B reuses 3
    # -> hit rate 3 / 15; tokens saved 12 of 26 + 29 + 9 = 64
    cost, _, kv = serve("vllm", [0.0, 5.0, 10.0], [26, 29, 9], [1, 1, 1], [0, 0, 1], [12, 12, 4])
    assert cost.prefills == [[(26, 0)], [(17, 12)], [(9, 0)]]
    summary = kv.summary()
    assert summary["hit_rate"] == pytest.approx(3 / 15)
    assert (summary["prefill_tokens_saved"], summary["prefill_tokens"]) == (12, 64)


def test_a_conversation_turn_reuses_the_previous_turn_and_its_answer() -> None:
    # turn 1: prompt 9, output 8 -> its 17 tokens are the conversation stream (4 full blocks when it leaves);
    # turn 2: prompt 17 + 6 new = 23 tokens, the first 17 shared -> 4 blocks (16 tokens) reused
    cost, _, kv = serve("vllm", [0.0, 20.0], [9, 23], [8, 2], [0, 0], [17, 25])
    assert cost.prefills == [[(9, 0)], [(7, 16)]]
    assert kv.saved_tokens == 16


def test_requests_prefilled_together_share_blocks_only_once_computed() -> None:
    # A and B arrive together: both compute the prefix in one iteration (vLLM marks blocks computed only
    # after the batch); when they finish, B's copy of the prefix is freed and the cached one kept
    cost, _, kv = serve("vllm", [0.0, 0.0], [10, 10], [3, 3], [0, 0], [8, 8])
    assert cost.prefills == [[(10, 0), (10, 0)]]
    assert kv.used == 0 and kv.cached == 2


def test_lru_eviction_order() -> None:
    # 6 blocks of 4 tokens; groups 0 and 1 each a stream of 8 tokens (2 blocks)
    group, stream = np.array([0, 1, 0, -1]), np.array([8, 8, 8, 0])
    kv = PrefixKVCache(6, 4, group, stream)
    for rid in (0, 1):  # each prefills 9 tokens (3 blocks: 2 of its stream) and leaves
        shared, computed = kv.admit(rid, 9, 9)
        assert (shared, computed) == (0, 9)
        kv.leave(rid, 0, 9)
    assert (kv.used, kv.evictable) == (0, 4)
    assert kv.admit(2, 9, 9) == (2, 1)  # group 0 reused: now the most recently used
    kv.leave(2, 2, 9)
    kv.allocate(3)  # 2 blocks never cached are free: one cached block is evicted, group 1's deepest
    assert [kv.is_cached(g, j) for g in (0, 1) for j in (0, 1)] == [True, True, True, False]
    kv.allocate(2)  # then group 1's first, then group 0's deepest
    assert [kv.is_cached(g, j) for g in (0, 1) for j in (0, 1)] == [True, False, False, False]
    assert kv.evicted == 3 and kv.used == 5 and kv.used + kv.evictable <= kv.capacity


def test_a_chunk_reuses_unheld_cached_blocks_only_within_its_blocks() -> None:
    # sarathi with 8 tokens per iteration: B's chunk of 8 has 2 blocks; reusing A's 2 evictable blocks would
    # leave none to compute in, so it reuses one and computes 4 tokens, then the rest
    cost, _, kv = serve("sarathi", [0.0, 5.0], [10, 10], [2, 2], [0, 0], [8, 8], max_batch_tokens=8)
    assert cost.prefills == [[(8, 0)], [(2, 8)], [(4, 4)], [(2, 8)]]
    assert kv.saved_tokens == 4


@pytest.mark.parametrize("name", [n for n in BATCH_POLICIES.names() if n != "static"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=serving_cases(prefixes=True))
def test_every_policy_conserves_with_prefix_caching(name: str, case: ServingCase) -> None:
    assert check_serving_invariants(simulate_batching(name, case)) == []


def test_the_audit_catches_a_lost_reference() -> None:
    case = ServingCase(
        arrival_s=(0.0, 5.0),
        prompt_tokens=(10, 10),
        output_tokens=(3, 3),
        prefix_group=(0, 0),
        prefix_tokens=(8, 8),
        prefix_caching=True,
        block_tokens=8,
        horizon_s=6.0,
    )
    assert check_serving_invariants(simulate_batching("vllm", case)) == []
    original = PrefixKVCache.admit

    def forgetful(self: PrefixKVCache, rid: int, total: int, tokens: int) -> tuple[int, int]:
        _shared, computed = original(self, rid, total, tokens)
        return 0, computed  # the sequence forgets the cached blocks it took

    PrefixKVCache.admit = forgetful  # type: ignore[method-assign]
    try:
        problems = check_serving_invariants(simulate_batching("vllm", case))
    finally:
        PrefixKVCache.admit = original  # type: ignore[method-assign]
    assert any("cached blocks" in p for p in problems)
