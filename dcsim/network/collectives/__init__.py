"""Collectives (all-reduce, all-gather, reduce-scatter, all-to-all, broadcast, send/recv) decomposed into
flows, with nccl-tests algbw/busbw reporting."""

from dcsim.network.collectives.algorithms import Phase
from dcsim.network.collectives.conventions import OPS, CollectiveResult, bus_factor, make_result
from dcsim.network.collectives.runner import (
    ALGORITHMS,
    choose_algorithm,
    plan,
    rank_groups,
    run_collective,
    simulate_collective,
)

__all__ = [
    "ALGORITHMS",
    "OPS",
    "CollectiveResult",
    "Phase",
    "bus_factor",
    "choose_algorithm",
    "make_result",
    "plan",
    "rank_groups",
    "run_collective",
    "simulate_collective",
]
