"""The active flows of a :class:`~dcsim.network.flows.FlowSimulator` as slot-indexed numpy arrays.

Every flow lives in a *slot*: the same index in every per-flow array for its whole life, so a flow's
slot is a stable handle. ``paths`` holds each slot's directed links, one row per slot padded with the
dummy link ``n_links`` (infinite capacity); free slots have only padding, no rate and no bytes left, so
most whole-array passes need no mask. A flow spread over several paths (a ``multipath`` routing policy)
lists every link it loads once, and ``weights`` (same shape as ``paths``; None while every flow has one
path) holds the fraction of its rate each entry carries. New flows are staged (:class:`FlowBatch`) and
merged in one step; finished flows free their slots for reuse.

For small changes the table also keeps, in plain Python, each slot's links (``path_of``), a link known
to be its bottleneck (``bottleneck``, -1 if unknown) and the slots on every link (``flows_on``), which
the local re-rate (:mod:`dcsim.network.local`) walks. They are kept up to date for small merges and
removals and dropped on large ones (rebuilt on demand by :meth:`FlowTable.adjacency`).

Bytes left are brought up to date lazily: ``remaining`` holds a flow's bytes left at ``since_s``, the last
time its rate changed, and ``finish_s``/``drain_s`` the times it sends its last byte and from which it
counts as drained, both at its current rate (``inf`` for a flow that does not move and for free slots). A
rate change (:meth:`FlowTable.set_rate`, :meth:`FlowTable.set_rates`) updates these for the flows it
changes only, so an event that re-rates a few flows costs a few scalar writes. The table also keeps a
lower bound on the next drain and the first flow to finish: an event before that bound finds no drained
flow without a pass over ``drain_s``, and the next end is one pass over ``finish_s`` only when the first
flow left or finishes later than before.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

PER_FLOW = (
    *("fid", "group", "src", "dst", "key", "bytes", "remaining", "rate", "latency_s"),
    *("since_s", "finish_s", "drain_s", "credited"),
)
_FREE_INF = ("remaining", "finish_s", "drain_s")  # per-flow arrays that hold inf in a free slot (the others 0)
_INT_FIELDS = ("fid", "group", "src", "dst", "key")
SMALL_CHANGE = 64  # merges and removals up to this many flows keep the Python adjacency up to date
FEW_SCALAR = 4  # removals of up to this many flows write their slots one by one
BYTES_TOLERANCE = 1e-9  # a flow with at most this fraction of its bytes left has drained
TIME_TOLERANCE = 1e-12  # ... or one whose remaining time is below this fraction of the clock (>= 1 s)
_NO_SLOTS = np.zeros(0, dtype=np.int64)
_NO_SLOTS.flags.writeable = False


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
    weights: np.ndarray | None = None  # per entry of ``links``: the fraction of the flow's rate it carries

    @property
    def count(self) -> int:
        """Number of flows in the batch."""
        return int(self.fid.size)


class StagedFlow:
    """One flow to add, as plain Python values (ids, bytes, latency in s, its links as a list): what
    :meth:`~dcsim.network.flows.FlowSimulator.start_flow` stages, cheaper than a one-flow :class:`FlowBatch`."""

    __slots__ = ("bytes", "dst", "fid", "group", "key", "latency_s", "links", "src")
    count = 1

    def __init__(
        self, fid: int, group: int, src: int, dst: int, key: int, nbytes: float, latency_s: float, links: list[int]
    ) -> None:
        self.fid, self.group, self.src, self.dst, self.key = fid, group, src, dst, key
        self.bytes, self.latency_s, self.links = nbytes, latency_s, links

    def as_batch(self) -> FlowBatch:
        """The same flow as a :class:`FlowBatch`."""
        one = np.array
        return FlowBatch(
            one([self.fid]),
            one([self.group]),
            one([self.src]),
            one([self.dst]),
            one([self.key]),
            one([self.bytes], dtype=float),
            one([self.latency_s], dtype=float),
            one([0, len(self.links)]),
            one(self.links, dtype=np.int64),
        )


class FlowTable:
    """Active flows in slots (see module docstring). Rates are bytes/s, sizes bytes, latencies seconds."""

    def __init__(self, n_links: int) -> None:
        self.dummy = n_links
        self.active = np.zeros(0, dtype=bool)
        self.fid = np.zeros(0, dtype=np.int64)
        self.group = np.zeros(0, dtype=np.int64)
        self.src = np.zeros(0, dtype=np.int64)
        self.dst = np.zeros(0, dtype=np.int64)
        self.key = np.zeros(0, dtype=np.int64)
        self.bytes = np.zeros(0)
        self.remaining = np.zeros(0)
        self.rate = np.zeros(0)
        self.latency_s = np.zeros(0)
        self.since_s = np.zeros(0)  # when ``remaining`` was last brought up to date (s)
        self.finish_s = np.zeros(0)  # when the flow sends its last byte at its current rate (s; inf: never)
        self.drain_s = np.zeros(0)  # from when it counts as drained (s; inf: never; see BYTES/TIME_TOLERANCE)
        self.credited = np.zeros(0)  # bytes already counted on its links' usage (those sent before a reroute)
        self.rerouted = False  # whether any flow was ever given ``credited`` bytes
        self.paths = np.full((0, 1), n_links, dtype=np.int64)
        self.weights: np.ndarray | None = None  # per entry of ``paths``: fraction of the rate (None: all 1)
        self.free: list[int] = []
        self.count = 0
        self.staged: list[FlowBatch | StagedFlow] = []
        self.path_of: list[tuple[int, ...]] = []
        self.bottleneck: list[int] = []
        self.flows_on: dict[int, set[int]] | None = None
        self.rate_list: list[float] | None = None  # ``rate`` as a list, kept in step; None: rebuild
        self._link_index: tuple[np.ndarray, np.ndarray] | None = None
        self._mask = np.zeros(0, dtype=bool)
        # kept between events so that most need no pass over the table: no flow drains before
        # ``_drain_floor`` (a lower bound, -inf: unknown), and ``_first_slot`` finishes first, at
        # ``_first_finish`` (-1: unknown)
        self._drain_floor = -np.inf
        self._first_finish = np.inf
        self._first_slot = -1

    @property
    def size(self) -> int:
        """Number of active (merged) flows."""
        return self.count

    @property
    def capacity(self) -> int:
        """Number of slots (active or free)."""
        return int(self.active.size)

    def slots(self) -> np.ndarray:
        """Slots of the active flows, in increasing order."""
        return np.flatnonzero(self.active)

    def _grow(self, needed: int) -> None:
        old = self.capacity
        new = max(needed, 2 * old, 64)
        extra = new - old
        self.active = np.concatenate([self.active, np.zeros(extra, dtype=bool)])
        for name in PER_FLOW:
            array = getattr(self, name)
            fill = np.inf if name in _FREE_INF else 0
            setattr(self, name, np.concatenate([array, np.full(extra, fill, dtype=array.dtype)]))
        self.paths = np.vstack([self.paths, np.full((extra, self.paths.shape[1]), self.dummy, dtype=np.int64)])
        if self.weights is not None:
            self.weights = np.vstack([self.weights, np.ones((extra, self.weights.shape[1]))])
        self.path_of.extend([()] * extra)
        if self.rate_list is not None:
            self.rate_list.extend([0.0] * extra)
        self.bottleneck.extend([-1] * extra)
        self.free.extend(range(new - 1, old - 1, -1))  # popped from the end: lowest slots first

    def _widen(self, width: int) -> None:
        pad = np.full((self.capacity, width - self.paths.shape[1]), self.dummy, dtype=np.int64)
        self.paths = np.hstack([self.paths, pad])
        if self.weights is not None:
            self.weights = np.hstack([self.weights, np.ones(pad.shape)])

    def merge_staged(self) -> np.ndarray:
        """Put every staged batch into slots; returns the new flows' slots."""
        if len(self.staged) == 1 and isinstance(self.staged[0], StagedFlow):
            return np.array([self.merge_one()], dtype=np.int64)
        if not self.staged:
            return np.zeros(0, dtype=np.int64)
        staged, self.staged = self.staged, []
        batches = [b.as_batch() if isinstance(b, StagedFlow) else b for b in staged]
        self._link_index = None
        n = sum(b.fid.size for b in batches)
        if n > len(self.free):
            self._grow(self.capacity + n - len(self.free))
        taken = self.free[len(self.free) - n :]
        del self.free[len(self.free) - n :]
        slots = np.array(taken[::-1], dtype=np.int64)
        weights: np.ndarray | None = None
        if any(b.weights is not None for b in batches):
            weights = np.concatenate([np.ones(b.links.size) if b.weights is None else b.weights for b in batches])
        if len(batches) == 1:
            b = batches[0]
            ptr, links = b.ptr, b.links
            for name in ("fid", "group", "src", "dst", "key", "bytes", "latency_s"):
                getattr(self, name)[slots] = getattr(b, name)
            self.remaining[slots] = b.bytes
        else:
            for name in ("fid", "group", "src", "dst", "key", "bytes", "latency_s"):
                getattr(self, name)[slots] = np.concatenate([getattr(b, name) for b in batches])
            self.remaining[slots] = self.bytes[slots]
            lengths = np.concatenate([np.diff(b.ptr) for b in batches])
            ptr = np.concatenate(([0], np.cumsum(lengths)))
            links = np.concatenate([b.links for b in batches])
        self.rate[slots] = 0.0
        self.credited[slots] = 0.0
        rate_list = self.rate_list
        if rate_list is not None:
            if n > SMALL_CHANGE:
                self.rate_list = None
            else:
                for slot in taken:
                    rate_list[slot] = 0.0
        self.active[slots] = True
        self.count += n
        self._write_paths(slots, ptr, links, weights)
        return slots

    def merge_one(self) -> int:
        """:meth:`merge_staged` for a single staged :class:`StagedFlow`, with scalar writes; returns its slot."""
        (b,) = self.staged
        assert isinstance(b, StagedFlow)
        self.staged = []
        self._link_index = None
        if not self.free:
            self._grow(self.capacity + 1)
        slot = self.free.pop()
        self.fid[slot], self.group[slot], self.src[slot] = b.fid, b.group, b.src
        self.dst[slot], self.key[slot], self.latency_s[slot] = b.dst, b.key, b.latency_s
        self.bytes[slot] = self.remaining[slot] = b.bytes
        self.rate[slot] = self.credited[slot] = 0.0
        if self.rate_list is not None:
            self.rate_list[slot] = 0.0
        self.active[slot] = True
        self.count += 1
        path = tuple(b.links)
        if len(path) > self.paths.shape[1]:
            self._widen(len(path))
        self.paths[slot, : len(path)] = path  # (a free slot's row is all padding)
        if self.weights is not None:
            self.weights[slot] = 1.0
        self.path_of[slot] = path
        self.bottleneck[slot] = -1
        flows_on = self.flows_on
        if flows_on is not None:
            for link in path:
                on = flows_on.get(link)
                if on is None:
                    flows_on[link] = {slot}
                else:
                    on.add(slot)
        return slot

    def _write_paths(
        self, slots: np.ndarray, ptr: np.ndarray, links: np.ndarray, weights: np.ndarray | None = None
    ) -> None:
        self._link_index = None
        lengths = np.diff(ptr)
        width = int(lengths.max()) if lengths.size else 0
        if width > self.paths.shape[1]:
            self._widen(width)
        rows = np.repeat(slots, lengths)
        columns = np.arange(links.size) - np.repeat(ptr[:-1], lengths)
        self.paths[slots] = self.dummy
        self.paths[rows, columns] = links
        if weights is not None and self.weights is None:
            self.weights = np.ones(self.paths.shape)
        if self.weights is not None:
            self.weights[slots] = 1.0
            if weights is not None:
                self.weights[rows, columns] = weights
        if slots.size > SMALL_CHANGE:  # drop the Python view; adjacency() rebuilds it when needed
            self.flows_on = None
            return
        flows_on = self.flows_on
        bounds = ptr.tolist()
        link_list = links.tolist()
        for i, slot in enumerate(slots.tolist()):
            path = tuple(link_list[bounds[i] : bounds[i + 1]])
            self.path_of[slot] = path
            self.bottleneck[slot] = -1
            if flows_on is not None:
                for link in path:
                    on = flows_on.get(link)
                    if on is None:
                        flows_on[link] = {slot}
                    else:
                        on.add(slot)

    def remove(self, slots: np.ndarray) -> None:
        """Free the given slots (their flows are gone)."""
        flows_on = self.flows_on
        if flows_on is not None and slots.size > SMALL_CHANGE:
            self.flows_on = flows_on = None
        slot_list = slots.tolist()
        if len(slot_list) > FEW_SCALAR or self._first_slot in slot_list:
            self._first_slot = -1
        if flows_on is not None:
            path_of = self.path_of
            for slot in slot_list:
                for link in path_of[slot]:
                    flows_on[link].discard(slot)
        rate_list = self.rate_list
        if rate_list is not None:
            if len(slot_list) > SMALL_CHANGE:
                self.rate_list = None
            else:
                for slot in slot_list:
                    rate_list[slot] = 0.0
        if self.weights is not None:
            self.weights[slots] = 1.0
        if len(slot_list) <= FEW_SCALAR:  # scalar writes beat fancy indexing for a few slots
            active, rate, remaining, nbytes, paths = self.active, self.rate, self.remaining, self.bytes, self.paths
            finish, drain = self.finish_s, self.drain_s
            for slot in slot_list:
                active[slot] = False
                rate[slot] = 0.0
                remaining[slot] = finish[slot] = drain[slot] = np.inf
                nbytes[slot] = 0.0
                paths[slot] = self.dummy
        elif len(slot_list) == self.count:  # every flow leaves: whole-array fills (free slots hold these too)
            self.active.fill(False)
            self.rate.fill(0.0)
            self.remaining.fill(np.inf)
            self.finish_s.fill(np.inf)
            self.drain_s.fill(np.inf)
            self.bytes.fill(0.0)
            self.paths.fill(self.dummy)
        else:
            self.active[slots] = False
            self.rate[slots] = 0.0
            self.remaining[slots] = self.finish_s[slots] = self.drain_s[slots] = np.inf
            self.bytes[slots] = 0.0
            self.paths[slots] = self.dummy
        self.count -= len(slot_list)
        if len(slot_list) == 1:
            self.free.append(slot_list[0])
        else:
            self.free.extend(sorted(slot_list, reverse=True))

    def set_rate(self, slot: int, rate: float, now: float) -> None:
        """Give the flow at ``slot`` the rate ``rate`` (bytes/s) from ``now`` (s) on: its bytes left are
        brought up to ``now`` at its old rate and its finish and drain times follow the new one. Writes
        :meth:`rate_values` too."""
        self.set_few_rates({slot: rate}, now, (), 0.0)

    def set_few_rates(self, rates: dict[int, float], now: float, arrived: Collection[int], same: float) -> bool:
        """:meth:`set_rate` for a few flows (``rates``: slot -> bytes/s) from ``now`` (s) on, with the
        table's arrays bound once. Returns whether a flow not in ``arrived`` changed its rate by more than
        the fraction ``same``."""
        rate, rate_list = self.rate, self.rate_list
        remaining, since, nbytes = self.remaining, self.since_s, self.bytes
        finish_s, drain_s = self.finish_s, self.drain_s
        floor, first, first_slot = self._drain_floor, self._first_finish, self._first_slot
        moved = False
        for slot, value in rates.items():
            old = rate.item(slot)
            if old == value:
                continue
            if not moved and slot not in arrived:
                moved = abs(value - old) > same * old
            left = remaining.item(slot)
            if old > 0.0:
                left -= old * (now - since.item(slot))
                remaining[slot] = left
            since[slot] = now
            rate[slot] = value
            if rate_list is not None:
                rate_list[slot] = value
            if value > 0.0:
                finish = now + left / value
                finish_s[slot] = finish
                drain = drain_s[slot] = min(
                    now + (left - nbytes.item(slot) * BYTES_TOLERANCE) / value,
                    finish - TIME_TOLERANCE * max(1.0, finish),
                )
                if drain < floor:
                    floor = drain
                if first_slot >= 0:
                    if finish < first:
                        first, first_slot = finish, slot
                    elif slot == first_slot:  # the first to finish now finishes later: find it again
                        first_slot = -1
            else:
                finish_s[slot] = drain_s[slot] = np.inf
                if slot == first_slot:
                    first_slot = -1
        self._drain_floor, self._first_finish, self._first_slot = floor, first, first_slot
        return moved

    def set_rates(self, slots: np.ndarray, rates: np.ndarray, now: float) -> None:
        """:meth:`set_rate` for many ``slots`` at once (``rates`` in bytes/s), in whole-table passes: every
        flow's bytes left are brought up to ``now`` and every finish and drain time recomputed (cheaper
        than gathering many slots). Drops :meth:`rate_values` (rebuilt when next asked)."""
        rate, remaining = self.rate, self.remaining
        self._drain_floor, self._first_slot = -np.inf, -1
        remaining -= rate * (now - self.since_s)  # (a free slot: inf - 0 stays inf)
        self.since_s.fill(now)
        rate[slots] = rates
        self.rate_list = None
        moving = rate > 0.0
        finish, drain = self.finish_s, self.drain_s
        finish.fill(np.inf)
        np.divide(remaining, rate, out=finish, where=moving)
        finish += now  # now + remaining / rate, as set_rate computes it
        by_bytes = np.multiply(self.bytes, BYTES_TOLERANCE)
        np.subtract(remaining, by_bytes, out=by_bytes)
        np.divide(by_bytes, rate, out=by_bytes, where=moving)
        by_bytes += now
        by_time = np.maximum(finish, 1.0)
        by_time *= TIME_TOLERANCE
        np.subtract(finish, by_time, out=by_time, where=moving)
        drain.fill(np.inf)
        np.minimum(by_bytes, by_time, out=drain, where=moving)

    def drained(self, now: float) -> np.ndarray:
        """Slots of the flows that have drained by ``now`` (s): at most ``BYTES_TOLERANCE`` of their bytes,
        or less than ``TIME_TOLERANCE`` of the clock's worth of sending, is left."""
        if now < self._drain_floor:  # (no pass over the table)
            return _NO_SLOTS
        mask = self._mask
        if mask.size != self.drain_s.size:
            mask = self._mask = np.empty(self.drain_s.size, dtype=bool)
        slots = np.flatnonzero(np.less_equal(self.drain_s, now, out=mask))
        if slots.size:  # (they leave: the floor is found at the next call)
            self._drain_floor = -np.inf
        else:
            self._drain_floor = float(np.minimum.reduce(self.drain_s)) if self.drain_s.size else np.inf
        return slots

    def next_finish(self) -> float:
        """The earliest time (s) an active flow sends its last byte at the current rates (inf: none moves)."""
        if self._first_slot < 0:
            if not self.finish_s.size:
                return np.inf
            self._first_slot = int(self.finish_s.argmin())
            self._first_finish = self.finish_s.item(self._first_slot)
        return self._first_finish

    def remaining_at(self, now: float) -> np.ndarray:
        """Bytes left of every slot at ``now`` (s) at the current rates (inf for free slots)."""
        return self.remaining - self.rate * (now - self.since_s)

    def uncredited_at(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-link bytes the active flows have sent by ``now`` (s) and not yet credited: (link per entry,
        bytes per entry), one entry per (flow, link)."""
        slots = self.slots()
        sent = self.bytes[slots] - self.remaining_at(now)[slots] - self.credited[slots]
        rows = self.paths[slots]
        keep = rows < self.dummy
        if self.weights is not None:
            return rows[keep], (sent[:, None] * self.weights[slots])[keep]
        return rows[keep], np.broadcast_to(sent[:, None], rows.shape)[keep]

    def replace_links(
        self, slots: np.ndarray, ptr: np.ndarray, links: np.ndarray, weights: np.ndarray | None = None
    ) -> None:
        """Give the flows at ``slots`` new link lists (CSR ``ptr``/``links``, ``weights`` per entry)."""
        self.flows_on = None
        self._write_paths(slots, ptr, links, weights)

    def adjacency(self) -> dict[int, set[int]]:
        """The slots on every link (with ``path_of``, rebuilt from ``paths`` if they were dropped)."""
        if self.flows_on is None:
            flows_on: dict[int, set[int]] = {}
            slots = self.slots()
            rows = self.paths[slots]
            dummy = self.dummy
            for slot, row in zip(slots.tolist(), rows.tolist(), strict=True):
                self.path_of[slot] = tuple(link for link in row if link != dummy)
                self.bottleneck[slot] = -1
            keep = rows < self.dummy
            links = rows[keep]
            owners = np.repeat(slots, keep.sum(axis=1))
            order = np.argsort(links, kind="stable")
            links, owners = links[order], owners[order]
            cuts = np.flatnonzero(np.diff(links)) + 1 if links.size else np.zeros(0, dtype=np.int64)
            starts = np.concatenate(([0], cuts)).tolist()
            ends = np.concatenate((cuts, [links.size])).tolist()
            if not links.size:
                starts, ends = [], []
            link_ids = links[starts].tolist()
            owner_list = owners.tolist()
            for link, a, b in zip(link_ids, starts, ends, strict=True):
                if b > a:
                    flows_on[link] = set(owner_list[a:b])
            self.flows_on = flows_on
        return self.flows_on

    def rate_values(self) -> list[float]:
        """``rate`` as a Python list (bytes/s per slot), for loops over a few flows. The table keeps it in
        step with its own writes (rates change through :meth:`set_rate` and :meth:`set_rates` only)."""
        if self.rate_list is None:
            self.rate_list = self.rate.tolist()
        return self.rate_list

    def link_index(self) -> tuple[np.ndarray, np.ndarray]:
        """The slots on every link in CSR form (``slots[ptr[l] : ptr[l + 1]]`` cross link ``l``), kept
        until flows are merged or rerouted; slots freed since may still be listed (check ``active``)."""
        if self._link_index is None:
            slots = self.slots()
            rows = self.paths[slots]
            keep = rows < self.dummy
            links = rows[keep]
            owners = np.repeat(slots, keep.sum(axis=1))
            order = np.argsort(links, kind="stable")
            ptr = np.concatenate(([0], np.cumsum(np.bincount(links, minlength=self.dummy))))
            self._link_index = (ptr, owners[order])
        return self._link_index

    def entries(self, slots: np.ndarray) -> np.ndarray:
        """Links of the flows in ``slots`` (padding dropped; repeats kept)."""
        rows = self.paths[slots]
        return rows[rows < self.dummy]
