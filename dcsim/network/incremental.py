"""Exact shortcuts that keep a max-min fair allocation without recomputing it.

An allocation is max-min fair exactly when every flow has a *bottleneck*: a saturated link on which no
flow gets more than it does (Bertsekas & Gallager, *Data Networks*, section 6.5.2). Two cases leave every
bottleneck in place:

- **departure**: removing flows none of whose links is a bottleneck of a remaining flow (each such link is
  unsaturated, or every remaining flow on it gets strictly less than the link's largest rate) leaves all
  other rates max-min fair as they are;
- **arrival**: a flow whose path has spare capacity on every link gets the smallest spare ``r``; the links
  it fills become its bottlenecks if no flow on them gets more than ``r``. The links it crosses were not
  saturated, so no other flow's bottleneck changes.

Anything else falls back to a full water-filling (:func:`dcsim.network.maxmin.max_min_rates`).
"""

from __future__ import annotations

import numpy as np

SATURATED = 1e-9  # relative: a link within this fraction of its capacity is saturated
SAME_RATE = 1e-9  # relative: rates this close count as equal


def departures_keep_allocation(
    ent_flow: np.ndarray,
    ent_link: np.ndarray,
    rate: np.ndarray,
    link_rate: np.ndarray,
    capacity: np.ndarray,
    leaving: np.ndarray,
) -> bool:
    """True if removing the flows where ``leaving`` is set leaves the others' rates max-min fair."""
    leaving_entry = leaving[ent_flow]
    links = ent_link[leaving_entry]
    saturated = links[link_rate[links] >= capacity[links] * (1 - SATURATED)]
    if saturated.size == 0:
        return True
    on_saturated = np.zeros(capacity.size, dtype=bool)
    on_saturated[saturated] = True
    entries = on_saturated[ent_link]
    if not (entries & ~leaving_entry).any():
        return True
    link_max = np.zeros(capacity.size)
    np.maximum.at(link_max, ent_link[entries], rate[ent_flow[entries]])
    staying = entries & ~leaving_entry
    rates = rate[ent_flow[staying]]
    return not bool((rates >= link_max[ent_link[staying]] * (1 - SAME_RATE)).any())


def arrival_rate(
    ent_flow: np.ndarray,
    ent_link: np.ndarray,
    rate: np.ndarray,
    link_rate: np.ndarray,
    capacity: np.ndarray,
    path: np.ndarray,
) -> float | None:
    """The max-min rate of one new flow over ``path`` if the others keep theirs, else None."""
    spare = capacity[path] - link_rate[path]
    new_rate = float(spare.min())
    if not new_rate > capacity[path].min() * SATURATED:
        return None
    filled = path[spare <= new_rate * (1 + SAME_RATE)]
    on_filled = np.zeros(capacity.size, dtype=bool)
    on_filled[filled] = True
    entries = on_filled[ent_link]
    if entries.any() and float(rate[ent_flow[entries]].max()) > new_rate * (1 + SAME_RATE):
        return None
    return new_rate
