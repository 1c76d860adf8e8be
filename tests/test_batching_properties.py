"""Every registered batching policy conserves requests and KV blocks (dcsim.testing.serving's invariants)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from dcsim.serving import Replica
from dcsim.serving.batching import BATCH_POLICIES, BatchPolicy, register_batch_policy
from dcsim.testing.serving import ServingCase, check_serving_invariants, serving_cases, simulate_batching


@pytest.mark.parametrize("name", BATCH_POLICIES.names())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=serving_cases())
def test_every_policy_conserves(name: str, case: ServingCase) -> None:
    assert check_serving_invariants(simulate_batching(name, case)) == []


class _Leaky(BatchPolicy):
    """Admits the head of the queue and forgets it: the invariants must catch it."""

    def plan(self, replica: Replica, now: float) -> None:
        if replica.waiting:
            replica.waiting.popleft()
        replica.idle()


def test_the_invariants_catch_a_policy_that_loses_requests() -> None:
    case = ServingCase(arrival_s=(0.0, 0.1), prompt_tokens=(10, 10), output_tokens=(5, 5), horizon_s=5.0)
    problems = check_serving_invariants(simulate_batching(_Leaky, case))
    assert any("stalled" in p for p in problems) and any("lost" in p for p in problems)


def test_a_registered_policy_is_tested_without_wiring() -> None:
    @register_batch_policy("leaky-for-test")
    class Leaky(_Leaky):
        pass

    try:
        assert "leaky-for-test" in BATCH_POLICIES.names()
    finally:
        BATCH_POLICIES._entries.pop("leaky-for-test")
