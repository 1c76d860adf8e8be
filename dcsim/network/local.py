"""Exact local re-rating: recompute only the flows a small change touches, and prove the result.

An allocation is max-min fair exactly when no link is over capacity and every flow has a *bottleneck*:
a saturated link on which no flow gets more than it does (Bertsekas & Gallager, *Data Networks*,
section 6.5.2); that allocation is unique. After a few flows arrive or leave, most rates stay as they
are, so :func:`local_rerate` guesses a set ``A`` of flows whose rates may change (the newcomers, and
the flows on links the leavers saturated), water-fills ``A`` on what the other flows leave of each link,
and then checks the bottleneck condition for every flow on a link whose load or flows changed (every
other flow keeps its links exactly as they were, bottleneck included), each flow once, trying its likely
bottleneck first (the link a group flow was frozen on, or the one found for it before). Flows that fail
the check, and the faster flows on their saturated links, join ``A`` and the round repeats. When the check
passes the allocation *is* the max-min fair one; when ``A`` grows past a limit the caller does a full
water-filling.

Everything here is plain Python over small sets: the cost follows the flows that change, not the number
of active flows. Rates are read from a Python list that mirrors the table's rates
(:meth:`~dcsim.network.flowtable.FlowTable.rate_values`; list indexing is several times cheaper than
``ndarray.item``), and each round writes its tentative rates into it, so one list holds the rates of the
round (the others' as they were, the group's new ones); a call that gives up puts the old values back.
Every sum runs in the same order as a loop over the same sets; a link crossed by one flow only (most of
them) skips the loop (its residual is its capacity, its load that flow's rate).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dcsim.network.incremental import SAME_RATE, SATURATED


class LocalResult:
    """New rates of some flows (``rates``: slot -> bytes/s) and new loads of the ``links`` whose flows or
    rates changed (``link_load``: link -> bytes/s; it may hold other links too, with their current load)."""

    __slots__ = ("link_load", "links", "rates")

    def __init__(self, rates: dict[int, float], links: set[int], link_load: dict[int, float]) -> None:
        self.rates = rates
        self.links = links
        self.link_load = link_load


def local_rerate(
    flows_on: dict[int, set[int]],
    path_of: list[tuple[int, ...]],
    bottleneck: list[int],
    rate: list[float],
    link_rate: np.ndarray,
    capacity: list[float],
    seeds: Iterable[int],
    changed_links: Iterable[int],
    max_flows: int,
    saturated_at: list[float] | None = None,
) -> LocalResult | None:
    """Rates after a change, computed for as few flows as the bottleneck check allows.

    ``flows_on``/``path_of``: the active flows (slots) per link and each slot's links, already showing
    the change (newcomers in, leavers out). ``bottleneck``: per slot, a link known to be its bottleneck
    (-1: unknown); updated for the flows checked. ``rate``: current rates per slot as a list (newcomers 0);
    on success it holds the new rates of the re-rated flows (also returned), on None it is left as it was.
    ``link_rate`` and ``capacity`` per link (``saturated_at``: ``capacity * (1 - SATURATED)`` per link,
    computed here if not given). ``seeds``: flows to re-rate first; ``changed_links``: links whose flows
    changed (the leavers' and newcomers' links). Returns None when more than ``max_flows`` flows would
    have to be re-rated (then water-fill everything).
    """
    group = set(seeds)
    changed = set(changed_links)
    if saturated_at is None:
        full = 1 - SATURATED
        saturated_at = [c * full for c in capacity]
    link_item = link_rate.item
    margin = 1 + SAME_RATE
    saved: dict[int, float] = {}  # rates of the group's flows before this call
    # per link of the group, before the filling: what the others leave, the group's flows on it, the share
    base_residual: dict[int, float] = {}
    base_count: dict[int, int] = {}
    base_share: dict[int, float] = {}
    fresh: set[int] | None = None  # links whose base changed since the last round (None: every link)
    while True:
        if len(group) > max_flows:
            _restore(rate, saved)
            return None
        # what the flows outside the group leave of every link the group crosses
        links: set[int] = set()
        for slot in group:
            links.update(path_of[slot])
            if slot not in saved:
                saved[slot] = rate[slot]
        for link in links if fresh is None else fresh:  # (a link no joiner crosses keeps its base)
            on = flows_on[link]
            if len(on) == 1:  # (most links) only the group flow that crosses it
                base_residual[link] = base_share[link] = capacity[link]
                base_count[link] = 1
                continue
            left = capacity[link]
            n = 0
            for slot in on:
                if slot in group:
                    n += 1
                else:
                    left -= rate[slot]
            left = base_residual[link] = left if left > 0.0 else 0.0
            base_count[link] = n  # >= 1: the link is on a group flow's path
            base_share[link] = left / n
        residual, count, share = base_residual.copy(), base_count.copy(), base_share.copy()
        # progressive filling of the group, one bottleneck link at a time: the first link (in the
        # set's order) with the smallest share
        new: dict[int, float] = {}
        frozen_at: dict[int, int] = {}  # the link each group flow was frozen on: its likely bottleneck
        open_links = links.copy()  # links with group flows not yet frozen (every link of the group's, at first)
        by_share = share.__getitem__
        while open_links:
            best = min(open_links, key=by_share)
            level = share[best]
            for slot in flows_on[best]:
                if slot in group and slot not in new:
                    new[slot] = rate[slot] = level
                    frozen_at[slot] = best
                    for link in path_of[slot]:
                        n = count[link] - 1
                        if n:
                            count[link] = n
                            left = residual[link] - level
                            left = residual[link] = left if left > 0.0 else 0.0
                            share[link] = left / n
                        else:  # its last group flow: the link is done
                            open_links.discard(link)
            open_links.discard(best)

        # loads and fastest flow of every link that changed (the group's and the changed ones); others as they were
        touched = links | changed
        load: dict[int, float] = {}
        fastest: dict[int, float] = {}
        for link in touched:
            on = flows_on[link]
            if len(on) == 1:
                (slot,) = on
                load[link] = fastest[link] = rate[slot]
                continue
            total, top = 0.0, 0.0
            for slot in on:
                value = rate[slot]
                total += value
                if value > top:
                    top = value
            load[link], fastest[link] = total, top
        # the bottleneck check of every flow on those links (each once)
        found: dict[int, int] = {}
        failing: list[int] = []
        for slot in set().union(*map(flows_on.__getitem__, touched)):
            known = frozen_at.get(slot)  # a group flow: try the link it was frozen on first
            if known is None:
                known = bottleneck[slot]
                if known >= 0 and known not in touched:
                    continue  # its bottleneck link kept its load and flows
            mine = rate[slot] * margin
            if known >= 0 and load[known] >= saturated_at[known] and mine >= fastest[known]:
                found[slot] = known  # (a touched link: its load and fastest flow are known)
                continue
            for lk in path_of[slot]:
                carried = load.get(lk)
                if carried is None:
                    carried = load[lk] = link_item(lk)
                if carried < saturated_at[lk]:
                    continue
                peak = fastest.get(lk)
                if peak is None:
                    peak = fastest[lk] = max([rate[s] for s in flows_on[lk]])
                if mine >= peak:
                    found[slot] = lk
                    break
            else:
                failing.append(slot)
        if not failing:
            for slot, link in found.items():
                bottleneck[slot] = link
            return LocalResult(new, touched, load)
        before = group.copy()
        for slot in failing:
            group.add(slot)
            mine = rate[slot] * margin
            for link in path_of[slot]:
                if link in load and load[link] >= saturated_at[link]:
                    group.update([s for s in flows_on[link] if rate[s] > mine])
        if len(group) == len(before):  # nothing new to try: give up (cannot happen for a consistent state)
            _restore(rate, saved)
            return None
        fresh = set()
        for slot in group - before:
            fresh.update(path_of[slot])


def _restore(rate: list[float], saved: dict[int, float]) -> None:
    for slot, value in saved.items():
        rate[slot] = value
