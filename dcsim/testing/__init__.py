"""Tools for property-testing dcsim's and users' own scheduling policies (see docs/testing-policies.md).

- :mod:`dcsim.testing.strategies`: hypothesis strategies ``clusters()`` and ``job_streams(groups)``;
- :func:`simulate_policy`: run a policy on them, auditing each dispatch pass;
- :mod:`dcsim.testing.invariants`: checks returning lists of violations;
- :mod:`dcsim.testing.theory`: queueing-theory references (Erlang C);
- :mod:`dcsim.testing.serving`: the same for serving batching policies (``serving_cases()``,
  ``simulate_batching``, ``check_serving_invariants``).
"""

from dcsim.testing.harness import PolicyRun, simulate_policy
from dcsim.testing.invariants import check_invariants, check_job_invariants
from dcsim.testing.theory import erlang_c_probability_wait, mmc_mean_wait_s

__all__ = [
    "PolicyRun",
    "check_invariants",
    "check_job_invariants",
    "erlang_c_probability_wait",
    "mmc_mean_wait_s",
    "simulate_policy",
]
