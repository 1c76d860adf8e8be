"""Speculative decoding: a draft model proposes ``k`` tokens per sequence, the served (target) model verifies
them in one forward pass, and each sequence keeps the accepted prefix plus one token of the target's own.

The mechanism follows Leviathan, Kalman and Matias, "Fast Inference from Transformers via Speculative
Decoding" (ICML 2023), as vLLM 0.6.3 runs it (``vllm/spec_decode/``): a *proposer* (``MultiStepWorker``, the
draft model run ``num_speculative_tokens`` times) and a *scorer* (the target over the ``k + 1`` positions of
each sequence: ``MQAScorer``, one multi-query attention pass over each sequence's KV cache; vLLM uses it with
FlashAttention in eager mode, and otherwise ``BatchExpansionTop1Scorer``, which is not modelled here).

A verify step of a sequence emits its accepted draft tokens plus one (the target's correction at the first
rejection, or its bonus token when all ``k`` are accepted). With each draft token accepted independently with
probability ``p`` (Leviathan et al.'s i.i.d. assumption), the expected tokens per step are
``(1 - p^(k+1)) / (1 - p)`` (their eq. 1; ``k + 1`` at ``p = 1``, 1 at ``p = 0``): :func:`tokens_per_step`.
Given instead the share ``a`` of proposed tokens kept in the output, it is ``1 + a k``.

How a replica runs it (:class:`SpeculativeCost`, a drop-in for :class:`~dcsim.serving.costs.IterationCost`):
a replica iteration stays one token position of every decoding sequence, and a decode run of ``n`` positions
is ``n / E`` verify steps (``E`` expected tokens per step), each priced as the draft's ``k`` decode steps plus
the target's verify pass on the same accelerators, so a sequence advances by the expected accepted tokens per
step's time. Iterations that prefill (a prompt joining, in continuous batching) decode without speculation,
as vLLM 0.6.3 does (``SpecDecodeWorker._run_no_spec``, for batches with prefills), and the draft runs the same
tokens to fill its own KV cache (``skip_proposer`` false). The draft's weights and KV cache share the
accelerators' memory (:func:`with_draft_memory`). Limits: the expectation, not the random number of accepted
tokens of each sequence and step; the last step of a sequence is not rounded up to a whole step; the draft's
steps carry no host time of their own (the verify step's iteration carries the engine's host time once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from dcsim.models.inference import kv_bytes_per_token, prefill_attention, weight_bytes
from dcsim.models.transformer import TransformerConfig
from dcsim.serving.costs import IterationCost, ReplicaMemory, _kv_bucket


def tokens_per_step(tokens: int, token_acceptance: float) -> float:
    """Expected tokens a sequence gains per verify step when each of ``tokens`` (k) draft tokens is accepted
    independently with probability ``token_acceptance`` (p): ``(1 - p^(k+1)) / (1 - p)``, Leviathan et al.
    2023, eq. 1 (``k + 1`` at ``p = 1``)."""
    if tokens < 1 or not 0.0 <= token_acceptance <= 1.0:
        raise ValueError(f"need tokens >= 1 (got {tokens}) and 0 <= token_acceptance <= 1 (got {token_acceptance})")
    if token_acceptance == 1.0:
        return float(tokens + 1)
    return (1.0 - token_acceptance ** (tokens + 1)) / (1.0 - token_acceptance)


@dataclass(frozen=True)
class Speculation:
    """A draft model ``draft`` proposing ``tokens`` (k) tokens per sequence and step, of which ``per_step``
    tokens (the accepted drafts plus the target's own, 1 to k + 1) are kept per verify step on average."""

    draft: TransformerConfig
    tokens: int
    per_step: float

    def __post_init__(self) -> None:
        if self.tokens < 1 or not 1.0 <= self.per_step <= self.tokens + 1:
            raise ValueError(f"need tokens >= 1 and 1 <= per_step <= tokens + 1 (got {self.tokens}, {self.per_step})")

    @classmethod
    def from_acceptance(
        cls,
        draft: TransformerConfig,
        tokens: int,
        token_acceptance: float | None = None,
        acceptance_rate: float | None = None,
    ) -> Speculation:
        """From a per-token acceptance probability (:func:`tokens_per_step`), or from ``acceptance_rate``,
        the share of proposed tokens kept in the output (``1 + acceptance_rate x tokens`` per step)."""
        if (token_acceptance is None) == (acceptance_rate is None):
            raise ValueError("give exactly one of token_acceptance and acceptance_rate")
        if token_acceptance is not None:
            return cls(draft, tokens, tokens_per_step(tokens, token_acceptance))
        assert acceptance_rate is not None
        if not 0.0 <= acceptance_rate <= 1.0:
            raise ValueError(f"acceptance_rate must be in [0, 1] (got {acceptance_rate})")
        return cls(draft, tokens, 1.0 + acceptance_rate * tokens)

    @property
    def acceptance_rate(self) -> float:
        """The share of proposed tokens kept in the output: ``(per_step - 1) / tokens``."""
        return (self.per_step - 1.0) / self.tokens

    @property
    def system_efficiency(self) -> float:
        """Tokens kept per step over the most a step can keep (vLLM's ``system_efficiency``,
        ``vllm/spec_decode/metrics.py``): ``per_step / (tokens + 1)``."""
        return self.per_step / (self.tokens + 1)


def with_draft_memory(
    mem: ReplicaMemory, draft: TransformerConfig, precision: str, tp: int = 1, pp: int = 1
) -> ReplicaMemory:
    """``mem`` of one accelerator with the draft model beside the target: the draft's weights (one TP shard
    of ``tp``, as vLLM 0.6.3 shards the draft like the target by default,
    ``SpeculativeConfig.create_draft_parallel_config``) come out of the KV cache, and every block holds the
    draft's keys and values too. vLLM 0.6.3 gives both models the same number of blocks, the target's bytes
    times its block size over the sum of both block sizes (``vllm/spec_decode/spec_decode_worker.py``,
    ``split_num_cache_blocks_evenly``)."""
    draft_weights = weight_bytes(draft, precision, tp) / pp
    per_token = mem.kv_bytes_per_token + kv_bytes_per_token(draft, precision, tp) / pp
    kv = max(0.0, mem.kv_bytes - draft_weights)
    return dataclasses.replace(
        mem,
        weight_bytes=mem.weight_bytes + draft_weights,
        kv_bytes=kv,
        kv_bytes_per_token=per_token,
        capacity_blocks=int(kv // (per_token * mem.block_tokens)),
    )


class SpeculativeCost:
    """Iteration times of a replica serving with speculative decoding: ``target`` prices the served model's
    passes (with the engine's host time), ``draft`` the draft model's on the same accelerators (build it with
    ``host=None``). Used by a :class:`~dcsim.serving.replica.Replica` as its cost: :meth:`decode_s` is the
    time of one token position of a decode run (a verify step's time over its expected tokens), and
    :meth:`iteration_s` that of an iteration with prefills (no speculation; the draft runs the same tokens).
    :meth:`ran_decode` tallies the verify steps of each decode run, for the summary: give each replica its
    own (:meth:`for_replica`; they share the prices), so that the run it tallies is the one it priced last."""

    def __init__(self, target: IterationCost, draft: IterationCost, speculation: Speculation) -> None:
        if draft.host is not None:
            raise ValueError("the draft's cost carries no host time of its own (build it with host=None)")
        self.target, self.draft, self.speculation = target, draft, speculation
        self.cfg = target.cfg
        self._steps: dict[tuple[int, int], tuple[float, float, float]] = {}
        self._last = (0.0, 0.0)
        self.steps = 0.0  # verify steps run (expected: token positions / tokens per step)
        self.draft_s = 0.0  # seconds of those steps spent in the draft's proposals
        self.verify_s = 0.0  # and in the target's verify passes, host time included

    def for_replica(self) -> SpeculativeCost:
        """A cost for one more replica: the same prices (one cache), its own tally."""
        twin = SpeculativeCost(self.target, self.draft, self.speculation)
        twin._steps = self._steps
        return twin

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") or name == "target":  # not set yet (copy, pickle): no delegation
            raise AttributeError(name)
        return getattr(self.target, name)  # anything else (host, offload figures) is the target's

    def verify_pass_s(self, batch: int, mean_kv: int) -> float:
        """Accelerator seconds of the target's verify pass over ``batch`` sequences of ``k + 1`` tokens each,
        after ``mean_kv - 1`` cached tokens on average: the dense layers over ``batch x (k + 1)`` tokens with
        logits at every one of them (the rejection sampler compares every position), and one causal attention
        of ``k + 1`` queries per sequence over its cache (vLLM's ``MQAScorer``), batched in one kernel."""
        k = self.speculation.tokens
        tokens = batch * (k + 1)
        seconds = self.target.dense_s(tokens, tokens)
        op, layers = prefill_attention(
            self.target.cfg, k + 1, max(0, mean_kv - 1), self.target.tp, self.target.precision, batch=batch
        )
        return seconds + self.target._attention_s(op, layers)

    def step_s(self, batch: int, total_kv: float) -> tuple[float, float, float]:
        """``(draft_s, verify_s, step_s)`` of one verify step of ``batch`` sequences whose caches hold
        ``total_kv`` tokens in all: the draft's ``k`` decode steps (each one token longer), the target's verify
        pass, and the step with the engine's host time (counted once per step) added to both."""
        mean = _kv_bucket(total_kv / batch)
        key = (batch, mean)
        cached = self._steps.get(key)
        if cached is None:
            k = self.speculation.tokens
            draft = sum(self.draft.decode_s(batch, float(batch * (mean + i))) for i in range(k))
            verify = self.verify_pass_s(batch, mean)
            step = draft + verify
            if self.target.host is not None:
                step = self.target.host.add(step, batch)
            cached = self._steps[key] = (draft, step - draft, step)
        return cached

    def decode_s(self, batch: int, total_kv: float) -> float:
        """Seconds of one token position of a decode run: a verify step over the tokens it keeps."""
        draft, verify, step = self.step_s(batch, total_kv)
        self._last = (draft, verify)
        return step / self.speculation.per_step

    def ran_decode(self, positions: int) -> None:
        """Tally a decode run of ``positions`` token positions priced by the last :meth:`decode_s`."""
        steps = positions / self.speculation.per_step
        self.steps += steps
        self.draft_s += steps * self._last[0]
        self.verify_s += steps * self._last[1]

    def iteration_s(
        self, decode_batch: int, decode_total_kv: float, chunks: Sequence[tuple[int, int]], emitting: int
    ) -> float:
        """Seconds of an iteration with prefill chunks: the target's as without speculation plus the draft's
        forward pass over the same tokens (it keeps its own KV cache)."""
        seconds = self.target.iteration_s(decode_batch, decode_total_kv, chunks, emitting)
        return seconds + self.draft.iteration_s(decode_batch, decode_total_kv, chunks, emitting)


def speculation_summary(speculation: Speculation, costs: Sequence[SpeculativeCost]) -> dict[str, object]:
    """The summary's ``speculative`` entry over the replicas' ``costs``: the draft, ``tokens`` (k), tokens
    kept per verify step and the matching acceptance figures, the verify steps the decode runs took
    (expected, fractional), and the mean seconds per step in the draft's proposals and in the verify pass
    (host time counted in the verify pass); None without any decode run."""
    steps = sum(c.steps for c in costs)
    return {
        "draft_model": speculation.draft.name,
        "tokens": speculation.tokens,
        "accepted_tokens_per_step": speculation.per_step,
        "acceptance_rate": speculation.acceptance_rate,
        "system_efficiency": speculation.system_efficiency,
        "verify_steps": steps,
        "draft_s_per_step": sum(c.draft_s for c in costs) / steps if steps else None,
        "verify_s_per_step": sum(c.verify_s for c in costs) / steps if steps else None,
    }
