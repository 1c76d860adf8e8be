"""Max-min fair rate allocation (progressive filling), vectorized with numpy.

Flows cross directed links; a flow's rate is limited by every link it crosses. Progressive filling raises
all rates together; a link saturates when its remaining capacity divided by its unfrozen flows is the
smallest such share seen by each of its flows, and its flows freeze at that share. Because shares only
grow as flows freeze (a frozen flow takes no more than the link's share), every link whose share is the
minimum over all links of all its flows can be frozen in the same round: the rounds number the depth of
the bottleneck hierarchy, not the number of links. The result is the unique max-min fair allocation
(Bertsekas & Gallager, *Data Networks*, 2nd ed., section 6.5.2).
"""

from __future__ import annotations

import numpy as np


def max_min_rates(ent_flow: np.ndarray, ent_link: np.ndarray, n_flows: int, capacity: np.ndarray) -> np.ndarray:
    """Max-min fair rates (bytes/s) of ``n_flows`` flows.

    ``ent_flow[i]`` crosses link ``ent_link[i]`` (one entry per flow and link crossed, a flow's entries
    contiguous or not); ``capacity`` is bytes/s per link. A flow with no entry gets ``inf``.
    """
    rates = np.full(n_flows, np.inf)
    if ent_flow.size == 0:
        return rates
    if ent_flow.size > 1 and np.any(ent_flow[1:] < ent_flow[:-1]):
        order = np.argsort(ent_flow, kind="stable")
        ent_flow, ent_link = ent_flow[order], ent_link[order]
    remaining = np.asarray(capacity, dtype=float).copy()
    n_links = remaining.size
    flows, links = ent_flow, ent_link
    while flows.size:
        count = np.bincount(links, minlength=n_links)
        share = remaining / np.maximum(count, 1)
        entry_share = share[links]
        starts = np.flatnonzero(np.concatenate(([True], flows[1:] != flows[:-1])))
        lengths = np.diff(np.append(starts, flows.size))
        flow_min = np.minimum.reduceat(entry_share, starts)
        entry_min = np.repeat(flow_min, lengths)
        loose = np.bincount(links[entry_share > entry_min], minlength=n_links) > 0
        freeze = np.logical_or.reduceat(~loose[links], starts)
        rates[flows[starts[freeze]]] = flow_min[freeze]
        frozen = np.repeat(freeze, lengths)
        remaining -= np.bincount(links[frozen], weights=entry_min[frozen], minlength=n_links)
        np.maximum(remaining, 0.0, out=remaining)
        flows, links = flows[~frozen], links[~frozen]
    return rates
