"""Queueing theory and a real peer: dcsim's FIFO gang scheduler with 1-accelerator jobs is an M/x/c queue.

Erlang C gives the exact M/M/c mean wait; Ciw (a mature queueing simulator) gives M/M/c and M/D/c waits to
compare against within statistical tolerance. Seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import ciw
import numpy as np
import pytest

import dcsim
from dcsim.testing import erlang_c_probability_wait, mmc_mean_wait_s

SERVERS = 4


def mxc(utilization: float, seed: int, jobs: int, service: dict) -> dict:
    return {
        "name": "mxc",
        "seed": seed,
        "datacenter": {
            "nodes": [
                {
                    "name": "n",
                    "count": 1,
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": SERVERS,
                    "usd_per_hour": 1.0,
                }
            ]
        },
        "workloads": [
            {
                "kind": "jobs",
                "name": "q",
                "synthetic": {"count": jobs, "rate_per_s": utilization * SERVERS, "gpus": 1, "duration_s": service},
            }
        ],
        "outputs": {"plots": False},
    }


def dcsim_waits(utilization: float, seeds: int, jobs: int, service: dict) -> np.ndarray:
    """Mean wait per seed, dropping the first 5% of jobs (warm-up from an empty system)."""
    means = []
    for seed in range(seeds):
        waits = dcsim.run_scenario(mxc(utilization, seed, jobs, service)).jobs["wait_s"].to_numpy()
        means.append(waits[jobs // 20 :].mean())
    return np.array(means)


def ciw_waits(utilization: float, seeds: int, jobs: int, deterministic: bool) -> np.ndarray:
    means = []
    for seed in range(seeds):
        service = ciw.dists.Deterministic(value=1.0) if deterministic else ciw.dists.Exponential(rate=1.0)
        network = ciw.create_network(
            arrival_distributions=[ciw.dists.Exponential(rate=utilization * SERVERS)],
            service_distributions=[service],
            number_of_servers=[SERVERS],
        )
        ciw.seed(1000 + seed)
        simulation = ciw.Simulation(network)
        simulation.simulate_until_max_customers(jobs, method="Finish")
        records = sorted(simulation.get_all_records(), key=lambda r: r.arrival_date)
        means.append(np.mean([r.waiting_time for r in records[jobs // 20 :]]))
    return np.array(means)


def test_erlang_c_reference_values():
    # Textbook value: c=2, a=1 Erlang -> P(wait) = 1/3.
    assert erlang_c_probability_wait(2, 1.0) == pytest.approx(1 / 3)
    # M/M/1: P(wait) = rho, mean wait = rho / (mu - lambda).
    assert erlang_c_probability_wait(1, 0.5) == pytest.approx(0.5)
    assert mmc_mean_wait_s(1, 0.5, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"offered load must be in \[0, 2\), got 2.5"):
        erlang_c_probability_wait(2, 2.5)


@pytest.mark.parametrize(("utilization", "seeds", "jobs"), [(0.7, 6, 60_000), (0.9, 6, 100_000)])
def test_mmc_mean_wait_matches_erlang_c(utilization, seeds, jobs):
    measured = dcsim_waits(utilization, seeds, jobs, {"dist": "exponential", "mean": 1.0}).mean()
    expected = mmc_mean_wait_s(SERVERS, utilization * SERVERS, 1.0)
    assert measured == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(
    ("deterministic", "service"),
    [(False, {"dist": "exponential", "mean": 1.0}), (True, {"dist": "constant", "value": 1.0})],
    ids=["M/M/c", "M/D/c"],
)
def test_agrees_with_ciw(deterministic, service):
    ours = dcsim_waits(0.8, 5, 40_000, service)
    theirs = ciw_waits(0.8, 5, 40_000, deterministic)
    tolerance = 4 * np.sqrt(ours.var(ddof=1) / len(ours) + theirs.var(ddof=1) / len(theirs))
    assert abs(ours.mean() - theirs.mean()) < tolerance
    # and the comparison is not vacuous: deterministic service waits about half as long as exponential
    assert 0.1 < ours.mean() < 1.5
