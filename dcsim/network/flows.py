"""Flow-level network simulation on SimPy: active flows share links max-min fairly.

A flow starts sending at once; its bytes drain at a rate that changes whenever any flow starts or ends,
and it is delivered one path latency after its last byte leaves, so alone on a path a flow takes
``latency + bytes / capacity``. Rates are recomputed only when flows start or end, and all starts and
ends at one instant are batched into one re-rate: a change schedules a re-rate event at that instant with
priority :data:`RERATE_PRIORITY`, lower than SimPy's normal priority, so it runs after every ordinary event
due at that instant (SimPy orders its heap by time, then priority, then insertion). Flow and group ids come
from counters owned by the simulator instance, so two simulators in one process give identical results.

A ``multipath`` routing policy (``adaptive``) spreads a flow over several paths: the flow keeps one rate,
and each link it loads carries the fraction of that rate the policy gave it (``RoutingPolicy.split``).
Max-min sharing is then the weighted progressive filling of :func:`~dcsim.network.maxmin.max_min_rows`,
run in full at every change (the local and incremental shortcuts assume one path per flow).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import EventPriority

from dcsim.network.controller import Controller
from dcsim.network.flowtable import FlowBatch, FlowTable, StagedFlow
from dcsim.network.incremental import (
    SAME_RATE,
    SATURATED,
    arrival_rate,
    departures_keep_allocation,
    departures_keep_allocation_indexed,
)
from dcsim.network.local import FlowState, local_rerate, lone_arrival
from dcsim.network.maxmin import max_min_rows
from dcsim.network.routing import NoRouteError
from dcsim.network.usage import LinkUsage

RERATE_PRIORITY = EventPriority(2)  # after simpy's URGENT (0) and NORMAL (1)
LOCAL_CHANGE = 16  # re-rate locally (dcsim.network.local) when at most this many flows start and end at once
LOCAL_MAX_FLOWS = 24  # ... unless more than this many flows would need new rates: then water-fill all
INDEXED_DEPARTURES = 4096  # check departures of a table this large through its link index (kept until merges)
LOCAL_REBUILD = 8192  # rebuild the per-link flow sets for a local re-rate only up to this many active flows
FEW_LEAVERS = 8  # update the controller's per-link flow counts of this many leavers in plain Python
LIST_AFTER = 32  # keep link loads and usage in Python lists once this many small changes came in a row


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
    version: int
    weights: np.ndarray | None = None  # per entry of ``links``: fraction of the flow's rate (None: all 1)


@dataclass(frozen=True)
class _Reroute:
    """A flow's links after a reroute, the fraction of its rate on each, and its latency (s)."""

    links: np.ndarray
    weights: np.ndarray
    latency_s: float


class _Rerate(simpy.Event):
    """A triggered event ``delay_s`` from now (default: at this instant) with :data:`RERATE_PRIORITY`, like
    ``simpy.Timeout``: it fires after every ordinary event due at the same instant."""

    def __init__(self, env: simpy.Environment, callback: Callable[[simpy.Event], None], delay_s: float = 0.0) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        self.callbacks.append(callback)
        env.schedule(self, RERATE_PRIORITY, delay_s)


class _Group:
    __slots__ = ("bytes", "deliver_at", "event", "failed", "flows", "pending", "start_s")

    def __init__(self, event: simpy.Event, flows: int, nbytes: float, start_s: float) -> None:
        self.event, self.pending, self.flows, self.bytes = event, flows, flows, nbytes
        self.start_s = self.deliver_at = start_s
        self.failed = False


