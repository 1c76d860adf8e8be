"""Runs a ``kind: inference`` workload: builds its replicas and traffic, serves it, summarises it.

Replicas have fixed places on the datacenter's node types (``tp x pp`` accelerators inside one node each, or,
for a replica larger than a node, whole ``tp`` groups on consecutive nodes of one type; node types in order,
nodes in order: :mod:`dcsim.serving.placement`); several inference workloads share one
:class:`SharedReplicaPlacer`, so they never take the same accelerators. With ``autoscale`` every replica up to
``max`` has a place, and each is paid for only while on. While a replica is on, the cluster scheduler holds
its accelerators (:meth:`InferenceRunner.attach`): training and trace jobs draw from the same pool, are
preempted when a replica switches on where they run, and may use a switched-off replica's accelerators.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from dcsim.catalog import load_catalog
from dcsim.energy import node_power
from dcsim.engine.simulation import Simulation
from dcsim.errors import UserInputError
from dcsim.models.inference import weight_bytes
from dcsim.network.collectives.p2p_model import send_time_s
from dcsim.parallel.comm import CommModel
from dcsim.run.context import RunContext
from dcsim.run.network_session import NetworkSession
from dcsim.run.runner import Runner, RunServices
from dcsim.run.serving_contention import ReplicaContention, replica_contention
from dcsim.run.stats import quantiles
from dcsim.scenario.inference_spec import InferenceWorkload
from dcsim.scenario.network import build_fabric, network_config
from dcsim.scenario.replica_plan import NodePlan, plan_replicas
from dcsim.scenario.schema import Scenario
from dcsim.serving import (
    IterationCost,
    KVCache,
    Replica,
    ReplicaMemory,
    RequestRecords,
    ServingSystem,
    Traffic,
    diurnal_arrivals,
    gamma_arrivals,
    poisson_arrivals,
    read_trace,
    resolve_router,
)
from dcsim.serving import placement as serving_placement
from dcsim.serving.batching import make_batch_policy
from dcsim.serving.host_overhead import HostOverhead, resolve_engine
from dcsim.serving.hostmem import HostMemory, SpannedHostMemory
from dcsim.serving.kvcache import KVSwap
from dcsim.serving.kvtransfer import FixedRateTransfer, KVTransfer, NetworkTransfer
from dcsim.serving.placement import Place
from dcsim.serving.prefixcache import PrefixKVCache
from dcsim.serving.speculative import Speculation, SpeculativeCost, speculation_summary
from dcsim.serving.stagehop import StageHop, boundary_pairs, measure_stage_hop
from dcsim.serving.system import Autoscale
from dcsim.serving.traffic import renewal_arrivals_count, with_shared_prefixes

#: Timeline samples per replica over a run (the timeline's size does not grow with the request count).
TIMELINE_SAMPLES = 2000


class SharedReplicaPlacer(serving_placement.ReplicaPlacer):
    """The run's placer, shared by its inference workloads (see :mod:`dcsim.serving.placement`)."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario.datacenter.nodes)
        self.host: dict[tuple[str, int], HostMemory] = {}

    def host_memory(self, place: Place, size: int = 1) -> HostMemory:
        """The host memory of ``place``'s node, shared by every replica there: the node type's ``memory_gb``
        (not limited without it, or on ``host-cpu`` nodes, whose ``memory_gb`` is the replicas' own memory).
        A replica of ``size`` accelerators spanning nodes takes each node's share of its host bytes
        (:class:`~dcsim.serving.hostmem.SpannedHostMemory`)."""
        if place.segments:
            return SpannedHostMemory(
                [(self._node_host(place.node, s.node_index), s.accelerators / size) for s in place.segments]
            )
        return self._node_host(place.node, place.node_index)

    def _node_host(self, node: Any, node_index: int) -> HostMemory:
        key = (node.name, node_index)
        host = self.host.get(key)
        if host is None:
            gb = node.memory_gb
            limited = gb is not None and node.accelerator != "host-cpu"
            host = self.host[key] = HostMemory(gb * 1e9 if limited else math.inf)
        return host

    def place(self, spec: InferenceWorkload, scenario: Scenario, count: int) -> list[Place]:
        """Places for ``count`` replicas of ``spec`` (UserInputError naming the field if they do not fit)."""
        places = self.take(spec.host_nodes(scenario), spec.parallelism.tp, spec.parallelism.pp, count)
        if len(places) < count:
            field = "replicas" if spec.replicas is not None else "autoscale.max"
            index = next(i for i, w in enumerate(scenario.workloads) if w is spec)
            raise UserInputError.single(
                f"workloads[{index}].{field}",
                f"only {len(places)} of {count} replicas fit on the accelerators left by other inference workloads",
            )
        return places


