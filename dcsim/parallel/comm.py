"""Communication times of a training job's collectives, measured on the flow-level network model.

A query runs the collectives of several rank groups *at the same time* on a fresh
:class:`~dcsim.network.FlowSimulator` over the datacenter graph, so groups that share NICs, NVSwitch ports or
fabric links slow each other down exactly as the network model says. All-reduce, all-gather and
reduce-scatter are NCCL's (:mod:`dcsim.network.collectives.nccl_model`): each group's tuner choice, its
channels' flows on their NIC rails for one step, and the bandwidth they got priced by the same
:func:`~dcsim.network.collectives.nccl_model.predict` as the analytic path (so on an idle, non-blocking
fabric both agree), and so is broadcast. All-to-all and sends are NCCL's grouped point-to-point sends
(:mod:`dcsim.network.collectives.p2p_model`): rounds of flows of their protocol's wire bytes, each round
followed by NCCL's point-to-point latency, as the analytic path prices them. Results are cached per query: a
training plan asks the same few questions (its TP all-reduce, its stage-to-stage sends, its DP all-reduce)
for every microbatch of every step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import networkx as nx
import simpy

from dcsim.network.collectives.algorithms import Phase
from dcsim.network.collectives.channels import ChannelLayout, layout_of, link_busbw_from, pattern
from dcsim.network.collectives.nccl_model import NCCL_OPS, predict, tune
from dcsim.network.collectives.p2p_model import (
    PeerLayout,
    hop_latency_s,
    p2p_protocol,
    peer_layout,
    plan,
    wire_bytes,
)
from dcsim.network.collectives.runner import channel_keys, choose_algorithm, routed_without_latency
from dcsim.network.factory import make_controller, make_flow_simulator
from dcsim.network.flows import FlowSimulator, RoutedFlows, TransferDone
from dcsim.network.routing import RoutingPolicy, mix64

Groups = tuple[tuple[str, ...], ...]


class CommModel:
    """Collective and point-to-point times (seconds) on one fabric graph with one routing policy."""

    def __init__(self, graph: nx.Graph, routing: str | type[RoutingPolicy] = "ecmp", seed: int = 0) -> None:
        self.graph = graph
        self.routing = routing
        self.seed = seed
        # one controller for every query (its route tables are the costly part); each query's flows all
        # finish before it returns, so no query sees another's load
        self.controller = make_controller(graph, routing, seed)
        self._cache: dict[tuple[str, Groups, float, str], float] = {}
        self._layouts: dict[tuple[str, ...], ChannelLayout] = {}
        self._peers: dict[tuple[str, ...], PeerLayout] = {}

    def collective_s(self, op: str, groups: Sequence[Sequence[str]], nbytes: float, algorithm: str = "auto") -> float:
        """Seconds until the last of ``groups`` finishes ``op`` of ``nbytes`` (nccl-tests size per rank), all
        groups started together. Groups of one rank take no time."""
        key_groups = tuple(tuple(g) for g in groups if len(g) > 1)
        if not key_groups or nbytes <= 0:
            return 0.0
        key = (op, key_groups, float(nbytes), algorithm)
        cached = self._cache.get(key)
        if cached is None:
            run = self._run_nccl if op in NCCL_OPS else self._run
            cached = self._cache[key] = run(op, key_groups, float(nbytes), algorithm)
        return cached

    def layout(self, group: Sequence[str]) -> ChannelLayout:
        """The channel layout (and NCCL topology) of one group of ranks (cached)."""
        key = tuple(group)
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = layout_of(self.graph, key)
        return found

    def _run_nccl(self, op: str, groups: Groups, nbytes: float, algorithm: str) -> float:
        """One step of every group's chosen channels, all started together without path latency; each
        group's step time, times its steps, is the bandwidth time its prediction is priced with. The slowest
        group's predicted time."""
        chosen = choose_algorithm(op, algorithm, [])
        env = simpy.Environment()
        flows = make_flow_simulator(env, self.controller)
        runs = []
        for g in groups:
            layout = self.layout(g)
            guess = tune(op, layout.topology, nbytes, chosen)
            edges, step_bytes, steps = pattern(layout, op, guess.algorithm, guess.channels, nbytes)
            event, paid = None, 0.0
            if edges:
                keys = channel_keys(flows.next_collective_id(), edges)
                routed = flows.route([g[i] for i, _ in edges], [g[j] for _, j in edges], keys)
                routed, paid = routed_without_latency(flows, routed)
                event = flows.start_routed(routed, step_bytes)
            runs.append((layout, guess, event, paid, steps))
        pending = [run[2] for run in runs if run[2] is not None]
        if pending:
            env.run(until=simpy.AllOf(env, pending))
        slowest = 0.0
        for layout, guess, event, paid, steps in runs:
            bandwidth_s = 0.0
            if event is not None:
                done = event.value
                assert isinstance(done, TransferDone)
                bandwidth_s = max(0.0, done.end_s - done.start_s - paid) * steps
            link = link_busbw_from(layout, op, guess.algorithm, nbytes, bandwidth_s)
            slowest = max(slowest, predict(op, layout.topology, guess.choice, nbytes, link).time_s)
        return slowest

    def send_s(self, pairs: Sequence[tuple[str, str]], nbytes: float) -> float:
        """Seconds until the last of the (src, dst) transfers of ``nbytes`` each completes, all started together
        (the stage-to-stage activation sends of a pipeline, one per tensor-parallel rank): NCCL's
        point-to-point latency plus the protocol's wire bytes at the rate the flows get."""
        return self.collective_s("send_recv", [pair for pair in pairs if pair[0] != pair[1]], nbytes)

    def send_bytes_per_s(self, pairs: Sequence[tuple[str, str]]) -> float:
        """The rate (bytes/s) each of the (src, dst) sends gets when all run at once on the idle fabric (the
        slowest's): the bandwidth a pipeline boundary's sends are priced with
        (:func:`~dcsim.network.collectives.p2p_model.send_time_s`). inf without sends."""
        groups = tuple(tuple(pair) for pair in pairs if pair[0] != pair[1])
        if not groups:
            return math.inf
        probe = 1e8  # any size: alone on the fabric, the rates do not depend on it
        phases = [plan("send_recv", "direct", len(g), probe) for g in groups]
        seconds = self._rounds(groups, [p[0] for p in phases], [probe] * len(groups))
        return probe / max(seconds) if max(seconds) > 0 else math.inf

    def peers(self, group: Sequence[str]) -> PeerLayout:
        """The point-to-point layout of one group of ranks (cached)."""
        key = tuple(group)
        found = self._peers.get(key)
        if found is None:
            found = self._peers[key] = peer_layout(self.graph, key)
        return found

    def _run(self, op: str, groups: Groups, nbytes: float, algorithm: str) -> float:
        """All-to-all or send/recv: all groups' round ``i`` start together, as flows of their protocol's wire
        bytes without path latency; each group's round costs its bandwidth time plus NCCL's point-to-point
        latency (:mod:`~dcsim.network.collectives.p2p_model`), times the round's repeats (on an otherwise idle
        network every repeat takes the same time). The slowest group's sum over rounds."""
        chosen = choose_algorithm(op, algorithm, [])
        planned = [plan(op, chosen, len(g), nbytes) for g in groups]
        totals = [0.0] * len(groups)
        for index in range(max(len(phases) for phases in planned)):
            present = [k for k, phases in enumerate(planned) if index < len(phases) and phases[index].pairs]
            if not present:
                continue
            rounds = [planned[k][index] for k in present]
            protocols = [p2p_protocol(phase.bytes_per_flow) for phase in rounds]
            wires = [wire_bytes(phase.bytes_per_flow, sent) for phase, sent in zip(rounds, protocols, strict=True)]
            seconds = self._rounds(tuple(groups[k] for k in present), rounds, wires)
            for k, phase, sent, bandwidth in zip(present, rounds, protocols, seconds, strict=True):
                layout = self.peers(groups[k])
                latency = hop_latency_s(sent, layout.hop(phase.pairs), layout.host_cpu)
                totals[k] += phase.repeat * (bandwidth + latency)
        return max(totals)

    def _rounds(self, groups: Groups, rounds: Sequence[Phase], sizes: Sequence[float]) -> list[float]:
        """Run one round of each group's sends together (``sizes[k]`` bytes per send of group ``k``), without
        path latency; each group's bandwidth seconds (its last flow's end)."""
        env = simpy.Environment()
        flows = make_flow_simulator(env, self.controller)
        events: list[simpy.Event | None] = []
        paid: list[float] = []
        for routed, size in zip(self._route_groups(flows, groups, rounds), sizes, strict=True):
            routed, latency = routed_without_latency(flows, routed)
            events.append(flows.start_routed(routed, size) if size > 0 else None)
            paid.append(latency)
        pending = [e for e in events if e is not None]
        if pending:
            env.run(until=simpy.AllOf(env, pending))
        seconds = []
        for event, latency in zip(events, paid, strict=True):
            if event is None:
                seconds.append(0.0)
                continue
            done = event.value
            assert isinstance(done, TransferDone)
            seconds.append(max(0.0, done.end_s - done.start_s - latency))
        return seconds

    @staticmethod
    def _route_groups(flows: FlowSimulator, groups: Groups, rounds: Sequence[Phase]) -> Iterator[RoutedFlows]:
        """Each group's sends of its round, routed with the ECMP keys run_collective draws (one collective id
        per group, in order). A static policy routes every flow on its own, so all groups go through one
        ``route`` call, split afterwards (the per-call cost dominated plan searches). A load-aware one sees the
        flows started before: each group is routed when the caller asks for it, after the previous started."""
        if not flows.controller.policy.static:
            for g, phase in zip(groups, rounds, strict=True):
                keys = _send_keys(flows.next_collective_id(), phase)
                yield flows.route([g[i] for i, _ in phase.pairs], [g[j] for _, j in phase.pairs], keys)
            return
        srcs: list[str] = []
        dsts: list[str] = []
        keys = []
        bounds = [0]
        for g, phase in zip(groups, rounds, strict=True):
            srcs += [g[i] for i, _ in phase.pairs]
            dsts += [g[j] for _, j in phase.pairs]
            keys += _send_keys(flows.next_collective_id(), phase)
            bounds.append(len(srcs))
        routed = flows.route(srcs, dsts, keys)
        for lo, hi in itertools.pairwise(bounds):
            yield _flows_between(routed, lo, hi)


def _send_keys(tag: int, phase: Phase) -> list[int]:
    """The ECMP keys of a round's sends, as run_collective draws them for collective ``tag``."""
    return [mix64(tag, i, j) & 0x7FFFFFFFFFFFFFFF for i, j in phase.pairs]


def _flows_between(routed: RoutedFlows, lo: int, hi: int) -> RoutedFlows:
    """Flows ``lo`` to ``hi - 1`` of ``routed`` (their links, latencies and weights)."""
    first, last = int(routed.ptr[lo]), int(routed.ptr[hi])
    return RoutedFlows(
        routed.src[lo:hi],
        routed.dst[lo:hi],
        routed.key[lo:hi],
        routed.ptr[lo : hi + 1] - first,
        routed.links[first:last],
        routed.latency_s[lo:hi],
        routed.version,
        None if routed.weights is None else routed.weights[first:last],
    )
