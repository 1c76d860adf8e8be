"""Exact local re-rating: recompute only the flows a small change touches, and prove the result.

An allocation is max-min fair exactly when no link is over capacity and every flow has a *bottleneck*:
a saturated link on which no flow gets more than it does (Bertsekas & Gallager, *Data Networks*,
section 6.5.2); that allocation is unique. After a few flows arrive or leave, most rates stay as they
are, so :func:`local_rerate` guesses a set ``A`` of flows whose rates may change (the newcomers, and
the fastest flows on the saturated links the change crosses) and water-fills ``A`` on what the other
flows leave of each link.

- While filling, a flow of ``A`` that freezes on a link where a flow outside ``A`` gets more cannot have
  its bottleneck there: the round stops at once and the faster flows join ``A``. So a filling that runs
  to the end has frozen every flow of ``A`` on a link it saturated with no faster flow: each has its
  bottleneck, and needs no check.
- Then every *other* flow on a link whose load or flows changed is checked, each once, trying the link
  found as its bottleneck before (every flow elsewhere keeps its links exactly as they were). Flows that
  fail, and the faster flows on their saturated links, join ``A`` and the round repeats.
- When the check passes, the allocation *is* the max-min fair one. When ``A`` grows past a limit, the
  caller does a full water-filling.

Of the links a flow crosses alone, only the one of least capacity can hold it back: the filling leaves
the others out, and they take the flow's new rate once a round succeeds. :func:`lone_arrival` places one
new flow on unsaturated links in one pass over its path, when no other flow has to give way.

Everything here is plain Python over small sets: the cost follows the flows that change, not the number
of active flows. Rates and link loads are Python lists that mirror the simulator's arrays
(:meth:`~dcsim.network.flowtable.FlowTable.rate_values`; list indexing is several times cheaper than
``ndarray.item``). Each round writes its tentative rates into the rate list and the changes they make
into the loads, so the lists hold the round's state (the others' as they were, the group's new ones); a
failed round puts the loads back, and a call that gives up puts the rates back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from dcsim.network.incremental import SAME_RATE


class FlowState(NamedTuple):
    """What the local re-rates read and write, as the simulator keeps it (slots index flows, ints links).

    ``flows_on``/``path_of``: the active flows per link and each flow's links, already showing the change
    (newcomers in, leavers out). ``bottleneck``: per flow, a link known to be its bottleneck (-1: unknown).
    ``rate``: current rates per flow (bytes/s; newcomers 0). ``load``: per link, the sum of the current rates
    of its flows (bytes/s; the leavers' taken off): a list, or the simulator's array. ``capacity`` and
    ``saturated_at`` (``capacity * (1 - SATURATED)``) per link, bytes/s."""

    flows_on: dict[int, set[int]]
    path_of: list[tuple[int, ...]]
    bottleneck: list[int]
    rate: list[float]
    load: list[float] | np.ndarray
    capacity: list[float]
    saturated_at: list[float]


class LocalResult:
    """New rates of some flows (``rates``: slot -> bytes/s) and the ``links`` whose flows or rates changed
    (their new loads are in the load list given to :func:`local_rerate`)."""

    __slots__ = ("links", "rates")

    def __init__(self, rates: dict[int, float], links: set[int]) -> None:
        self.rates = rates
        self.links = links


def local_rerate(
    state: FlowState, seeds: Iterable[int], changed_links: Iterable[int], max_flows: int
) -> LocalResult | None:
    """Rates after a change, computed for as few flows as the bottleneck check allows.

    ``seeds``: flows to re-rate first; ``changed_links``: links whose flows changed (the leavers' and
    newcomers' links). On success the state's ``rate`` holds the new rates of the re-rated flows (also
    returned), ``load`` the changed links' new loads, and ``bottleneck`` the bottlenecks found; on None
    (more than ``max_flows`` flows would have to be re-rated: water-fill everything) rates and loads are as
    they were.
    """
    flows_on, path_of, bottleneck, rate, load, capacity, saturated_at = state
    group: set[int] = set()
    joiners = set(seeds)
    changed = set(changed_links)
    margin = 1 + SAME_RATE
    saved: dict[int, float] = {}  # rates of the group's flows before this call
    links: set[int] = set()  # the group's links that take part in the filling
    fill_path: dict[int, list[int]] = {}  # per group flow: those of its links
    shared_of: dict[int, list[int]] = {}  # ... its links that other flows cross too
    alone_on: dict[int, list[int]] = {}  # ... and those it crosses alone
    group_count: dict[int, int] = {}  # per link of the group: its group flows
    group_sum: dict[int, float] = {}  # ... and the sum of their rates before this call
    base_residual: dict[int, float] = {}  # ... what the other flows leave of it
    base_share: dict[int, float] = {}  # ... and that shared by its group flows
    while True:
        if len(group) + len(joiners) > max_flows:
            _restore(rate, saved)
            return None
        # what the flows outside the group leave of the links the joiners cross (a link no joiner crosses
        # keeps its base): the link's load less the group's rates on it. Of the links a flow crosses alone
        # only the one of least capacity can hold it back: the filling skips the others.
        fresh: set[int] = set()
        by_capacity = capacity.__getitem__
        for slot in joiners:
            old = saved[slot] = rate[slot]
            shared: list[int] = []
            alone: list[int] = []
            for link in path_of[slot]:
                if len(flows_on[link]) == 1:
                    alone.append(link)
                    continue
                shared.append(link)
                n = group_count.get(link)
                if n is None:
                    group_count[link] = 1
                    group_sum[link] = old
                else:
                    group_count[link] = n + 1
                    group_sum[link] += old
            shared_of[slot] = shared
            alone_on[slot] = alone
            fresh.update(shared)
            if alone:  # it has all of its own link of least capacity
                own = min(alone, key=by_capacity)
                group_count[own] = 1
                base_residual[own] = base_share[own] = capacity[own]
                links.add(own)
                fill_path[slot] = [*shared, own]
            else:
                fill_path[slot] = shared
        group |= joiners
        links |= fresh
        for link in fresh:  # (a link only group flows cross: its load less theirs is ~0)
            left = capacity[link] - (load[link] - group_sum[link])
            left = base_residual[link] = left if left > 0.0 else 0.0
            base_share[link] = left / group_count[link]
        residual, count, share = base_residual.copy(), group_count.copy(), base_share.copy()
        # progressive filling of the group, one bottleneck link at a time: the first link (in the
        # set's order) with the smallest share
        new: dict[int, float] = {}
        frozen_at: dict[int, int] = {}  # the link each group flow was frozen on: its likely bottleneck
        open_links = links.copy()  # links with group flows not yet frozen (every link of the group's, at first)
        by_share = share.__getitem__
        faster: list[int] = []  # flows outside the group that get more than the link they share freezes at
        while open_links:
            best = min(open_links, key=by_share)
            level = share[best]
            for slot in flows_on[best]:
                if slot in group:
                    if slot in new:
                        continue
                    new[slot] = rate[slot] = level
                    frozen_at[slot] = best
                    for link in fill_path[slot]:
                        n = count[link] - 1
                        if n:
                            count[link] = n
                            left = residual[link] - level
                            left = residual[link] = left if left > 0.0 else 0.0
                            share[link] = left / n
                        else:  # its last group flow: the link is done
                            open_links.discard(link)
                elif rate[slot] > level * margin:
                    faster.append(slot)
            if faster:  # the flows frozen here are not the fastest on it: re-rate the faster ones with them
                break
            open_links.discard(best)
        if faster:
            joiners = set(faster)
            continue

        # the group's rate changes go into the loads of the links they share, in place (put back if the
        # round fails; the links a flow crosses alone get its rate when the round succeeds)
        undo: dict[int, float] = {}
        for slot, value in new.items():
            step = value - saved[slot]
            if step:
                for link in shared_of[slot]:
                    if link not in undo:
                        undo[link] = load[link]
                    load[link] += step
        touched = links | changed
        # the bottleneck check of every other flow on the links that changed (each once; a saturated
        # link's fastest flow is found when first needed). The group's flows need none: each froze on a
        # link the filling saturated, with no faster flow on it (else the round stopped above).
        fastest: dict[int, float] = {}
        found: dict[int, int] = {}
        failing: list[int] = []
        others = set().union(*map(flows_on.__getitem__, touched))
        others -= group
        for slot in others:
            known = bottleneck[slot]
            if known >= 0 and known not in touched:
                continue  # its bottleneck link kept its load and flows
            mine = rate[slot] * margin
            # its bottleneck: a saturated link where nobody gets more (the one found before tried first)
            for lk in path_of[slot] if known < 0 else (known, *path_of[slot]):
                if load[lk] < saturated_at[lk]:
                    continue
                on = flows_on[lk]
                if len(on) == 1:
                    found[slot] = lk
                    break
                peak = fastest.get(lk)
                if peak is None:
                    peak = fastest[lk] = max([rate[s] for s in on])
                if mine >= peak:
                    found[slot] = lk
                    break
            else:
                failing.append(slot)
        if not failing:
            for slot, link in frozen_at.items():
                bottleneck[slot] = link
            for slot, link in found.items():
                bottleneck[slot] = link
            moved = undo.keys() | changed
            for slot, value in new.items():
                if value != saved[slot]:
                    for link in alone_on[slot]:
                        load[link] = value
                        moved.add(link)
            return LocalResult(new, moved)
        joiners = set()
        for slot in failing:
            joiners.add(slot)
            mine = rate[slot] * margin
            for link in path_of[slot]:
                if load[link] >= saturated_at[link]:
                    joiners.update([s for s in flows_on[link] if rate[s] > mine])
        for link, value in undo.items():
            load[link] = value
        joiners -= group
        if not joiners:  # nothing new to try: give up (cannot happen for a consistent state)
            _restore(rate, saved)
            return None


def lone_arrival(state: FlowState, slot: int) -> float | list[int]:
    """The rate (bytes/s) of one new flow at ``slot`` whose links are all unsaturated, if every other flow
    keeps its rate (the arrival case of :mod:`dcsim.network.incremental`: it gets the smallest spare
    capacity on its path, and no flow on a link it fills may get more); else the flows that get more on
    the first such link (they must give way: seeds for :func:`local_rerate`), and nothing is written.

    On success the flow's links' ``load`` and its ``bottleneck`` are written (its ``rate`` is the
    caller's to write); ``load`` does not include the new flow yet."""
    flows_on, path_of, bottleneck, rate, load, capacity, saturated_at = state
    path = path_of[slot]
    spare = np.inf
    for link in path:
        left = capacity[link] if len(flows_on[link]) == 1 else capacity[link] - load[link]
        if left < spare:
            spare = left
    if not spare > 0.0:
        return []
    mine = spare * (1 + SAME_RATE)
    new_load: list[float] = []
    first = -1
    for link in path:
        on = flows_on[link]
        carried = spare if len(on) == 1 else load[link] + spare
        new_load.append(carried)
        if carried >= saturated_at[link]:  # a link it fills: it must be the fastest there
            faster = [other for other in on if rate[other] > mine]
            if faster:
                return faster
            if first < 0:
                first = link
    if first < 0:  # (cannot happen: the link with the least spare is filled)
        return []
    for link, carried in zip(path, new_load, strict=True):
        load[link] = carried
    bottleneck[slot] = first
    return spare


def _restore(rate: list[float], saved: dict[int, float]) -> None:
    for slot, value in saved.items():
        rate[slot] = value
