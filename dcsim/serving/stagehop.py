"""Pipeline-stage boundaries of a replica that spans nodes: the activation send between two stages on
different nodes, timed on the run's flow-level network model.

At a stage boundary every tensor-parallel rank of the sending stage sends ``1/tp`` of the activations
(``tokens x hidden`` elements) to the rank of the same number in the next stage, all at once, and the next
stage gathers them over its node's fabric (Megatron-LM's and vLLM's scatter-gather of pipeline sends; the
gather is not priced, as in training, :mod:`dcsim.parallel.step`). Across nodes those ``tp`` sends leave
through the sending node's NICs and cross the datacenter network. Their time on an idle network is
``latency + bytes per rank / bandwidth per rank`` (every flow the same size, started together), so two sends
on :class:`dcsim.parallel.comm.CommModel` (the flow simulator over the fabric graph: NICs, links, ECMP
routing) give the two figures of :class:`StageHop` exactly; an iteration then prices each boundary with
them, analytically, as the intra-node hops are priced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dcsim.parallel.comm import CommModel

#: Bytes per rank of the two probe sends the hop's latency and bandwidth are fitted from.
PROBE_BYTES = (1e6, 1e7)


@dataclass(frozen=True)
class StageHop:
    """One inter-node stage boundary: ``latency_s`` seconds plus ``bytes / bytes_per_s`` for ``bytes`` sent
    by each tensor-parallel rank (``bytes_per_s`` is one rank's share of the path)."""

    latency_s: float
    bytes_per_s: float

    def seconds(self, bytes_per_rank: float) -> float:
        """Seconds for every rank of the sending stage to deliver ``bytes_per_rank`` to its peer."""
        return self.latency_s + bytes_per_rank / self.bytes_per_s


def measure_stage_hop(comm: CommModel, pairs: Sequence[tuple[str, str]]) -> StageHop:
    """The boundary whose ranks send along ``pairs`` (sender, receiver accelerator names on the fabric),
    fitted from two sends of :data:`PROBE_BYTES` per rank on an otherwise idle network."""
    small, large = PROBE_BYTES
    t_small, t_large = comm.send_s(pairs, small), comm.send_s(pairs, large)
    bytes_per_s = (large - small) / (t_large - t_small)
    return StageHop(max(0.0, t_small - small / bytes_per_s), bytes_per_s)


def boundary_pairs(slots: Sequence[str], tp: int, stage: int) -> list[tuple[str, str]]:
    """(sender, receiver) accelerator names of the boundary after pipeline ``stage`` of a replica whose
    accelerators are ``slots`` in rank order (stage by stage, ``tp`` per stage)."""
    first = stage * tp
    return [(slots[first + r], slots[first + tp + r]) for r in range(tp)]
