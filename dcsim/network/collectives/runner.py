"""Run a collective on a :class:`~dcsim.network.flows.FlowSimulator`: its flows share links max-min fairly
with every other flow in the simulation (the flow-level path of :mod:`.nccl_model` and :mod:`.p2p_model`).

All-reduce, all-gather, reduce-scatter and broadcast run as NCCL runs them: the tuner
(:func:`.nccl_model.tune`) picks algorithm, protocol and channels from the communicator's topology; the
channels' flows (:mod:`.channels`) carry the payload step by step on the fabric, without path latency; the
bandwidth they got goes through the same :func:`.nccl_model.predict` as the analytic path, and the
collective ends when that prediction says (protocol overheads, caps and NCCL's latencies added as time after
the flows). All-to-all and send/recv, which NCCL runs as grouped point-to-point sends, run as rounds of flows
(:mod:`.algorithms`) of their protocol's wire bytes, without path latency, each round followed by the
point-to-point latency of :mod:`.p2p_model`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Hashable, Sequence
from typing import Any

import networkx as nx
import numpy as np
import simpy

from dcsim.network.collectives import p2p_model
from dcsim.network.collectives.algorithms import Phase
from dcsim.network.collectives.channels import ChannelLayout, layout_of, link_busbw_from, pattern
from dcsim.network.collectives.conventions import OPS, CollectiveResult, make_result
from dcsim.network.collectives.nccl_model import NCCL_OPS, Prediction, predict, tune
from dcsim.network.factory import make_flow_simulator
from dcsim.network.flows import FlowSimulator, RoutedFlows
from dcsim.network.routing import RoutingPolicy, mix64
from dcsim.network.routing.base import mix64_array

ALGORITHMS = {
    "all_reduce": ("ring", "tree", "nvls", "collnet", "hierarchical"),
    "all_gather": ("ring",),
    "reduce_scatter": ("ring",),
    "all_to_all": ("direct", "pairwise"),
    "broadcast": ("ring", "chain"),
    "send_recv": ("direct",),
}
#: Old algorithm names kept as aliases: NCCL's rail-aligned ring channels already run the intra-node hops
#: inside each node and one inter-node hop per rail, what ``hierarchical`` stood for; a broadcast's ring
#: channels are pipelined chains from the root, what ``chain`` stood for.
ALIASES = {"hierarchical": "ring", "chain": "ring"}


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
    """The algorithm ``auto`` stands for where it does not depend on the hardware: the only (or first)
    algorithm of all-to-all, broadcast and send/recv; for NCCL's collectives ``auto`` is the tuner's choice
    (:func:`run_collective` reports it) and an alias resolves to its algorithm."""
    if op not in ALGORITHMS:
        raise ValueError(f"unknown collective {op!r} (known: {', '.join(OPS)})")
    if algorithm != "auto":
        if algorithm not in ALGORITHMS[op]:
            raise ValueError(f"{op} has no algorithm {algorithm!r} (known: auto, {', '.join(ALGORITHMS[op])})")
        return ALIASES.get(algorithm, algorithm)
    return "auto" if op in NCCL_OPS else ALGORITHMS[op][0]


def routed_without_latency(sim: FlowSimulator, routed: RoutedFlows) -> tuple[RoutedFlows, float]:
    """``routed`` with zero path latency where the routing policy keeps paths (NCCL's latency model
    replaces the links' latencies), and the latency a step still pays otherwise (a load-aware policy routes
    again when the flows start, latencies included: subtract it from the step's time)."""
    if sim.controller.policy.static:
        return dataclasses.replace(routed, latency_s=np.zeros_like(routed.latency_s)), 0.0
    return routed, float(routed.latency_s.max()) if routed.latency_s.size else 0.0


def channel_keys(tag: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """One ECMP key per channel connection (edge index and its ranks) for the whole collective:
    ``mix64(tag, e, i, j)`` without its top bit, computed for all edges at once with numpy."""
    if not edges:
        return []
    ranks = np.asarray(edges, dtype=np.uint64).reshape(-1, 2)
    state = mix64_array(np.full(len(ranks), mix64(tag), dtype=np.uint64), np.arange(len(ranks), dtype=np.uint64))
    state = mix64_array(mix64_array(state, ranks[:, 0]), ranks[:, 1])
    return (state & np.uint64(0x7FFFFFFFFFFFFFFF)).tolist()


def plan(op: str, algorithm: str, n: int, nbytes: float) -> list[Phase]:
    """The rounds of all-to-all or send/recv with a concrete ``algorithm`` on ``n`` ranks."""
    return p2p_model.plan(op, algorithm, n, nbytes)


def run_collective(
    sim: FlowSimulator,
    op: str,
    ranks: Sequence[Hashable],
    nbytes: float,
    algorithm: str = "auto",
    *,
    root: int = 0,
    groups: Sequence[Hashable] | None = None,
    protocol: str = "auto",
) -> Generator[simpy.Event, Any, CollectiveResult]:
    """SimPy process body: run ``op`` of ``nbytes`` (nccl-tests size) over ``ranks`` (node names).

    ``algorithm`` and ``protocol`` (``auto``: NCCL's tuner picks; the result says what ran) apply to
    all-reduce, all-gather, reduce-scatter and broadcast (whose ``root`` does not change its time: every
    channel's chain carries the message once); all-to-all and send/recv run the protocol NCCL picks by size
    (``protocol`` must be ``auto``). ``groups`` labels each rank's node (default: the nodes' ``server``
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
    chosen = choose_algorithm(op, algorithm, [])
    if op in NCCL_OPS:
        layout = layout_of(sim.controller.graph, ranks, groups)
        guess = tune(op, layout.topology, float(nbytes), chosen, protocol)
        final = yield from _run_channels(sim, op, ranks, float(nbytes), layout, guess)
        return make_result(op, guess.algorithm, n, float(nbytes), final, guess.protocol, guess.channels)
    if protocol != "auto":
        raise ValueError(f"{op} runs the protocol NCCL picks for its sends by size: protocol must be auto")
    peers = p2p_model.peer_layout(sim.controller.graph, ranks, groups)
    start = float(sim.env.now)
    tag = sim.next_collective_id()
    for phase in plan(op, chosen, n, float(nbytes)):
        if not phase.pairs:
            continue
        srcs = [ranks[i] for i, _ in phase.pairs]
        dsts = [ranks[j] for _, j in phase.pairs]
        keys = [mix64(tag, i, j) & 0x7FFFFFFFFFFFFFFF for i, j in phase.pairs]
        routed, paid = routed_without_latency(sim, sim.route(srcs, dsts, keys))
        sent = p2p_model.p2p_protocol(phase.bytes_per_flow)
        latency = p2p_model.hop_latency_s(sent, peers.hop(phase.pairs), peers.host_cpu)
        for _ in range(phase.repeat):
            wait = latency
            if phase.bytes_per_flow > 0:
                yield sim.start_routed(routed, p2p_model.wire_bytes(phase.bytes_per_flow, sent))
                wait = max(0.0, latency - paid)  # a load-aware policy's flows paid the path latency
            yield sim.env.timeout(wait)
    return make_result(op, chosen, n, float(nbytes), float(sim.env.now) - start)


def _run_channels(
    sim: FlowSimulator, op: str, ranks: Sequence[Hashable], nbytes: float, layout: ChannelLayout, guess: Prediction
) -> Generator[simpy.Event, Any, float]:
    """Run the chosen channels' flows step by step, then wait out the rest of NCCL's predicted time for the
    bandwidth they got; returns the collective's seconds."""
    start = float(sim.env.now)
    edges, step_bytes, steps = pattern(layout, op, guess.algorithm, guess.channels, nbytes)
    bandwidth_s = 0.0
    if edges and nbytes > 0:
        keys = channel_keys(sim.next_collective_id(), edges)
        routed = sim.route([ranks[i] for i, _ in edges], [ranks[j] for _, j in edges], keys)
        routed, paid = routed_without_latency(sim, routed)
        for _ in range(int(steps)):
            begun = float(sim.env.now)
            yield sim.start_routed(routed, step_bytes)
            bandwidth_s += max(0.0, float(sim.env.now) - begun - paid)
    link = link_busbw_from(layout, op, guess.algorithm, nbytes, bandwidth_s)
    final = predict(op, layout.topology, guess.choice, nbytes, link)
    left = final.time_s - (float(sim.env.now) - start)
    if left > 0:
        yield sim.env.timeout(left)
    return float(sim.env.now) - start


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
    protocol: str = "auto",
) -> CollectiveResult:
    """Run one collective alone on ``graph`` (a fresh environment, controller and simulator)."""
    env = simpy.Environment()
    sim = make_flow_simulator(env, graph, routing, seed)
    body = run_collective(sim, op, ranks, nbytes, algorithm, root=root, groups=groups, protocol=protocol)
    process = env.process(body)
    env.run()
    result = process.value
    assert isinstance(result, CollectiveResult)
    return result
