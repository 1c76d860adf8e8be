"""``kind: inference``: LLM serving on replicas of a decoder model (contract fields, plus a few extras).

Extras beyond the contract: ``accelerator`` (only node types with this accelerator host replicas; default:
every node type, in order, which makes a mixed pool when they differ), ``autoscale.interval_s``,
``autoscale.target_queue``, ``autoscale.cold_start_s``, ``batching.block_tokens``, ``batching.preemption``
(``recompute`` or ``swap`` over ``batching.swap_interconnect``), ``traffic.cv`` (gamma arrivals),
``traffic.arrival: diurnal`` with ``amplitude`` and ``period_s``, ``traffic.time_scale`` for traces,
``traffic.stream`` (shared request draws), ``disaggregation`` (prefill/decode replicas) and ``offload``
(weights in host memory). See ``docs/serving.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from dcsim.errors import Problem
from dcsim.scenario.fields import AcceleratorId, Count, DistributionField, InterconnectId, Number
from dcsim.scenario.schema import Section
from dcsim.scenario.workloads import WorkloadSpec, register_workload_kind

if TYPE_CHECKING:
    from dcsim.models.transformer import TransformerConfig
    from dcsim.scenario.schema import NodeType, Scenario

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
INLINE_KEYS = {"seq_len": "max_seq_len"}


class ServingParallelism(Section):
    """Tensor- and pipeline-parallel degrees inside one replica (its ``tp x pp`` accelerators share a node)."""

    tp: Count = Field(default=1, ge=1)
    pp: Count = Field(default=1, ge=1)


class BatchingSpec(Section):
    """Batching policy (``continuous``, ``static`` or ``chunked``; ``chunked_prefill: true`` selects
    ``chunked``), sequences per batch, tokens per iteration, KV-cache block size (tokens), and how a sequence
    is preempted when blocks run out: ``recompute`` or ``swap`` to host memory over ``swap_interconnect``."""

    policy: Literal["continuous", "static", "chunked"] = "continuous"
    max_batch_size: Count = Field(default=256, ge=1)
    max_batch_tokens: Count = Field(default=8192, ge=1)
    chunked_prefill: bool = False
    block_tokens: Count = Field(default=16, ge=1)
    preemption: Literal["recompute", "swap"] = "recompute"
    swap_interconnect: InterconnectId | None = None

    @property
    def effective_policy(self) -> str:
        """``chunked`` when ``chunked_prefill`` is set on a continuous policy, else ``policy``."""
        if self.chunked_prefill and self.policy == "continuous":
            return "chunked"
        return self.policy

    @model_validator(mode="after")
    def _consistent(self) -> BatchingSpec:
        if self.chunked_prefill and self.policy == "static":
            raise ValueError("chunked_prefill needs policy continuous (or chunked), not static")
        if self.preemption == "swap" and self.swap_interconnect is None:
            raise ValueError("preemption: swap needs swap_interconnect (the host link, e.g. pcie4 or pcie5)")
        return self


class AutoscaleSpec(Section):
    """Replica bounds and targets; ``cold_start_s`` default: the weights read at the storage's read_gbps."""

    min: Count = Field(ge=0)
    max: Count = Field(ge=1)
    target_utilization: Number | None = Field(default=None, gt=0, le=1)
    target_queue: Number | None = Field(default=None, gt=0)
    interval_s: Number = Field(default=10.0, gt=0)
    cold_start_s: Number | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleSpec:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        if self.target_utilization is None and self.target_queue is None:
            raise ValueError("give target_utilization (0-1] or target_queue (requests per replica)")
        return self


class DisaggregationSpec(Section):
    """Separate prefill and decode replicas: the first ``prefill_replicas`` of the workload's replicas only
    prefill; the KV cache of each prefilled request is sent to a decode replica at ``kv_transfer_gbps``
    (default: the prefill replica's share of its node's NIC bandwidth)."""

    prefill_replicas: Count = Field(ge=1)
    kv_transfer_gbps: Number | None = Field(default=None, gt=0)


class OffloadSpec(Section):
    """Weights kept in host memory: ``weights_fraction`` of each accelerator's share, streamed over the
    ``link`` (an interconnect id, e.g. ``pcie4``) every iteration, overlapped with compute."""

    weights_fraction: Number = Field(gt=0, le=1)
    link: InterconnectId


