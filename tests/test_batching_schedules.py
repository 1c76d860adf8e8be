"""Hand-worked schedules, one per batching policy: the exact composition of every iteration.

Every iteration costs 1 s (a stub cost model), so iteration n runs over [n-1, n) and arrivals land between
boundaries. KV blocks hold 4 tokens. Requests (prompt, output tokens), all queued at t = 0 in this order
unless said otherwise: A (6, 3), B (5, 2), C (10, 2). Each step is (start s, prefill chunks as
(request, tokens, tokens already prefilled), decoding requests); a decode run of k iterations is one step
with ``x k``.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import simpy

from dcsim.serving import KVCache, Replica, RequestRecords, ServingSystem, Status, Traffic, resolve_router
from dcsim.serving.batching import make_batch_policy
from dcsim.serving.replica import Chunk

NAMES = "ABCD"


class UnitCost:
    """Every iteration takes 1 s, whatever it holds."""

    def iteration_s(self, *args: Any) -> float:
        return 1.0

    def decode_s(self, *args: Any) -> float:
        return 1.0

    def ran_decode(self, positions: int) -> None:
        pass


def schedule(
    policy: str, arrivals: list[float], prompts: list[int], outputs: list[int], blocks: int = 20, **limits: Any
) -> tuple[list[tuple[Any, ...]], RequestRecords, Replica]:
    """Run one replica under ``policy`` and return its steps, records and replica."""
    env = simpy.Environment()
    records = RequestRecords(Traffic(np.array(arrivals), np.array(prompts), np.array(outputs)))
    replica = Replica(
        0, env, cast(Any, UnitCost()), KVCache(blocks, 4), records, make_batch_policy(policy, **limits), print
    )
    steps: list[tuple[Any, ...]] = []
    run_iteration, run_decodes = replica.run_iteration, replica.run_decodes

    def iteration(now: float, chunks: list[Chunk], decodes: bool = True) -> None:
        prefills = tuple((NAMES[c[0].rid], c[1], c[2]) for c in chunks)
        decoders = "".join(NAMES[r] for r in replica.decoding) if decodes else ""
        steps.append((now, prefills, decoders))
        run_iteration(now, chunks, decodes)

    def decode_run(now: float, blocks: int | None) -> None:
        run_decodes(now, blocks)
        steps.append((now, (), "".join(NAMES[r] for r in replica.decoding), f"x {replica.run.k}"))

    replica.run_iteration = iteration  # type: ignore[method-assign]
    replica.run_decodes = decode_run  # type: ignore[method-assign]
    system = ServingSystem(env, [replica], resolve_router("round_robin")(np.random.default_rng(0)), records)
    system.start()
    env.run(until=system.done)
    return steps, records, replica


ABC = ([0.0, 0.0, 0.0], [6, 5, 10], [3, 2, 2])


def test_orca_prefills_whole_prompts_beside_the_decodes() -> None:
    # 8 tokens per iteration: A's 6 leave 2, too few for B; B's 5 ride with A's decode; C's 10 exceed what is
    # left, but a prompt longer than the budget joins when no other prompt does
    steps, records, _ = schedule("orca", *ABC, max_batch_size=3, max_batch_tokens=8)
    assert steps == [
        (0.0, (("A", 6, 0),), ""),
        (1.0, (("B", 5, 0),), "A"),
        (2.0, (("C", 10, 0),), "AB"),
        (3.0, (), "C", "x 1"),
    ]
    assert list(records.column("end_s")) == [3.0, 3.0, 4.0]


def test_continuous_is_orca() -> None:
    assert (
        schedule("continuous", *ABC, max_batch_size=3, max_batch_tokens=8)[0]
        == schedule("orca", *ABC, max_batch_size=3, max_batch_tokens=8)[0]
    )


def test_sarathi_chunks_prompts_into_the_budget_after_the_decodes() -> None:
    # 8 tokens: A's 6 and B's first 2; then A's decode, B's last 3 and C's first 4; then A and B decode
    # beside C's last 6: no iteration holds more than 8 tokens, and every decode runs in every iteration
    steps, records, _ = schedule("sarathi", *ABC, max_batch_size=3, max_batch_tokens=8)
    assert steps == [
        (0.0, (("A", 6, 0), ("B", 2, 0)), ""),
        (1.0, (("B", 3, 2), ("C", 4, 0)), "A"),
        (2.0, (("C", 6, 4),), "AB"),
        (3.0, (), "C", "x 1"),
    ]
    assert list(records.column("first_token_s")) == [1.0, 2.0, 3.0]


def test_chunked_is_sarathi() -> None:
    chunked = schedule("chunked", *ABC, max_batch_size=3, max_batch_tokens=8)[0]
    assert chunked == schedule("sarathi", *ABC, max_batch_size=3, max_batch_tokens=8)[0]


def test_vllm_runs_prefill_only_iterations_while_decodes_wait() -> None:
    # 12 tokens: A and B prefill together (11), C's 10 next alone, A and B waiting; then all three decode;
    # D (4, 2) arrives at 2.5 s: its prefill stalls A's last token for an iteration
    steps, records, _ = schedule(
        "vllm", [0.0, 0.0, 0.0, 2.5], [6, 5, 10, 4], [3, 2, 2, 2], max_batch_size=3, max_batch_tokens=12
    )
    assert steps == [
        (0.0, (("A", 6, 0), ("B", 5, 0)), ""),
        (1.0, (("C", 10, 0),), ""),
        (2.0, (), "ABC", "x 1"),
        (3.0, (("D", 4, 0),), ""),
        (4.0, (), "AD", "x 1"),
    ]
    # A's tokens come out at 1, 3 and 5 s: a TPOT of 2 s where decoding alone takes 1 s
    assert list(records.column("end_s")) == [5.0, 3.0, 3.0, 5.0]


def test_vllm_refuses_prompts_longer_than_max_num_batched_tokens() -> None:
    _, records, _ = schedule("vllm", *ABC, max_batch_size=3, max_batch_tokens=8)
    assert records.status[2] == Status.DROPPED and records.counts() == {
        **records.counts(),
        "completed": 2,
        "dropped": 1,
    }


def test_vllm_watermark_holds_back_a_prefill() -> None:
    # 10 blocks. A and B take 2 blocks each, leaving 6; C needs 3. Watermark 0.2 (2 blocks): 6 - 3 >= 2, C
    # is prefilled at 1 s. Watermark 0.5 (5 blocks): C waits while A and B decode; B's end at 2 s frees 2
    # blocks (A holds 2 of 10): 8 - 3 >= 5, C is prefilled then
    loose, _, _ = schedule("vllm", *ABC, blocks=10, max_batch_size=3, max_batch_tokens=12, watermark=0.2)
    assert loose[1] == (1.0, (("C", 10, 0),), "")
    tight, _, _ = schedule("vllm", *ABC, blocks=10, max_batch_size=3, max_batch_tokens=12, watermark=0.5)
    assert tight == [
        (0.0, (("A", 6, 0), ("B", 5, 0)), ""),
        (1.0, (), "AB", "x 1"),
        (2.0, (("C", 10, 0),), ""),
        (3.0, (), "AC", "x 1"),
    ]


def test_trtllm_promises_every_request_its_whole_output() -> None:
    # 7 blocks: A promised 3 (6 + 3 tokens), B 2 (5 + 2); C's 3 (10 + 2) do not fit beside them, although
    # its prompt's 3 blocks are free, so C starts only when B has finished and given back its promise
    steps, _, replica = schedule("trtllm", *ABC, blocks=7, max_batch_size=3, max_batch_tokens=12)
    assert steps == [
        (0.0, (("A", 6, 0), ("B", 5, 0)), ""),
        (1.0, (), "AB", "x 1"),
        (2.0, (("C", 10, 0),), "A"),
        (3.0, (), "C", "x 1"),
    ]
    assert replica.preemptions == 0


def test_trtllm_chunked_context_cuts_whole_blocks() -> None:
    # 8 tokens, 4-token blocks: B's first chunk would be 2 tokens (not a whole block): it waits; C's first
    # chunk is 4 of the 6 left (a whole block), its last 6 (a last chunk need not be whole)
    steps, _, _ = schedule("trtllm", *ABC, max_batch_size=3, max_batch_tokens=8, chunked=True)
    assert steps == [
        (0.0, (("A", 6, 0),), ""),
        (1.0, (("B", 5, 0),), "A"),
        (2.0, (("C", 4, 0),), "AB"),
        (3.0, (("C", 6, 4),), ""),
        (4.0, (), "C", "x 1"),
    ]


def test_static_batch_runs_to_its_longest_sequence() -> None:
    # A, B and C start together and take their whole KV at once; B and C finish at 2 s but stay as
    # padding until A's last token at 3 s; D, arrived at 0.5 s, waits for the batch to end
    steps, records, _ = schedule("static", [0.0, 0.0, 0.0, 0.5], [6, 5, 10, 4], [3, 2, 2, 1], max_batch_size=3)
    assert steps == [
        (0.0, (("A", 6, 0), ("B", 5, 0), ("C", 10, 0)), ""),
        (1.0, (), "ABC", "x 1"),
        (2.0, (), "ABC", "x 1"),
        (3.0, (("D", 4, 0),), ""),
    ]
    assert list(records.column("end_s")) == [3.0, 2.0, 2.0, 4.0]


def test_vllm_preempts_the_newest_by_recompute() -> None:
    # 5 blocks: A (6, 8) and B (5, 8) prefill into 2 blocks each; their decodes fill the fifth block after 3
    # iterations (A's 9th token); at 4 s B's 9th token needs a block: B, the newest, is preempted, its 2
    # blocks freed; A decodes alone to its end at 8 s; then B's prompt and its 4 tokens (9) are prefilled
    # again and it decodes its last 3
    steps, records, replica = schedule(
        "vllm", [0.0, 0.0], [6, 5], [8, 8], blocks=5, max_batch_size=3, max_batch_tokens=12
    )
    assert steps == [
        (0.0, (("A", 6, 0), ("B", 5, 0)), ""),
        (1.0, (), "AB", "x 3"),
        (4.0, (), "A", "x 4"),
        (8.0, (("B", 9, 0),), ""),
        (9.0, (), "B", "x 3"),
    ]
    assert replica.preemptions == 1 and list(records.column("end_s")) == [8.0, 12.0]
