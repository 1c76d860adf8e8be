"""vLLM's default scheduler stalls the decodes while a prefill runs (TPOT spikes at arrivals); Sarathi-Serve's
chunked prefills do not. Llama-2-7B fp16 on one A100 (the calibrated cost model)."""

from __future__ import annotations

import numpy as np
import simpy

from dcsim.models import TransformerConfig, get_model
from dcsim.serving import IterationCost, KVCache, Replica, RequestRecords, ServingSystem, Traffic, resolve_router
from dcsim.serving.batching import make_batch_policy


def token_gaps(policy: str, max_batch_tokens: int) -> tuple[dict[int, list[float]], RequestRecords]:
    """Four requests (prompt 128, output 400) decode from t = 0; 2,048-token prompts (output 8) arrive at
    1, 2, 3 and 4 s (the long ones last about 5 s). Returns each long request's gaps between consecutive
    tokens (s) and the records."""
    cfg = get_model("llama2-7b")
    assert isinstance(cfg, TransformerConfig)
    arrivals = np.array([0.0] * 4 + [1.0, 2.0, 3.0, 4.0])
    prompts = np.array([128] * 4 + [2048] * 4)
    outputs = np.array([400] * 4 + [8] * 4)
    env = simpy.Environment()
    records = RequestRecords(Traffic(arrivals, prompts, outputs))
    policy_obj = make_batch_policy(policy, max_batch_size=64, max_batch_tokens=max_batch_tokens)
    replica = Replica(
        0, env, IterationCost(cfg, "fp16", "a100-sxm-80gb"), KVCache(4000, 16), records, policy_obj, print
    )
    token_s: dict[int, list[float]] = {rid: [] for rid in range(4)}
    finish_run = replica._finish_run

    def tokens_out(now: float) -> None:  # at the end of a run (cut short or not): the tokens it produced
        run = replica.run
        if run.decodes:
            for rid in replica.decoding:
                if rid < 4:
                    token_s[rid].extend(run.start_s + run.dt * (i + 1) for i in range(run.k))
        for c in run.chunks:  # a prompt's first token
            if c[3] and c[0].rid < 4:
                token_s[c[0].rid].append(now)
        finish_run(now)

    replica._finish_run = tokens_out  # type: ignore[method-assign]
    system = ServingSystem(env, [replica], resolve_router("round_robin")(np.random.default_rng(0)), records)
    system.start()
    env.run(until=system.done)
    return {rid: list(np.diff(times)) for rid, times in token_s.items()}, records


def test_vllm_stalls_decodes_at_arrivals_and_sarathi_does_not() -> None:
    vllm, vllm_records = token_gaps("vllm", 4096)
    sarathi, sarathi_records = token_gaps("sarathi", 512)
    for per_request in (vllm, sarathi):
        assert all(len(g) == 399 for g in per_request.values())  # every token of the long requests accounted
    typical = float(np.median(vllm[0]))  # a decode iteration of 4-5 sequences
    # vLLM: at each of the 4 arrivals every decoding request waits for a whole 2,048-token prefill
    for gaps in vllm.values():
        assert sum(g > 5 * typical for g in gaps) == 4
    # Sarathi: a 512-token chunk rides in every iteration; the decodes never wait for a whole prompt
    assert max(max(g) for g in sarathi.values()) < 0.5 * min(max(g) for g in vllm.values())
    # so the long requests' TPOT spikes (its p99 over tokens) are far higher under vLLM
    assert np.percentile(np.concatenate(list(vllm.values())), 99.5) > 3 * np.percentile(
        np.concatenate(list(sarathi.values())), 99.5
    )
    # and vLLM's prefill-first rule gives the new prompts a shorter time to first token
    ttft = lambda r: (r.column("first_token_s") - r.column("arrival_s"))[4:]  # noqa: E731
    assert ttft(vllm_records).mean() < ttft(sarathi_records).mean()
