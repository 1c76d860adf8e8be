"""The rounds of the collectives NCCL runs as grouped point-to-point sends (all-to-all, send/recv), as
phases of flows between rank positions 0..n-1 (priced by :mod:`.p2p_model`). All-reduce, all-gather,
reduce-scatter and broadcast are NCCL's channels: :mod:`.nccl_model`.

A :class:`Phase` sends ``bytes_per_flow`` over every pair at once, ``repeat`` times in a row (each round
waits for all its sends). Phases run one after another. Sizes follow nccl-tests (see :mod:`.conventions`);
``S`` below is that size, ``n`` the ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Pair = tuple[int, int]


@dataclass(frozen=True)
class Phase:
    """Sends ``pairs`` (src, dst rank positions) of ``bytes_per_flow`` each, ``repeat`` rounds."""

    pairs: tuple[Pair, ...]
    bytes_per_flow: float
    repeat: int = 1


def ring_pairs(ranks: Sequence[int]) -> tuple[Pair, ...]:
    """Each rank to the next, the last to the first."""
    return tuple((ranks[i], ranks[(i + 1) % len(ranks)]) for i in range(len(ranks))) if len(ranks) > 1 else ()


def all_to_all(n: int, size: float) -> list[Phase]:
    """All-to-all as nccl-tests and PyTorch post it to NCCL (one grouped send per peer): every rank sends S/n
    to every other rank, all at once."""
    return [Phase(tuple((i, j) for i in range(n) for j in range(n) if i != j), size / n)]


def pairwise_all_to_all(n: int, size: float) -> list[Phase]:
    """Pairwise-exchange all-to-all (the MPI algorithm): n-1 rounds, in round r every rank i sends S/n to
    rank i + r; each round waits for its slowest flow."""
    return [Phase(tuple((i, (i + r) % n) for i in range(n)), size / n) for r in range(1, n)]


def send_recv(n: int, size: float) -> list[Phase]:
    """nccl-tests sendrecv: every rank sends S to the next and receives S from the previous, at once."""
    return [Phase(ring_pairs(range(n)) if n > 2 else ((0, 1), (1, 0)), size)]


FLAT: dict[tuple[str, str], Callable[[int, float], list[Phase]]] = {
    ("all_to_all", "direct"): all_to_all,
    ("all_to_all", "pairwise"): pairwise_all_to_all,
    ("send_recv", "direct"): send_recv,
}
