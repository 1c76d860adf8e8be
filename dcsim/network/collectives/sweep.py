"""nccl-tests-shaped size sweeps: one collective over message sizes from ``min`` to ``max`` bytes, each
``factor`` times the last (nccl-tests ``-b 8 -e 8G -f 2``), with the time, algbw, busbw and the algorithm,
protocol and channels NCCL's tuner picks at each size.

All-reduce, all-gather and reduce-scatter are priced by :func:`~.nccl_model.predict` with the channels'
link bandwidth measured once per (algorithm, channels) on the fabric (the flow path: on an otherwise idle
fabric that bandwidth does not depend on the message size), so a sweep of 31 sizes costs a few flow steps.
Other collectives run on the flow simulator at every size.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import networkx as nx
import simpy

from dcsim.network.collectives.channels import ChannelLayout, layout_of, link_busbw_from, pattern
from dcsim.network.collectives.conventions import CollectiveResult, make_result
from dcsim.network.collectives.nccl_model import NCCL_OPS, predict, tune
from dcsim.network.collectives.runner import (
    channel_keys,
    choose_algorithm,
    routed_without_latency,
    simulate_collective,
)
from dcsim.network.factory import make_controller, make_flow_simulator
from dcsim.network.flows import TransferDone

_SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)B?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of ``8``, ``64K``, ``8M``, ``8G`` (binary suffixes, as nccl-tests reads them). ValueError."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (a whole number of bytes with an optional K, M, G or T)")
    return int(match.group(1)) * _SUFFIX[match.group(2).upper()]


def parse_sizes(text: str) -> list[int]:
    """The sizes of ``MIN:MAX[:FACTOR]`` (factor 2 by default; nccl-tests' ``-b``, ``-e``, ``-f``): MIN,
    MIN x FACTOR, ... up to MAX. ValueError naming the problem."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{text!r} is not MIN:MAX or MIN:MAX:FACTOR (e.g. 8:8G)")
    low, high = parse_size(parts[0]), parse_size(parts[1])
    factor = 2
    if len(parts) == 3:
        factor = int(parts[2]) if parts[2].strip().isdigit() else 0
    if factor < 2:
        raise ValueError(f"the factor of {text!r} must be a whole number >= 2")
    if not 1 <= low <= high:
        raise ValueError(f"{text!r}: MIN must be at least 1 byte and at most MAX")
    sizes = [low]
    while sizes[-1] * factor <= high:
        sizes.append(sizes[-1] * factor)
    return sizes


@dataclass
class _Measured:
    """Link bandwidth of each (algorithm, channels) pattern, measured once on an idle fabric."""

    graph: nx.Graph
    ranks: Sequence[Hashable]
    layout: ChannelLayout
    routing: str
    seed: int

    def __post_init__(self) -> None:
        self.controller = make_controller(self.graph, self.routing, self.seed)
        self.cache: dict[tuple[str, str, int], float] = {}

    def link(self, op: str, algorithm: str, channels: int) -> float:
        key = (op, algorithm, channels)
        if key not in self.cache:
            self.cache[key] = self._measure(op, algorithm, channels)
        return self.cache[key]

    def _measure(self, op: str, algorithm: str, channels: int) -> float:
        probe = 2.0**30  # any size: alone on the fabric, the rates do not depend on it
        edges, step_bytes, steps = pattern(self.layout, op, algorithm, channels, probe)
        if not edges:
            return float("inf")
        env = simpy.Environment()
        flows = make_flow_simulator(env, self.controller)
        keys = channel_keys(flows.next_collective_id(), edges)
        routed = flows.route([self.ranks[i] for i, _ in edges], [self.ranks[j] for _, j in edges], keys)
        routed, paid = routed_without_latency(flows, routed)
        done = flows.start_routed(routed, step_bytes)
        env.run(until=done)
        value = done.value
        assert isinstance(value, TransferDone)
        seconds = max(0.0, value.end_s - value.start_s - paid) * steps
        return link_busbw_from(self.layout, op, algorithm, probe, seconds)


def sweep(
    graph: nx.Graph,
    op: str,
    ranks: Sequence[Hashable],
    sizes: Sequence[float],
    algorithm: str = "auto",
    protocol: str = "auto",
    *,
    routing: str = "ecmp",
    seed: int = 0,
) -> list[CollectiveResult]:
    """``op`` over ``ranks`` of ``graph`` at every size, each alone on the fabric."""
    chosen = choose_algorithm(op, algorithm, [])
    if op not in NCCL_OPS:
        return [simulate_collective(graph, op, ranks, size, chosen, routing=routing, seed=seed) for size in sizes]
    layout = layout_of(graph, ranks)
    measured = _Measured(graph, ranks, layout, routing, seed)
    results = []
    for size in sizes:
        guess = tune(op, layout.topology, float(size), chosen, protocol)
        link = measured.link(op, guess.algorithm, guess.channels)
        final = predict(op, layout.topology, guess.choice, float(size), link)
        n = len(ranks)
        results.append(make_result(op, guess.algorithm, n, float(size), final.time_s, guess.protocol, guess.channels))
    return results
