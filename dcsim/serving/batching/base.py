"""The batching-policy protocol: what a replica runs at each iteration boundary.

A policy is one :class:`BatchPolicy` subclass whose :meth:`BatchPolicy.plan` looks at its replica (its
``waiting`` queue of :class:`~dcsim.serving.replica.Sequence` records, its ``decoding`` and ``prefilling``
sequences, its :class:`~dcsim.serving.kvcache.KVCache`) and starts the next iteration through the replica's
primitives (see :class:`~dcsim.serving.replica.Replica`, "policy API"):

- ``make_room()``: preempt the newest decoding sequences until the next decode iteration's new blocks fit
  (returns those blocks);
- ``resume(seq)``: a waiting sequence whose KV cache is here or in host memory joins the decode batch;
- ``admit(seq, tokens, total, now)`` / ``extend(seq, tokens)``: prefill the first (next) ``tokens`` of a
  sequence (of its ``total``: prompt plus tokens generated before a preemption) in this iteration
  (returns the chunk to pass on);
- ``run_iteration(now, chunks, decodes)``: one iteration of those prefill chunks, with or without a decode
  token for every decoding sequence;
- ``run_decodes(now, blocks)``: a run of decode-only iterations, as many as ``blocks`` of new KV cache allow
  (``None``: blocks reserved up front);
- ``idle()``: nothing to run.

Register a policy with :func:`register_batch_policy` (``@register_batch_policy("name", "alias")``); a
scenario names it in ``batching.policy`` by name, alias or ``module:Class``. Every registered policy is
property-tested for conservation by ``tests/test_batching_properties.py`` (see :mod:`dcsim.testing.serving`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from dcsim.registry import Registry

if TYPE_CHECKING:
    from dcsim.serving.replica import Replica


class BatchPolicy:
    """Base class. ``max_batch_size``: sequences in the batch at once; ``max_batch_tokens``: tokens in one
    iteration (each engine's name for them is given per policy); ``chunked``: split prompts into chunks
    (policies that can); ``watermark``: share of the KV blocks an admission must leave free (vLLM's)."""

    #: finished sequences stay in the batch until it ends, and a sequence's blocks for its prompt and whole
    #: output are taken when it starts (request-level batching); False: blocks are taken as tokens arrive
    whole_batch: ClassVar[bool] = False
    #: an arrival may cut a run of decode iterations short to join at the next boundary
    joins_mid_run: ClassVar[bool] = True
    #: prompts are prefilled in pieces (chunked prefill): needs causal attention, so no encoder models
    chunks_prompts: ClassVar[bool] = False
    #: the longest prompt the engine accepts (a longer one is dropped on arrival)
    max_prompt_tokens: float = math.inf

    def __init__(
        self, max_batch_size: int = 256, max_batch_tokens: int = 8192, chunked: bool = False, watermark: float = 0.0
    ) -> None:
        if max_batch_size < 1 or max_batch_tokens < 1:
            raise ValueError("max_batch_size and max_batch_tokens must be >= 1")
        if not 0.0 <= watermark < 1.0:
            raise ValueError("watermark must be in [0, 1)")
        self.max_batch_size = int(max_batch_size)
        self.max_batch_tokens = int(max_batch_tokens)
        self.chunked = bool(chunked)
        self.watermark = float(watermark)

    def plan(self, replica: Replica, now: float) -> None:
        """At an iteration boundary (``now``, seconds): start the replica's next iteration or run, or idle."""
        raise NotImplementedError


BATCH_POLICIES: Registry[BatchPolicy] = Registry("batching policy", BatchPolicy)
register_batch_policy = BATCH_POLICIES.register


def resolve_batch_policy(reference: str) -> type[BatchPolicy]:
    """The policy class for a registered name, an alias or ``module:Class`` (ValueError naming the options)."""
    return BATCH_POLICIES.resolve(reference)


def make_batch_policy(reference: str, **limits: Any) -> BatchPolicy:
    """An instance of the policy ``reference`` with ``limits`` (``max_batch_size``, ``max_batch_tokens``,
    ``chunked``, ``watermark``)."""
    return resolve_batch_policy(reference)(**limits)
