"""Flow-level network simulation on SimPy: active flows share links max-min fairly.

A flow starts sending at once; its bytes drain at a rate that changes whenever any flow starts or ends,
and it is delivered one path latency after its last byte leaves, so alone on a path a flow takes
``latency + bytes / capacity``. Rates are recomputed only when flows start or end, and all starts and
ends at one instant are batched into one re-rate: a change schedules a re-rate event at that instant with
priority :data:`RERATE_PRIORITY`, lower than SimPy's normal priority, so it runs after every ordinary event
due at that instant (SimPy orders its heap by time, then priority, then insertion). Flow and group ids come
from counters owned by the simulator instance, so two simulators in one process give identical results.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import EventPriority

from dcsim.network.controller import Controller, Route
from dcsim.network.flowtable import FlowBatch, FlowTable
from dcsim.network.maxmin import max_min_rates
from dcsim.network.routing import NoRouteError
from dcsim.network.usage import LinkUsage

RERATE_PRIORITY = EventPriority(2)  # after simpy's URGENT (0) and NORMAL (1)
BYTES_TOLERANCE = 1e-9  # a flow with at most this fraction of its bytes left has drained
TIME_TOLERANCE = 1e-12  # ... or one whose remaining time is below this fraction of the clock (>= 1 s)


@dataclass(frozen=True)
class TransferDone:
    """Value of a transfer's completion event: start and delivery times (s), bytes and number of flows."""

    start_s: float
    end_s: float
    bytes: float
    flows: int


@dataclass(frozen=True)
class RoutedFlows:
    """Flows routed once (node indices, ECMP keys, links in CSR form, latency per flow in s), reusable
    for repeated transfers while the controller's ``version`` (link failures) is unchanged."""

    src: np.ndarray
    dst: np.ndarray
    key: np.ndarray
    ptr: np.ndarray
    links: np.ndarray
    latency_s: np.ndarray
    link_counts: np.ndarray
    version: int


class _Rerate(simpy.Event):
    """A triggered event at the current instant with :data:`RERATE_PRIORITY` (like ``simpy.Timeout``)."""

    def __init__(self, env: simpy.Environment, callback: Callable[[simpy.Event], None]) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        self.callbacks.append(callback)
        env.schedule(self, RERATE_PRIORITY)


class _Group:
    __slots__ = ("bytes", "deliver_at", "event", "failed", "flows", "pending", "start_s")

    def __init__(self, event: simpy.Event, flows: int, nbytes: float, start_s: float) -> None:
        self.event, self.pending, self.flows, self.bytes = event, flows, flows, nbytes
        self.start_s = self.deliver_at = start_s
        self.failed = False