def make_traffic(spec: InferenceWorkload, sim: Simulation, base_dir: str) -> Traffic:
    """The workload's requests. Arrival times and token lengths use separate streams (``NAME/arrivals``,
    ``NAME/lengths``, NAME the traffic's ``stream`` or the workload's name), so a change of one leaves the
    other's draws alone. An encoder's requests are prompt-only (``output_tokens`` 0; a trace's output column
    is not used)."""
    t = spec.traffic
    name = t.stream or spec.name
    prompt_only = spec.base_architecture().family == "encoder"

    def stream(what: str) -> np.random.Generator:
        if t.stream is None:
            return sim.stream(f"{name}/{what}")
        # a shared stream: a fresh generator per workload, seeded as Simulation.stream seeds a name
        key = zlib.crc32(f"traffic:{name}/{what}".encode())
        return np.random.default_rng(np.random.SeedSequence([sim.seed, key]))

    if t.arrival == "trace":
        traffic = read_trace(spec.trace_path(base_dir), t.time_scale)
        if prompt_only:
            traffic = traffic.without_outputs()
    elif t.trace is not None:  # the trace's lengths, replayed in order at generated arrivals
        traffic = replay_trace_lengths(spec, stream("arrivals"), base_dir)
        if prompt_only:
            traffic = traffic.without_outputs()
    else:
        rng = stream("arrivals")
        assert t.rate_per_s is not None and t.duration_s is not None
        if t.arrival == "poisson":
            arrivals = poisson_arrivals(t.rate_per_s, t.duration_s, rng)
        elif t.arrival == "gamma":
            arrivals = gamma_arrivals(t.rate_per_s, float(t.cv or 1.0), t.duration_s, rng)
        else:
            arrivals = diurnal_arrivals(t.rate_per_s, t.amplitude, t.period_s, t.duration_s, rng)
        if prompt_only:
            traffic = Traffic.prompt_only(arrivals, t.prompt_tokens, stream("lengths"))
        elif t.output_tokens is None:
            raise UserInputError.single("traffic.output_tokens", f"{t.arrival} arrivals of a decoder need it")
        else:
            traffic = Traffic.from_lengths(arrivals, t.prompt_tokens, t.output_tokens, stream("lengths"))
    if t.prefix is not None:  # shared system prompts, drawn from their own stream
        p = t.prefix
        traffic = with_shared_prefixes(traffic, p.groups, p.tokens, float(p.share), stream("prefix"))
    if spec.arrival_s:
        traffic = Traffic(
            traffic.arrival_s + spec.arrival_s,
            traffic.prompt_tokens,
            traffic.output_tokens,
            traffic.prefix_group,
            traffic.prefix_tokens,
        )
    return traffic


def replay_trace_lengths(spec: InferenceWorkload, rng: np.random.Generator, base_dir: str) -> Traffic:
    """The workload's trace lengths at ``traffic.arrival`` times of ``rate_per_s``: over ``duration_s``
    (cycling through the rows), or, without it, one request per row (Poisson or gamma gaps)."""
    t = spec.traffic
    lengths = read_trace(spec.trace_path(base_dir))
    assert t.rate_per_s is not None
    if t.duration_s is None:
        cv = float(t.cv) if t.arrival == "gamma" and t.cv is not None else 1.0
        arrivals = renewal_arrivals_count(t.rate_per_s, len(lengths), rng, cv)
    elif t.arrival == "poisson":
        arrivals = poisson_arrivals(t.rate_per_s, t.duration_s, rng)
    elif t.arrival == "gamma":
        arrivals = gamma_arrivals(t.rate_per_s, float(t.cv or 1.0), t.duration_s, rng)
    else:
        arrivals = diurnal_arrivals(t.rate_per_s, t.amplitude, t.period_s, t.duration_s, rng)
    return lengths.replayed_at(arrivals)


