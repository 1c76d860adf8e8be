"""Pipeline-stage boundaries of a replica that spans nodes: the activation send between two stages on
different nodes, priced by the one communication model (NCCL's point-to-point sends,
:mod:`dcsim.network.collectives.p2p_model`) at the rate the run's fabric gives it.

At a stage boundary every tensor-parallel rank of the sending stage sends ``1/tp`` of the activations
(``tokens x hidden`` elements) to the rank of the same number in the next stage, all at once, and the next
stage gathers them over its node's fabric (Megatron-LM's and vLLM's scatter-gather of pipeline sends; the
gather is not priced, as in training, :mod:`dcsim.parallel.step`). Across nodes those ``tp`` sends leave
through the sending node's NICs and cross the datacenter network. The rate each send gets is measured once
per boundary on :class:`dcsim.parallel.comm.CommModel` (the flow simulator over the fabric graph: NICs,
links, routing); an iteration then prices each boundary with NCCL's point-to-point latency and protocol for
its bytes (:func:`~dcsim.network.collectives.p2p_model.send_time_s`), as the intra-node hops are priced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dcsim.network.collectives.p2p_model import send_time_s

if TYPE_CHECKING:
    from dcsim.parallel.comm import CommModel


@dataclass(frozen=True)
class StageHop:
    """One stage boundary whose ranks each send at ``bytes_per_s`` (one rank's share of the path, all
    sending at once) over ``hop`` (``network`` between nodes; ``nvlink`` or ``pcie`` inside one)."""

    bytes_per_s: float
    hop: str = "network"

    def seconds(self, bytes_per_rank: float) -> float:
        """Seconds for every rank of the sending stage to deliver ``bytes_per_rank`` to its peer: NCCL's
        point-to-point latency for the protocol of that size plus its wire bytes over the rate."""
        return send_time_s(bytes_per_rank, self.bytes_per_s, self.hop)


def measure_stage_hop(comm: CommModel, pairs: Sequence[tuple[str, str]]) -> StageHop:
    """The boundary whose ranks send along ``pairs`` (sender, receiver accelerator names on the fabric): the
    rate each send gets on an otherwise idle network, and the hop its sends cross."""
    layout = comm.peers([name for pair in pairs for name in pair])
    hop = layout.hop([(2 * k, 2 * k + 1) for k in range(len(pairs))])
    return StageHop(comm.send_bytes_per_s(pairs), hop)


def boundary_pairs(slots: Sequence[str], tp: int, stage: int) -> list[tuple[str, str]]:
    """(sender, receiver) accelerator names of the boundary after pipeline ``stage`` of a replica whose
    accelerators are ``slots`` in rank order (stage by stage, ``tp`` per stage)."""
    first = stage * tp
    return [(slots[first + r], slots[first + tp + r]) for r in range(tp)]