class TrafficSpec(Section):
    """Request arrivals and token lengths (or a CSV trace ``arrival_s,prompt_tokens,output_tokens``).
    ``stream`` names the random streams drawn from (default: the workload's name): workloads with the same
    ``stream`` and traffic fields get identical requests, for side-by-side comparisons."""

    arrival: Literal["poisson", "gamma", "diurnal", "trace"] = "poisson"
    rate_per_s: Number | None = Field(default=None, gt=0)
    duration_s: Number | None = Field(default=None, gt=0)
    cv: Number | None = Field(default=None, gt=0)
    amplitude: Number = Field(default=0.5, ge=0, le=1)
    period_s: Number = Field(default=86400.0, gt=0)
    prompt_tokens: DistributionField = None
    output_tokens: DistributionField = None
    trace: str | None = None
    time_scale: Number = Field(default=1.0, gt=0)
    stream: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> TrafficSpec:
        if self.arrival == "trace":
            if self.trace is None:
                raise ValueError("arrival: trace needs trace (a CSV file arrival_s,prompt_tokens,output_tokens)")
            return self
        if self.trace is not None:
            raise ValueError("trace is read only with arrival: trace")
        missing = [
            n for n in ("rate_per_s", "duration_s", "prompt_tokens", "output_tokens") if getattr(self, n) is None
        ]
        if missing:
            raise ValueError(f"{self.arrival} arrivals need {', '.join(missing)}")
        if self.arrival == "gamma" and self.cv is None:
            raise ValueError("gamma arrivals need cv (coefficient of variation of the gaps)")
        return self


class SloSpec(Section):
    """Latency objectives a request must meet (both, where given) to count as attained."""

    ttft_ms: Number | None = Field(default=None, gt=0)
    tpot_ms: Number | None = Field(default=None, gt=0)


