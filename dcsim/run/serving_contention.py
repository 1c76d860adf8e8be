"""Serving replicas that span nodes on the run's shared network: they slow the jobs that share their links
and are slowed by them (cross-job contention, :mod:`dcsim.scheduler.contention`).

A replica larger than a node runs whole tensor-parallel groups inside nodes (:mod:`dcsim.serving.placement`),
so its tensor-parallel all-reduces stay on its own nodes' fabric; what crosses the datacenter network is its
pipeline-stage boundaries between nodes: per iteration, every token of the iteration crosses each boundary
once, each of the sending stage's ``tp`` ranks sending ``1/tp`` of its ``hidden`` activations to its peer
(:mod:`dcsim.serving.stagehop`). Its traffic on the shared network is therefore, per boundary pair,

    bytes/s = tokens/s x hidden x bytes per element / tp

whatever its batching: the bytes per iteration (its tokens x the activation bytes) times the iterations
per second. The tokens per second are the replica's share of its workload's *offered load* (the traffic's
prompt and output tokens over its duration: both for a colocated replica, prompts for a prefill replica and
outputs for a decode replica of disaggregated serving), split evenly over the replicas of its role switched
on when it switches on. The replica joins the shared network (:class:`~dcsim.scheduler.shared_network.Service`)
while it is switched on.

Its slowdown ``s`` (its busiest link's overload, as a training job's) stretches the bandwidth part of its
inter-node stage sends: each iteration of ``T`` tokens takes ``(s - 1) x`` the wire seconds of its
inter-node sends longer (NCCL's wire bytes of the protocol over each boundary's measured rate; latency is
not stretched). Compute, intra-node communication and host time are not. A run of iterations already
scheduled keeps its time; the next run (at most :data:`~dcsim.serving.replica.MAX_RUN` iterations on) uses
the new slowdown.

Assumptions and limits: the offered load is an upper bound on what an overloaded replica moves (it sends
less while requests queue), and it is estimated once per switch-on, not re-measured; the replica's demand is
spread evenly in time (as a training job's step traffic); KV transfers of disaggregated serving are flows
of the run's flow-level network (:mod:`dcsim.serving.kvtransfer`), not part of this model.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from dcsim.compute.ops import BYTES_PER_ELEMENT
from dcsim.network.collectives.p2p_model import p2p_protocol, wire_bytes
from dcsim.run.shared_network import shared_network
from dcsim.scenario.network import build_fabric
from dcsim.scheduler.contention import StepTraffic
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.shared_network import Service, SharedNetwork
from dcsim.scheduler.traffic import Transfers, send_transfers
from dcsim.serving.stagehop import StageHop, boundary_pairs

if TYPE_CHECKING:
    from dcsim.run.inference_runner import InferenceRunner


def hop_wire_s(hops: tuple[StageHop, ...], bytes_per_token: float, tokens: int) -> float:
    """Seconds of wire time (latency excluded) of an iteration of ``tokens`` tokens over the inter-node
    stage boundaries ``hops``, each rank sending ``bytes_per_token`` per token."""
    nbytes = tokens * bytes_per_token
    if nbytes <= 0:
        return 0.0
    wire = wire_bytes(nbytes, p2p_protocol(nbytes))
    return sum(wire / hop.bytes_per_s for hop in hops)


def _extra_s(slowdown: float, hops: tuple[StageHop, ...], bytes_per_token: float, tokens: int) -> float:
    return (slowdown - 1.0) * hop_wire_s(hops, bytes_per_token, tokens)


class ReplicaContention:
    """The multi-node replicas of one inference workload as services of the run's shared network."""

    def __init__(self, runner: InferenceRunner, scheduler: ClusterScheduler, network: SharedNetwork) -> None:
        self.runner = runner
        self.scheduler = scheduler
        self.network = network
        spec = runner.spec
        tp, pp = spec.parallelism.tp, spec.parallelism.pp
        self.tp = tp
        #: bytes each rank of a sending stage sends per token of an iteration (its 1/tp of the activations)
        self.bytes_per_token = runner.cfg.hidden * BYTES_PER_ELEMENT[spec.precision] / tp
        servers = build_fabric(runner.scenario.datacenter, runner.scenario.seed).servers
        self.pairs: dict[int, list[tuple[str, str]]] = {}  # replica index -> its inter-node boundary pairs
        for index, place in enumerate(runner.places[: len(runner.replicas)]):
            if not runner.stage_hops[index]:
                continue
            slots = [servers[f"{place.node.name}-{n}"][a] for n, a in place.slots(tp * pp)]
            pairs: list[tuple[str, str]] = []
            last = -1
            for stages in place.stages_per_node(tp, pp)[:-1]:
                last += stages
                pairs.extend(boundary_pairs(slots, tp, last))
            self.pairs[index] = pairs
        traffic = runner.traffic
        n = len(traffic)
        duration = spec.traffic.duration_s if spec.traffic.duration_s else 0.0
        if not duration and n > 1:
            duration = float(traffic.arrival_s[-1] - traffic.arrival_s[0])
        prompt = float(traffic.prompt_tokens.sum()) if n else 0.0
        output = float(traffic.output_tokens.sum()) if n else 0.0
        rate = 1.0 / duration if duration > 0 else 0.0
        #: offered tokens/s of the workload per replica role
        self.offered = {"both": (prompt + output) * rate, "prefill": prompt * rate, "decode": output * rate}
        self.on: set[int] = set()
        self.tokens_per_s: dict[int, float] = {}
        self._cache: dict[tuple[int, int, float], StepTraffic] = {}
        # per replica: [since s, slowdown now, slowdown x s so far, s so far, worst]
        self.pace: dict[int, list[float]] = {}
        self.joined = False  # some replica's traffic went on the links (another communicating job ran)

    def key(self, index: int) -> tuple[str, str, int]:
        """The replica's key on the shared network."""
        return ("replica", self.runner.spec.name, index)

    def power(self, index: int, on: bool) -> None:
        """The replica switched on (joins the network) or off (leaves it)."""
        if on:
            self.on.add(index)
        else:
            self.on.discard(index)
        if index not in self.pairs:
            return
        now = float(self.scheduler.now)
        if on:
            roles = self.runner.system.roles
            role = roles[index]
            same = sum(1 for i in self.on if roles[i] == role)
            self.tokens_per_s[index] = self.offered[role] / max(1, same)
            pace = self.pace.setdefault(index, [now, 1.0, 0.0, 0.0, 1.0])
            pace[0], pace[1] = now, 1.0
            self.scheduler.service_on_network(
                self.key(index), Service(partial(self.traffic, index), partial(self.slowed, index))
            )
        else:
            self.scheduler.service_off_network(self.key(index))
            self._close(index, now)
            self.runner.replicas[index].network_extra_s = None

    def traffic(self, index: int) -> StepTraffic | None:
        """The replica's bytes per second on each link (a step of one second), on the current routes."""
        rate = self.tokens_per_s.get(index, 0.0)
        if rate <= 0:
            return None
        version = self.network.controller.version
        cached = self._cache.get((index, version, rate))
        if cached is None:
            transfers: Transfers = {}
            send_transfers(transfers, self.pairs[index], self.bytes_per_token * rate)
            cached = self._cache[(index, version, rate)] = self.network.loads.step_traffic(transfers, 1.0)
        return cached

    def slowed(self, index: int, slowdown: float) -> None:
        """The shared network's new slowdown of the replica: its inter-node sends stretch from now on."""
        self.joined = True
        now = float(self.scheduler.now)
        self._close(index, now)
        pace = self.pace[index]
        pace[1] = slowdown
        pace[4] = max(pace[4], slowdown)
        replica = self.runner.replicas[index]
        hops = self.runner.stage_hops[index]
        replica.network_extra_s = None if slowdown <= 1.0 else partial(_extra_s, slowdown, hops, self.bytes_per_token)

    def _close(self, index: int, now: float) -> None:
        pace = self.pace.get(index)
        if pace is None:
            return
        pace[2] += (now - pace[0]) * pace[1]
        pace[3] += now - pace[0]
        pace[0] = now

    def summary(self, end_s: float) -> dict[str, Any]:
        """``network_slowdown``: the time-weighted mean slowdown of the multi-node replicas' inter-node
        sends while on, and ``network_slowdown_max``; nothing if none ever shared the links."""
        if not self.joined:
            return {}
        weighted = seconds = 0.0
        worst = 1.0
        for index, pace in self.pace.items():
            if index in self.on:
                self._close(index, end_s)
            weighted += pace[2]
            seconds += pace[3]
            worst = max(worst, pace[4])
        return {
            "network_slowdown": weighted / seconds if seconds > 0 else 1.0,
            "network_slowdown_max": worst,
        }


def replica_contention(runner: InferenceRunner, scheduler: ClusterScheduler) -> ReplicaContention | None:
    """Put the workload's replicas that span nodes on the run's shared network (their switch-ons and -offs
    through the system's ``on_power``); None when none spans nodes or contention is off."""
    if not any(runner.stage_hops[: len(runner.replicas)]):
        return None
    network = shared_network(scheduler, runner.scenario)
    if network is None:
        return None
    contention = ReplicaContention(runner, scheduler, network)
    before = runner.system.on_power

    def power(index: int, on: bool) -> None:
        if before is not None:
            before(index, on)
        contention.power(index, on)

    runner.system.on_power = power
    return contention
