"""The memory plan of an inference workload's replicas, per node type: the one computation ``check`` (at load
time) and :class:`~dcsim.run.inference_runner.InferenceRunner` (at run time) share.

For each node type that hosts replicas, :func:`plan_replicas` sizes one accelerator's memory
(:func:`dcsim.serving.costs.replica_memory`: weights, activation reserve, workspace, KV cache), grows the KV
capacity by ``offload.kv_fraction`` (:func:`dcsim.serving.hostmem.offloaded_kv`), and works out the host bytes
and link time of the offloads. It also says what cannot work there (no units for the precision, the model
does not fit, the offloads of the replicas on one node exceed its ``memory_gb``), as :class:`Problem` records
whose paths are relative to the workload. The placement itself (which accelerators each replica takes) is
:mod:`dcsim.serving.placement`'s; the plan counts the replicas one node holds for the host-memory rule.

Sizes in bytes, times in seconds, KV capacities in tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dcsim.catalog import load_catalog
from dcsim.errors import Problem
from dcsim.models.inference import weight_bytes
from dcsim.serving.costs import ReplicaMemory, replica_memory
from dcsim.serving.hostmem import offloaded_kv, offloaded_weight_bytes
from dcsim.serving.speculative import with_draft_memory

if TYPE_CHECKING:
    from dcsim.catalog import Accelerator
    from dcsim.models.transformer import TransformerConfig
    from dcsim.scenario.inference_spec import InferenceWorkload
    from dcsim.scenario.schema import NodeType
    from dcsim.serving.compressed import ServedCompression


@dataclass(frozen=True)
class NodePlan:
    """One node type's replicas of the workload.

    ``memory`` is one accelerator's memory (bytes) with the KV capacity after ``offload.kv_fraction``;
    ``weight_factor`` the stored weight bytes over the dense served model's (compression; 1 without);
    ``offload_weight_bytes`` and ``offload_kv_bytes`` the host bytes one replica's offloads take;
    ``offload_s`` the seconds an iteration streams one stage's offloaded weights over the offload link,
    ``kv_offload_s_per_token`` the seconds to read one token's offloaded KV shard over it;
    ``replicas_per_node`` the replicas of this workload one node holds (a fraction for a replica spanning
    nodes: its share of a node)."""

    node: NodeType
    accelerator: Accelerator
    memory: ReplicaMemory
    weight_factor: float = 1.0
    offload_weight_bytes: float = 0.0
    offload_kv_bytes: float = 0.0
    offload_s: float = 0.0
    kv_offload_s_per_token: float = 0.0
    replicas_per_node: float = 1.0

    @property
    def fits(self) -> bool:
        """True if the weights and activations leave room for a KV block (an encoder: fit at all)."""
        return self.memory.fits

    @property
    def kv_tokens(self) -> int:
        """Tokens one replica's KV cache holds (after ``offload.kv_fraction``)."""
        return self.memory.capacity_blocks * self.memory.block_tokens


@dataclass(frozen=True)
class ReplicaPlan:
    """The workload's replicas per node type (``nodes``, by node type name, in the order given to
    :func:`plan_replicas`; node types whose accelerator lacks the precision are left out) and what cannot
    work (``problems``, paths relative to the workload)."""

    nodes: dict[str, NodePlan]
    problems: tuple[Problem, ...] = ()

    def kv_tokens_by_accelerator(self) -> dict[str, int]:
        """Per accelerator type, the largest KV capacity (tokens) of one replica on node types where it fits."""
        tokens: dict[str, int] = {}
        for plan in self.nodes.values():
            if plan.fits:
                tokens[plan.accelerator.id] = max(tokens.get(plan.accelerator.id, 0), plan.kv_tokens)
        return tokens


def accelerator_memory(
    spec: InferenceWorkload,
    node: NodeType,
    acc: Accelerator,
    cfg: TransformerConfig,
    served: ServedCompression | None,
) -> ReplicaMemory:
    """Memory of one accelerator of a replica on a ``node`` node (accelerator ``acc``) serving ``cfg``
    (``served``: the compression, or None), before any KV offload. A ``host-cpu`` node with ``memory_gb``
    serves from that memory (10^9 bytes); accelerators that are not GPUs keep no CUDA-library workspace."""
    if acc.id == "host-cpu" and node.memory_gb:
        capacity = node.memory_gb * 1e9
    else:
        capacity = acc.memory_bytes
    return replica_memory(
        cfg,
        spec.precision,
        capacity,
        spec.parallelism.tp,
        spec.parallelism.pp,
        spec.batching.max_batch_tokens,
        spec.batching.max_batch_size,
        spec.batching.block_tokens,
        spec.offload.weights_fraction if spec.offload else 0.0,
        served.weight_factor(acc.id, spec.precision) if served is not None else 1.0,
        served.kv_factor(spec.precision) if served is not None else 1.0,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        workspace=None if acc.kind == "gpu" else 0.0,
    )


