"""Collectives as NCCL builds and prices them (all-reduce, all-gather, reduce-scatter, broadcast): channels on
NIC rails, algorithms ring, tree, NVLS and CollNet (in-network reduction, SHARP), protocols LL, LL128 and
Simple, and the tuner's choice among them. Point-to-point sends and all-to-all: :mod:`.p2p_model`.

This is the closed form (the *analytic path*). The flow-level path (:mod:`.runner`,
:class:`dcsim.parallel.comm.CommModel`) builds the same channels as flows on the fabric graph, measures the
bandwidth they get, and hands it to the same :func:`predict`, so both paths share every constant.

The model, after NCCL 2.30's ``src/graph/tuning.cc`` (constants: :mod:`.nccl_constants`):

- A communicator of ``n`` ranks on ``nodes`` nodes runs ``C`` channels. Each is a ring (or a tree) through
  every rank. On a node, channel ``c``'s traffic enters and leaves through one NIC rail (GPU ``i`` uses NIC
  ``i``: :func:`channel_rail`), so ``C`` channels spread over ``min(C, rails)`` rails.
- *Link bandwidth* (:func:`link_busbw`): ``C`` times one channel's share of its links, the least of a GPU's
  intra-node bandwidth over the ``C`` channels crossing it and a NIC's line rate over the channels on the
  busiest rail (:func:`busiest_rail`: one flow per channel each way, as NCCL's search counts them). On a
  node with one NIC per GPU that is ``min(NVLink, rails x NIC line rate)``. No channel moves more than the
  fastest per-channel speed NCCL's search tries (40 GB/s inside an Ampere node, 48 across nodes), so full
  bandwidth takes several channels.
- Each (algorithm, protocol) turns it into bus bandwidth with NCCL's factors and per-channel caps (LL moves
  4 bytes of data per 8-byte line: x 0.5; LL128 120 of 128 bytes: x 0.92), then into algorithm bandwidth
  (ring and NVLS: ``n / steps``; tree and CollNet: 0.5), and adds NCCL's latency: a base per (algorithm,
  protocol) plus a hardware latency per step (NVLink or PCIe inside a node, the network across nodes).
- time = latency + bytes / algbw; the tuner (:func:`tune`) takes the least over algorithm x protocol x
  channels.

Units: seconds, bytes, bytes per second.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from dcsim.network.collectives.nccl_constants import PROTOCOLS, NcclTuning, nccl_tuning

#: Collectives NCCL's tuner prices (send/recv and all-to-all are point-to-point: :mod:`.p2p_model`).
NCCL_OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast")
#: Algorithms per tuned collective, in the tuner's order (ties go to the earlier). Broadcast runs rings only
#: (NCCL 2.30, ``src/graph/tuning.cc`` enables no other algorithm for it): each channel's ring is a
#: pipelined chain from the root, so every rank receives the whole message once.
NCCL_ALGORITHMS = {
    "all_reduce": ("ring", "tree", "nvls", "collnet"),
    "all_gather": ("ring",),
    "reduce_scatter": ("ring",),
    "broadcast": ("ring",),
}


@dataclass(frozen=True)
class CommTopology:
    """What NCCL's topology search sees of one communicator.

    ``ranks`` on ``nodes`` nodes, at most ``ranks_per_node`` on one; ``gpu_bytes_per_s`` is one GPU's
    intra-node bandwidth per direction (NVLink or PCIe, after link efficiency; unused with one rank per
    node), ``intra`` its kind (``nvlink`` or ``pcie``, for NCCL's hardware latencies); ``rails`` the NICs per
    node the communicator's GPUs reach (GPU i through NIC i), each of ``nic_bytes_per_s`` line rate;
    ``generation`` the GPU generation NCCL keys its caps by; ``nvls`` whether the NVSwitch does NVLink SHARP;
    ``sharp`` whether the network's switches reduce in the network (CollNet); ``host_cpu`` (``intel`` or
    ``amd``) sets the network post overhead.
    """

    ranks: int
    nodes: int
    ranks_per_node: int
    gpu_bytes_per_s: float
    nic_bytes_per_s: float = math.inf
    rails: int = 1
    intra: str = "nvlink"
    generation: str = "ampere"
    nvls: bool = False
    sharp: bool = False
    host_cpu: str = "intel"


@dataclass(frozen=True)
class NcclChoice:
    """One candidate of the tuner: algorithm, protocol, channels."""

    algorithm: str
    protocol: str
    channels: int


#: The former name of :class:`NcclChoice` (``dcsim.engine.distributions.Choice`` is a distribution).
Choice = NcclChoice


@dataclass(frozen=True)
class Prediction:
    """A predicted collective: the choice, seconds (``latency_s`` of them fixed), NCCL's bus bandwidth and
    algorithm bandwidth (bytes/s) after protocol factors and caps."""

    choice: NcclChoice
    time_s: float
    latency_s: float
    busbw_bytes_per_s: float
    algbw_bytes_per_s: float

    @property
    def algorithm(self) -> str:
        """The algorithm run."""
        return self.choice.algorithm

    @property
    def protocol(self) -> str:
        """The protocol run."""
        return self.choice.protocol

    @property
    def channels(self) -> int:
        """The channels run."""
        return self.choice.channels


def channel_rail(algorithm: str, channel: int, rails: int) -> int:
    """The NIC rail (0-based) channel ``channel`` leaves and enters a node through. Rings go round-robin;
    tree channels come in pairs (the two trees of NCCL's double binary tree) that share a rail."""
    if algorithm == "tree":
        return (channel // 2) % rails
    return channel % rails


@functools.cache
def busiest_rail(algorithm: str, channels: int, rails: int) -> int:
    """Channels on the most loaded rail when ``channels`` spread over ``rails`` by :func:`channel_rail`.
    NCCL's search counts each channel once on its NIC (speed x channels <= the NIC's bandwidth), whatever
    its pattern, and so does this model."""
    counts = [0] * max(rails, 1)
    for c in range(channels):
        counts[channel_rail(algorithm, c, max(rails, 1))] += 1
    return max(counts)


@functools.lru_cache(maxsize=1 << 16)
def link_busbw(topo: CommTopology, algorithm: str, channels: int) -> float:
    """``channels`` x one channel's bandwidth on its links (bytes/s), on an otherwise idle, non-blocking
    fabric: a GPU's intra-node bandwidth is shared by every channel (each crosses every GPU once per
    direction), a NIC's by the channels on its rail. NVLS reduces inside the NVSwitch, so only its inter-node
    part is counted here (inf on one node), and CollNet's likewise (its intra-node fan-in is priced as latency).
    What the flow path measures on the fabric instead."""
    link = math.inf
    if topo.ranks_per_node > 1 and algorithm not in ("nvls", "collnet"):
        link = topo.gpu_bytes_per_s
    if topo.nodes > 1:
        link = min(link, channels * topo.nic_bytes_per_s / busiest_rail(algorithm, channels, topo.rails))
    return link


def _bucket(nodes: int) -> int:
    return 0 if nodes == 1 else 1 if nodes == 2 else 2


def _log2i(value: int) -> int:
    return value.bit_length() - 1


def _ll_max(t: NcclTuning, topo: CommTopology) -> float:
    if topo.nodes == 1:
        return t.ll_max_one_node[topo.generation]
    return t.ll_max_nodes[topo.host_cpu][0 if topo.nodes == 2 else 1]


def _steps(op: str, count: int) -> int:
    """Steps of ``op``'s ring over ``count`` ranks (or nodes): 2(n-1) for all-reduce, n-1 otherwise (a
    broadcast's chain has n-1 hops)."""
    return 2 * (count - 1) if op == "all_reduce" else count - 1


def _busbw(t: NcclTuning, op: str, topo: CommTopology, choice: NcclChoice, link: float) -> float:
    """NCCL's bus bandwidth of ``choice`` from the channels' link bandwidth ``link`` (model refinements)."""
    a, p, c = choice.algorithm, choice.protocol, choice.channels
    gen, bucket, f = topo.generation, _bucket(topo.nodes), t.factors
    if a == "ring":
        if p == "ll":
            return min(_ll_max(t, topo), link * f["ring_ll"])
        if p == "ll128":
            return min(link * f["ring_ll128"], c * t.ring_ll128_cap[gen])
        return link
    if a == "tree":
        bw = min(link * f["tree"], c * t.tree_cap[gen][bucket])
        if p == "ll":
            return min(bw * f["tree_ll"], _ll_max(t, topo))
        if p == "ll128":
            scale = f["tree_ll128_one_node"] if topo.nodes == 1 else f["tree_ll128_nodes"]
            return min(bw * scale, c * t.tree_ll128_cap[gen][bucket])
        return bw
    if a == "nvls":
        intra = topo.gpu_bytes_per_s * t.nvls_efficiency[gen] * (c - 1) / c * (2 if op == "all_reduce" else 1)
        if topo.nodes == 1:
            return intra
        cap = t.nvls_tree_cap[gen][bucket]
        return min(intra, link * (2 if topo.nodes == 2 else 1), c * cap if cap is not None else math.inf)
    return link  # collnet: the reduction happens in the switches; each node sends and receives its data once


def _latency(t: NcclTuning, op: str, topo: CommTopology, choice: NcclChoice) -> float:
    """NCCL's latency of ``choice`` in seconds (base + hardware latency per step), before the ring's
    plateau factor."""
    a, p = choice.algorithm, choice.protocol
    i = PROTOCOLS.index(p)
    n, nodes, per_node = topo.ranks, topo.nodes, topo.ranks_per_node
    base = t.base_latency_s[a][i] or 0.0
    intra_row = t.hw_latency_s[topo.intra if topo.intra in t.hw_latency_s else "nvlink"]
    net_algorithm = "nvls_tree" if a == "nvls" and nodes > 1 else a
    intra_key = "nvls" if a == "nvls" else a
    intra = (intra_row.get(intra_key) or t.hw_latency_s["nvlink"][intra_key])[i] or 0.0
    inter_key = "tree" if a == "ring" and per_node == 1 else net_algorithm
    inter = t.hw_latency_s["network"][inter_key][i] or 0.0
    if nodes > 1:
        overhead = t.net_overhead_s[topo.host_cpu] * (t.simple_overhead_multiplier if p == "simple" else 1.0)
        inter += overhead
        intra = max(intra, overhead)
    if a == "ring":
        steps, inter_steps = _steps(op, n), _steps(op, nodes)
        return base + (steps - inter_steps) * intra + inter_steps * inter
    if a == "tree":
        return base + 2 * ((per_node - 1) * intra + _log2i(nodes) * inter)
    if a == "nvls":
        return base + intra + (2 * _log2i(nodes) * inter if nodes > 1 else 0.0)
    # collnet (direct): intra-node fan-in and fan-out around one trip through the switches
    return base + 2 * (min(1, per_node - 1) * intra + (per_node - 1) * t.collnet_arity_latency_s) + inter


@functools.lru_cache(maxsize=1 << 16)
def _parts(op: str, topo: CommTopology, choice: NcclChoice, link: float) -> tuple[float, float, float, float]:
    """The size-independent parts of a prediction: busbw, algbw (before the tree correction), latency, and
    the latency from ``plateau_min_bytes`` per channel per rank on (the ring's plateau; the same otherwise)."""
    t = nccl_tuning()
    speeds = t.channel_speed_intra if topo.nodes == 1 else t.channel_speed_inter
    link = min(link, choice.channels * speeds[topo.generation])  # no channel moves more than the search's fastest
    busbw = _busbw(t, op, topo, choice, link)
    ratio = topo.ranks / _steps(op, topo.ranks) if choice.algorithm in ("ring", "nvls") else 0.5
    if op == "broadcast":
        ratio = 1.0  # every link of the chain carries the whole message once: algbw = busbw
    latency = _latency(t, op, topo, choice)
    plateau = latency
    if choice.algorithm == "ring" and choice.protocol == "simple" and op == "all_reduce" and topo.nodes > 1:
        old = topo.generation == "volta"
        plateau = latency * (t.plateau_before_ampere if old else t.plateau_ampere_and_newer)
    return busbw, busbw * ratio, latency, plateau


def predict(op: str, topo: CommTopology, choice: NcclChoice, nbytes: float, link: float | None = None) -> Prediction:
    """NCCL's predicted time of ``op`` of ``nbytes`` (nccl-tests size) with ``choice``. ``link`` is the
    channels' link bandwidth (bytes/s; default :func:`link_busbw`, the flow path passes what it measured)."""
    t = nccl_tuning()
    if link is None:
        link = link_busbw(topo, choice.algorithm, choice.channels)
    busbw, algbw, latency, plateau = _parts(op, topo, choice, link)
    if choice.algorithm == "tree" and nbytes >= 64:
        log_size = _log2i(int(nbytes) >> 6)
        if log_size < len(t.tree_correction[choice.protocol]):
            algbw *= t.tree_correction[choice.protocol][log_size]
    if nbytes / (choice.channels * topo.ranks) >= t.plateau_min_bytes:
        latency = plateau
    seconds = latency + (nbytes / algbw if nbytes > 0 else 0.0)
    return Prediction(choice, seconds, latency, busbw, algbw)


def candidates(op: str, topo: CommTopology, algorithm: str = "auto", protocol: str = "auto") -> list[NcclChoice]:
    """Every (algorithm, protocol, channels) the tuner weighs for ``op`` on ``topo`` (``auto`` = all
    available; a named algorithm or protocol restricts it). Tree needs all-reduce; NVLS an NVSwitch that has
    it (the catalog's ``nvls``) and at least 2 ranks and 2 channels on a node; CollNet several nodes and
    switches that reduce (``sharp``, or asked for by name); NVLS and CollNet run Simple only."""
    if op not in NCCL_ALGORITHMS:
        raise ValueError(f"NCCL's tuner does not price {op!r} (it prices {', '.join(NCCL_OPS)})")
    known = NCCL_ALGORITHMS[op]
    if algorithm != "auto" and algorithm not in known:
        raise ValueError(f"{op} has no algorithm {algorithm!r} (known: auto, {', '.join(known)})")
    if protocol != "auto" and protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: auto, {', '.join(PROTOCOLS)})")
    algorithms = known if algorithm == "auto" else (algorithm,)
    tuning = nccl_tuning()
    nvls = topo.nvls and topo.intra == "nvlink" and topo.generation in tuning.nvls_efficiency
    nvls = nvls and topo.ranks_per_node > 1
    out = []
    for a in algorithms:
        if a == "nvls" and not nvls:
            continue
        if a == "collnet" and (topo.nodes < 2 or (algorithm == "auto" and not topo.sharp)):
            continue
        protocols = ("simple",) if a in ("nvls", "collnet") else PROTOCOLS
        for p in protocols if protocol == "auto" else (protocol,):
            if p not in protocols:
                continue
            low = 2 if a == "nvls" else 1
            out += [NcclChoice(a, p, c) for c in range(low, tuning.max_channels + 1)]
    if not out:
        raise ValueError(f"{op}: no {algorithm} algorithm with protocol {protocol} on this hardware")
    return out


def node_topology(
    accelerator: str | None, interconnect: str | None, ranks: int, bytes_per_s: float | None = None
) -> CommTopology:
    """The topology of ``ranks`` accelerators on one node (what a serving replica's tensor-parallel group
    sees): each GPU's bandwidth is the catalog interconnect's times its link efficiency (as the fabric graph
    builds it), or ``bytes_per_s`` as given when no interconnect is named; NVLS where the catalog says the
    NVSwitch has it."""
    from dcsim.catalog import load_catalog
    from dcsim.network.efficiency import link_efficiency

    link = load_catalog().interconnect(interconnect) if interconnect else None
    if bytes_per_s is None:
        if link is None:
            raise ValueError("node_topology needs an interconnect or a bandwidth")
        bytes_per_s = link.bandwidth_gb_per_s * 1e9
    if link is not None:
        bytes_per_s *= link_efficiency(link.id)
    return CommTopology(
        ranks=ranks,
        nodes=1,
        ranks_per_node=ranks,
        gpu_bytes_per_s=bytes_per_s,
        intra="pcie" if link is not None and link.topology == "bus" else "nvlink",
        generation=nccl_tuning().generation(accelerator),
        nvls=bool(link is not None and link.nvls),
    )


@functools.lru_cache(maxsize=65536)
def tune(op: str, topo: CommTopology, nbytes: float, algorithm: str = "auto", protocol: str = "auto") -> Prediction:
    """The tuner's choice: the least predicted time over :func:`candidates` (ties go to the earlier
    algorithm, then protocol, then fewer channels)."""
    best: Prediction | None = None
    for choice in candidates(op, topo, algorithm, protocol):
        guess = predict(op, topo, choice, nbytes)
        if best is None or guess.time_s < best.time_s:
            best = guess
    assert best is not None
    return best
