"""``kind: inference``: serving on replicas of a decoder (LLM: prefill, then decode with a KV cache) or an
encoder (BERT-style classification or embedding: one forward pass per request) transformer (contract fields,
plus a few extras).

Extras beyond the contract: ``accelerator`` (only node types with this accelerator host replicas; default:
every node type, in order, which makes a mixed pool when they differ), ``autoscale.interval_s``,
``autoscale.target_queue``, ``autoscale.cold_start_s``, ``batching.block_tokens``, ``batching.preemption``
(``recompute`` or ``swap`` over ``batching.swap_interconnect``), ``traffic.cv`` (gamma arrivals),
``traffic.arrival: diurnal`` with ``amplitude`` and ``period_s``, ``traffic.time_scale`` for traces,
``traffic.stream`` (shared request draws), ``disaggregation`` (prefill/decode replicas), ``offload``
(weights and KV cache in host memory), ``gpu_memory_utilization`` (the share of each accelerator's memory
the server takes, vLLM's engine argument) and ``host_overhead`` (the serving engine's host time per iteration:
``auto``, ``vllm_v0``, ``per_step_rpc`` or ``none``). See ``docs/serving.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator

from dcsim.compression.recipe import Recipe, RecipeField
from dcsim.errors import Problem
from dcsim.scenario.fields import AcceleratorId, Count, Flag, InterconnectId, Number, WholeDistributionField
from dcsim.scenario.files import scenario_file
from dcsim.scenario.schema import Section
from dcsim.scenario.workloads import WorkloadSpec, register_workload_kind

if TYPE_CHECKING:
    from dcsim.models.transformer import TransformerConfig
    from dcsim.scenario.schema import NodeType, Scenario
    from dcsim.serving.compressed import ServedCompression
    from dcsim.serving.speculative import Speculation

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
INLINE_KEYS = {"seq_len": "max_seq_len"}


def _check_inline_fields(fields: dict[str, Any]) -> None:
    """ValueError naming the first unknown or missing field of an inline architecture (by its scenario name,
    ``seq_len`` for ``max_seq_len``)."""
    import dataclasses

    from dcsim.models.transformer import TransformerConfig

    outer = {value: key for key, value in INLINE_KEYS.items()}
    known = {f.name: f for f in dataclasses.fields(TransformerConfig)}
    unknown = sorted(str(key) for key in fields if key not in known)
    if unknown:
        options = ", ".join(sorted(outer.get(name, name) for name in known if name not in ("name", "source")))
        raise ValueError(f"{unknown[0]}: unknown field of an inline architecture (known: {options})")
    missing = [
        outer.get(name, name)
        for name, f in known.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in fields
    ]
    if missing:
        raise ValueError(f"{missing[0]}: required for an inline architecture (missing: {', '.join(missing)})")


class ServingParallelism(Section):
    """Tensor- and pipeline-parallel degrees inside one replica: its ``tp x pp`` accelerators share a node,
    or, when they do not fit one, its pipeline stages span consecutive nodes (each ``tp`` group in one node)."""

    tp: Count = Field(default=1, ge=1)
    pp: Count = Field(default=1, ge=1)


class BatchingSpec(Section):
    """Batching policy (a registered name: ``static``, ``orca`` alias ``continuous``, ``vllm``, ``sarathi``
    alias ``chunked``, ``trtllm``; or ``module:Class`` naming a :class:`dcsim.serving.batching.BatchPolicy`
    subclass; ``chunked_prefill: true`` turns ``orca`` and ``vllm`` into ``sarathi``, as vLLM's
    ``enable_chunked_prefill`` does, and enables ``trtllm``'s chunked context), sequences per batch
    (``max_batch_size``, alias vLLM's ``max_num_seqs``), tokens per iteration (``max_batch_tokens``, aliases
    vLLM's ``max_num_batched_tokens`` and TensorRT-LLM's ``max_num_tokens``), ``watermark`` (``vllm`` only:
    the share of KV blocks an admission leaves free, default 0.01), KV-cache block size (tokens), and how a
    sequence is preempted when blocks run out: ``recompute`` or ``swap`` to host memory over
    ``swap_interconnect``."""

    policy: str = "continuous"
    max_batch_size: Count = Field(default=256, ge=1, validation_alias=AliasChoices("max_batch_size", "max_num_seqs"))
    max_batch_tokens: Count = Field(
        default=8192,
        ge=1,
        validation_alias=AliasChoices("max_batch_tokens", "max_num_batched_tokens", "max_num_tokens"),
    )
    chunked_prefill: Flag = False
    watermark: Number | None = Field(default=None, ge=0, lt=1)
    block_tokens: Count = Field(default=16, ge=1)
    preemption: Literal["recompute", "swap"] = "recompute"
    swap_interconnect: InterconnectId | None = None
    #: automatic prefix caching (vLLM's ``enable_prefix_caching``): full KV blocks of shared prefixes are
    #: shared and kept, LRU-evicted (:mod:`dcsim.serving.prefixcache`)
    prefix_caching: Flag = False

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for names in (
                ("max_batch_size", "max_num_seqs"),
                ("max_batch_tokens", "max_num_batched_tokens", "max_num_tokens"),
            ):
                given = [name for name in names if name in data]
                if len(given) > 1:
                    raise ValueError(f"{' and '.join(given)} are one field: give one of them")
        return data

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        from dcsim.serving.batching import resolve_batch_policy

        resolve_batch_policy(value)
        return value

    @property
    def effective_policy(self) -> str:
        """The policy that runs: ``sarathi`` when ``chunked_prefill`` is set on ``orca`` or ``vllm`` (vLLM's
        ``enable_chunked_prefill`` is its ``_schedule_chunked_prefill``), else ``policy``'s registered name."""
        from dcsim.serving.batching import BATCH_POLICIES

        name = BATCH_POLICIES.canonical(self.policy)
        if self.chunked_prefill and name in ("orca", "vllm"):
            return "sarathi"
        return name

    @property
    def chunks_prompts(self) -> bool:
        """True if prompts are prefilled in chunks (which needs causal attention)."""
        from dcsim.serving.batching import resolve_batch_policy

        return resolve_batch_policy(self.effective_policy).chunks_prompts or self.chunked_prefill

    @property
    def whole_batch(self) -> bool:
        """True for request-level batching (``static``), which neither chunks nor hands caches over."""
        from dcsim.serving.batching import resolve_batch_policy

        return resolve_batch_policy(self.effective_policy).whole_batch

    @property
    def policy_limits(self) -> dict[str, Any]:
        """The keyword arguments the policy is built with."""
        limits: dict[str, Any] = {
            "max_batch_size": self.max_batch_size,
            "max_batch_tokens": self.max_batch_tokens,
            "chunked": self.chunked_prefill,
        }
        if self.watermark is not None:
            limits["watermark"] = self.watermark
        return limits

    @model_validator(mode="after")
    def _consistent(self) -> BatchingSpec:
        name = self.effective_policy
        if self.chunked_prefill and self.whole_batch:
            raise ValueError(
                "chunked_prefill needs an iteration-level policy (orca, vllm, sarathi, trtllm), not static"
            )
        if self.watermark is not None and name != "vllm":
            raise ValueError(f"watermark is vllm's (without chunked_prefill), not {name}'s")
        if self.preemption == "swap" and self.swap_interconnect is None:
            raise ValueError("preemption: swap needs swap_interconnect (the host link, e.g. pcie4 or pcie5)")
        if self.prefix_caching and self.whole_batch:
            raise ValueError("prefix_caching needs an iteration-level policy (orca, vllm, sarathi, trtllm), not static")
        if self.prefix_caching and self.preemption == "swap":
            raise ValueError("prefix_caching is modelled with preemption: recompute only")
        return self


class PrefixSpec(Section):
    """Shared prefixes (system prompts): ``share`` of the requests start with one of ``groups`` prefixes of
    ``tokens`` tokens each, chosen uniformly; the prefix is prepended to the request's drawn (or trace)
    prompt. What prefix caching (``batching.prefix_caching``) can reuse."""

    groups: Count = Field(ge=1)
    tokens: Count = Field(ge=1)
    share: Number = Field(default=1.0, ge=0, le=1)


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
    """Host memory in place of accelerator memory, over the ``link`` (an interconnect id, e.g. ``pcie4``):
    ``weights_fraction`` of each accelerator's weights, streamed every iteration, overlapped with compute;
    ``kv_fraction`` of every sequence's KV cache (FlexGen's cache placement), which grows the KV capacity by
    ``1 / (1 - kv_fraction)`` and is read over the link by every iteration's attention. At least one > 0."""

    weights_fraction: Number = Field(default=0.0, ge=0, le=1)
    kv_fraction: Number = Field(default=0.0, ge=0, lt=1)
    link: InterconnectId

    @model_validator(mode="after")
    def _something_offloaded(self) -> OffloadSpec:
        if not self.weights_fraction and not self.kv_fraction:
            raise ValueError("give weights_fraction (0-1] and/or kv_fraction [0-1)")
        return self


class TrafficSpec(Section):
    """Request arrivals and token lengths (or a CSV trace ``arrival_s,prompt_tokens,output_tokens``).
    ``stream`` names the random streams drawn from (default: the workload's name): workloads with the same
    ``stream`` and traffic fields get identical requests, for side-by-side comparisons.

    ``trace`` is a file path or a shipped trace's name (:mod:`dcsim.serving.named_traces`:
    ``splitwise_conv``, ``splitwise_code``). With ``arrival: trace`` its rows arrive at their own times
    (scaled by ``time_scale``); with ``poisson``, ``gamma`` or ``diurnal`` arrivals at ``rate_per_s`` its
    rows' lengths are replayed in order at the generated times (over ``duration_s``, cycling through the
    rows; without ``duration_s``, one request per row; ``diurnal`` needs ``duration_s``)."""

    arrival: Literal["poisson", "gamma", "diurnal", "trace"] = "poisson"
    rate_per_s: Number | None = Field(default=None, gt=0)
    duration_s: Number | None = Field(default=None, gt=0)
    cv: Number | None = Field(default=None, gt=0)
    amplitude: Number = Field(default=0.5, ge=0, le=1)
    period_s: Number = Field(default=86400.0, gt=0)
    prompt_tokens: WholeDistributionField = None
    output_tokens: WholeDistributionField = None
    trace: str | None = None
    time_scale: Number = Field(default=1.0, gt=0)
    stream: str | None = Field(default=None, min_length=1)
    prefix: PrefixSpec | None = None

    @field_validator("trace")
    @classmethod
    def _known_trace_name(cls, value: str | None) -> str | None:
        from dcsim.serving.named_traces import check_trace_name, is_trace_name

        if value is not None and is_trace_name(value):
            check_trace_name(value)
        return value

    @model_validator(mode="after")
    def _complete(self) -> TrafficSpec:
        if self.arrival == "trace":
            if self.trace is None:
                raise ValueError("arrival: trace needs trace (a CSV file arrival_s,prompt_tokens,output_tokens)")
            return self
        if self.trace is not None:
            return self._trace_lengths_complete()
        # output_tokens is checked against the model (a decoder needs it, an encoder generates none)
        missing = [n for n in ("rate_per_s", "duration_s", "prompt_tokens") if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.arrival} arrivals need {', '.join(missing)}")
        if self.arrival == "gamma" and self.cv is None:
            raise ValueError("gamma arrivals need cv (coefficient of variation of the gaps)")
        return self

    def _trace_lengths_complete(self) -> TrafficSpec:
        """A trace's lengths at generated arrivals: the rate is needed, lengths must not be given twice."""
        given = [n for n in ("prompt_tokens", "output_tokens") if getattr(self, n) is not None]
        if given:
            raise ValueError(f"{given[0]}: the lengths come from trace; leave {' and '.join(given)} out")
        if self.rate_per_s is None:
            raise ValueError(f"{self.arrival} arrivals of a trace's lengths need rate_per_s")
        if self.arrival == "diurnal" and self.duration_s is None:
            raise ValueError("diurnal arrivals of a trace's lengths need duration_s")
        if self.arrival == "gamma" and self.cv is None:
            raise ValueError("gamma arrivals need cv (coefficient of variation of the gaps)")
        if self.time_scale != 1.0:
            raise ValueError(f"time_scale scales a trace's own arrival times (arrival: trace), not {self.arrival}")
        return self


def _served_model(value: str | dict[str, Any], what: str = "model") -> TransformerConfig:
    """The decoder or encoder named by a zoo id or given inline (``model`` and ``speculative.draft_model``
    take both forms). ValueError naming what is wrong."""
    from dcsim.models import TransformerConfig, get_model
    from dcsim.models.inference import servable

    if isinstance(value, str):
        try:
            cfg = get_model(value)
        except KeyError as error:
            raise ValueError(str(error.args[0])) from None
    else:
        fields = {INLINE_KEYS.get(k, k): v for k, v in value.items()}
        fields.setdefault("name", "inline")
        _check_inline_fields(fields)
        cfg = TransformerConfig(**fields)
    if not isinstance(cfg, TransformerConfig) or cfg.family not in ("decoder", "encoder"):
        raise ValueError(f"{cfg.name!r} is not a decoder or encoder transformer: {what} needs one")
    if not servable(cfg):
        raise ValueError(f"{cfg.name!r} has DeepSeek-style layers (MLA, shared experts): modelled for training only")
    return cfg


class SpeculativeSpec(Section):
    """Speculative decoding (Leviathan et al., ICML 2023; vLLM 0.6.3's ``speculative_model`` and
    ``num_speculative_tokens``): ``draft_model`` (a zoo id or an inline decoder, as ``model``) proposes
    ``tokens`` (k) tokens per sequence and step, the served model verifies them in one pass. How many are kept:
    ``token_acceptance``, each draft token's probability of acceptance (i.i.d.; ``(1 - p^(k+1)) / (1 - p)``
    tokens per step), or ``acceptance_rate``, the share of proposed tokens kept (``1 + a k`` per step).
    See :mod:`dcsim.serving.speculative`."""

    draft_model: str | dict[str, Any]
    tokens: Count = Field(ge=1)
    token_acceptance: Number | None = Field(default=None, ge=0, le=1)
    acceptance_rate: Number | None = Field(default=None, ge=0, le=1)

    @field_validator("draft_model")
    @classmethod
    def _decoder_draft(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        cfg = _served_model(value, "a draft model")
        if cfg.family != "decoder":
            raise ValueError(f"{cfg.name!r} is an {cfg.family}: a draft model is a decoder")
        return value

    @model_validator(mode="after")
    def _one_acceptance(self) -> SpeculativeSpec:
        if (self.token_acceptance is None) == (self.acceptance_rate is None):
            raise ValueError("give exactly one of token_acceptance (per draft token) and acceptance_rate")
        return self

    def draft(self) -> TransformerConfig:
        """The draft model's architecture."""
        return _served_model(self.draft_model, "a draft model")

    def speculation(self) -> Speculation:
        """The :class:`~dcsim.serving.speculative.Speculation` this spec describes."""
        from dcsim.serving.speculative import Speculation

        return Speculation.from_acceptance(self.draft(), self.tokens, self.token_acceptance, self.acceptance_rate)


class SloSpec(Section):
    """Latency objectives a request must meet (both, where given) to count as attained."""

    ttft_ms: Number | None = Field(default=None, gt=0)
    tpot_ms: Number | None = Field(default=None, gt=0)


@register_workload_kind("inference", runner="dcsim.run.inference_runner:InferenceRunner")
class InferenceWorkload(WorkloadSpec):
    """Serving: ``replicas`` (or ``autoscale``) copies of ``model`` behind a ``routing`` policy, fed by
    ``traffic``, batched per ``batching``, judged against ``slo``. An encoder ``model`` serves prompt-only
    requests (no ``traffic.output_tokens``): decode-only settings (``slo.tpot_ms``, chunked prefill,
    ``disaggregation``, swap preemption, a quantized KV cache) are refused for it, naming the field.
    ``gpu_memory_utilization`` (0-1], default 0.9 as vLLM's) is the share of each accelerator's memory the
    weights, activations, workspace and KV cache share."""

    kind: Literal["inference"] = "inference"
    model: str | dict[str, Any]
    precision: Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8"] = "fp16"
    compression: RecipeField = Field(default_factory=Recipe)
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
    gpu_memory_utilization: Number = Field(default=0.9, gt=0, le=1)
    host_overhead: Literal["auto", "vllm_v0", "per_step_rpc", "none"] = "auto"
    arrival_s: Number = Field(default=0.0, ge=0)
    _served: ServedCompression | None = PrivateAttr(default=None)

    speculative: SpeculativeSpec | None = None

    @model_validator(mode="after")
    def _speculation_fits_the_model(self) -> InferenceWorkload:
        """A draft model with the served model's vocabulary and shardable like it, on a setup that
        speculative decoding is modelled for (vLLM 0.6.3's limits where it has them)."""
        spec = self.speculative
        if spec is None:
            return self
        from dcsim.models.inference import kv_bytes_per_token

        where = "speculative.draft_model"
        try:
            target = self.base_architecture()
        except ValueError:
            return self  # reported as the model's problem by check()
        draft = spec.draft()
        if target.family != "decoder":
            raise ValueError(f"speculative: {target.name} is an encoder; speculative decoding needs a decoder model")
        if draft.vocab != target.vocab:  # vLLM: SpecDecodeWorker._vocab_size asserts they are equal
            raise ValueError(
                f"{where}: {draft.name}'s vocabulary ({draft.vocab}) differs from {target.name}'s "
                f"({target.vocab}); the draft must share the served model's tokenizer"
            )
        try:
            kv_bytes_per_token(draft, self.precision, self.parallelism.tp)
        except ValueError as error:  # vLLM shards the draft tp ways like the target by default
            raise ValueError(f"{where}: {error}") from None
        field = "batching.chunked_prefill" if self.batching.chunked_prefill else "batching.policy"
        refused = [
            ("parallelism.pp", self.parallelism.pp > 1, "speculative decoding is modelled with pp 1 only"),
            (
                field,
                self.batching.chunks_prompts,
                "vLLM 0.6.3 refuses speculative decoding with chunked prefill (SpeculativeConfig: 'mutually "
                "exclusive'); use a policy that prefills whole prompts (orca, vllm, static)",
            ),
            ("disaggregation", self.disaggregation is not None, "not modelled with speculative decoding"),
            ("offload", self.offload is not None, "not modelled with speculative decoding"),
        ]
        for name, bad, why in refused:
            if bad:
                raise ValueError(f"{name}: {why}")
        return self

    def served(self) -> ServedCompression | None:
        """The compression recipe applied to the served model, or None without one: made once per spec (the
        recipe was validated when the scenario loaded). ValueError naming the field."""
        from dcsim.serving.compressed import served_compression

        if self.compression.empty:
            return None
        if self._served is None:
            self._served = served_compression(self.base_architecture(), self.compression, self.precision)
        return self._served

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
            if self.batching.whole_batch:
                raise ValueError(
                    "disaggregation needs iteration-level batching (orca, vllm, sarathi, trtllm), not static"
                )
            if self.batching.prefix_caching:
                raise ValueError("batching.prefix_caching is not modelled with disaggregation")
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
        from dcsim.models.inference import servable

        if isinstance(self.model, str):
            try:
                cfg = get_model(self.model)
            except KeyError as error:
                raise ValueError(str(error.args[0])) from None
        else:
            fields = {INLINE_KEYS.get(k, k): v for k, v in self.model.items()}
            fields.setdefault("name", "inline")
            _check_inline_fields(fields)
            cfg = TransformerConfig(**fields)
        if not isinstance(cfg, TransformerConfig) or cfg.family not in ("decoder", "encoder"):
            raise ValueError(f"{cfg.name!r} is not a decoder or encoder transformer: serving needs one")
        if cfg.experts > 1 and cfg.family != "decoder":
            raise ValueError(f"{cfg.name!r} is a mixture-of-experts {cfg.family}: serving models MoE decoders")
        if not servable(cfg):
            raise ValueError(
                f"{cfg.name!r} has DeepSeek-style layers (MLA, shared experts): modelled for training only"
            )
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
                tp, pp = workload.parallelism.tp, workload.parallelism.pp
                places = placer.take(workload.host_nodes(scenario), tp, pp, workload.max_replicas)
                if workload is self:
                    return len(places)
        return 0

    def _request_fit_problems(self, kv_tokens: dict[str, int]) -> list[Problem]:
        """A generated request whose prompt and output, at their smallest, exceed every replica's KV cache:
        each one would be dropped on arrival."""
        from dcsim.scenario.bounds import lowest

        traffic = self.traffic
        if traffic.trace is not None or traffic.prompt_tokens is None or traffic.output_tokens is None:
            return []
        prompt, output = max(1.0, lowest(traffic.prompt_tokens)), max(0.0, lowest(traffic.output_tokens))
        capacity = max(kv_tokens.values())
        if prompt + output <= capacity:
            return []
        where = max(kv_tokens, key=lambda acc: kv_tokens[acc])
        field = "traffic.prompt_tokens" if prompt >= output else "traffic.output_tokens"
        return [
            Problem(
                field,
                f"the smallest request holds {prompt:.4g} prompt + {output:.4g} output tokens, more than a "
                f"replica's KV cache ({capacity:,} tokens on {where}): every request would be dropped",
            )
        ]

    def trace_path(self, base_dir: str) -> Path:
        """The trace file: a shipped trace by name (:mod:`dcsim.serving.named_traces`), else relative to the
        scenario's folder ``base_dir`` (see :func:`scenario_file`)."""
        from dcsim.serving.named_traces import is_trace_name, named_trace_path

        assert self.traffic.trace is not None
        if is_trace_name(self.traffic.trace):
            return named_trace_path(self.traffic.trace)
        return scenario_file(self.traffic.trace, base_dir)

    def _family_problems(self, cfg: TransformerConfig) -> list[Problem]:
        """Settings that only make sense for a decoder, given for an encoder (which serves each request in one
        bidirectional forward pass and keeps no KV cache), and a decoder's missing ``output_tokens``."""
        generated = self.traffic.trace is None  # lengths drawn, not read from a trace
        if cfg.family == "decoder":
            if generated and self.traffic.output_tokens is None:
                return [Problem("traffic.output_tokens", f"{self.traffic.arrival} arrivals of a decoder need it")]
            return []
        why = f"{cfg.name} is an encoder (one bidirectional forward pass per request, no KV cache kept)"
        problems = []
        if generated and self.traffic.output_tokens is not None:
            problems.append(Problem("traffic.output_tokens", f"{why}: it generates no tokens; leave output_tokens out"))
        if self.slo.tpot_ms is not None:
            problems.append(Problem("slo.tpot_ms", f"{why}: no tokens, no TPOT; ttft_ms is its end-to-end latency"))
        if self.batching.chunks_prompts:
            field = "batching.chunked_prefill" if self.batching.chunked_prefill else "batching.policy"
            problems.append(Problem(field, f"{why}: chunked prefill needs causal attention; use continuous or static"))
        if self.batching.preemption == "swap":
            problems.append(Problem("batching.preemption", f"{why}: there is no KV cache to swap"))
        if self.batching.prefix_caching:
            problems.append(Problem("batching.prefix_caching", f"{why}: there is no KV cache to share"))
        if self.disaggregation is not None:
            problems.append(Problem("disaggregation", f"{why}: there is no decode phase to separate"))
        if self.offload is not None and self.offload.kv_fraction > 0:
            problems.append(Problem("offload.kv_fraction", f"{why}: there is no KV cache to offload"))
        quant = self.compression.quantization
        if quant is not None and quant.kv_cache is not None:
            problems.append(Problem("compression", f"quantization.kv_cache: {why}"))
        return problems

    def check(self, scenario: Scenario) -> list[Problem]:
        from dcsim.models.inference import kv_bytes_per_token
        from dcsim.scenario.replica_plan import plan_replicas
        from dcsim.serving.costs import check_kept_heads
        from dcsim.serving.placement import ReplicaPlacer, nodes_per_replica, spans_nodes

        try:
            base = self.base_architecture()
        except ValueError as error:
            return [Problem("model", str(error))]
        if base.experts > 1 and not self.compression.empty:
            return [
                Problem(
                    "compression",
                    f"{base.name} is a mixture of experts: compressing its expert GEMMs for serving is not modelled",
                )
            ]
        try:
            served = self.served()
            cfg = self.architecture()
        except ValueError as error:
            return [Problem("compression", str(error))]
        family_problems = self._family_problems(cfg)
        if family_problems:
            return family_problems
        tp, pp = self.parallelism.tp, self.parallelism.pp
        try:
            kv_bytes_per_token(cfg, self.precision, tp)
            if served is not None and served.kept_heads is not None:
                check_kept_heads(cfg, served.kept_heads, tp)
        except ValueError as error:
            return [Problem("parallelism.tp", str(error))]
        if pp > cfg.layers:
            return [Problem("parallelism.pp", f"must be <= layers ({cfg.layers})")]
        nodes = self.host_nodes(scenario)
        if not nodes:
            return [Problem("accelerator", f"no node type has {self.accelerator!r}")]
        per_replica = tp * pp
        problems = []
        most = max(n.accelerators_per_node for n in nodes)
        if tp > most:
            return [
                Problem(
                    "parallelism.tp",
                    f"tp ({tp}) exceeds a node's {most} accelerators: a pipeline stage's tensor-parallel group "
                    "must be inside one node",
                )
            ]
        usable = [n for n in nodes if n.accelerators_per_node >= tp and n.count >= nodes_per_replica(n, tp, pp)]
        if not usable:
            node = next(n for n in nodes if n.accelerators_per_node >= tp)
            return [
                Problem(
                    "parallelism.pp",
                    f"{pp} stages of tp {tp} need {nodes_per_replica(node, tp, pp)} {node.name} nodes "
                    f"(a replica spans nodes of one type); there are {node.count}",
                )
            ]
        if any(n.intra_node is None and (tp > 1 or (pp > 1 and n.accelerators_per_node >= 2 * tp)) for n in usable):
            return [Problem("parallelism", "tp or pp > 1 needs intra_node (the interconnect) on the node types")]
        spanning = [n for n in usable if spans_nodes(n, tp, pp)]
        if any(n.nics is None for n in spanning):
            name = next(n.name for n in spanning if n.nics is None)
            return [
                Problem(
                    "parallelism.pp",
                    f"a replica of {per_replica} accelerators spans {name} nodes of "
                    f"{next(n.accelerators_per_node for n in spanning if n.nics is None)}: give the node type nics "
                    "(the path between its pipeline stages)",
                )
            ]
        slots = len(ReplicaPlacer(usable).take(usable, tp, pp, sum(n.accelerators for n in usable)))
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
        plan = plan_replicas(self, usable, cfg, served)
        problems += plan.problems
        kv_tokens = plan.kv_tokens_by_accelerator()  # per accelerator type: the KV cache of one replica, in tokens
        if kv_tokens and cfg.family == "decoder":
            problems += self._request_fit_problems(kv_tokens)
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
        if self.traffic.trace is not None:
            from dcsim.errors import UserInputError
            from dcsim.serving.traffic import read_trace

            try:
                trace = read_trace(self.trace_path(scenario.base_dir))
            except UserInputError as error:
                problems += [Problem(f"traffic.trace ({p.path})", p.message) for p in error.problems]
            else:
                if trace.prefix_group is not None and self.traffic.prefix is not None:
                    problems.append(
                        Problem("traffic.prefix", "the trace has prefix_id and prefix_tokens columns: give one")
                    )
        return problems
