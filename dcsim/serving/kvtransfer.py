"""How a request's KV cache travels from a prefill replica to a decode replica (disaggregated serving).

Two paths, each a :class:`KVTransfer` whose ``send(src, dst, tokens)`` returns a SimPy event that fires
when the KV cache of ``tokens`` tokens has arrived at the decode replica ``dst``:

- :class:`FixedRateTransfer`: a dedicated path of fixed rate and latency that nothing else uses (the
  scenario's ``disaggregation.kv_transfer_gbps``): ``latency + bytes / rate`` seconds, however many
  transfers run at once.
- :class:`NetworkTransfer`: flows on the run's max-min fair flow simulator
  (:class:`dcsim.network.FlowSimulator`). Every accelerator of the prefill replica holds one shard of the
  cache (its tensor-parallel heads of its pipeline stage's layers) and sends it to the accelerator of the
  same rank in the decode replica, so one transfer is ``tp x pp`` flows that complete as one event. The
  flows cross the intra-node fabric when both replicas share a server and the NICs and network otherwise,
  and share every link with the other transfers and any other traffic on the simulator: alone, a
  transfer takes the path latency plus the shard's bytes over the path's bottleneck; ``N`` transfers
  through one bottleneck at once take about ``N`` times as long.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import simpy

from dcsim.network import FlowSimulator, RoutedFlows


class KVTransfer(Protocol):
    """Sends KV caches between replicas (by replica index)."""

    def send(self, src: int, dst: int, tokens: int) -> simpy.Event:
        """Start sending ``tokens`` tokens of KV cache from replica ``src`` to ``dst``; the event fires on arrival."""
        ...


class FixedRateTransfer:
    """A dedicated, uncontended path: ``seconds(tokens)`` per transfer (latency plus bytes over the rate)."""

    def __init__(self, env: simpy.Environment, seconds: Callable[[int], float]) -> None:
        self.env = env
        self.seconds = seconds

    def send(self, src: int, dst: int, tokens: int) -> simpy.Event:
        """A timeout of ``seconds(tokens)``."""
        return self.env.timeout(self.seconds(tokens))


class NetworkTransfer:
    """KV transfers as flows on ``flows``. ``endpoints[i]`` are the fabric node names of replica ``i``'s
    accelerators in rank order (every replica has the same count); ``shard_bytes_per_token`` is the KV bytes
    per token one accelerator holds (all layers of its stage, its heads). Each (prefill, decode) pair keeps
    the ECMP keys of its first transfer, so its transfers take one path (one connection per peer, as NCCL)."""

    def __init__(self, flows: FlowSimulator, endpoints: Sequence[Sequence[str]], shard_bytes_per_token: float) -> None:
        if not endpoints or len({len(e) for e in endpoints}) != 1 or not endpoints[0]:
            raise ValueError("every replica needs the same, non-zero number of accelerator endpoints")
        if shard_bytes_per_token <= 0:
            raise ValueError("shard_bytes_per_token must be > 0")
        self.flows = flows
        self.endpoints = [list(e) for e in endpoints]
        self.shard_bytes_per_token = float(shard_bytes_per_token)
        self._routes: dict[tuple[int, int], RoutedFlows] = {}
        self.bytes_sent = 0.0

    def send(self, src: int, dst: int, tokens: int) -> simpy.Event:
        """Start one flow per accelerator rank, each with its shard of the ``tokens`` tokens."""
        routed = self._routes.get((src, dst))
        if routed is None:
            routed = self._routes[(src, dst)] = self.flows.route(self.endpoints[src], self.endpoints[dst])
        shard = tokens * self.shard_bytes_per_token
        sources = self.endpoints[src]
        self.bytes_sent += shard * len(sources)
        if len(sources) == 1:  # one accelerator: the simulator's single-flow path, same route (same key)
            return self.flows.start_flow(sources[0], self.endpoints[dst][0], shard, int(routed.key[0]))
        return self.flows.start_routed(routed, shard)
