"""The active flows of a :class:`~dcsim.network.flows.FlowSimulator` as parallel numpy arrays.

Position ``i`` in every per-flow array is one active flow; ``ent_flow``/``ent_link`` list the directed
links each flow crosses (one entry per flow and link), kept grouped by flow position in increasing order.
New flows are staged and appended in one step; finished flows are removed by a mask, keeping the order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PER_FLOW = ("fid", "group", "src", "dst", "key", "bytes", "remaining", "rate", "latency_s")
_INT_FIELDS = ("fid", "group", "src", "dst", "key")


@dataclass
class FlowBatch:
    """Flows to add: per-flow arrays plus their links in CSR form (``ptr`` has one more entry than flows)."""

    fid: np.ndarray
    group: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    key: np.ndarray
    bytes: np.ndarray
    latency_s: np.ndarray
    ptr: np.ndarray
    links: np.ndarray


def _empty(name: str) -> np.ndarray:
    return np.empty(0, dtype=np.int64 if name in _INT_FIELDS else float)


@dataclass
class FlowTable:
    """Active flows (see module docstring). Rates are bytes/s, sizes bytes, latencies seconds."""

    fid: np.ndarray = field(default_factory=lambda: _empty("fid"))
    group: np.ndarray = field(default_factory=lambda: _empty("group"))
    src: np.ndarray = field(default_factory=lambda: _empty("src"))
    dst: np.ndarray = field(default_factory=lambda: _empty("dst"))
    key: np.ndarray = field(default_factory=lambda: _empty("key"))
    bytes: np.ndarray = field(default_factory=lambda: _empty("bytes"))
    remaining: np.ndarray = field(default_factory=lambda: _empty("remaining"))
    rate: np.ndarray = field(default_factory=lambda: _empty("rate"))
    latency_s: np.ndarray = field(default_factory=lambda: _empty("latency_s"))
    ent_flow: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    ent_link: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    staged: list[FlowBatch] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Number of active (merged) flows."""
        return int(self.fid.size)

    def merge_staged(self) -> None:
        """Append every staged batch to the active arrays (one concatenation per array)."""
        if not self.staged:
            return
        batches, self.staged = self.staged, []
        base = self.size
        offsets = np.cumsum([base] + [b.fid.size for b in batches[:-1]])
        ent_flow = [self.ent_flow]
        for offset, b in zip(offsets, batches, strict=True):
            ent_flow.append(offset + np.repeat(np.arange(b.fid.size), np.diff(b.ptr)))
        self.ent_flow = np.concatenate(ent_flow)
        self.ent_link = np.concatenate([self.ent_link] + [b.links for b in batches])
        for name in ("fid", "group", "src", "dst", "key", "bytes", "latency_s"):
            setattr(self, name, np.concatenate([getattr(self, name)] + [getattr(b, name) for b in batches]))
        self.remaining = np.concatenate([self.remaining] + [b.bytes for b in batches])
        self.rate = np.concatenate([self.rate, np.zeros(self.size - base)])

    def remove(self, gone: np.ndarray) -> None:
        """Drop the flows where the boolean mask ``gone`` is true."""
        keep = ~gone
        new_position = np.cumsum(keep) - 1
        entry_keep = keep[self.ent_flow]
        self.ent_flow = new_position[self.ent_flow[entry_keep]]
        self.ent_link = self.ent_link[entry_keep]
        for name in PER_FLOW:
            setattr(self, name, getattr(self, name)[keep])

    def replace_links(self, positions: np.ndarray, ptr: np.ndarray, links: np.ndarray) -> None:
        """Give the flows at ``positions`` new link lists (CSR ``ptr``/``links``), keeping entries grouped."""
        moved = np.zeros(self.size, dtype=bool)
        moved[positions] = True
        entry_keep = ~moved[self.ent_flow]
        flows = np.concatenate([self.ent_flow[entry_keep], np.repeat(positions, np.diff(ptr))])
        all_links = np.concatenate([self.ent_link[entry_keep], links])
        order = np.argsort(flows, kind="stable")
        self.ent_flow, self.ent_link = flows[order], all_links[order]
