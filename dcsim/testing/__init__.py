"""Tools for testing dcsim and users' own policies: queueing-theory references and run invariants."""

from dcsim.testing.invariants import check_job_invariants
from dcsim.testing.theory import erlang_c_probability_wait, mmc_mean_wait_s

__all__ = ["check_job_invariants", "erlang_c_probability_wait", "mmc_mean_wait_s"]
