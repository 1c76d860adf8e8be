"""Collectives (all-reduce, all-gather, reduce-scatter, all-to-all, broadcast, send/recv): NCCL's channels,
algorithms and protocols as a closed form (:mod:`.nccl_model`) and as flows on the fabric (:mod:`.runner`),
with nccl-tests algbw/busbw reporting."""

from dcsim.network.collectives.algorithms import Phase
from dcsim.network.collectives.conventions import OPS, CollectiveResult, bus_factor, make_result
from dcsim.network.collectives.runner import (
    ALGORITHMS,
    ALIASES,
    choose_algorithm,
    plan,
    rank_groups,
    run_collective,
    simulate_collective,
)

__all__ = [
    "ALGORITHMS",
    "ALIASES",
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
