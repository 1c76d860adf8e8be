"""Collective algorithms as phases of flows between rank positions 0..n-1.

A :class:`Phase` sends ``bytes_per_flow`` over every pair at once, ``repeat`` times in a row (each round
waits for all its flows: the steps of a ring), then waits ``fill_hops`` more path latencies (the pipeline
fill of a chunked tree or chain, whose bandwidth term is one message time). Phases run one after another.
Sizes follow nccl-tests (see :mod:`.conventions`); ``S`` below is that size, ``n`` the ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Pair = tuple[int, int]


@dataclass(frozen=True)
class Phase:
    """Flows ``pairs`` (src, dst rank positions) of ``bytes_per_flow`` each, ``repeat`` rounds."""

    pairs: tuple[Pair, ...]
    bytes_per_flow: float
    repeat: int = 1
    fill_hops: int = 0


def ring_pairs(ranks: Sequence[int]) -> tuple[Pair, ...]:
    """Each rank to the next, the last to the first."""
    return tuple((ranks[i], ranks[(i + 1) % len(ranks)]) for i in range(len(ranks))) if len(ranks) > 1 else ()


def ring_all_reduce(n: int, size: float) -> list[Phase]:
    """Ring all-reduce: reduce-scatter then all-gather, 2(n-1) steps of S/n per rank (Patarasuk & Yuan 2009)."""
    return [Phase(ring_pairs(range(n)), size / n, 2 * (n - 1))]


def ring_all_gather(n: int, size: float) -> list[Phase]:
    """Ring all-gather of an S-byte output: n-1 steps of S/n."""
    return [Phase(ring_pairs(range(n)), size / n, n - 1)]


ring_reduce_scatter = ring_all_gather  # same traffic: n-1 steps of S/n


def _tree_parent(i: int, n: int) -> int | None:
    """Parent of 1-based position ``i`` in the in-order binary tree over 1..n (leaves are the odd
    positions; the root is the largest power of two <= n). None for the root."""
    height = (i & -i).bit_length() - 1
    root = 1 << (n.bit_length() - 1)
    while i != root:
        parent = i - (1 << height) if (i >> (height + 1)) & 1 else i + (1 << height)
        if parent <= n:
            return parent
        i, height = parent, height + 1
    return None


def _binary_tree(order: Sequence[int]) -> tuple[list[Pair], int]:
    """(child, parent) edges of the in-order binary tree laid over ``order``, and its depth in hops."""
    n = len(order)
    edges: list[Pair] = []
    depth = 0
    for i in range(1, n + 1):
        hops, node = 0, i
        parent = _tree_parent(node, n)
        if parent is not None:
            edges.append((order[i - 1], order[parent - 1]))
        while parent is not None:
            hops, node = hops + 1, parent
            parent = _tree_parent(node, n)
        depth = max(depth, hops)
    return edges, depth


def tree_all_reduce(n: int, size: float) -> list[Phase]:
    """Double binary tree all-reduce (NCCL 2.4; Sanders, Speck & Träff 2009): two in-order trees, the
    second over the ranks shifted by one so that the leaves of one are the inner nodes of the other (for
    even n), each carrying S/2; a reduce up both trees then a broadcast down, each
    pipelined, so each phase costs one S/2 transfer per edge plus (depth - 1) latencies of fill."""
    first, depth_a = _binary_tree(list(range(n)))
    second, depth_b = _binary_tree([(i + 1) % n for i in range(n)])
    up = tuple(first + second)
    down = tuple((parent, child) for child, parent in up)
    fill = max(depth_a, depth_b) - 1
    return [Phase(up, size / 2, 1, fill), Phase(down, size / 2, 1, fill)]


def hierarchical_all_reduce(groups: Sequence[Sequence[int]], size: float) -> list[Phase]:
    """Intra-node ring reduce-scatter, inter-node ring all-reduce of each 1/g shard among the ranks with
    the same local index (one ring per local index, all at once), intra-node ring all-gather. ``groups``
    lists the rank positions on each node; every node must hold the same number g of ranks."""
    g, m = len(groups[0]), len(groups)
    if any(len(group) != g for group in groups):
        raise ValueError("hierarchical all-reduce needs the same number of ranks on every node")
    intra = tuple(pair for group in groups for pair in ring_pairs(group))
    inter = tuple(pair for j in range(g) for pair in ring_pairs([group[j] for group in groups]))
    phases = []
    if g > 1:
        phases.append(Phase(intra, size / g, g - 1))
    if m > 1:
        phases.append(Phase(inter, size / (g * m), 2 * (m - 1)))
    if g > 1:
        phases.append(Phase(intra, size / g, g - 1))
    return phases


def all_to_all(n: int, size: float) -> list[Phase]:
    """All-to-all as NCCL posts it: every rank sends S/n to every other rank, all at once."""
    return [Phase(tuple((i, j) for i in range(n) for j in range(n) if i != j), size / n)]


def pairwise_all_to_all(n: int, size: float) -> list[Phase]:
    """Pairwise-exchange all-to-all (the MPI algorithm): n-1 rounds, in round r every rank i sends S/n to
    rank i + r; each round waits for its slowest flow."""
    return [Phase(tuple((i, (i + r) % n) for i in range(n)), size / n) for r in range(1, n)]


def broadcast(n: int, size: float, root: int = 0) -> list[Phase]:
    """Pipelined chain broadcast from ``root`` along the ring: every chain link carries S at once, plus
    (n - 2) latencies of pipeline fill."""
    chain = [(root + i) % n for i in range(n)]
    return [Phase(tuple(zip(chain[:-1], chain[1:], strict=True)), size, 1, max(n - 2, 0))]


def send_recv(n: int, size: float) -> list[Phase]:
    """nccl-tests sendrecv: every rank sends S to the next and receives S from the previous, at once."""
    return [Phase(ring_pairs(range(n)) if n > 2 else ((0, 1), (1, 0)), size)]


FLAT: dict[tuple[str, str], Callable[[int, float], list[Phase]]] = {
    ("all_reduce", "ring"): ring_all_reduce,
    ("all_reduce", "tree"): tree_all_reduce,
    ("all_gather", "ring"): ring_all_gather,
    ("reduce_scatter", "ring"): ring_reduce_scatter,
    ("all_to_all", "direct"): all_to_all,
    ("all_to_all", "pairwise"): pairwise_all_to_all,
    ("send_recv", "direct"): send_recv,
}