class FlowSimulator:
    """Max-min fair flow simulator over a :class:`Controller`'s network, driven by a SimPy ``env``."""

    def __init__(self, env: simpy.Environment, controller: Controller) -> None:
        self.env = env
        self.controller = controller
        self.flows = FlowTable()
        self.usage = LinkUsage(controller.links, float(env.now))
        self.rerates = 0
        self.flows_rerated = 0
        self.flows_started = 0
        self._groups: dict[int, _Group] = {}
        self._next_flow = 0
        self._next_group = 0
        self._next_collective = 0
        self._last_update = float(env.now)
        self._link_rate: np.ndarray = np.zeros(controller.links.count)
        self._rerate_pending = False
        self._timer_generation = 0

    # ----- starting transfers -------------------------------------------------------------------------
    def route(
        self, srcs: Sequence[Hashable], dsts: Sequence[Hashable], keys: Sequence[int] | None = None
    ) -> RoutedFlows:
        """Route flows ``srcs[i] -> dsts[i]`` (node names) with ECMP keys (default: the next flow ids)."""
        index = self.controller.index
        src = np.array([index(s) for s in srcs], dtype=np.int64)
        dst = np.array([index(d) for d in dsts], dtype=np.int64)
        if src.size != dst.size:
            raise ValueError(f"{src.size} sources but {dst.size} destinations")
        key = np.arange(self._next_flow, self._next_flow + src.size) if keys is None else np.asarray(keys)
        return self._route_indices(src, dst, key.astype(np.int64))

    def _route_indices(self, src: np.ndarray, dst: np.ndarray, key: np.ndarray) -> RoutedFlows:
        route, load = self.controller.route_index, self.controller.link_flows
        routes = []
        for s, d, k in zip(src.tolist(), dst.tolist(), key.tolist(), strict=True):
            routes.append(route(s, d, k))
            if not self.controller.policy.static:  # a load-aware policy sees the flows routed before
                load[routes[-1].links] += 1
        if not self.controller.policy.static:
            for r in routes:
                load[r.links] -= 1
        lengths = [r.links.size for r in routes]
        ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        links = np.concatenate([r.links for r in routes]) if routes else np.empty(0, dtype=np.int64)
        latency = np.array([r.latency_s for r in routes], dtype=float)
        counts = np.bincount(links, minlength=self.controller.links.count)
        return RoutedFlows(src, dst, key, ptr, links, latency, counts, self.controller.version)

    def start_flow(self, src: Hashable, dst: Hashable, nbytes: float, key: int | None = None) -> simpy.Event:
        """Start one flow of ``nbytes`` bytes; the event fires on delivery with a :class:`TransferDone`."""
        return self.start_flows([src], [dst], nbytes, None if key is None else [key])

    def start_flows(
        self,
        srcs: Sequence[Hashable],
        dsts: Sequence[Hashable],
        nbytes: float | Sequence[float],
        keys: Sequence[int] | None = None,
    ) -> simpy.Event:
        """Start flows ``srcs[i] -> dsts[i]`` together; the event fires when the last one is delivered."""
        return self.start_routed(self.route(srcs, dsts, keys), nbytes)

    def start_routed(self, routed: RoutedFlows, nbytes: float | Sequence[float]) -> simpy.Event:
        """Start pre-routed flows (re-routed first if links failed since, or if the policy is load-aware)."""
        if routed.version != self.controller.version or not self.controller.policy.static:
            routed = self._route_indices(routed.src, routed.dst, routed.key)
        n = routed.src.size
        sizes = np.broadcast_to(np.asarray(nbytes, dtype=float), (n,)).copy()
        if np.any(sizes < 0) or not np.all(np.isfinite(sizes)):
            raise ValueError("flow sizes must be finite and >= 0 bytes")
        now = float(self.env.now)
        event = self.env.event()
        gid = self._next_group
        self._next_group += 1
        group = _Group(event, n, float(sizes.sum()), now)
        self._groups[gid] = group
        fid = np.arange(self._next_flow, self._next_flow + n, dtype=np.int64)
        self._next_flow += n
        self.flows_started += n
        empty = (sizes == 0) | (np.diff(routed.ptr) == 0)
        if np.any(empty):  # nothing to send, or nothing to cross: delivered after the path latency
            group.pending -= int(empty.sum())
            group.deliver_at = max(group.deliver_at, now + float(routed.latency_s[empty].max()))
            routed = _subset(routed, ~empty)
            sizes, fid = sizes[~empty], fid[~empty]
        self.controller.link_flows += routed.link_counts
        if sizes.size:
            self.flows.staged.append(
                FlowBatch(
                    fid,
                    np.full(sizes.size, gid, dtype=np.int64),
                    routed.src,
                    routed.dst,
                    routed.key,
                    sizes,
                    routed.latency_s,
                    routed.ptr,
                    routed.links,
                )
            )
            self._request_rerate()
        elif group.pending == 0:
            self._complete(gid)
        return event

    # ----- link failures ------------------------------------------------------------------------------
    def fail_link(self, u: Hashable, v: Hashable) -> int:
        """Take link ``u``-``v`` down now; the controller reroutes every flow crossing it. Flows left
        without a route fail their transfer's event with :class:`NoRouteError`. Returns flows rerouted."""
        self._advance()
        self.flows.merge_staged()
        dead = self.controller.fail_link(u, v)
        table = self.flows
        hit = np.zeros(table.size, dtype=bool)
        hit[table.ent_flow[np.isin(table.ent_link, dead)]] = True
        positions = np.flatnonzero(hit)
        if positions.size == 0:
            return 0
        old_links = table.ent_link[hit[table.ent_flow]]
        self.controller.link_flows -= np.bincount(old_links, minlength=self.controller.links.count)
        routes: dict[int, Route] = {}
        lost = np.zeros(table.size, dtype=bool)
        for pos in positions.tolist():
            try:
                routes[pos] = self.controller.route_index(int(table.src[pos]), int(table.dst[pos]), int(table.key[pos]))
            except NoRouteError as error:
                lost[pos] = True
                self._fail_group(int(table.group[pos]), error)
        lost |= np.isin(table.group, table.group[lost])  # a failed transfer stops all its flows
        kept = positions[~lost[positions]]
        if kept.size:
            new = [routes[pos] for pos in kept.tolist()]
            links = np.concatenate([r.links for r in new])
            ptr = np.concatenate(([0], np.cumsum([r.links.size for r in new])))
            table.replace_links(kept, ptr, links)
            table.latency_s[kept] = [r.latency_s for r in new]
            self.controller.link_flows += np.bincount(links, minlength=self.controller.links.count)
        if lost.any():
            untouched = lost & ~hit  # flows of a failed transfer that still hold their old links
            self.controller.link_flows -= np.bincount(
                table.ent_link[untouched[table.ent_flow]], minlength=self.controller.links.count
            )
            table.remove(lost)
        self._request_rerate()
        return int(kept.size)

    def restore_link(self, u: Hashable, v: Hashable) -> None:
        """Bring link ``u``-``v`` back; flows routed from now on may use it (active flows keep their path)."""
        self.controller.restore_link(u, v)

    # ----- the re-rate cycle --------------------------------------------------------------------------
    def _request_rerate(self) -> None:
        if not self._rerate_pending:
            self._rerate_pending = True
            _Rerate(self.env, self._rerate)

    def _rerate(self, _event: simpy.Event) -> None:
        self._rerate_pending = False
        self._advance()
        self.flows.merge_staged()
        self._finish_drained()
        self._allocate()
        self._arm_timer()

    def _advance(self) -> None:
        now = float(self.env.now)
        elapsed = now - self._last_update
        if elapsed > 0:
            table = self.flows
            table.remaining -= table.rate * elapsed
            self.usage.accumulate(self._last_update, now, self._link_rate)
        self._last_update = now

    def _finish_drained(self) -> None:
        table = self.flows
        if table.size == 0:
            return
        horizon = TIME_TOLERANCE * max(1.0, float(self.env.now))
        done = (table.remaining <= BYTES_TOLERANCE * table.bytes) | (table.remaining <= table.rate * horizon)
        if not done.any():
            return
        self.controller.link_flows -= np.bincount(
            table.ent_link[done[table.ent_flow]], minlength=self.controller.links.count
        )
        now = float(self.env.now)
        groups, latency = table.group[done], table.latency_s[done]
        table.remove(done)
        order = np.argsort(groups, kind="stable")
        groups, latency = groups[order], latency[order]
        starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1])))
        counts = np.diff(np.append(starts, groups.size))
        slowest = np.maximum.reduceat(latency, starts)
        for gid, count, lat in zip(groups[starts].tolist(), counts.tolist(), slowest.tolist(), strict=True):
            group = self._groups.get(gid)
            if group is None:
                continue
            group.pending -= count
            group.deliver_at = max(group.deliver_at, now + lat)
            if group.pending == 0:
                self._complete(gid)

    def _allocate(self) -> None:
        table = self.flows
        capacity = np.where(self.controller.alive, self.controller.links.capacity_bytes_per_s, 0.0)
        table.rate = max_min_rates(table.ent_flow, table.ent_link, table.size, capacity)
        self._link_rate = np.bincount(table.ent_link, weights=table.rate[table.ent_flow], minlength=capacity.size)
        self.usage.observe_rates(self._link_rate)
        self.rerates += 1
        self.flows_rerated += table.size

    def _arm_timer(self) -> None:
        self._timer_generation += 1
        table = self.flows
        moving = table.rate > 0
        if not moving.any():
            return
        delay = float((table.remaining[moving] / table.rate[moving]).min())
        generation = self._timer_generation
        timer = self.env.timeout(max(delay, 0.0))
        timer.callbacks.append(lambda _e: self._request_rerate() if generation == self._timer_generation else None)

    def _complete(self, gid: int) -> None:
        group = self._groups.pop(gid)
        done = TransferDone(group.start_s, group.deliver_at, group.bytes, group.flows)
        timer = self.env.timeout(group.deliver_at - float(self.env.now))
        timer.callbacks.append(lambda _e: _succeed(group.event, done))

    def _fail_group(self, gid: int, error: Exception) -> None:
        group = self._groups.pop(gid, None)
        if group is not None:
            group.event.fail(error)

    def next_collective_id(self) -> int:
        """A fresh id for a collective run on this simulator (0, 1, 2, ...): seeds its ECMP keys."""
        value = self._next_collective
        self._next_collective += 1
        return value

    @property
    def active_flows(self) -> int:
        """Flows currently sending (including those started at this instant and not yet rated)."""
        return self.flows.size + sum(b.fid.size for b in self.flows.staged)


def _succeed(event: simpy.Event, value: TransferDone) -> None:
    event.succeed(value)


def _subset(routed: RoutedFlows, keep: np.ndarray) -> RoutedFlows:
    lengths = np.diff(routed.ptr)
    entry_keep = np.repeat(keep, lengths)
    links = routed.links[entry_keep]
    ptr = np.concatenate(([0], np.cumsum(lengths[keep]))).astype(np.int64)
    counts = np.bincount(links, minlength=routed.link_counts.size)
    return RoutedFlows(
        routed.src[keep], routed.dst[keep], routed.key[keep], ptr, links, routed.latency_s[keep], counts, routed.version
    )
