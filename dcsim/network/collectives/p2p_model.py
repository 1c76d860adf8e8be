"""Point-to-point communication as NCCL runs it: send/recv, and all-to-all built from grouped sends (the
analytic path; :mod:`.runner` and :class:`dcsim.parallel.comm.CommModel` are the flow path).

NCCL has no all-to-all kernel of its own: nccl-tests (``src/alltoall.cu``) and PyTorch
(``torch/csrc/cuda/nccl.cpp``, ``all2all_single_equal_split``) post one ``ncclSend`` and one ``ncclRecv``
per peer between ``ncclGroupStart`` and ``ncclGroupEnd``, and NCCL (``src/enqueue.cc``) runs the group's
sends on its point-to-point channels at once. So every collective here is one or more *rounds* of
concurrent sends (:mod:`.algorithms`: all-to-all one round to every peer; the MPI pairwise exchange n-1
rounds; send/recv one round).

A round costs ``latency + wire bytes / bandwidth``, with NCCL's constants (:mod:`.nccl_constants`):

- *Protocol*: a send of at most ``NCCL_P2P_LL_THRESHOLD`` (16 KiB) to one peer runs LL, a larger one
  Simple (NCCL 2.30, ``src/enqueue.cc``). LL carries 4 bytes of data in every 8-byte line (the tuning
  model's ring LL bandwidth factor, 0.5), so its wire bytes are twice the payload; Simple's are the payload.
- *Latency*: NCCL's tuner has no entry for point-to-point, so a round is priced as one step of a ring with
  the same protocol: the ring's base latency plus one hardware latency of the hop (NVLink or PCIe inside a
  node; across nodes the network's, plus the network post overhead, tripled for Simple). A round whose
  sends cross nodes pays the network hop. The closed form is ours, its figures are NCCL's
  (``src/graph/tuning.cc``).
- *Bandwidth*: every send crosses its sender's and its receiver's port, the accelerator's intra-node link
  inside a node, its NIC across nodes; the round lasts as long as the most loaded port needs (bytes through
  it over its line rate, the fabric between NICs taken as non-blocking). On the flow path the same sends
  run as flows on the fabric, without path latency, and the bandwidth they get replaces this bound (they
  also see oversubscription, ECMP collisions and other traffic).

Limits: the number of peers a rank serves at once is not bounded by NCCL's point-to-point channel count,
so a very wide all-to-all of small messages is priced as one latency, not a latency per batch of peers; LL's
bandwidth cap (the tuner's ``llMaxBw``) is not applied (LL carries at most 16 KiB per peer here).

Units: seconds, bytes, bytes per second.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import networkx as nx

from dcsim.network.collectives.algorithms import FLAT, Phase
from dcsim.network.collectives.channels import _interconnect_traits, _intra_bytes_per_s, _nic
from dcsim.network.collectives.nccl_constants import PROTOCOLS, nccl_tuning

#: Collectives priced as rounds of point-to-point sends.
P2P_OPS = ("all_to_all", "send_recv")
#: Protocols a point-to-point send runs (NCCL never runs LL128 for it).
P2P_PROTOCOLS = ("ll", "simple")
#: Hops a send crosses: the intra-node link kinds of NCCL's hardware latencies, or the network.
HOPS = ("nvlink", "pcie", "network")


def p2p_protocol(bytes_per_peer: float) -> str:
    """The protocol NCCL runs a send of ``bytes_per_peer`` bytes with: LL up to ``NCCL_P2P_LL_THRESHOLD``,
    Simple above."""
    return "ll" if bytes_per_peer <= nccl_tuning().p2p_ll_threshold_bytes else "simple"


def wire_bytes(nbytes: float, protocol: str) -> float:
    """Bytes on the wire for ``nbytes`` of payload: LL moves 4 data bytes per 8-byte line (the tuning
    model's ring LL factor), Simple the payload."""
    if protocol not in P2P_PROTOCOLS:
        raise ValueError(f"point-to-point runs {' or '.join(P2P_PROTOCOLS)}, not {protocol!r}")
    return nbytes / nccl_tuning().factors["ring_ll"] if protocol == "ll" else nbytes


def hop_latency_s(protocol: str, hop: str, host_cpu: str = "intel") -> float:
    """Latency of one round of sends over ``hop`` (``nvlink``, ``pcie`` or ``network``): the ring's base
    latency for ``protocol`` plus one hardware latency of the hop, across nodes with the network post
    overhead (x3 for Simple), as the tuning model prices one ring step."""
    if hop not in HOPS:
        raise ValueError(f"unknown hop {hop!r} (known: {', '.join(HOPS)})")
    t = nccl_tuning()
    i = PROTOCOLS.index(protocol)
    base = t.base_latency_s["ring"][i] or 0.0
    step = t.hw_latency_s[hop]["ring"][i] or 0.0
    if hop == "network":
        step += t.net_overhead_s[host_cpu] * (t.simple_overhead_multiplier if protocol == "simple" else 1.0)
    return base + step


def send_time_s(nbytes: float, bytes_per_s: float, hop: str, host_cpu: str = "intel") -> float:
    """Seconds of one send of ``nbytes`` over a path of ``bytes_per_s`` crossing ``hop`` (every sender of a
    round at that rate): the round's latency plus its wire bytes over the rate. 0 for no bytes."""
    if nbytes <= 0:
        return 0.0
    protocol = p2p_protocol(nbytes)
    return hop_latency_s(protocol, hop, host_cpu) + wire_bytes(nbytes, protocol) / bytes_per_s


@dataclass(frozen=True)
class PeerLayout:
    """What the point-to-point model needs of a communicator's ranks: each rank's ``node`` (an index),
    the index of its ``nic`` and that NIC's line rate, its intra-node bandwidth (bytes/s, per direction),
    and the kind of the intra-node link (``nvlink`` or ``pcie``)."""

    node: tuple[int, ...]
    nic: tuple[int, ...]
    nic_bytes_per_s: tuple[float, ...]
    gpu_bytes_per_s: tuple[float, ...]
    intra: str = "nvlink"
    host_cpu: str = "intel"

    def hop(self, pairs: Sequence[tuple[int, int]]) -> str:
        """The hop a round of sends along ``pairs`` pays: the network if any crosses nodes."""
        return "network" if any(self.node[i] != self.node[j] for i, j in pairs) else self.intra

    def round_bandwidth_s(self, pairs: Sequence[tuple[int, int]], nbytes: float) -> float:
        """Seconds the most loaded port needs for ``nbytes`` (wire bytes) along every pair at once: each
        send crosses its sender's and receiver's intra-node link inside a node, their NICs across nodes."""
        load: dict[tuple[str, int], float] = {}
        rate: dict[tuple[str, int], float] = {}
        for i, j in pairs:
            if self.node[i] == self.node[j]:
                ports = ((("gpu_out", i), self.gpu_bytes_per_s[i]), (("gpu_in", j), self.gpu_bytes_per_s[j]))
            else:
                ports = (
                    (("nic_out", self.nic[i]), self.nic_bytes_per_s[i]),
                    (("nic_in", self.nic[j]), self.nic_bytes_per_s[j]),
                )
            for port, bps in ports:
                load[port] = load.get(port, 0.0) + nbytes
                rate[port] = bps
        return max((load[p] / rate[p] for p in load), default=0.0)


def peer_layout(graph: nx.Graph, ranks: Sequence[Hashable], labels: Sequence[Hashable] | None = None) -> PeerLayout:
    """The :class:`PeerLayout` of ``ranks`` (node names of ``graph``), grouped into nodes by their
    ``server`` attribute (or ``labels``), each rank's NIC the one behind its PCIe port (the channels'
    :func:`~.channels.layout_of` reads the same)."""
    if labels is None:
        labels = [graph.nodes[r].get("server", ("rank", i)) for i, r in enumerate(ranks)]
    node_index: dict[Hashable, int] = {}
    nic_index: dict[Hashable, int] = {}
    nodes, nics, nic_rates, gpu_rates = [], [], [], []
    for rank, label in zip(ranks, labels, strict=True):
        nodes.append(node_index.setdefault(label, len(node_index)))
        nic, bps = _nic(graph, rank)
        nics.append(nic_index.setdefault(nic, len(nic_index)))
        nic_rates.append(bps)
        gpu_rates.append(_intra_bytes_per_s(graph, rank))
    kind, _ = _interconnect_traits(graph.nodes[ranks[0]].get("interconnect")) if ranks else ("nvlink", False)
    return PeerLayout(tuple(nodes), tuple(nics), tuple(nic_rates), tuple(gpu_rates), kind)


def plan(op: str, algorithm: str, n: int, nbytes: float) -> list[Phase]:
    """The rounds of ``op`` (``all_to_all`` direct or pairwise, ``send_recv`` direct) on ``n`` ranks."""
    if (op, algorithm) not in FLAT:
        raise ValueError(f"{op} has no point-to-point algorithm {algorithm!r}")
    return FLAT[(op, algorithm)](n, nbytes)


@dataclass(frozen=True)
class P2pPrediction:
    """A predicted point-to-point collective: seconds (``latency_s`` of them fixed) and the protocol its
    sends run."""

    time_s: float
    latency_s: float
    protocol: str


def predict_p2p(op: str, layout: PeerLayout, nbytes: float, algorithm: str = "direct") -> P2pPrediction:
    """Seconds of ``op`` of ``nbytes`` (nccl-tests size) over the ranks of ``layout`` on an otherwise idle,
    non-blocking fabric: every round's latency plus its most loaded port's wire bytes over its rate."""
    n = len(layout.node)
    time = latency = 0.0
    protocol = "simple"
    for phase in plan(op, algorithm, n, nbytes):
        if not phase.pairs:
            continue
        protocol = p2p_protocol(phase.bytes_per_flow)
        lat = hop_latency_s(protocol, layout.hop(phase.pairs), layout.host_cpu)
        wire = wire_bytes(phase.bytes_per_flow, protocol)
        bandwidth = layout.round_bandwidth_s(phase.pairs, wire) if wire > 0 else 0.0
        time += phase.repeat * (lat + bandwidth)
        latency += phase.repeat * lat
    return P2pPrediction(time, latency, protocol)
