"""Run a collective on a :class:`~dcsim.network.flows.FlowSimulator`: its phases become flows that share
links max-min fairly with every other flow in the simulation."""

from __future__ import annotations

from collections.abc import Generator, Hashable, Sequence
from typing import Any

import networkx as nx
import simpy

from dcsim.network.collectives import algorithms
from dcsim.network.collectives.algorithms import Phase
from dcsim.network.collectives.conventions import OPS, CollectiveResult, make_result
from dcsim.network.factory import make_flow_simulator
from dcsim.network.flows import FlowSimulator
from dcsim.network.routing import RoutingPolicy, mix64

ALGORITHMS = {
    "all_reduce": ("ring", "tree", "hierarchical"),
    "all_gather": ("ring",),
    "reduce_scatter": ("ring",),
    "all_to_all": ("direct", "pairwise"),
    "broadcast": ("chain",),
    "send_recv": ("direct",),
}


def _group_positions(labels: Sequence[Hashable]) -> list[list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(label, []).append(position)
    return list(groups.values())


def rank_groups(graph: nx.Graph, ranks: Sequence[Hashable]) -> list[list[int]]:
    """Rank positions grouped by the ``server`` attribute of their nodes (one group per rank without it)."""
    labels = [graph.nodes[r].get("server", ("rank", i)) for i, r in enumerate(ranks)]
    return _group_positions(labels)


def choose_algorithm(op: str, algorithm: str, groups: list[list[int]]) -> str:
    """The algorithm ``auto`` stands for: hierarchical all-reduce when ranks sit on several nodes, several
    per node and the same number on each; ring all-reduce otherwise; the only algorithm for other ops."""
    if op not in ALGORITHMS:
        raise ValueError(f"unknown collective {op!r} (known: {', '.join(OPS)})")
    if algorithm != "auto":
        if algorithm not in ALGORITHMS[op]:
            raise ValueError(f"{op} has no algorithm {algorithm!r} (known: auto, {', '.join(ALGORITHMS[op])})")
        return algorithm
    if op == "all_reduce":
        even = len({len(g) for g in groups}) == 1
        return "hierarchical" if len(groups) > 1 and len(groups[0]) > 1 and even else "ring"
    return ALGORITHMS[op][0]


def plan(op: str, algorithm: str, n: int, nbytes: float, groups: list[list[int]], root: int = 0) -> list[Phase]:
    """The phases of ``op`` with a concrete ``algorithm`` on ``n`` ranks."""
    if algorithm == "hierarchical":
        return algorithms.hierarchical_all_reduce(groups, nbytes)
    if op == "broadcast":
        return algorithms.broadcast(n, nbytes, root)
    return algorithms.FLAT[(op, algorithm)](n, nbytes)


def run_collective(
    sim: FlowSimulator,
    op: str,
    ranks: Sequence[Hashable],
    nbytes: float,
    algorithm: str = "auto",
    *,
    root: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> Generator[simpy.Event, Any, CollectiveResult]:
    """SimPy process body: run ``op`` of ``nbytes`` (nccl-tests size) over ``ranks`` (node names).

    ``groups`` labels each rank's node for hierarchical algorithms (default: the nodes' ``server``
    attribute). Each (src, dst) connection keeps one ECMP key for the whole collective, as NCCL keeps one
    connection per peer. Use as ``result = yield env.process(run_collective(sim, ...))``.
    """
    n = len(ranks)
    if n < 2:
        raise ValueError(f"{op} needs at least 2 ranks, got {n}")
    if not nbytes >= 0:
        raise ValueError(f"message size must be >= 0 bytes, got {nbytes}")
    if not 0 <= root < n:
        raise ValueError(f"root must be a rank position in 0..{n - 1}, got {root}")
    grouping = _group_positions(groups) if groups is not None else rank_groups(sim.controller.graph, ranks)
    chosen = choose_algorithm(op, algorithm, grouping)
    phases = plan(op, chosen, n, float(nbytes), grouping, root)
    start = float(sim.env.now)
    tag = sim.next_collective_id()
    for phase in phases:
        if not phase.pairs:
            continue
        srcs = [ranks[i] for i, _ in phase.pairs]
        dsts = [ranks[j] for _, j in phase.pairs]
        keys = [mix64(tag, i, j) & 0x7FFFFFFFFFFFFFFF for i, j in phase.pairs]
        routed = sim.route(srcs, dsts, keys)
        for _ in range(phase.repeat):
            yield sim.start_routed(routed, phase.bytes_per_flow)
        if phase.fill_hops and routed.latency_s.size:
            yield sim.env.timeout(phase.fill_hops * float(routed.latency_s.max()))
    return make_result(op, chosen, n, float(nbytes), float(sim.env.now) - start)


def simulate_collective(
    graph: nx.Graph,
    op: str,
    ranks: Sequence[Hashable],
    nbytes: float,
    algorithm: str = "auto",
    *,
    routing: str | type[RoutingPolicy] = "ecmp",
    seed: int = 0,
    root: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> CollectiveResult:
    """Run one collective alone on ``graph`` (a fresh environment, controller and simulator)."""
    env = simpy.Environment()
    sim = make_flow_simulator(env, graph, routing, seed)
    process = env.process(run_collective(sim, op, ranks, nbytes, algorithm, root=root, groups=groups))
    env.run()
    result = process.value
    assert isinstance(result, CollectiveResult)
    return result