@register_workload_kind("inference")
class InferenceWorkload(WorkloadSpec):
    """LLM serving: ``replicas`` (or ``autoscale``) copies of ``model`` behind a ``routing`` policy, fed by
    ``traffic``, batched per ``batching``, judged against ``slo``."""

    kind: Literal["inference"] = "inference"
    model: str | dict[str, Any]
    precision: Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8"] = "fp16"
    compression: dict[str, Any] = Field(default_factory=dict)
    replicas: Count | None = Field(default=None, ge=1)
    autoscale: AutoscaleSpec | None = None
    accelerator: AcceleratorId | None = None
    parallelism: ServingParallelism = Field(default_factory=ServingParallelism)
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    routing: str = "least_loaded"
    traffic: TrafficSpec
    slo: SloSpec = Field(default_factory=SloSpec)
    disaggregation: DisaggregationSpec | None = None
    offload: OffloadSpec | None = None
    arrival_s: Number = Field(default=0.0, ge=0)

    @field_validator("compression")
    @classmethod
    def _valid_recipe(cls, value: dict[str, Any]) -> dict[str, Any]:
        from dcsim.compression import parse_recipe

        if value:
            parse_recipe(value)  # ValueError naming the recipe's field
        return value

    def served(self) -> Any:
        """The compression recipe applied to the served model (:class:`dcsim.serving.compressed.ServedCompression`),
        or None without one. ValueError naming the field."""
        from dcsim.serving.compressed import served_compression

        return served_compression(self.base_architecture(), self.compression, self.precision)

    @field_validator("routing")
    @classmethod
    def _known_router(cls, value: str) -> str:
        from dcsim.serving.routing import resolve_router

        resolve_router(value)
        return value

    @model_validator(mode="after")
    def _replicas_or_autoscale(self) -> InferenceWorkload:
        if (self.replicas is None) == (self.autoscale is None):
            raise ValueError("give exactly one of replicas and autoscale")
        if self.disaggregation is not None:
            if self.replicas is None:
                raise ValueError("disaggregation needs a fixed replicas count (not autoscale)")
            if self.disaggregation.prefill_replicas >= self.replicas:
                raise ValueError(
                    f"disaggregation.prefill_replicas ({self.disaggregation.prefill_replicas}) must leave decode "
                    f"replicas among the {self.replicas} replicas"
                )
            if self.batching.effective_policy == "static":
                raise ValueError("disaggregation needs continuous or chunked batching, not static")
        return self

    @property
    def max_replicas(self) -> int:
        """Replicas the workload may run at once (accelerators are reserved for all of them)."""
        return self.replicas if self.replicas is not None else self.autoscale.max  # type: ignore[union-attr]

    def architecture(self) -> TransformerConfig:
        """The served architecture, after the compression recipe's architecture changes (distillation,
        structured pruning, layer dropping). ValueError naming what is wrong."""
        served = self.served()
        return served.config if served is not None else self.base_architecture()

    def base_architecture(self) -> TransformerConfig:
        """The model named by ``model`` (ValueError naming what is wrong)."""
        from dcsim.models import TransformerConfig, get_model

        if isinstance(self.model, str):
            try:
                cfg = get_model(self.model)
            except KeyError as error:
                raise ValueError(str(error.args[0])) from None
        else:
            fields = {INLINE_KEYS.get(k, k): v for k, v in self.model.items()}
            fields.setdefault("name", "inline")
            try:
                cfg = TransformerConfig(**fields)
            except TypeError as error:
                raise ValueError(f"inline architecture: {error}") from None
        if not isinstance(cfg, TransformerConfig) or cfg.family != "decoder":
            raise ValueError(f"{getattr(cfg, 'name', self.model)!r} is not a decoder transformer: serving needs one")
        if getattr(cfg, "experts", 1) > 1:
            raise ValueError(f"{cfg.name!r} is a mixture of experts: serving it is not modelled yet")
        return cfg

    def host_nodes(self, scenario: Scenario) -> list[NodeType]:
        """Node types that may host replicas (all, or those with ``accelerator``)."""
        return [n for n in scenario.datacenter.nodes if self.accelerator in (None, n.accelerator)]

    def _placed_after_earlier_workloads(self, scenario: Scenario) -> int:
        """Replicas of this workload that fit once the inference workloads listed before it are placed."""
        from dcsim.serving.placement import ReplicaPlacer

        placer = ReplicaPlacer(scenario.datacenter.nodes)
        for workload in scenario.workloads:
            if isinstance(workload, InferenceWorkload):
                size = workload.parallelism.tp * workload.parallelism.pp
                places = placer.take(workload.host_nodes(scenario), size, workload.max_replicas)
                if workload is self:
                    return len(places)
        return 0

    def trace_path(self, base_dir: str) -> Path:
        """The trace file: next to the scenario if it exists there, else relative to the working directory."""
        assert self.traffic.trace is not None
        beside = Path(base_dir) / self.traffic.trace
        return beside if beside.exists() or Path(self.traffic.trace).is_absolute() else Path(self.traffic.trace)

    def check(self, scenario: Scenario) -> list[Problem]:
        from dcsim.catalog import load_catalog
        from dcsim.models.inference import kv_bytes_per_token
        from dcsim.serving.costs import replica_memory

        try:
            self.base_architecture()
        except ValueError as error:
            return [Problem("model", str(error))]
        try:
            served = self.served()
            cfg = self.architecture()
        except ValueError as error:
            return [Problem("compression", str(error))]
        tp, pp = self.parallelism.tp, self.parallelism.pp
        try:
            kv_bytes_per_token(cfg, self.precision, tp)
        except ValueError as error:
            return [Problem("parallelism.tp", str(error))]
        if pp > cfg.layers:
            return [Problem("parallelism.pp", f"must be <= layers ({cfg.layers})")]
        nodes = self.host_nodes(scenario)
        if not nodes:
            return [Problem("accelerator", f"no node type has {self.accelerator!r}")]
        per_replica = tp * pp
        problems = []
        usable = [n for n in nodes if n.accelerators_per_node >= per_replica]
        if not usable:
            most = max(n.accelerators_per_node for n in nodes)
            return [Problem("parallelism", f"tp x pp = {per_replica} accelerators exceed a node's {most}")]
        if per_replica > 1 and any(n.intra_node is None for n in usable):
            return [Problem("parallelism", "tp or pp > 1 needs intra_node (the interconnect) on the node types")]
        slots = sum(n.count * (n.accelerators_per_node // per_replica) for n in usable)
        field = "replicas" if self.replicas is not None else "autoscale.max"
        if self.max_replicas > slots:
            problems.append(
                Problem(
                    field,
                    f"{self.max_replicas} replicas of {per_replica} accelerators need more than the {slots} places",
                )
            )
        elif (placed := self._placed_after_earlier_workloads(scenario)) < self.max_replicas:
            problems.append(
                Problem(
                    field,
                    f"only {placed} of {self.max_replicas} replicas fit on the accelerators left by the "
                    "inference workloads before this one",
                )
            )
        catalog = load_catalog()
        for node in usable:
            acc = catalog.accelerators[node.accelerator]
            if self.precision not in acc.peak_tflops and self.precision != "tf32":
                problems.append(Problem("precision", f"{acc.id} has no {self.precision} units"))
                continue
            mem = replica_memory(
                cfg,
                self.precision,
                node.memory_gb if acc.id == "host-cpu" and node.memory_gb else acc.memory_gb,
                tp,
                pp,
                self.batching.max_batch_tokens,
                self.batching.max_batch_size,
                self.batching.block_tokens,
                self.offload.weights_fraction if self.offload else 0.0,
                served.weight_factor(acc.id, self.precision) if served is not None else 1.0,
                served.kv_factor(self.precision) if served is not None else 1.0,
            )
            if not mem.fits:
                problems.append(
                    Problem(
                        "model",
                        f"{cfg.name} does not fit on {acc.id} with tp={tp}, pp={pp}: weights "
                        f"{mem.weight_bytes / 1e9:.1f} GB + activations {mem.activation_bytes / 1e9:.1f} GB per "
                        f"accelerator of {acc.memory_gb:g} GB leave no KV cache",
                    )
                )
        if self.autoscale is not None and self.autoscale.cold_start_s is None:
            if scenario.datacenter.storage.read_gbps is None:
                problems.append(
                    Problem(
                        "autoscale.cold_start_s",
                        "give cold_start_s, or datacenter.storage.read_gbps to load the weights from storage",
                    )
                )
        dis = self.disaggregation
        if dis is not None and dis.kv_transfer_gbps is None and any(n.nics is None for n in usable):
            problems.append(
                Problem("disaggregation.kv_transfer_gbps", "give it, or nics on the node types (the KV transfer path)")
            )
        if self.traffic.arrival == "trace":
            from dcsim.errors import UserInputError
            from dcsim.serving.traffic import read_trace

            try:
                read_trace(self.trace_path(scenario.base_dir))
            except UserInputError as error:
                problems += [Problem(f"traffic.trace ({p.path})", p.message) for p in error.problems]
        return problems
