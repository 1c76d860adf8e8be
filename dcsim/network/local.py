"""Exact local re-rating: recompute only the flows a small change touches, and prove the result.

An allocation is max-min fair exactly when no link is over capacity and every flow has a *bottleneck*:
a saturated link on which no flow gets more than it does (Bertsekas & Gallager, *Data Networks*,
section 6.5.2); that allocation is unique. After a few flows arrive or leave, most rates stay as they
are, so :func:`local_rerate` guesses a set ``A`` of flows whose rates may change (the newcomers, and
the flows on links the leavers saturated), water-fills ``A`` on what the other flows leave of each link,
and then checks the bottleneck condition for every flow on a link whose load or flows changed (every
other flow keeps its links exactly as they were, bottleneck included). Flows that fail the check, and the
faster flows on their saturated links, join ``A`` and the round repeats. When the check passes the
allocation *is* the max-min fair one; when ``A`` grows past a limit the caller does a full water-filling.

Everything here is plain Python over small sets: the cost follows the flows that change, not the number
of active flows. Rates are read from a Python list that mirrors the table's rates
(:meth:`~dcsim.network.flowtable.FlowTable.rate_values`; list indexing is several times cheaper than
``ndarray.item``), and each round writes its tentative rates into it, so one list holds the rates of the
round (the others' as they were, the group's new ones); a call that gives up puts the old values back.
Every sum and comparison runs in the same order as a loop over the same sets, so results do not depend on
how the work is arranged.
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
        residual: dict[int, float] = {}
        count: dict[int, int] = {}
        share: dict[int, float] = {}
        for link in links:
            left = capacity[link]
            n = 0
            for slot in flows_on[link]:
                if slot in group:
                    n += 1
                else:
                    left -= rate[slot]
            left = residual[link] = left if left > 0.0 else 0.0
            count[link] = n
            if n:
                share[link] = left / n
        # progressive filling of the group, one bottleneck link at a time: the first link (in the
        # set's order) with the smallest share
        new: dict[int, float] = {}
        open_links = set(filter(count.__getitem__, links))  # inserted in the same order as a loop would
        by_share = share.__getitem__
        while open_links:
            best = min(open_links, key=by_share)
            level = share[best]
            for slot in flows_on[best]:
                if slot in group and slot not in new:
                    new[slot] = rate[slot] = level
                    for link in path_of[slot]:
                        left = residual[link] - level
                        left = residual[link] = left if left > 0.0 else 0.0
                        n = count[link] = count[link] - 1
                        if n:
                            share[link] = left / n
                        else:
                            open_links.discard(link)
            open_links.discard(best)

        # loads and fastest flow of every link that changed; other links as they were
        touched = links | changed
        load: dict[int, float] = {}
        fastest: dict[int, float] = {}
        for link in touched:
            total, top = 0.0, 0.0
            for slot in flows_on[link]:
                value = rate[slot]
                total += value
                if value > top:
                    top = value
            load[link], fastest[link] = total, top
        found: dict[int, int] = {}
        failing: list[int] = []
        for link in touched:
            for slot in flows_on[link]:
                if slot in found:
                    continue
                known = bottleneck[slot]
                if known >= 0 and known not in touched and slot not in new:
                    found[slot] = known  # its bottleneck link kept its load and flows
                    continue
                mine = rate[slot] * margin
                found[slot] = -1
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
        size = len(group)
        for slot in failing:
            group.add(slot)
            mine = rate[slot] * margin
            for link in path_of[slot]:
                if link in load and load[link] >= saturated_at[link]:
                    group.update([s for s in flows_on[link] if rate[s] > mine])
        if len(group) == size:  # nothing new to try: give up (cannot happen for a consistent state)
            _restore(rate, saved)
            return None


def _restore(rate: list[float], saved: dict[int, float]) -> None:
    for slot, value in saved.items():
        rate[slot] = value
