"""Which accelerator holds which rank of a plan, and the communication groups that follow from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dcsim.parallel.plan import ParallelPlan


@dataclass(frozen=True)
class RankLayout:
    """A plan's ranks on named accelerators (``names[rank]``, see :meth:`ParallelPlan.rank`)."""

    plan: ParallelPlan
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) != self.plan.world_size:
            raise ValueError(f"the plan needs {self.plan.world_size} accelerators, {len(self.names)} given")

    def name(self, dp: int, pp: int, tp: int, cp: int = 0) -> str:
        """The accelerator of a (data, pipeline, tensor, context) coordinate."""
        return self.names[self.plan.rank(dp, pp, tp, cp)]

    def tp_groups(self, stage: int = 0) -> list[tuple[str, ...]]:
        """The tensor-parallel groups of one pipeline stage (one per data-parallel replica and context rank)."""
        p = self.plan
        return [tuple(self.name(d, stage, t, c) for t in range(p.tp)) for d in range(p.dp) for c in range(p.cp)]

    def dp_groups(self, stages: Sequence[int] | None = None) -> list[tuple[str, ...]]:
        """The gradient-reduction groups (one per stage and tensor rank) of the given stages (default: all):
        the ``dp * cp`` ranks holding the same weights (data-parallel replicas and their context ranks)."""
        p = self.plan
        chosen = range(p.pp) if stages is None else stages
        return [
            tuple(self.name(d, s, t, c) for d in range(p.dp) for c in range(p.cp)) for s in chosen for t in range(p.tp)
        ]

    def cp_groups(self, stage: int = 0) -> list[tuple[str, ...]]:
        """The context-parallel groups (rings, in ring order) of one stage: one per data replica and tensor rank."""
        p = self.plan
        return [tuple(self.name(d, stage, t, c) for c in range(p.cp)) for d in range(p.dp) for t in range(p.tp)]

    def ep_groups(self, stage: int = 0) -> list[tuple[str, ...]]:
        """Expert-parallel groups of one stage: ``ep`` consecutive data-parallel replicas per tensor and
        context rank."""
        p = self.plan
        return [
            tuple(self.name(d0 + e, stage, t, c) for e in range(p.ep))
            for d0 in range(0, p.dp, p.ep)
            for c in range(p.cp)
            for t in range(p.tp)
        ]

    def stage_pairs(self, stage: int) -> list[tuple[str, str]]:
        """(sender, receiver) of the activations from ``stage`` to ``stage + 1``, one per tensor and context
        rank, for the first data-parallel replica."""
        p = self.plan
        return [(self.name(0, stage, t, c), self.name(0, stage + 1, t, c)) for c in range(p.cp) for t in range(p.tp)]


def sharing_servers(groups: list[tuple[str, ...]], server_of: dict[str, str]) -> list[tuple[str, ...]]:
    """The groups that share a server with ``groups[0]`` (they contend for its NICs and intra-node links)."""
    if not groups:
        return []
    servers = {server_of.get(n, n) for n in groups[0]}
    return [g for g in groups if servers & {server_of.get(n, n) for n in g}]
