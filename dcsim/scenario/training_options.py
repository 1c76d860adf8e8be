"""Sections of a ``kind: training`` workload that say how its step runs, beyond the parallel plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from dcsim.scenario.fields import Flag, Number
from dcsim.scenario.schema import Section

if TYPE_CHECKING:
    from dcsim.parallel.overlap import OverlapOptions

#: torch DDP's default gradient bucket, MiB (see :data:`dcsim.parallel.overlap.DDP_BUCKET_MB`).
DEFAULT_BUCKET_MB = 25.0


class Overlap(Section):
    """Communication overlapped with compute (see :mod:`dcsim.parallel.overlap`): ``tp`` chunks the
    sequence-parallel all-gathers and reduce-scatters and pipelines them with the adjacent GEMMs (Transformer
    Engine userbuffers, Megatron-LM ``--tp-comm-overlap``; needs ``parallelism.sequence_parallel``);
    ``dp_bucket_mb`` is the gradient bucket (MiB) the data-parallel reduction runs in while the backward
    produces it (with ``parallelism.overlap_dp``)."""

    tp: Flag = False
    dp_bucket_mb: Number = Field(default=DEFAULT_BUCKET_MB, gt=0)

    def options(self) -> OverlapOptions:
        """The :class:`~dcsim.parallel.overlap.OverlapOptions` this section describes."""
        from dcsim.parallel.overlap import OverlapOptions

        return OverlapOptions(tp=self.tp, dp_bucket_mb=self.dp_bucket_mb)