class FlowSimulator:
    """Max-min fair flow simulator over a :class:`Controller`'s network, driven by a SimPy ``env``.

    ``incremental`` lets a change that provably leaves the other flows' rates max-min fair (a lone
    arrival on unsaturated links, departures that were nobody else's bottleneck; see
    :mod:`dcsim.network.incremental`) skip the full water-filling; ``check`` verifies every allocation
    against a full one (slow; for tests). Counters: ``rerates`` (water-fillings, of which
    ``local_rerates`` re-rated only the flows a small change reaches, see :mod:`dcsim.network.local`),
    ``flows_rerated`` (flows whose rate was computed), ``incremental_updates`` (changes that left every
    running flow's rate as it was).
    """

    def __init__(
        self, env: simpy.Environment, controller: Controller, *, incremental: bool = True, check: bool = False
    ) -> None:
        self.env = env
        self.controller = controller
        self.flows = FlowTable(controller.links.count)
        self.usage = LinkUsage(controller.links, float(env.now))
        self.usage.in_flight = self.flows.uncredited_at
        self.rerates = 0
        self.flows_rerated = 0
        self.flows_started = 0
        self._groups: dict[int, _Group] = {}
        self._next_flow = 0
        self._next_group = 0
        self._next_collective = 0
        self._last_update = float(env.now)
        self._link_rate: np.ndarray = np.zeros(controller.links.count)
        # the link loads local re-rates work on: ``_link_rate`` itself or a list mirror of it (None: choose)
        self._load_list: list[float] | np.ndarray | None = None
        self._loads_ahead = False  # True: local re-rates changed ``_load_list`` only (see _sync_link_rate)
        self._small_run = 0  # changes re-rated locally since the last large one
        self._rerate_pending = False
        self._timer_generation = 0
        self._timer_at = np.inf  # when the armed timer fires (s; inf: no timer armed)
        self._force_full = False
        self._capacity_version = -1
        self._effective_capacity = controller.links.capacity_bytes_per_s
        self._capacity_list: list[float] = []
        self._saturated_at: list[float] = []  # per link: capacity * (1 - SATURATED)
        self._last_allocation: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self.incremental = incremental
        self.check = check
        self.incremental_updates = 0
        self.local_rerates = 0
        self._weighted = False  # a multipath flow was started: every re-rate is a full weighted filling

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
        policy = self.controller.policy
        if policy.multipath:
            return self._split_indices(src, dst, key)
        if policy.static:  # the policy routes the whole batch (Ecmp vectorizes it)
            ptr, links, latency = policy.route_links(src, dst, key)
            return RoutedFlows(src, dst, key, ptr, links, latency, self.controller.version)
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
        return RoutedFlows(src, dst, key, ptr, links, latency, self.controller.version)

    def _split_indices(self, src: np.ndarray, dst: np.ndarray, key: np.ndarray) -> RoutedFlows:
        """Route flows with a multipath policy: each flow's links and the fraction of it each carries."""
        split = self.controller.policy.split
        splits = [split(s, d, k) for s, d, k in zip(src.tolist(), dst.tolist(), key.tolist(), strict=True)]
        ptr = np.concatenate(([0], np.cumsum([len(links) for links, _, _ in splits]))).astype(np.int64)
        links = np.fromiter((lk for links, _, _ in splits for lk in links), np.int64, int(ptr[-1]))
        weights = np.fromiter((w for _, fractions, _ in splits for w in fractions), float, int(ptr[-1]))
        latency = np.array([lat for _, _, lat in splits], dtype=float)
        return RoutedFlows(src, dst, key, ptr, links, latency, self.controller.version, weights)

    def start_flow(self, src: Hashable, dst: Hashable, nbytes: float, key: int | None = None) -> simpy.Event:
        """Start one flow of ``nbytes`` bytes; the event fires on delivery with a :class:`TransferDone`."""
        controller = self.controller
        if not controller.policy.static or controller.policy.multipath:
            return self.start_flows([src], [dst], nbytes, None if key is None else [key])
        # one flow: the same steps as start_routed, without the batch machinery
        s, d = controller.index(src), controller.index(dst)
        k = self._next_flow if key is None else int(key)
        path, latency = controller.policy.route_one(s, d, k)
        size = float(nbytes)
        if size < 0 or not math.isfinite(size):
            raise ValueError("flow sizes must be finite and >= 0 bytes")
        now = float(self.env.now)
        event = self.env.event()
        gid = self._next_group
        self._next_group += 1
        group = _Group(event, 1, size, now)
        self._groups[gid] = group
        fid = self._next_flow
        self._next_flow += 1
        self.flows_started += 1
        if size == 0 or not path:  # nothing to send, or nothing to cross: delivered after the path latency
            group.pending = 0
            group.deliver_at = max(now, now + latency)
            self._complete(gid)
            return event
        counts = controller.link_flows
        for link in path:
            counts[link] += 1
        self.flows.staged.append(StagedFlow(fid, gid, s, d, k, size, latency, path))
        self._request_rerate()
        return event

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
        self._count_flows(routed.links, +1)
        if routed.weights is not None:
            self._weighted = True
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
                    routed.weights,
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
        self._force_full = True  # capacities change and staged flows join unrated: water-fill from scratch
        self._request_rerate()
        self.flows.merge_staged()
        dead = self.controller.fail_link(u, v)
        table = self.flows
        hit = np.isin(table.paths, dead).any(axis=1) & table.active
        positions = np.flatnonzero(hit)
        if positions.size == 0:
            return 0
        self._count_flows(table.entries(positions), -1)
        routes: dict[int, _Reroute] = {}
        lost = np.zeros(table.capacity, dtype=bool)
        for pos in positions.tolist():
            try:
                routes[pos] = self._reroute(int(table.src[pos]), int(table.dst[pos]), int(table.key[pos]))
            except NoRouteError as error:
                lost[pos] = True
                self._fail_group(int(table.group[pos]), error)
        lost |= np.isin(table.group, table.group[lost]) & table.active  # a failed transfer stops all its flows
        moving = np.flatnonzero(hit | lost)  # what they sent so far stays on the links they leave
        sent = table.bytes[moving] - table.remaining_at(float(self.env.now))[moving]
        self._credit(moving, table.paths[moving], sent)
        table.credited[moving] = sent
        table.rerouted = True
        kept = positions[~lost[positions]]
        if kept.size:
            new = [routes[pos] for pos in kept.tolist()]
            links = np.concatenate([r.links for r in new])
            ptr = np.concatenate(([0], np.cumsum([r.links.size for r in new])))
            weights = np.concatenate([r.weights for r in new]) if self._weighted else None
            table.replace_links(kept, ptr, links, weights)
            table.latency_s[kept] = [r.latency_s for r in new]
            self._count_flows(links, +1)
        if lost.any():
            untouched = lost & ~hit  # flows of a failed transfer that still hold their old links
            self._count_flows(table.entries(np.flatnonzero(untouched)), -1)
            table.remove(np.flatnonzero(lost))
        self._request_rerate()
        return int(kept.size)

    def _reroute(self, src: int, dst: int, key: int) -> _Reroute:
        """A flow's new links (and their fractions of its rate) after a link failure."""
        policy = self.controller.policy
        if policy.multipath:
            links, fractions, latency = policy.split(src, dst, key)
            return _Reroute(np.array(links, dtype=np.int64), np.array(fractions, dtype=float), latency)
        route = self.controller.route_index(src, dst, key)
        return _Reroute(route.links, np.ones(route.links.size), route.latency_s)

    def restore_link(self, u: Hashable, v: Hashable) -> None:
        """Bring link ``u``-``v`` back; flows routed from now on may use it (active flows keep their path)."""
        self.controller.restore_link(u, v)

    # ----- the re-rate cycle --------------------------------------------------------------------------
    def _request_rerate(self) -> None:
        if not self._rerate_pending:
            self._rerate_pending = True
            _Rerate(self.env, self._rerate)

    def _rerate(self, _event: simpy.Event | None) -> None:
        self._rerate_pending = False
        self._advance()
        table, capacity = self.flows, self._capacity()
        done = self._drained()
        use_shortcuts = self.incremental and not self._force_full and not self._weighted
        arriving = sum(b.count for b in table.staged)
        if (
            use_shortcuts
            and done.size + arriving <= LOCAL_CHANGE
            and (arriving == 0 or table.size > done.size)  # newcomers alone: plain water-filling
            and (table.flows_on is not None or table.size <= LOCAL_REBUILD)
        ):
            if not self._rerate_locally(done, capacity):
                self._allocate(capacity)
        else:
            self._small_run = 0
            self._sync_link_rate()
            local = use_shortcuts and (done.size in (0, table.size) or self._departures_keep(done, capacity))
            if done.size:
                if local:  # the others keep their rates: take the leavers' rates off their links
                    rows = table.paths[done]
                    keep = rows < table.dummy
                    self._link_rate -= np.bincount(
                        rows[keep],
                        weights=np.broadcast_to(table.rate[done][:, None], rows.shape)[keep],
                        minlength=capacity.size,
                    )
                    self._load_list = None
                    self.usage.rates_changed()
                self._retire(done)
            if local and not self._place_arrival(capacity):
                local = False
            table.merge_staged()
            if local:
                self.incremental_updates += 1
            else:
                self._allocate(capacity)
        self._force_full = False
        if self.check:
            self._sync_link_rate()
            self._check_allocation(capacity)
            self.usage.check(self._link_rate)
        self._arm_timer()

    def _sync_link_rate(self) -> None:
        """Bring ``_link_rate`` (numpy) up to date with the loads local re-rates kept in ``_load_list``."""
        if self._loads_ahead:
            assert self._load_list is not None
            self._link_rate = np.array(self._load_list, dtype=float)
            self._loads_ahead = False

    def _departures_keep(self, done: np.ndarray, capacity: np.ndarray) -> bool:
        """Whether the flows in slots ``done`` leave the others' rates max-min fair (see incremental)."""
        table = self.flows
        if table.size >= INDEXED_DEPARTURES:
            return departures_keep_allocation_indexed(
                table.link_index(), table.active, table.paths, table.rate, self._link_rate, capacity, done
            )
        return departures_keep_allocation(table.paths, table.rate, self._link_rate, capacity, done)

    def _rerate_locally(self, done: np.ndarray, capacity: np.ndarray) -> bool:
        """Retire ``done``, merge the staged flows and re-rate only the flows the change reaches
        (:func:`dcsim.network.local.local_rerate`); False if that would reach too many (nothing rated).

        Counts an incremental update when no flow that was already running changes its rate (the
        shortcuts of :mod:`dcsim.network.incremental`), else a (local) water-filling."""
        table = self.flows
        flows_on = table.adjacency()  # also makes path_of valid for every active slot
        path_of = table.path_of
        link_rate = self._link_rate
        # the loads: a list mirror once small changes come in a row (cheaper to index), else the array
        # itself (no conversion each way when small and large changes alternate, as in a collective)
        self._small_run += 1
        load = self._load_list
        if load is None or (load is link_rate and self._small_run > LIST_AFTER):
            load = self._load_list = link_rate.tolist() if self._small_run > LIST_AFTER else link_rate
        capacity_list, saturated_at = self._capacity_list, self._saturated_at
        done_list = done.tolist()
        rates = table.rate_values()
        leaver_links: set[int] = set()
        saturated: list[int] = []
        for slot in done_list:  # take the leavers off their links' loads
            value = rates[slot]
            for link in path_of[slot]:
                if link not in leaver_links:
                    leaver_links.add(link)
                    if load[link] >= saturated_at[link]:
                        saturated.append(link)
                load[link] -= value
        self._retire(done, done_list)
        for link in leaver_links:
            if not flows_on[link]:  # (no rounding left on a link nobody crosses)
                load[link] = 0.0
        staged = table.staged
        if len(staged) == 1 and isinstance(staged[0], StagedFlow):
            new_slots = [table.merge_one()]
        else:
            new_slots = table.merge_staged().tolist()
        seeds = set(new_slots)
        changed = leaver_links
        for slot in new_slots:
            changed.update(path_of[slot])
            # flows on links the newcomer finds full may have to give way: re-rate them with it
            saturated.extend(lk for lk in path_of[slot] if load[lk] >= saturated_at[lk])
        now = float(self.env.now)
        state = FlowState(flows_on, path_of, table.bottleneck, rates, load, capacity_list, saturated_at)
        if not saturated and not done_list and len(new_slots) == 1:  # one arrival on unsaturated links
            (slot,) = new_slots
            lone = lone_arrival(state, slot)
            if isinstance(lone, list):  # flows that must give way to it: re-rate them with it
                seeds.update(lone)
            else:
                table.set_rate(slot, lone, now)
                self.usage.set_link_rates(path_of[slot], load, link_rate)
                self._loads_ahead = load is not link_rate
                self.flows_rerated += 1
                self.incremental_updates += 1
                return True
        # the flows a saturated link of the change held back (its fastest) gain or give way first: the
        # others on it are bottlenecked elsewhere, and local_rerate adds them if their bottleneck moves
        near = 1 - SAME_RATE
        for link in saturated:
            on = flows_on[link]
            if len(on) > 1:
                top = max([rates[s] for s in on]) * near
                seeds.update([s for s in on if rates[s] >= top])
            else:
                seeds.update(on)
        result = local_rerate(state, seeds, changed, LOCAL_MAX_FLOWS)
        if result is None:  # (the leavers were taken off the loads: the full water-filling rebuilds them)
            self._load_list = None
            self._loads_ahead = False
            return False
        moved = table.set_few_rates(result.rates, now, new_slots, SAME_RATE)
        self.usage.set_link_rates(result.links, load, link_rate)
        self._loads_ahead = load is not link_rate
        self.flows_rerated += len(result.rates)
        if moved:
            self.rerates += 1
            self.local_rerates += 1
        else:
            self.incremental_updates += 1
        return True

    def _capacity(self) -> np.ndarray:
        if self._capacity_version != self.controller.version:
            live = self.controller.live_capacity(SATURATED)
            self._effective_capacity, self._capacity_list, self._saturated_at = live
            self._capacity_version = self.controller.version
        return self._effective_capacity

    def _place_arrival(self, capacity: np.ndarray) -> bool:
        """Give a lone new flow its max-min rate without touching the others, where that is exact."""
        staged = self.flows.staged
        if not staged:
            return True
        if len(staged) > 1 or staged[0].count > 1:
            return False
        table, path = self.flows, np.asarray(staged[0].links, dtype=np.int64)
        new_rate = arrival_rate(table.paths, table.rate, self._link_rate, capacity, path)
        if new_rate is None:
            return False
        slots = table.merge_staged()
        table.set_rate(int(slots[0]), new_rate, float(self.env.now))
        self._link_rate[path] += new_rate
        self._load_list = None
        self.usage.observe_links(path, self._link_rate[path])
        self.flows_rerated += 1
        return True

    def _check_allocation(self, capacity: np.ndarray) -> None:
        table = self.flows
        slots = table.slots()
        fractions = None if table.weights is None else table.weights[slots]
        exact = max_min_rows(table.paths[slots], capacity, fractions)
        if not np.allclose(table.rate[slots], exact, rtol=1e-6, atol=0.0):
            raise AssertionError("incremental rates differ from a full max-min water-filling")
        if table.rate_list is not None and table.rate_list != table.rate.tolist():
            raise AssertionError("the flow table's rate list differs from its rates")
        rows = table.paths[slots]  # every link's load, summed afresh from the rates
        weights = np.broadcast_to(table.rate[slots][:, None], rows.shape)
        if fractions is not None:
            weights = weights * fractions
        loads = np.bincount(rows.ravel(), weights=weights.ravel(), minlength=capacity.size + 1)[:-1]
        if not np.allclose(self._link_rate, loads, rtol=1e-9, atol=1e-6 * float(capacity.max(initial=1.0))):
            raise AssertionError("the kept link loads differ from the sums of their flows' rates")

    def _advance(self) -> None:
        now = float(self.env.now)
        elapsed = now - self._last_update
        if elapsed > 0:  # (the flows' bytes left are brought up to date when their rates change)
            self.usage.accumulate(self._last_update, now, self._link_rate)
        self._last_update = now

    def _drained(self) -> np.ndarray:
        """Slots of the flows that have sent all their bytes (see :meth:`FlowTable.drained`;
        free slots never qualify)."""
        return self.flows.drained(float(self.env.now))

    def _retire(self, done: np.ndarray, done_list: list[int] | None = None) -> None:
        """Remove the flows in slots ``done`` and complete their transfers. ``done_list``: the same slots
        as a list, given when ``path_of`` is valid for them (then a few leavers are handled in Python)."""
        if done.size == 0:
            return
        table = self.flows
        if done_list is not None and len(done_list) <= FEW_LEAVERS:
            counts, path_of = self.controller.link_flows, table.path_of
            credit, nbytes, credited = self.usage.credit, table.bytes.item, table.credited.item
            for slot in done_list:
                path = path_of[slot]
                for link in path:
                    counts[link] -= 1
                credit(path, nbytes(slot) - credited(slot))
        else:  # (over the padded rows: entries on the padding link are dropped)
            rows = table.paths[done]
            entries = rows.ravel()
            n_links = self.controller.link_flows.size
            self.controller.link_flows -= np.bincount(entries, minlength=n_links + 1)[:n_links]
            self._credit(done, rows, table.bytes[done])
        now = float(self.env.now)
        if done.size == 1:  # the common case of one flow: skip the grouping
            slot = int(done[0])
            per_group = [(table.group.item(slot), 1, table.latency_s.item(slot))]
            table.remove(done)
        else:
            groups, latency = table.group[done], table.latency_s[done]
            table.remove(done)
            order = np.argsort(groups, kind="stable")
            groups, latency = groups[order], latency[order]
            starts = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1])))
            sizes = np.diff(np.append(starts, groups.size))
            slowest = np.maximum.reduceat(latency, starts)
            per_group = list(zip(groups[starts].tolist(), sizes.tolist(), slowest.tolist(), strict=True))
        for gid, count, lat in per_group:
            group = self._groups.get(gid)
            if group is None:
                continue
            group.pending -= count
            group.deliver_at = max(group.deliver_at, now + lat)
            if group.pending == 0:
                self._complete(gid)

    def _credit(self, slots: np.ndarray, rows: np.ndarray, sent: np.ndarray) -> None:
        """Count on their links what the flows in ``slots`` (path ``rows``, padded) have sent (``sent``,
        bytes per flow) less what was counted for them before (at a reroute)."""
        table = self.flows
        owed = sent - table.credited[slots] if table.rerouted else sent
        if table.weights is not None:
            self.usage.credit_entries(rows.ravel(), (owed[:, None] * table.weights[slots]).ravel())
            return
        self.usage.credit_entries(rows.ravel(), np.repeat(owed, rows.shape[1]))

    def _allocate(self, capacity: np.ndarray) -> None:
        table = self.flows
        slots = table.slots()
        rows = table.paths[slots]
        fractions = None if table.weights is None else table.weights[slots]
        memo = self._last_allocation  # the same flows on the same links again (the steps of a ring)?
        if (
            memo is not None
            and memo[0] == self.controller.version
            and np.array_equal(memo[1], rows)
            and (fractions is None or (memo[4] is not None and np.array_equal(memo[4], fractions)))
        ):
            rates, self._link_rate = memo[2], memo[3].copy()
        else:
            rates = max_min_rows(rows, capacity, fractions)
            weights = np.broadcast_to(rates[:, None], rows.shape)
            if fractions is not None:
                weights = weights * fractions
            self._link_rate = np.bincount(rows.ravel(), weights=weights.ravel(), minlength=capacity.size + 1)[:-1]
            self._last_allocation = (self.controller.version, rows, rates, self._link_rate.copy(), fractions)
        self._load_list = None
        self._loads_ahead = False
        table.set_rates(slots, rates, float(self.env.now))
        table.bottleneck = [-1] * table.capacity
        self.usage.observe_rates(self._link_rate)
        self.rerates += 1
        self.flows_rerated += table.size

    def _arm_timer(self) -> None:
        """Wake up (re-rate) when the next flow sends its last byte. A timer already armed for that very
        time is kept; any other is disowned (it fires, and does nothing)."""
        finish = self.flows.next_finish()
        if finish == self._timer_at:
            return
        self._timer_generation += 1
        self._timer_at = finish
        if finish == np.inf:  # nothing moves
            return
        generation = self._timer_generation
        _Rerate(self.env, lambda _e: self._on_timer(generation), max(finish - float(self.env.now), 0.0))

    def _on_timer(self, generation: int) -> None:
        """The armed timer fired: at its instant, after every ordinary event, so re-rate at once (unless a
        re-rate is already due at this instant: it will find the drained flows)."""
        if generation == self._timer_generation:
            self._timer_at = np.inf
            if not self._rerate_pending:
                self._rerate(None)

    def _complete(self, gid: int) -> None:
        group = self._groups.pop(gid)
        done = TransferDone(group.start_s, group.deliver_at, group.bytes, group.flows)
        timer = self.env.timeout(group.deliver_at - float(self.env.now))
        timer.callbacks.append(lambda _e: _succeed(group.event, done))

    def _fail_group(self, gid: int, error: Exception) -> None:
        group = self._groups.pop(gid, None)
        if group is not None:
            group.event.fail(error)

    def _count_flows(self, links: np.ndarray, sign: int) -> None:
        """Add ``sign`` to the controller's flow count of each link in ``links`` (repeats count)."""
        counts = self.controller.link_flows
        if links.size * 8 > counts.size:
            counts += sign * np.bincount(links, minlength=counts.size)
        else:
            np.add.at(counts, links, sign)

    def next_collective_id(self) -> int:
        """A fresh id for a collective run on this simulator (0, 1, 2, ...): seeds its ECMP keys."""
        value = self._next_collective
        self._next_collective += 1
        return value

    @property
    def active_flows(self) -> int:
        """Flows currently sending (including those started at this instant and not yet rated)."""
        return self.flows.size + sum(b.count for b in self.flows.staged)


def _succeed(event: simpy.Event, value: TransferDone) -> None:
    event.succeed(value)


def _subset(routed: RoutedFlows, keep: np.ndarray) -> RoutedFlows:
    lengths = np.diff(routed.ptr)
    entry_keep = np.repeat(keep, lengths)
    links = routed.links[entry_keep]
    ptr = np.concatenate(([0], np.cumsum(lengths[keep]))).astype(np.int64)
    weights = None if routed.weights is None else routed.weights[entry_keep]
    return RoutedFlows(
        routed.src[keep],
        routed.dst[keep],
        routed.key[keep],
        ptr,
        links,
        routed.latency_s[keep],
        routed.version,
        weights,
    )