class InferenceRunner(Runner[InferenceWorkload]):
    """One inference workload on the run's SimPy environment; ``done`` fires when all traffic is served."""

    def __init__(
        self,
        spec: InferenceWorkload,
        sim: Simulation,
        scenario: Scenario,
        placer: SharedReplicaPlacer | None = None,
        network: NetworkSession | None = None,
    ) -> None:
        self.spec = spec
        self.sim = sim
        self.scenario = scenario
        self.network = network
        self.scheduler: Any = None
        self.contention: ReplicaContention | None = None
        self.served = spec.served()
        self.cfg = spec.architecture()
        self.compression_usd = 0.0
        self.serving_usd = self.counted_tokens = 0.0  # set by summary(): cost over the traffic window, tokens
        self.traffic = make_traffic(spec, sim, scenario.base_dir)
        self.records = RequestRecords(self.traffic)
        placer = placer or SharedReplicaPlacer(scenario)
        self.places = placer.place(spec, scenario, spec.max_replicas)
        self.workload_index = next(i for i, w in enumerate(scenario.workloads) if w is spec)
        span = float(self.traffic.arrival_s[-1]) if len(self.traffic) else 1.0
        interval = max(span, 1e-3) / TIMELINE_SAMPLES
        b = spec.batching
        catalog = load_catalog()
        tp, pp = spec.parallelism.tp, spec.parallelism.pp
        self.plan = plan_replicas(spec, [place.node for place in self.places], self.cfg, self.served)
        #: per node type, one accelerator's memory (the KV capacity after any KV offload)
        self.memory: dict[str, ReplicaMemory] = {name: node.memory for name, node in self.plan.nodes.items()}
        costs: dict[tuple[str, tuple[StageHop, ...]], IterationCost] = {}
        # speculative decoding: the draft beside the target, priced on the same accelerators
        self.speculation: Speculation | None = spec.speculative.speculation() if spec.speculative else None
        drafted: dict[tuple[str, tuple[StageHop, ...]], SpeculativeCost] = {}
        self.speculative_costs: list[SpeculativeCost] = []
        self.hardware: list[tuple[str, int]] = []  # per replica: its accelerator and how many it has (tp x pp)
        self.hosts: list[HostMemory] = []  # per replica: the host memory of its node(s)
        self._comm: CommModel | None = None
        self.stage_hops: list[tuple[StageHop, ...]] = []
        replicas = []
        for index, place in enumerate(self.places):
            node = place.node
            acc = catalog.accelerators[node.accelerator]
            planned = self.plan.nodes[node.name]
            hops = self._stage_hops(place)
            self.stage_hops.append(hops)
            key = (node.name, hops)
            if key not in costs:
                link = catalog.interconnects[node.intra_node] if node.intra_node else None
                costs[key] = IterationCost(
                    self.cfg,
                    spec.precision,
                    acc.id,
                    tp,
                    pp,
                    link.bandwidth_gb_per_s * 1e9 if link else None,
                    offload_s=planned.offload_s,
                    transform=self.served.transform(acc.id) if self.served is not None else None,
                    kept_heads=self.served.kept_heads if self.served is not None else None,
                    kv_precision=self.served.kv_precision if self.served is not None else None,
                    stage_hops=hops,
                    host=HostOverhead.for_engine(
                        resolve_engine(spec.host_overhead, acc.kind), tp, pp, self.cfg.family != "encoder"
                    ),
                    interconnect=link.id if link else None,
                )
                costs[key].kv_offload_s_per_token = planned.kv_offload_s_per_token
            cost: IterationCost | SpeculativeCost = costs[key]
            if self.speculation is not None:
                if key not in drafted:
                    drafted[key] = self._speculative_cost(costs[key], node, acc.id)
                cost = drafted[key].for_replica()
                self.speculative_costs.append(cost)
            kv = KVCache(self.memory[node.name].capacity_blocks, b.block_tokens)
            if b.prefix_caching:
                kv = self._prefix_cache(kv)
            policy = make_batch_policy(b.effective_policy, **b.policy_limits)
            replica = Replica(index, sim.env, cost, kv, self.records, policy, _unset, interval)
            self.hardware.append((acc.id, tp * pp))
            host = placer.host_memory(place, tp * pp)
            self.hosts.append(host)
            self._reserve_offload(host, place, planned)
            if b.preemption == "swap":
                assert b.swap_interconnect is not None
                swap_bytes_per_s = catalog.interconnects[b.swap_interconnect].bandwidth_gb_per_s * 1e9
                kv_bytes = self.memory[node.name].kv_bytes_per_token
                replica.swap = KVSwap(swap_bytes_per_s, kv_bytes, tp * pp, host)
            replicas.append(replica)
        self.replicas = replicas
        autoscale = None
        if spec.autoscale is not None:
            a = spec.autoscale
            cold = a.cold_start_s
            if cold is None:
                read = scenario.datacenter.storage.read_gbps
                assert read is not None  # checked at load time
                stored = weight_bytes(self.cfg, spec.precision) * self._weight_factor(self.places[0].node.accelerator)
                cold = stored / (read * 1e9 / 8)
            autoscale = Autoscale(a.min, a.max, a.target_utilization, a.target_queue, a.interval_s, cold)
        router_cls = resolve_router(spec.routing)
        router = router_cls(sim.stream(f"{spec.name}/router"))
        dis = spec.disaggregation
        if dis is None:
            self.system = ServingSystem(sim.env, replicas, router, self.records, autoscale)
        else:
            n = dis.prefill_replicas
            self.system = ServingSystem(
                sim.env,
                replicas[:n],
                router,
                self.records,
                decode_replicas=replicas[n:],
                decode_router=router_cls(sim.stream(f"{spec.name}/decode-router")),
                kv_transfer=self._kv_transfer(),
            )
        self.done = self.system.done

    def _prefix_cache(self, kv: KVCache) -> PrefixKVCache:
        """A prefix-caching cache of ``kv``'s size, knowing the traffic's shared prefixes (none: -1)."""
        traffic, n = self.traffic, len(self.traffic)
        group = traffic.prefix_group if traffic.prefix_group is not None else np.full(n, -1, dtype=np.int64)
        tokens = traffic.prefix_tokens if traffic.prefix_tokens is not None else np.zeros(n, dtype=np.int64)
        return PrefixKVCache(kv.capacity, kv.block_tokens, group, tokens)

    def _speculative_cost(self, target: IterationCost, node: Any, accelerator: str) -> SpeculativeCost:
        """The replica's cost with the draft model proposing on the same accelerators (sharded ``tp`` ways
        like the target, as vLLM 0.6.3 does by default; no host time of its own, no compression)."""
        assert self.speculation is not None
        link = load_catalog().interconnects[node.intra_node] if node.intra_node else None
        draft = IterationCost(
            self.speculation.draft,
            self.spec.precision,
            accelerator,
            self.spec.parallelism.tp,
            1,
            link.bandwidth_gb_per_s * 1e9 if link else None,
            interconnect=link.id if link else None,
        )
        return SpeculativeCost(target, draft, self.speculation)

    @classmethod
    def build(cls, spec: InferenceWorkload, run: RunServices) -> InferenceRunner:
        """The runner on the run's shared replica placer, its KV transfers on the run's network where they are
        flows, its replicas holding their accelerators in the run's scheduler (:meth:`attach`)."""
        placer = run.shared(SharedReplicaPlacer, lambda: SharedReplicaPlacer(run.scenario))
        network = run.need_network() if cls.needs_network(spec) else run.network
        runner = cls(spec, run.sim, run.scenario, placer, network)
        runner.attach(run.scheduler)
        return runner

    def horizon_s(self) -> float | None:
        """The last request's arrival (s)."""
        return float(self.traffic.arrival_s[-1]) if len(self.traffic) else None

    @classmethod
    def compare_summaries(cls, workloads: dict[str, dict[str, Any]], runners: list[Any]) -> None:
        """Compressed against uncompressed serving of the same requests (:func:`compare_with_uncompressed`)."""
        compare_with_uncompressed(workloads, runners)

    def _stage_hops(self, place: Place) -> tuple[StageHop, ...]:
        """The inter-node stage boundaries of a replica spanning nodes (none inside one node), each timed on
        the run's fabric (:func:`dcsim.serving.stagehop.measure_stage_hop`)."""
        if len(place.segments) < 2:
            return ()
        tp, pp = self.spec.parallelism.tp, self.spec.parallelism.pp
        dc, seed = self.scenario.datacenter, self.scenario.seed
        fabric = self.network.fabric if self.network is not None else build_fabric(dc, seed)
        if self._comm is None:  # an idle copy of the run's network: the probes load nothing of the run's
            self._comm = CommModel(fabric.graph, network_config(dc).routing, seed)
        servers = fabric.servers
        slots = [servers[f"{place.node.name}-{n}"][a] for n, a in place.slots(tp * pp)]
        hops = []
        last = -1
        for stages in place.stages_per_node(tp, pp)[:-1]:
            last += stages  # the last stage on this node sends to the first on the next
            hops.append(measure_stage_hop(self._comm, boundary_pairs(slots, tp, last)))
        return tuple(hops)

    def _reserve_offload(self, host: HostMemory, place: Place, planned: NodePlan) -> None:
        """Take the host memory of the replica's offloaded weights and KV cache (UserInputError naming the
        field if the node's host memory, shared with the replicas placed there before, cannot hold them)."""
        if self.spec.offload is None:
            return
        weights, kv = planned.offload_weight_bytes, planned.offload_kv_bytes
        for field, nbytes, what in (("weights_fraction", weights, "weights"), ("kv_fraction", kv, "KV cache")):
            if nbytes and not host.reserve(nbytes):
                raise UserInputError.single(
                    f"workloads[{self.workload_index}].offload.{field}",
                    f"{nbytes / 1e9:.1f} GB of offloaded {what} per replica do not fit in the host memory of "
                    + ", ".join(f"{place.node.name}-{i}" for i in place.node_indices)
                    + f" ({host.free / 1e9:.1f} GB of its memory_gb "
                    f"{place.node.memory_gb:g} left by the replicas and offloads placed there before)",
                )

    @staticmethod
    def needs_network(spec: InferenceWorkload) -> bool:
        """True if the workload's KV transfers are flows on the run's network (disaggregated serving
        without a fixed ``kv_transfer_gbps``)."""
        return spec.disaggregation is not None and spec.disaggregation.kv_transfer_gbps is None

    def _kv_transfer(self) -> KVTransfer:
        """Flows on the run's network between the replicas' accelerators (each sends its shard: its heads of
        its stage's layers), or, with ``kv_transfer_gbps``, a dedicated uncontended path at that rate."""
        if not self.needs_network(self.spec):
            return FixedRateTransfer(self.sim.env, self._transfer_time())
        if self.network is None:
            raise RuntimeError("disaggregated serving over the network needs the run's NetworkSession")
        servers = self.network.fabric.servers
        size = self.spec.parallelism.tp * self.spec.parallelism.pp
        endpoints = [
            [servers[f"{p.node.name}-{n}"][a] for n, a in p.slots(size)] for p in self.places[: len(self.replicas)]
        ]
        shard = self.memory[self.places[0].node.name].kv_bytes_per_token
        return NetworkTransfer(self.network.flows, endpoints, shard)

    def _weight_factor(self, accelerator: str) -> float:
        """Stored weight bytes relative to the dense served model (compression), on ``accelerator``."""
        return self.served.weight_factor(accelerator, self.spec.precision) if self.served is not None else 1.0

    def compression_summary(self, context: RunContext) -> dict[str, Any] | None:
        """The recipe's accuracy estimate and the cost of producing the compressed model (on the workload's
        first accelerator type, at the run's price of it): the ``compression`` part of COST."""
        if self.served is None:
            return None
        model = self.served.model
        accelerator = self.places[0].node.accelerator
        price = context.usd_per_accelerator_s.get(accelerator)
        produced = model.production_cost(
            accelerator, usd_per_accelerator_hour=price * 3600.0 if price is not None else None
        )
        self.compression_usd = produced.usd
        return {
            "recipe": self.spec.compression.written,
            "served_params": model.param_count(),
            "original_params": model.original.param_count(),
            "weight_bytes_factor": self._weight_factor(accelerator),
            "kv_bytes_factor": self.served.kv_factor(self.spec.precision),
            "accuracy": model.accuracy.to_dict(),
            "production": {
                "accelerator": accelerator,
                "accelerator_hours": produced.accelerator_hours,
                "usd": produced.usd,
                "basis": list(produced.basis),
            },
            # filled by compare_with_uncompressed when an uncompressed workload serves the same requests
            "versus_uncompressed": None,
        }

    def _transfer_time(self) -> Callable[[int], float]:
        """Seconds to send a request's KV cache (all layers and heads) of ``tokens`` tokens from a prefill
        replica to a decode replica over a dedicated path at ``kv_transfer_gbps``: one NCCL point-to-point
        send across the network (:func:`~dcsim.network.collectives.p2p_model.send_time_s`: its latency and
        protocol, the bytes at that rate); nothing else shares the path."""
        dis = self.spec.disaggregation
        assert dis is not None and dis.kv_transfer_gbps is not None
        bytes_per_s = dis.kv_transfer_gbps * 1e9 / 8
        size = self.spec.parallelism.tp * self.spec.parallelism.pp
        per_token = self.memory[self.places[0].node.name].kv_bytes_per_token * size

        def seconds(tokens: int) -> float:
            return send_time_s(tokens * per_token, bytes_per_s, "network")

        return seconds

    def replica_accelerators(self, cluster: Any) -> list[list[int]]:
        """The cluster's accelerator indices of each replica (its place: node type, nodes, accelerators)."""
        nodes: dict[str, list[Any]] = {}
        for node in cluster.nodes:
            nodes.setdefault(node.node_type, []).append(node)
        size = self.spec.parallelism.tp * self.spec.parallelism.pp
        return [
            [nodes[place.node.name][n].accelerators[a] for n, a in place.slots(size)]
            for place in self.places[: len(self.replicas)]
        ]

    def attach(self, scheduler: Any) -> None:
        """Draw the replicas' accelerators from the cluster scheduler's pool while they are switched on: the
        scheduler holds them for the replica (preempting batch jobs that run there, as a higher priority class
        would) and gives them back when the autoscaler switches the replica off."""
        accelerators = self.replica_accelerators(scheduler.cluster)

        def power(index: int, on: bool) -> None:
            owner = f"{self.spec.name}/replica-{index}"
            if on:
                scheduler.hold(owner, accelerators[index])
            else:
                scheduler.unhold(owner)

        self.system.on_power = power
        self.scheduler = scheduler
        self.contention = replica_contention(self, scheduler)  # replicas spanning nodes share the network

    def add_busy_time(self, busy_s: np.ndarray, cluster: Any, end_s: float) -> None:
        """Add each replica's busy iteration time (to ``end_s``) to ``busy_s`` of the cluster's accelerators
        it occupies, so that the datacenter's utilization and energy include the serving work."""
        for replica, indices in zip(self.replicas, self.replica_accelerators(cluster), strict=True):
            busy_s[indices] += min(replica.busy_s, end_s)

    def start(self) -> None:
        """Start the arrivals (offset by the workload's ``arrival_s``)."""
        self.system.start()

    # ------------------------------------------------------------------ results
    def _window_s(self, end_s: float) -> float:
        col = self.records.column
        if len(self.records) == 0:
            return 0.0
        ends = col("end_s")
        last = float(np.nanmax(ends)) if np.any(ends == ends) else end_s
        return max(min(last, end_s) - float(col("arrival_s")[0]), 0.0)

    def summary(self, context: RunContext) -> dict[str, Any]:
        """The contract's inference figures, plus the pool, the KV cache and the request counts."""
        end_s = context.end_s
        self.system.close(end_s)
        table = self.records.table(self.spec.name)
        done = table[table["status"] == "completed"]
        counts = self.records.counts()
        window = self._window_s(end_s)
        encoder = self.cfg.family == "encoder"
        # the tokens throughput and $ per million tokens count: generated ones, or an encoder's input tokens
        counted = float(done["prompt_tokens" if encoder else "output_tokens"].sum())
        cost = energy_j = serving_cost = 0.0
        for replica, on_s in zip(self.replicas, self.system.on_s, strict=True):
            place = self.places[replica.index]
            power = node_power(place.node)
            busy = min(replica.busy_s, on_s)
            accelerator, accelerators = self.hardware[replica.index]
            price_per_s = context.usd_per_accelerator_s[accelerator] * accelerators
            cost += price_per_s * on_s
            serving_cost += price_per_s * min(on_s, window)
            energy_j += accelerators * (busy * power.max_w + (on_s - busy) * power.idle_w)
        energy_j *= context.pue
        self.serving_usd, self.counted_tokens = serving_cost, counted
        slo = self.spec.slo
        attainment = None
        if slo.ttft_ms is not None or slo.tpot_ms is not None:
            ok = np.ones(len(done), dtype=bool)
            if slo.ttft_ms is not None:
                ok &= done["ttft_ms"].to_numpy() <= slo.ttft_ms
            if slo.tpot_ms is not None:
                tpot = done["tpot_ms"].to_numpy()
                ok &= ~(tpot > slo.tpot_ms)  # single-token outputs have no TPOT and meet it
            judged = len(done) + counts["dropped"]
            attainment = float(ok.sum() / judged) if judged else None
        on_s = sum(self.system.on_s)
        busy_s = sum(min(r.busy_s, s) for r, s in zip(self.replicas, self.system.on_s, strict=True))
        batch = self.timeline()
        return {
            "kind": "inference",
            "model": self.cfg.name,
            "requests": len(self.records),
            "requests_completed": counts["completed"],
            "requests_dropped": counts["dropped"],
            "requests_in_flight": counts["queued"] + counts["running"],
            "requests_not_arrived": counts["pending"],
            "throughput_tokens_per_s": counted / window if window > 0 else 0.0,
            "input_tokens_per_s": float(done["prompt_tokens"].sum()) / window if window > 0 else 0.0,
            "requests_per_s": len(done) / window if window > 0 else 0.0,
            "ttft_ms": quantiles(done["ttft_ms"].to_numpy()),
            "tpot_ms": quantiles(done["tpot_ms"].dropna().to_numpy()),
            "e2e_ms": quantiles(done["e2e_ms"].to_numpy()),
            "queue_ms": quantiles(done["queue_ms"].to_numpy()),
            "slo_attainment": attainment,
            "cost_usd": cost,
            "usd_per_million_tokens": cost / counted * 1e6 if counted else None,
            # the pool's cost over its own traffic window (first arrival to last completion) per million
            # generated tokens: what the tokens cost while serving; at saturation, the cost at capacity
            "usd_per_million_tokens_serving": serving_cost / counted * 1e6 if counted else None,
            "energy_kwh": energy_j / 3.6e6,
            "replicas": len(self.replicas) if self.spec.autoscale is None else self.spec.autoscale.max,
            "replica_hours": on_s / 3600.0,
            # nodes one replica spans (1 inside a node; a pipeline spanning nodes: one per group of stages)
            "nodes_per_replica": max((len(p.node_indices) for p in self.places), default=1),
            "accelerators": sorted({accelerator for accelerator, _ in self.hardware}),
            "utilization": busy_s / on_s if on_s > 0 else 0.0,
            "mean_batch_size": float(batch["batch_size"].mean()) if len(batch) else 0.0,
            "preemptions": int(sum(r.preemptions for r in self.replicas)),
            "kv_capacity_tokens": {
                name: 0 if encoder else m.capacity_blocks * m.block_tokens for name, m in sorted(self.memory.items())
            },
            # per node type, where one accelerator's memory goes (GB) and the replica's KV capacity (tokens)
            "accelerator_memory": {name: m.summary() for name, m in sorted(self.memory.items())},
            "kv_peak_occupancy": 0.0
            if encoder
            else max((r.kv.peak / r.kv.capacity for r in self.replicas), default=0.0),
            "by_accelerator": self._by_accelerator(done),
            "kv_transfers": self.system.transfers,
            "kv_transfer_ms": quantiles(np.frombuffer(self.system.transfer_s, dtype=np.float64) * 1e3),
            "swapped_tokens": int(sum(r.swapped_tokens for r in self.replicas)),
            "swap_fallbacks": int(sum(r.swap_fallbacks for r in self.replicas)),
            # the fullest host memory of the nodes the replicas are on (offloads and swapped KV caches of every
            # replica there, whatever its workload)
            "host_memory_peak_gb": max((h.peak for h in self.hosts), default=0.0) / 1e9,
            "scale_events": len(self.system.scale_events),
            "max_live_replicas": max((n for _, n in self.system.scale_events), default=len(self.replicas)),
            "jobs_preempted": self.scheduler.service_preemptions.get(self.spec.name, 0) if self.scheduler else 0,
            "compression": self.compression_summary(context),
            # an encoder generates nothing: its throughput and $ per million tokens count the input tokens
            **({"tokens_counted": "input"} if encoder else {}),
            **(
                {"speculative": speculation_summary(self.speculation, self.speculative_costs)}
                if self.speculation is not None
                else {}
            ),
            **(self.contention.summary(end_s) if self.contention is not None else {}),
            **({"prefix_cache": self._prefix_summary()} if self.spec.batching.prefix_caching else {}),
        }

    def _prefix_summary(self) -> dict[str, float | int]:
        """Prefix caching over the replicas: hit rate (full prompt blocks found cached / looked up), prefill
        tokens saved and their share of the prefill tokens asked, cached blocks evicted and left."""
        caches = [r.prefix for r in self.replicas if r.prefix is not None]
        total = {key: sum(c.summary()[key] for c in caches) for key in caches[0].summary()} if caches else {}
        looked, asked = total.get("blocks_looked_up", 0), total.get("prefill_tokens", 0)
        total["hit_rate"] = total.get("blocks_hit", 0) / looked if looked else 0.0
        total["saved_share"] = total.get("prefill_tokens_saved", 0) / asked if asked else 0.0
        return total

    def _by_accelerator(self, done: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Per accelerator type (mixed pools): replicas, completed requests and their latencies."""
        kinds = np.array([accelerator for accelerator, _ in self.hardware])
        out = {}
        for kind in sorted(set(kinds)):
            served = done[np.isin(done["replica"].to_numpy(), np.flatnonzero(kinds == kind))]
            out[kind] = {
                "replicas": int(np.sum(kinds == kind)),
                "requests_completed": len(served),
                "ttft_ms": quantiles(served["ttft_ms"].to_numpy()),
                "tpot_ms": quantiles(served["tpot_ms"].dropna().to_numpy()),
            }
        return out

    def tables(self, context: RunContext) -> dict[str, pd.DataFrame]:
        """The ``requests``, ``replica_timeline`` and ``replicas`` tables' rows (call after :meth:`summary`)."""
        return {
            "requests": self.records.table(self.spec.name),
            "replica_timeline": self.timeline(),
            "replicas": self._replicas_table(),
        }

    def _replicas_table(self) -> pd.DataFrame:
        """One row per replica: where it ran, role, time on and busy, utilization, iterations, preemptions,
        KV capacity and peak occupancy (call after :meth:`summary`, which closes the books at the run's end)."""
        rows = []
        for replica, on_s in zip(self.replicas, self.system.on_s, strict=True):
            place = self.places[replica.index]
            busy = min(replica.busy_s, on_s)
            rows.append(
                {
                    "workload": self.spec.name,
                    "replica": replica.index,
                    "role": self.system.roles[replica.index],
                    "node_type": place.node.name,
                    "node": place.node_index,
                    "nodes": len(place.node_indices),
                    "accelerator": self.hardware[replica.index][0],
                    "accelerators": self.hardware[replica.index][1],
                    "on_s": on_s,
                    "busy_s": busy,
                    "utilization": busy / on_s if on_s > 0 else 0.0,
                    "iterations": replica.iterations_run,
                    "preemptions": replica.preemptions,
                    "swap_fallbacks": replica.swap_fallbacks,
                    "kv_capacity_blocks": replica.kv.capacity,
                    "kv_peak_occupancy": replica.kv.peak / replica.kv.capacity,
                }
            )
        return pd.DataFrame(rows)

    def timeline(self) -> pd.DataFrame:
        """Samples per replica: time, batch size, KV blocks used and occupancy, queued requests."""
        rows = [s for r in self.replicas for s in r.samples]
        frame = pd.DataFrame(rows, columns=["time_s", "replica", "batch_size", "kv_blocks", "queued"])
        capacity = np.array([r.kv.capacity for r in self.replicas])
        frame["kv_occupancy"] = (
            frame["kv_blocks"].to_numpy() / capacity[frame["replica"].to_numpy()] if len(frame) else []
        )
        frame.insert(0, "workload", self.spec.name)
        return frame.sort_values(["time_s", "replica"], kind="stable").reset_index(drop=True)


def serving_period_s(spec: InferenceWorkload, traffic: Traffic) -> float:
    """The serving period a workload's traffic stands for: ``traffic.duration_s``, or a trace's span."""
    if spec.traffic.duration_s is not None:
        return float(spec.traffic.duration_s)
    return float(traffic.arrival_s[-1] - traffic.arrival_s[0]) if len(traffic) else 0.0


def compare_with_uncompressed(workloads: dict[str, dict[str, Any]], runners: list[InferenceRunner]) -> None:
    """COST's compression term against the inference savings: for each compressed inference workload whose
    requests an uncompressed workload of the same model also serves (same ``traffic``, with a shared
    ``traffic.stream``), fill its ``compression.versus_uncompressed`` with both pools' cost over their own
    traffic windows, the savings over the serving period (``traffic.duration_s``), what producing the model
    cost, the net, and the serving time at this traffic after which the compression has paid for itself
    (``break_even_s``; None when it saves nothing). Call after every runner's :meth:`InferenceRunner.summary`."""
    plain = [r for r in runners if r.served is None and r.spec.traffic.stream is not None]
    for runner in runners:
        entry = workloads[runner.spec.name].get("compression")
        if runner.served is None or entry is None:
            continue
        same = [
            r
            for r in plain
            if r.spec.model == runner.spec.model
            and r.spec.traffic == runner.spec.traffic
            and r.spec.arrival_s == runner.spec.arrival_s
        ]
        if not same:
            continue
        base = same[0]
        period = serving_period_s(runner.spec, runner.traffic)
        savings = base.serving_usd - runner.serving_usd
        produced = runner.compression_usd
        entry["versus_uncompressed"] = {
            "workload": base.spec.name,
            "serving_period_s": period,
            "tokens": runner.counted_tokens,
            "serving_usd": runner.serving_usd,
            "uncompressed_serving_usd": base.serving_usd,
            "savings_usd": savings,
            "production_usd": produced,
            "net_savings_usd": savings - produced,
            "break_even_s": period * produced / savings if savings > 0 else None,
        }


def _unset(replica: Replica, rid: int) -> None:
    raise RuntimeError("replica used before its serving system set on_complete")
