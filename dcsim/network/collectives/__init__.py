"""Collectives (all-reduce, all-gather, reduce-scatter, all-to-all, broadcast, send/recv), the one
communication model: NCCL's channels, algorithms and protocols (:mod:`.nccl_model`) and its point-to-point
sends (:mod:`.p2p_model`) as closed forms, and as flows on the fabric (:mod:`.runner`), with the same
constants and nccl-tests algbw/busbw reporting."""

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