def replicas_per_node(spec: InferenceWorkload, node: NodeType) -> float:
    """Replicas of ``spec`` on one ``node`` node when nodes fill in order: as many as fit (at most the
    workload's), or, for a replica spanning nodes, the share of a replica a node's whole ``tp`` groups hold."""
    tp, pp = spec.parallelism.tp, spec.parallelism.pp
    size = tp * pp
    if size <= node.accelerators_per_node:
        return min(spec.max_replicas, node.accelerators_per_node // size)
    return node.accelerators_per_node // tp * tp / size


def plan_replicas(
    spec: InferenceWorkload,
    nodes: Iterable[NodeType],
    cfg: TransformerConfig,
    served: ServedCompression | None,
) -> ReplicaPlan:
    """The plan of ``spec``'s replicas (serving ``cfg``, compressed by ``served``) on each of ``nodes``."""
    catalog = load_catalog()
    tp, pp = spec.parallelism.tp, spec.parallelism.pp
    offload = spec.offload
    plans: dict[str, NodePlan] = {}
    problems: list[Problem] = []
    for node in nodes:
        if node.name in plans:
            continue
        acc = catalog.accelerators[node.accelerator]
        if spec.precision not in acc.peak_tflops and spec.precision != "tf32":
            problems.append(Problem("precision", f"{acc.id} has no {spec.precision} units"))
            continue
        memory = accelerator_memory(spec, node, acc, cfg, served)
        if spec.speculative is not None and memory.fits:  # the draft's weights and KV cache beside the model's
            with_draft = with_draft_memory(memory, spec.speculative.draft(), spec.precision, tp)
            if not with_draft.fits:
                problems.append(
                    Problem(
                        "speculative.draft_model",
                        f"{spec.speculative.draft().name}'s weights "
                        f"({(with_draft.weight_bytes - memory.weight_bytes) / 1e9:.1f} GB per accelerator) beside "
                        f"{cfg.name}'s leave no KV cache on {acc.id}",
                    )
                )
                continue
            memory = with_draft
        factor = served.weight_factor(acc.id, spec.precision) if served is not None else 1.0
        plan = NodePlan(node, acc, memory, factor, replicas_per_node=replicas_per_node(spec, node))
        if offload is not None:
            link_bytes_per_s = catalog.interconnects[offload.link].bandwidth_gb_per_s * 1e9
            stored = weight_bytes(cfg, spec.precision, tp) * factor
            blocks, kv_bytes = offloaded_kv(memory, offload.kv_fraction, tp * pp)
            plan = dataclasses.replace(
                plan,
                memory=dataclasses.replace(memory, capacity_blocks=blocks) if offload.kv_fraction else memory,
                offload_weight_bytes=offloaded_weight_bytes(
                    cfg, spec.precision, tp, pp, offload.weights_fraction, factor
                ),
                offload_kv_bytes=kv_bytes,
                offload_s=offload.weights_fraction * stored / pp / link_bytes_per_s,
                kv_offload_s_per_token=(
                    offload.kv_fraction * memory.kv_bytes_per_token / link_bytes_per_s if offload.kv_fraction else 0.0
                ),
            )
        plans[node.name] = plan
        if not memory.fits:
            problems.append(_misfit(spec, cfg, plan))
        elif offload is not None:
            problems += _host_memory_problems(plan)
    return ReplicaPlan(plans, tuple(problems))


def _misfit(spec: InferenceWorkload, cfg: TransformerConfig, plan: NodePlan) -> Problem:
    """The model's weights and activation reserve leave no KV cache (a decoder) or do not fit (an encoder)."""
    mem = plan.memory
    return Problem(
        "model",
        f"{cfg.name} does not fit on {plan.accelerator.id} with tp={spec.parallelism.tp}, pp={spec.parallelism.pp}: "
        f"weights {mem.weight_bytes / 1e9:.1f} GB + activations {mem.activation_bytes / 1e9:.1f} GB + "
        f"workspace {mem.workspace_bytes / 1e9:.2f} GB per accelerator of "
        f"{mem.accelerator_bytes / 1e9:.1f} GB x gpu_memory_utilization "
        f"{mem.gpu_memory_utilization:g} = {mem.usable_bytes / 1e9:.1f} GB "
        + ("do not fit" if cfg.family == "encoder" else "leave no KV cache"),
    )


def _host_memory_problems(plan: NodePlan) -> list[Problem]:
    """The offloaded weights and KV cache of the replicas this workload puts on one node of the node type
    (as many as fit, nodes fill in order) against its host memory ``memory_gb`` (not limited without it or on
    ``host-cpu`` nodes). Offloads of other workloads on the node are checked when the run starts."""
    node = plan.node
    if node.memory_gb is None or node.accelerator == "host-cpu":
        return []
    per_node = plan.replicas_per_node
    weights = plan.offload_weight_bytes * per_node
    kv = plan.offload_kv_bytes * per_node
    if weights + kv <= node.memory_gb * 1e9:
        return []
    field = "offload.kv_fraction" if kv > 0 and weights <= node.memory_gb * 1e9 else "offload.weights_fraction"
    return [
        Problem(
            field,
            f"{per_node} replicas on a {node.name} node offload {weights / 1e9:.1f} GB of weights and "
            f"{kv / 1e9:.1f} GB of KV cache to host memory, more than its memory_gb {node.memory_gb:g}",
        )
    ]
