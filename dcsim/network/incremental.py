"""Exact shortcuts that keep a max-min fair allocation without recomputing it, vectorized for large
changes (small ones go to :mod:`dcsim.network.local`).

An allocation is max-min fair exactly when every flow has a *bottleneck*: a saturated link on which no
flow gets more than it does (Bertsekas & Gallager, *Data Networks*, section 6.5.2). Two cases leave every
bottleneck in place:

- **departure**: removing flows none of whose links is a bottleneck of a remaining flow (each such link is
  unsaturated, or every remaining flow on it gets strictly less than the link's largest rate) leaves all
  other rates max-min fair as they are;
- **arrival**: a flow whose path has spare capacity on every link gets the smallest spare ``r``; the links
  it fills become its bottlenecks if no flow on them gets more than ``r``. The links it crosses were not
  saturated, so no other flow's bottleneck changes.

Flows are rows of link ids padded with ``capacity.size`` (see :class:`~dcsim.network.flowtable.FlowTable`).
Anything else falls back to a full water-filling (:func:`dcsim.network.maxmin.max_min_rows`).
"""

from __future__ import annotations

import numpy as np

SATURATED = 1e-9  # relative: a link within this fraction of its capacity is saturated
SAME_RATE = 1e-9  # relative: rates this close count as equal


def departures_keep_allocation(
    paths: np.ndarray, rate: np.ndarray, link_rate: np.ndarray, capacity: np.ndarray, leaving: np.ndarray
) -> bool:
    """True if removing the flows in rows ``leaving`` leaves the others' rates max-min fair."""
    n_links = capacity.size
    links = paths[leaving].ravel()
    links = links[links < n_links]
    saturated = links[link_rate[links] >= capacity[links] * (1 - SATURATED)]
    if saturated.size == 0:
        return True
    on_saturated = np.zeros(n_links + 1, dtype=bool)
    on_saturated[saturated] = True
    entries = on_saturated[paths]
    staying = np.ones(paths.shape[0], dtype=bool)
    staying[leaving] = False
    staying_entries = entries & staying[:, None]
    if not staying_entries.any():
        return True
    rows, _ = np.nonzero(entries)
    link_max = np.zeros(n_links + 1)
    np.maximum.at(link_max, paths[entries], rate[rows])
    rows, _ = np.nonzero(staying_entries)
    return not bool((rate[rows] >= link_max[paths[staying_entries]] * (1 - SAME_RATE)).any())


def departures_keep_allocation_indexed(
    index: tuple[np.ndarray, np.ndarray],
    active: np.ndarray,
    paths: np.ndarray,
    rate: np.ndarray,
    link_rate: np.ndarray,
    capacity: np.ndarray,
    leaving: np.ndarray,
) -> bool:
    """:func:`departures_keep_allocation` over the flows on the leavers' saturated links only, found with
    a link index (``ptr``, ``slots``: see :meth:`~dcsim.network.flowtable.FlowTable.link_index`)."""
    ptr, owners = index
    n_links = capacity.size
    links = paths[leaving].ravel()
    links = links[links < n_links]
    saturated = np.unique(links[link_rate[links] >= capacity[links] * (1 - SATURATED)])
    if saturated.size == 0:
        return True
    starts = ptr[saturated]
    lengths = ptr[saturated + 1] - starts
    total = int(lengths.sum())
    entry = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
    slots = owners[entry]
    link_of = np.repeat(np.arange(saturated.size), lengths)
    live = active[slots]
    slots, link_of = slots[live], link_of[live]
    gone = np.zeros(active.size, dtype=bool)
    gone[leaving] = True
    staying = ~gone[slots]
    if not staying.any():
        return True
    rates = rate[slots]
    link_max = np.zeros(saturated.size)
    np.maximum.at(link_max, link_of, rates)
    return not bool((rates[staying] >= link_max[link_of[staying]] * (1 - SAME_RATE)).any())


def arrival_rate(
    paths: np.ndarray, rate: np.ndarray, link_rate: np.ndarray, capacity: np.ndarray, path: np.ndarray
) -> float | None:
    """The max-min rate of one new flow over ``path`` if the others keep theirs, else None."""
    spare = capacity[path] - link_rate[path]
    new_rate = float(spare.min())
    if not new_rate > capacity[path].min() * SATURATED:
        return None
    filled = path[spare <= new_rate * (1 + SAME_RATE)]
    on_filled = np.zeros(capacity.size + 1, dtype=bool)
    on_filled[filled] = True
    entries = on_filled[paths]
    if entries.any():
        rows, _ = np.nonzero(entries)
        if float(rate[rows].max()) > new_rate * (1 + SAME_RATE):
            return None
    return new_rate
