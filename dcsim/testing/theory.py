"""Closed-form queueing results used as references (Erlang C for M/M/c)."""

from __future__ import annotations

import math


def erlang_c_probability_wait(servers: int, offered_load: float) -> float:
    """Erlang C: probability that an arrival waits in an M/M/c queue.

    ``offered_load`` a = lambda / mu (in Erlangs) must be below ``servers`` (utilization < 1).
    Computed with the numerically stable Erlang B recursion: B(0)=1, B(k) = a B(k-1) / (k + a B(k-1)),
    C = c B / (c - a (1 - B)). Source: Kleinrock, Queueing Systems Vol. 1 (1975), section 3.5.
    """
    if servers < 1:
        raise ValueError(f"servers must be >= 1, got {servers}")
    if not 0 <= offered_load < servers:
        raise ValueError(f"offered load must be in [0, {servers}), got {offered_load}")
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return servers * blocking / (servers - offered_load * (1 - blocking))


def mmc_mean_wait_s(servers: int, arrival_rate_per_s: float, mean_service_s: float) -> float:
    """Mean time in queue (s) of an M/M/c system: C(c, a) / (c mu - lambda)."""
    offered = arrival_rate_per_s * mean_service_s
    if math.isclose(offered, 0.0):
        return 0.0
    service_rate = 1.0 / mean_service_s
    return erlang_c_probability_wait(servers, offered) / (servers * service_rate - arrival_rate_per_s)
