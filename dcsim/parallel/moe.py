"""Expert-parallel token traffic of a mixture-of-experts layer: flat or node-limited all-to-all.

Each rank of an expert-parallel (EP) group of ``ep`` ranks holds ``experts / ep`` experts (contiguous
ids) and, per microbatch and MoE layer, sends its ``T`` tokens (``hidden`` elements each) to the ranks
holding their ``k`` experts (dispatch), then receives the expert outputs back (combine, the same volume).
Routing is taken as balanced: every expert equally likely, as DeepSeek-V3's auxiliary-loss-free balancing
and Mixtral's load-balancing loss aim for.

**Flat** (a router without group limits, e.g. Mixtral): one all-to-all over the EP group of ``T x k``
token copies per rank (:func:`flat_dispatch_bytes`), priced as before this module existed.

**Node-limited** (a config with ``expert_groups_per_token``, DeepSeek-V3 Technical Report, arXiv
2412.19437, section 2.1.2 "Node-Limited Routing" and section 3.2.2): the ``expert_groups`` contiguous
expert groups sit one (or several) per node, and a token's experts come from at most
``expert_groups_per_token`` groups, so it reaches at most that many nodes. DeepSeek's dispatch kernel
sends each token over InfiniBand once per destination node, to the GPU with the sender's in-node index,
which forwards it over NVLink to the GPUs holding its experts; the IB sends, the NVLink forwarding and
the receives run concurrently on separate warps (section 3.2.2), and the combine mirrors it. dcsim prices
that as two all-to-alls on the shared network model (:meth:`CommModel.collective_s`):

- inter-node: among the ranks with the same in-node index, ``T x D_nodes`` token copies per rank, of which
  ``(nodes - 1) / nodes`` leave the node (``D_nodes``: :func:`expected_distinct_holders` of the nodes);
- intra-node: among each node's ranks, ``T x D_gpus`` copies per rank, ``(g - 1) / g`` of them crossing
  NVLink (``D_gpus``: distinct GPUs; a token is sent once per GPU however many of its experts it holds);

and takes the longer of the two (they overlap). Where the EP group sits in one node, or the node count and
the expert groups do not nest (neither divides the other), the group limit is ignored for the byte count
(:func:`expected_distinct_holders` with one group).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dcsim.models import ModelConfig, TransformerConfig
from dcsim.parallel.comm import CommModel


@functools.cache
def expected_distinct_holders(
    experts: int, holders: int, per_token: int, groups: int = 1, groups_per_token: int = 0
) -> float:
    """Expected number of distinct holders (nodes or GPUs, each holding ``experts / holders`` contiguous
    experts) that one token's ``per_token`` experts sit on, when the token first picks ``groups_per_token``
    (0: all) of ``groups`` contiguous expert groups uniformly and then ``per_token`` distinct experts
    uniformly among theirs. Holders and groups must nest (one divides the other).

    A holder with ``j`` of the ``T`` eligible experts is missed with probability ``C(T - j, k) / C(T, k)``;
    with groups spanning several holders each eligible holder has ``experts / holders`` of them, with
    holders holding several groups ``j`` follows the hypergeometric count of its chosen groups."""
    if min(experts, holders, per_token, groups) < 1 or experts % holders or experts % groups:
        raise ValueError(f"holders ({holders}) and groups ({groups}) must divide experts ({experts})")
    chosen = groups_per_token or groups
    if not 1 <= chosen <= groups:
        raise ValueError(f"groups_per_token ({groups_per_token}) must be between 0 and groups ({groups})")
    per_group = experts // groups
    eligible = chosen * per_group
    if not 1 <= per_token <= eligible:
        raise ValueError(f"per_token ({per_token}) must be between 1 and the eligible experts ({eligible})")
    total = math.comb(eligible, per_token)

    def hit(j: int) -> float:
        return 1.0 - math.comb(eligible - j, per_token) / total

    if holders % groups == 0:  # each group spans holders / groups holders
        span = holders // groups
        return chosen * span * hit(experts // holders)
    if groups % holders == 0:  # each holder holds groups / holders whole groups
        held = groups // holders
        ways = math.comb(groups, chosen)
        expected = 0.0
        for j in range(max(0, chosen - (groups - held)), min(held, chosen) + 1):
            p_j = math.comb(held, j) * math.comb(groups - held, chosen - j) / ways
            expected += p_j * hit(j * per_group)
        return holders * expected
    raise ValueError(f"holders ({holders}) and groups ({groups}) must nest: one must divide the other")


def _expert_groups(model: ModelConfig) -> tuple[int, int]:
    """(expert groups, groups a token's experts may come from; 0: any): one group, no limit, unless the model
    is a transformer with DeepSeek-style group-limited routing."""
    if isinstance(model, TransformerConfig):
        return model.expert_groups, model.expert_groups_per_token
    return 1, 0


def _routing(model: ModelConfig, holders: int) -> tuple[int, int]:
    """(groups, groups_per_token) to count distinct ``holders`` with: the model's own where they nest with
    the holders, one group (no limit) otherwise."""
    groups, per_token = _expert_groups(model)
    if holders % groups and groups % holders:
        return 1, 0
    return groups, per_token


def node_limited(model: ModelConfig) -> bool:
    """Whether the model's router limits each token's experts to some of its expert groups (nodes)."""
    groups, per_token = _expert_groups(model)
    return 0 < per_token < groups


@dataclass(frozen=True)
class DispatchTraffic:
    """One dispatch (or combine) of one microbatch in one MoE layer, per rank: the all-to-all message
    sizes (nccl-tests convention: per-rank bytes, ``1/n`` to each of the ``n`` ranks) and the bytes that
    leave the rank's node (``inter_node_bytes``) or cross NVLink inside it (``intra_node_bytes``)."""

    inter_message_bytes: float
    intra_message_bytes: float
    inter_node_bytes: float
    intra_node_bytes: float


def flat_dispatch_bytes(layer_bytes: float, per_token: int, ep: int, per_node: int) -> DispatchTraffic:
    """A flat all-to-all over ``ep`` ranks (``per_node`` on each node) of ``per_token`` copies of the rank's
    tokens (``layer_bytes``: tokens x hidden x element bytes): a copy for a rank on another node crosses
    the network once per expert."""
    message = layer_bytes * per_token
    return DispatchTraffic(
        inter_message_bytes=message,
        intra_message_bytes=0.0,
        inter_node_bytes=message * (ep - per_node) / ep,
        intra_node_bytes=message * (per_node - 1) / ep,
    )


def node_limited_dispatch_bytes(model: ModelConfig, layer_bytes: float, ep: int, nodes: int) -> DispatchTraffic:
    """DeepSeek's two-hop dispatch (module docstring) over ``ep`` ranks on ``nodes`` nodes (``ep / nodes``
    each) of the rank's tokens (``layer_bytes``: tokens x hidden x element bytes): one IB copy per
    destination node, then one NVLink copy per destination GPU."""
    if nodes < 1 or ep % nodes:
        raise ValueError(f"the EP group's nodes ({nodes}) must divide ep ({ep})")
    experts, k = model.experts, model.experts_per_token
    per_node = ep // nodes
    d_nodes = expected_distinct_holders(experts, nodes, k, *_routing(model, nodes))
    d_gpus = expected_distinct_holders(experts, ep, k, *_routing(model, ep))
    inter = layer_bytes * d_nodes
    intra = layer_bytes * d_gpus
    return DispatchTraffic(
        inter_message_bytes=inter if nodes > 1 else 0.0,
        intra_message_bytes=intra if per_node > 1 else 0.0,
        inter_node_bytes=inter * (nodes - 1) / nodes,
        intra_node_bytes=intra * (per_node - 1) / per_node,
    )


def _by_node(group: Sequence[str], server_of: Mapping[str, str]) -> list[list[str]]:
    """A group's ranks by server, in order of first appearance."""
    nodes: dict[str, list[str]] = {}
    for name in group:
        nodes.setdefault(server_of.get(name, name), []).append(name)
    return list(nodes.values())


def ep_all_to_all_s(
    comm: CommModel,
    model: ModelConfig,
    groups: Sequence[Sequence[str]],
    server_of: Mapping[str, str],
    layer_bytes: float,
) -> float:
    """Seconds of one dispatch (or combine) of a rank's tokens (``layer_bytes``: tokens x hidden x element
    bytes) over the EP ``groups`` (all running at once; ``groups[0]`` the one that is timed), flat or
    node-limited (module docstring)."""
    if not groups or len(groups[0]) < 2 or layer_bytes <= 0:
        return 0.0
    k = int(model.experts_per_token)
    nodes = [_by_node(g, server_of) for g in groups]
    even = all(len({len(n) for n in g}) == 1 for g in nodes)
    if not node_limited(model) or not even or len(nodes[0]) == 1:
        return comm.collective_s("all_to_all", groups, layer_bytes * k)
    traffic = node_limited_dispatch_bytes(model, layer_bytes, len(groups[0]), len(nodes[0]))
    inter_groups = [tuple(node[i] for node in g) for g in nodes for i in range(len(g[0]))]
    intra_groups = [tuple(node) for g in nodes for node in g]
    inter_s = comm.collective_s("all_to_all", inter_groups, traffic.inter_message_bytes)
    intra_s = comm.collective_s("all_to_all", intra_groups, traffic.intra_message_bytes)
    return max(inter_s, intra_s)


#: Bytes per element of an FP8 dispatch: one byte plus one fp32 scale per 1 x 128 tile of the activations
#: (DeepSeek-V3 Technical Report, section 3.3.2 "Fine-Grained Quantization" and "Low-Precision
#: Communication": the activations are quantized to FP8 before the dispatch; the combine stays BF16).
FP8_DISPATCH_BYTES_PER_ELEMENT = 1.0 + 4.0 / 128


@dataclass(frozen=True)
class ExpertParallelTimes:
    """Seconds of one MoE layer's expert-parallel traffic for one microbatch: ``dispatch_s`` and
    ``combine_s`` of the forward pass; the backward sends the gradients of both (in the activations'
    precision) the opposite way, two combine-sized all-to-alls."""

    dispatch_s: float
    combine_s: float

    @property
    def forward_s(self) -> float:
        """Dispatch plus combine."""
        return self.dispatch_s + self.combine_s

    @property
    def backward_s(self) -> float:
        """The gradients of the combine and of the dispatch."""
        return 2.0 * self.combine_s


def ep_layer_times(
    comm: CommModel,
    model: ModelConfig,
    groups: Sequence[Sequence[str]],
    server_of: Mapping[str, str],
    layer_bytes: float,
    precision: str,
) -> ExpertParallelTimes:
    """One MoE layer's dispatch and combine (:func:`ep_all_to_all_s`) of a rank's tokens (``layer_bytes``
    in the activations' 16-bit precision); ``precision`` ``fp8`` dispatches FP8 with its scales
    (:data:`FP8_DISPATCH_BYTES_PER_ELEMENT`), as DeepSeek-V3 does."""
    combine = ep_all_to_all_s(comm, model, groups, server_of, layer_bytes)
    if precision != "fp8":
        return ExpertParallelTimes(combine, combine)
    fp8 = layer_bytes * FP8_DISPATCH_BYTES_PER_ELEMENT / 2.0
    return ExpertParallelTimes(ep_all_to_all_s(comm, model, groups, server_of, fp8), combine)
