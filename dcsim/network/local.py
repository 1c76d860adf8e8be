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
of active flows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dcsim.network.incremental import SAME_RATE, SATURATED


class LocalResult:
    """New rates of some flows (slot -> bytes/s) and new loads of some links (link -> bytes/s)."""

    __slots__ = ("link_load", "rates")

    def __init__(self, rates: dict[int, float], link_load: dict[int, float]) -> None:
        self.rates = rates
        self.link_load = link_load


def local_rerate(
    flows_on: dict[int, set[int]],
    path_of: list[tuple[int, ...]],
    bottleneck: list[int],
    rate: np.ndarray,
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
    (-1: unknown); updated for the flows checked. ``rate``: current rates per slot (newcomers 0).
    ``link_rate`` and ``capacity`` per link (``saturated_at``: ``capacity * (1 - SATURATED)`` per link, computed
    here if not given). ``seeds``: flows to re-rate first; ``changed_links``: links
    whose flows changed (the leavers' and newcomers' links). Returns None when more than ``max_flows``
    flows would have to be re-rated (then water-fill everything).
    """
    old: dict[int, float] = {}
    item = rate.item
    group = set(seeds)
    changed = set(changed_links)
    full = 1 - SATURATED
    if saturated_at is None:
        saturated_at = [c * full for c in capacity]
    while True:
        if len(group) > max_flows:
            return None
        # what the flows outside the group leave of every link the group crosses
        links: set[int] = set()
        for slot in group:
            links.update(path_of[slot])
        residual: dict[int, float] = {}
        count: dict[int, int] = {}
        for link in links:
            left = capacity[link]
            n = 0
            for slot in flows_on[link]:
                if slot in group:
                    n += 1
                else:
                    value = old.get(slot)
                    if value is None:
                        value = old[slot] = item(slot)
                    left -= value
            residual[link] = left if left > 0.0 else 0.0
            count[link] = n
        # progressive filling of the group, one bottleneck link at a time
        new: dict[int, float] = {}
        open_links = {link for link in links if count[link]}
        while open_links:
            best, level = -1, np.inf
            for link in open_links:
                share = residual[link] / count[link]
                if share < level:
                    best, level = link, share
            for slot in flows_on[best]:
                if slot in group and slot not in new:
                    new[slot] = level
                    for link in path_of[slot]:
                        left = residual[link] - level
                        residual[link] = left if left > 0.0 else 0.0
                        count[link] -= 1
                        if not count[link]:
                            open_links.discard(link)
            open_links.discard(best)
        current = old.copy()
        current.update(new)

        def rate_of(slot: int, current: dict[int, float] = current) -> float:
            value = current.get(slot)
            if value is None:
                value = current[slot] = old[slot] = item(slot)
            return value

        # loads and fastest flow of every link that changed; other links as they were
        touched = links | changed
        load: dict[int, float] = {}
        fastest: dict[int, float] = {}
        for link in touched:
            total, top = 0.0, 0.0
            for slot in flows_on[link]:
                value = current.get(slot)
                if value is None:
                    value = current[slot] = old[slot] = item(slot)
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
                mine = current.get(slot)
                if mine is None:
                    mine = current[slot] = old[slot] = item(slot)
                mine *= 1 + SAME_RATE
                found[slot] = -1
                for lk in path_of[slot]:
                    carried = load.get(lk)
                    if carried is None:
                        carried = load[lk] = link_rate.item(lk)
                    if carried < saturated_at[lk]:
                        continue
                    peak = fastest.get(lk)
                    if peak is None:
                        peak = fastest[lk] = max(rate_of(s) for s in flows_on[lk])
                    if mine >= peak:
                        found[slot] = lk
                        break
                else:
                    failing.append(slot)
        if not failing:
            for slot, link in found.items():
                bottleneck[slot] = link
            rates = {slot: new[slot] for slot in group}
            return LocalResult(rates, {link: load[link] for link in touched})
        size = len(group)
        for slot in failing:
            group.add(slot)
            mine = rate_of(slot) * (1 + SAME_RATE)
            for link in path_of[slot]:
                if link in load and load[link] >= saturated_at[link]:
                    group.update(s for s in flows_on[link] if rate_of(s) > mine)
        if len(group) == size:  # nothing new to try: give up (cannot happen for a consistent state)
            return None
