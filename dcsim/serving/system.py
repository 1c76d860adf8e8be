"""A pool of replicas behind a router, fed by a request stream, with optional autoscaling.

Requests arrive in order (one SimPy timeout per distinct arrival time) and are routed on arrival to one of
the replicas accepting work. ``done`` fires when every request has completed or been dropped.

Autoscaling (:class:`Autoscale`): every ``interval_s`` the pool computes the utilization of its live replicas
over the last interval (busy iteration time / wall time) and the queued requests per replica, and sets the
desired replica count the way Kubernetes' horizontal pod autoscaler does,
``ceil(live x observed / target)``, clamped to [min, max]. A new replica starts cold: it is paid for from
the decision on and accepts requests after ``cold_start_s`` (loading the weights from storage). A replica
scaled down stops receiving requests, finishes those it holds, and is then switched off.

Disaggregated serving (Splitwise / DistServe style): with ``decode_replicas``, the replicas given first only
prefill; when a request is prefilled (its first token out), ``decode_router`` chooses its decode replica (which
counts it as outstanding from then on) and its KV cache is sent there by ``kv_transfer``
(:mod:`dcsim.serving.kvtransfer`: flows on the network, or a fixed-rate path; ``transfer_s(tokens)`` is
shorthand for a fixed-rate path of that many seconds); on arrival it joins the batch without a prefill.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import simpy
from simpy.core import URGENT

from dcsim.serving.kvtransfer import FixedRateTransfer, KVTransfer
from dcsim.serving.records import RequestRecords
from dcsim.serving.replica import _QUEUED, Replica
from dcsim.serving.routing import Router


@dataclass(frozen=True)
class Autoscale:
    """Replica bounds, targets (utilization in (0, 1], queued requests per replica) and timings."""

    min_replicas: int
    max_replicas: int
    target_utilization: float | None = 0.7
    target_queue: float | None = None
    interval_s: float = 10.0
    cold_start_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError("autoscale needs 0 <= min <= max and max >= 1")
        if self.target_utilization is None and self.target_queue is None:
            raise ValueError("autoscale needs target_utilization or target_queue")


class ServingSystem:
    """Replicas, a router and a request stream on ``env``; ``autoscale`` (optional) varies the live pool.

    Without autoscaling every replica is live for the whole run. ``on_s`` of each replica counts the
    seconds it was switched on (paid for).
    """

    def __init__(
        self,
        env: simpy.Environment,
        replicas: Sequence[Replica],
        router: Router,
        records: RequestRecords,
        autoscale: Autoscale | None = None,
        decode_replicas: Sequence[Replica] = (),
        transfer_s: Callable[[int], float] | None = None,
        decode_router: Router | None = None,
        kv_transfer: KVTransfer | None = None,
    ) -> None:
        if not replicas:
            raise ValueError("a serving system needs at least one replica")
        if kv_transfer is None and transfer_s is not None:
            kv_transfer = FixedRateTransfer(env, transfer_s)
        if decode_replicas and (autoscale is not None or kv_transfer is None or decode_router is None):
            raise ValueError("disaggregated serving needs kv_transfer (or transfer_s), decode_router, no autoscaling")
        self.env = env
        self.replicas = list(replicas) + list(decode_replicas)
        if any(replica.index != position for position, replica in enumerate(self.replicas)):
            raise ValueError("replica indices must be their positions (prefill replicas, then decode replicas)")
        self.decode_pool = list(decode_replicas)
        self.kv_transfer = kv_transfer
        self.transfer_s = array("d")  # seconds each KV transfer took, in order of arrival
        self.decode_router = decode_router
        self.transfers = 0
        self.router = router
        self.records = records
        self.autoscale = autoscale
        self.done = env.event()
        self.finished = 0
        self.arrived = 0
        self.requests = len(records)  # all of them: done when this many have finished
        self._next_arrival = 0  # the request whose arrival a timeout waits for
        self.scale_events: list[tuple[float, int]] = []
        live = len(self.replicas) if autoscale is None else max(1, autoscale.min_replicas)
        self.on_since: list[float | None] = [0.0 if i < live else None for i in range(len(self.replicas))]
        self.on_s = [0.0] * len(self.replicas)
        #: per replica (by index): takes new requests now (switched on and not draining)
        self.accepting = [i < live and i < len(replicas) for i in range(len(self.replicas))]
        #: per replica: "both" (prefill and decode), or, disaggregated, "prefill" or "decode"
        self.roles = ["prefill" if self.decode_pool else "both"] * len(replicas) + ["decode"] * len(self.decode_pool)
        for replica in self.replicas:
            replica.on_complete = self._completed
        if self.decode_pool:
            for replica in replicas:
                replica.handoff = self._handoff
        self._refresh_accepting()
        self._draining: set[int] = set()
        # called with (replica index, True) when a replica is switched on and (index, False) when off: the
        # run's cluster scheduler holds its accelerators meanwhile
        self.on_power: Callable[[int, bool], None] | None = None

    def start(self) -> None:
        """Start the arrival process (and the autoscaler)."""
        if self.on_power is not None:
            for i, since in enumerate(self.on_since):
                if since is not None:
                    self.on_power(i, True)
        if len(self.records) == 0:
            self.done.succeed()
            return
        first = simpy.Event(self.env)  # at t = 0, before other events, as a process would start
        first.callbacks.append(self._arrivals_from_start)
        first._ok = True
        first._value = None
        self.env.schedule(first, URGENT)
        if self.autoscale is not None:
            self.scale_events.append((0.0, len(self._accepting)))
            self.env.process(self._autoscaler())

    def _arrivals_from_start(self, _event: simpy.Event) -> None:
        self._arrive_from(0)

    def _arrival(self, _event: simpy.Event) -> None:
        """The wait for request ``_next_arrival`` is over: it arrives, and those after it up to the next gap."""
        rid = self._next_arrival
        self.records.status[rid] = _QUEUED
        self.router.choose(self._accepting, rid).submit(rid)
        self._arrive_from(rid + 1)

    def _arrive_from(self, rid: int) -> None:
        """Requests ``rid``, ... arrive in order: those due now are routed, then a timeout waits for the next
        (callbacks rather than a SimPy process: no generator resumed per request)."""
        env, arrival_s, status = self.env, self.records.arrival_s, self.records.status
        choose = self.router.choose
        n = len(arrival_s)
        while rid < n:
            delay = arrival_s[rid] - env.now
            if delay > 0:
                self._next_arrival = rid
                env.timeout(delay).callbacks.append(self._arrival)
                return
            status[rid] = _QUEUED
            choose(self._accepting, rid).submit(rid)
            rid += 1
        self.arrived = n

    def _handoff(self, replica: Replica, rid: int, cached: int) -> None:
        """A prefill replica is done with ``rid``: a decode replica is chosen now (the transfer needs its
        address; it counts the request as outstanding while the KV cache of ``cached`` tokens travels)."""
        assert self.kv_transfer is not None and self.decode_router is not None
        self.transfers += 1
        target = self.decode_router.choose(self.decode_pool, rid)
        target.outstanding += 1
        event = self.kv_transfer.send(replica.index, target.index, cached)
        event.callbacks.append(partial(self._transferred, target, rid, cached, self.env.now))

    def _transferred(self, target: Replica, rid: int, cached: int, start_s: float, _event: Any) -> None:
        self.transfer_s.append(self.env.now - start_s)
        target.outstanding -= 1  # accept_transfer counts it again (or drops it)
        target.accept_transfer(rid, cached)

    def _completed(self, replica: Replica, rid: int) -> None:
        self.finished += 1
        if replica.index in self._draining and replica.outstanding == 0:
            self._switch_off(replica)
        if self.finished == self.requests and not self.done.triggered:
            self.done.succeed()

    # ------------------------------------------------------------------ autoscaling
    def _switch_off(self, replica: Replica) -> None:
        self._draining.discard(replica.index)
        since = self.on_since[replica.index]
        if since is not None:
            self.on_s[replica.index] += self.env.now - since
            self.on_since[replica.index] = None
            if self.on_power is not None:
                self.on_power(replica.index, False)

    def _autoscaler(self) -> Generator[simpy.Event, Any, None]:
        spec = self.autoscale
        assert spec is not None
        env = self.env
        last_busy = [r.busy_s for r in self.replicas]
        while not self.done.triggered:
            yield env.timeout(spec.interval_s)
            live = [r for r in self._accepting]
            busy = [r.busy_s for r in self.replicas]
            observed: list[float] = []
            if spec.target_utilization is not None and live:
                used = sum(busy[r.index] - last_busy[r.index] for r in live)
                observed.append(used / (spec.interval_s * len(live)) / spec.target_utilization)
            if spec.target_queue is not None and live:
                queued = sum(len(r.waiting) for r in live)
                observed.append(queued / len(live) / spec.target_queue)
            last_busy = busy
            ratio = max(observed) if observed else 1.0
            pending = sum(1 for i, s in enumerate(self.on_since) if s is not None and not self.accepting[i])
            current = len(live) + pending - len(self._draining)
            desired = min(spec.max_replicas, max(spec.min_replicas, 1, math.ceil(len(live) * ratio - 1e-9)))
            if desired > current:
                self._scale_up(desired - current, spec.cold_start_s)
            elif desired < len(live):
                self._scale_down(len(live) - desired)

    def _scale_up(self, count: int, cold_start_s: float) -> None:
        for replica in self.replicas:
            if count == 0:
                break
            i = replica.index
            if self.on_since[i] is None:
                self.on_since[i] = self.env.now
                self._draining.discard(i)
                count -= 1
                if self.on_power is not None:
                    self.on_power(i, True)
                self.env.timeout(cold_start_s, replica).callbacks.append(self._ready)

    def _refresh_accepting(self) -> None:
        """The replicas the routers choose from: those accepting requests, in index order."""
        self._accepting = [r for r in self.replicas if self.accepting[r.index]]

    def _ready(self, event: Any) -> None:
        replica: Replica = event.value
        if self.on_since[replica.index] is None or self.accepting[replica.index]:
            return
        self.accepting[replica.index] = True
        self._refresh_accepting()
        self.scale_events.append((self.env.now, len(self._accepting)))

    def _scale_down(self, count: int) -> None:
        victims = sorted(self._accepting, key=lambda r: (r.outstanding, -r.index))[:count]
        for replica in victims:
            self.accepting[replica.index] = False
            self._draining.add(replica.index)
            if replica.outstanding == 0:
                self._switch_off(replica)
        self._refresh_accepting()
        self.scale_events.append((self.env.now, len(self._accepting)))

    def close(self, end_s: float) -> None:
        """Account the replicas still on at ``end_s``."""
        for i, since in enumerate(self.on_since):
            if since is not None:
                self.on_s[i] += max(0.0, end_s - since)
                self.on_since[i] = end_s
