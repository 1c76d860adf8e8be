"""Communication times of a training job's collectives, measured on the flow-level network model.

A query runs the collectives of several rank groups *at the same time* on a fresh
:class:`~dcsim.network.FlowSimulator` over the datacenter graph, so groups that share NICs, NVSwitch ports or
fabric links slow each other down exactly as the network model says. All-reduce, all-gather and
reduce-scatter are NCCL's (:mod:`dcsim.network.collectives.nccl_model`): each group's tuner choice, its
channels' flows on their NIC rails for one step, and the bandwidth they got priced by the same
:func:`~dcsim.network.collectives.nccl_model.predict` as the analytic path (so on an idle, non-blocking
fabric both agree). Other collectives and sends run as phases of flows. Results are cached per query: a
training plan asks the same few questions (its TP all-reduce, its stage-to-stage sends, its DP all-reduce)
for every microbatch of every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import simpy

from dcsim.network.collectives.channels import ChannelLayout, layout_of, link_busbw_from, pattern
from dcsim.network.collectives.nccl_model import NCCL_OPS, predict, tune
from dcsim.network.collectives.runner import (
    channel_keys,
    choose_algorithm,
    plan,
    rank_groups,
    routed_without_latency,
)
from dcsim.network.factory import make_controller, make_flow_simulator
from dcsim.network.flows import TransferDone
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
        (the stage-to-stage activation sends of a pipeline, one per tensor-parallel rank)."""
        return self.collective_s("send_recv", [pair for pair in pairs if pair[0] != pair[1]], nbytes)

    def _run(self, op: str, groups: Groups, nbytes: float, algorithm: str) -> float:
        """All groups' phase ``i`` start together; one round of each phase is simulated and multiplied by the
        phase's rounds (every round of a ring sends the same flows, so on an otherwise idle network each takes
        the same time). This keeps a ring over ``n`` ranks at ``n`` flows instead of ``2n(n-1)``."""
        env = simpy.Environment()
        flows = make_flow_simulator(env, self.controller)
        planned = []
        tags = [flows.next_collective_id() for _ in groups]  # ECMP keys as run_collective draws them
        for g in groups:
            grouping = rank_groups(self.graph, g)
            planned.append(plan(op, choose_algorithm(op, algorithm, grouping), len(g), nbytes, grouping))
        total = 0.0
        for index in range(max(len(phases) for phases in planned)):
            srcs: list[str] = []
            dsts: list[str] = []
            keys: list[int] = []
            sizes: list[float] = []
            rounds = fill = 0
            for number, (g, phases) in enumerate(zip(groups, planned, strict=True)):
                if index >= len(phases) or not phases[index].pairs:
                    continue
                phase = phases[index]
                for i, j in phase.pairs:
                    srcs.append(g[i])
                    dsts.append(g[j])
                    keys.append(mix64(tags[number], i, j) & 0x7FFFFFFFFFFFFFFF)
                    sizes.append(phase.bytes_per_flow)
                rounds = max(rounds, phase.repeat)
                fill = max(fill, phase.fill_hops)
            if not srcs:
                continue
            routed = flows.route(srcs, dsts, keys)
            start = float(env.now)
            env.run(until=flows.start_routed(routed, sizes))
            one_round = float(env.now) - start
            total += one_round * rounds + fill * float(routed.latency_s.max())
        return total
