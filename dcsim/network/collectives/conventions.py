"""nccl-tests reporting conventions (NVIDIA nccl-tests, doc/PERFORMANCE.md).

``S`` is the message size as nccl-tests counts it: the per-rank buffer of all-reduce, broadcast and
send/recv, the gathered (output) buffer of all-gather, the input buffer of reduce-scatter and the per-rank
send buffer of all-to-all. algbw = S / time; busbw = algbw * factor(n), the factor making busbw comparable
with the hardware's link bandwidth whatever the number of ranks n.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcsim.network.units import bytes_per_s_to_gbps

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv")


def bus_factor(op: str, n: int) -> float:
    """busbw / algbw for ``op`` on ``n`` ranks: 2(n-1)/n for all-reduce; (n-1)/n for all-gather,
    reduce-scatter and all-to-all; 1 for broadcast and send/recv."""
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    if op in ("broadcast", "send_recv"):
        return 1.0
    raise ValueError(f"unknown collective {op!r} (known: {', '.join(OPS)})")


@dataclass(frozen=True)
class CollectiveResult:
    """One collective's outcome: wall time in simulated seconds and nccl-tests bandwidths in bytes/s; for
    NCCL's tuned collectives also the ``protocol`` (``ll``, ``ll128``, ``simple``) and ``channels`` that ran
    (empty and 0 for the others).

    ``algbw_gbps``/``busbw_gbps`` give them in gigabits per second (the scenario contract's unit);
    ``*_gb_per_s`` in gigabytes per second (nccl-tests' printed unit, one eighth of that).
    """

    op: str
    algorithm: str
    ranks: int
    bytes: float
    time_s: float
    algbw_bytes_per_s: float
    busbw_bytes_per_s: float
    protocol: str = ""
    channels: int = 0

    @property
    def algbw_gbps(self) -> float:
        """Algorithm bandwidth in gigabits per second."""
        return bytes_per_s_to_gbps(self.algbw_bytes_per_s)

    @property
    def busbw_gbps(self) -> float:
        """Bus bandwidth in gigabits per second."""
        return bytes_per_s_to_gbps(self.busbw_bytes_per_s)

    @property
    def algbw_gb_per_s(self) -> float:
        """Algorithm bandwidth in gigabytes per second (as nccl-tests prints it)."""
        return self.algbw_bytes_per_s / 1e9

    @property
    def busbw_gb_per_s(self) -> float:
        """Bus bandwidth in gigabytes per second (as nccl-tests prints it)."""
        return self.busbw_bytes_per_s / 1e9

    def summary(self) -> dict[str, float | int | str]:
        """The scenario contract's collective summary (``time_s``, ``algbw_gbps``, ``busbw_gbps``) and more
        (``protocol`` and ``channels`` where NCCL's tuner chose them)."""
        out: dict[str, float | int | str] = {
            "op": self.op,
            "algorithm": self.algorithm,
            "ranks": self.ranks,
            "bytes": self.bytes,
            "time_s": self.time_s,
            "algbw_gbps": self.algbw_gbps,
            "busbw_gbps": self.busbw_gbps,
        }
        if self.protocol:
            out.update(protocol=self.protocol, channels=self.channels)
        return out


def make_result(
    op: str, algorithm: str, ranks: int, nbytes: float, time_s: float, protocol: str = "", channels: int = 0
) -> CollectiveResult:
    """A :class:`CollectiveResult` with algbw = bytes / time and busbw by :func:`bus_factor`."""
    algbw = nbytes / time_s if time_s > 0 else float("inf")
    busbw = algbw * bus_factor(op, ranks)
    return CollectiveResult(op, algorithm, ranks, float(nbytes), time_s, algbw, busbw, protocol, channels)
