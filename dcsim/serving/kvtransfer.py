"""How a request's KV cache travels from a prefill replica to a decode replica (disaggregated serving).

Both paths are NCCL point-to-point sends priced by the one communication model
(:mod:`dcsim.network.collectives.p2p_model`: NCCL's point-to-point latency and protocol; vLLM's
disaggregated prefill sends the cache with NCCL send/recv, ``PyNcclPipe``). Each is a :class:`KVTransfer`
whose ``send(src, dst, tokens)`` returns a SimPy event that fires when the KV cache of ``tokens`` tokens has
arrived at the decode replica ``dst``:

- :class:`FixedRateTransfer`: a dedicated path of fixed rate that nothing else uses (the scenario's
  ``disaggregation.kv_transfer_gbps``): one send's latency plus its bytes over the rate, however many
  transfers run at once.
- :class:`NetworkTransfer`: flows on the run's max-min fair flow simulator
  (:class:`dcsim.network.FlowSimulator`). Every accelerator of the prefill replica holds one shard of the
  cache (its tensor-parallel heads of its pipeline stage's layers) and sends it to the accelerator of the
  same rank in the decode replica, so one transfer is ``tp x pp`` flows (of the protocol's wire bytes, without
  path latency) that complete as one event, NCCL's point-to-point latency after the last byte: the network
  hop's when the replicas are on different servers, the intra-node link's otherwise. The flows cross the
  intra-node fabric when both replicas share a server and the NICs and network otherwise, and share every
  link with the other transfers and any other traffic on the simulator: alone, a transfer takes the latency
  plus the shard's bytes over the path's bottleneck; ``N`` transfers through one bottleneck at once take
  about ``N`` times as long.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, Protocol

import simpy

from dcsim.network import FlowSimulator, RoutedFlows
from dcsim.network.collectives.p2p_model import hop_latency_s, p2p_protocol, peer_layout, wire_bytes
from dcsim.network.collectives.runner import routed_without_latency


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
        self._routes: dict[tuple[int, int], tuple[RoutedFlows, float, str]] = {}
        self.bytes_sent = 0.0

    def _route(self, src: int, dst: int) -> tuple[RoutedFlows, float, str]:
        """The pair's flows without path latency (once), the latency they still pay (a load-aware policy),
        and the hop NCCL's latency is priced for."""
        found = self._routes.get((src, dst))
        if found is None:
            sources, sinks = self.endpoints[src], self.endpoints[dst]
            routed, paid = routed_without_latency(self.flows, self.flows.route(sources, sinks))
            layout = peer_layout(self.flows.controller.graph, sources + sinks)
            hop = layout.hop([(k, len(sources) + k) for k in range(len(sources))])
            found = self._routes[(src, dst)] = (routed, paid, hop)
        return found

    def send(self, src: int, dst: int, tokens: int) -> simpy.Event:
        """Start one flow per accelerator rank, each with its shard of the ``tokens`` tokens; the event fires
        NCCL's point-to-point latency after the last byte."""
        routed, paid, hop = self._route(src, dst)
        shard = tokens * self.shard_bytes_per_token
        self.bytes_sent += shard * len(self.endpoints[src])
        protocol = p2p_protocol(shard)
        flows = self.flows.start_routed(routed, wire_bytes(shard, protocol))
        return self.flows.env.process(self._arrive(flows, max(0.0, hop_latency_s(protocol, hop) - paid)))

    def _arrive(self, flows: simpy.Event, latency_s: float) -> Generator[simpy.Event, Any, None]:
        yield flows
        yield self.flows.env.timeout(latency_s)
