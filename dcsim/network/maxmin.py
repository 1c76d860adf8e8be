"""Max-min fair rate allocation (progressive filling), vectorized with numpy.

Flows cross directed links; a flow's rate is limited by every link it crosses. Progressive filling raises
all rates together; a link saturates when its remaining capacity divided by its unfrozen flows is the
smallest such share seen by each of its flows, and its flows freeze at that share. Because shares only
grow as flows freeze (a frozen flow takes no more than the link's share), every link whose share is the
minimum over all links of all its flows can be frozen in the same round: the rounds number the depth of
the bottleneck hierarchy, not the number of links. The result is the unique max-min fair allocation
(Bertsekas & Gallager, *Data Networks*, 2nd ed., section 6.5.2).

Layout: flows are rows of a padded matrix of link ids (one column per hop, padding pointing at a dummy
link of infinite capacity), and only the links in use are numbered, so each round is a handful of
contiguous numpy passes.
"""

from __future__ import annotations

import numpy as np


def _padded(ent_flow: np.ndarray, ent_link: np.ndarray, n_flows: int, n_links: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of link ids per flow that has links (padded with ``n_links``) and those flows' ids."""
    lengths = np.bincount(ent_flow, minlength=n_flows)
    order = np.argsort(ent_flow, kind="stable")
    flows, links = ent_flow[order], ent_link[order]
    starts = np.cumsum(lengths) - lengths
    column = np.arange(flows.size) - starts[flows]
    matrix = np.full((n_flows, int(lengths.max())), n_links, dtype=np.int64)
    matrix[flows, column] = links
    present = np.flatnonzero(lengths)
    return matrix[present], present


def max_min_rates(ent_flow: np.ndarray, ent_link: np.ndarray, n_flows: int, capacity: np.ndarray) -> np.ndarray:
    """Max-min fair rates (bytes/s) of ``n_flows`` flows.

    ``ent_flow[i]`` crosses link ``ent_link[i]`` (one entry per flow and link crossed, in any order);
    ``capacity`` is bytes/s per link. A flow with no entry gets ``inf``.
    """
    rates = np.full(n_flows, np.inf)
    if ent_flow.size == 0:
        return rates
    capacity = np.asarray(capacity, dtype=float)
    paths, flow_ids = _padded(ent_flow, ent_link, n_flows, capacity.size)
    rates[flow_ids] = max_min_rows(paths, capacity)
    return rates


def max_min_rows(paths: np.ndarray, capacity: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Max-min fair rates of flows given as rows of link ids, padded with ``capacity.size`` (no link).

    ``weights`` (same shape as ``paths``, None: all 1) is the fraction of a flow's rate each entry puts on
    its link (a flow sprayed over several paths): link ``l`` carries the sum of ``weight x rate`` of its
    flows. Progressive filling raises every unfrozen flow's rate together, so each link's share is its
    capacity left over the sum of its unfrozen flows' weights. A row of padding only gets ``inf``.
    """
    n_all = capacity.size
    rates = np.full(paths.shape[0], np.inf)
    if paths.size == 0:
        return rates
    used = np.zeros(n_all + 1, dtype=bool)
    used[paths] = True
    used[n_all] = False
    ids = np.flatnonzero(used)
    n_links = ids.size
    renumber = np.full(n_all + 1, n_links, dtype=np.int64)
    renumber[ids] = np.arange(n_links)
    paths = renumber[paths]
    flow_ids = np.flatnonzero((paths < n_links).any(axis=1))
    paths = paths[flow_ids]
    remaining = np.append(capacity[ids], np.inf)  # the last entry is the padding's dummy link
    if weights is not None:
        return _weighted_rows(paths, flow_ids, weights[flow_ids], remaining, rates)
    while flow_ids.size:
        count = np.bincount(paths.ravel(), minlength=n_links + 1)
        share = remaining / np.maximum(count, 1)
        shares = share[paths]
        flow_min = shares.min(axis=1)
        loose = np.bincount(paths[shares > flow_min[:, None]], minlength=n_links + 1) > 0
        freeze = (~loose[paths]).any(axis=1)
        rates[flow_ids[freeze]] = flow_min[freeze]
        frozen = paths[freeze]
        remaining -= np.bincount(
            frozen.ravel(), weights=np.repeat(flow_min[freeze], paths.shape[1]), minlength=n_links + 1
        )
        np.maximum(remaining, 0.0, out=remaining)
        remaining[-1] = np.inf
        paths, flow_ids = paths[~freeze], flow_ids[~freeze]
    return rates


def _weighted_rows(
    paths: np.ndarray, flow_ids: np.ndarray, weights: np.ndarray, remaining: np.ndarray, rates: np.ndarray
) -> np.ndarray:
    """:func:`max_min_rows`' filling with a weight per entry (links renumbered, the dummy last)."""
    n_slots = remaining.size
    while flow_ids.size:
        load = np.bincount(paths.ravel(), weights=weights.ravel(), minlength=n_slots)
        share = remaining / np.where(load > 0, load, 1.0)
        share[-1] = np.inf
        shares = share[paths]
        flow_min = shares.min(axis=1)
        loose = np.bincount(paths[shares > flow_min[:, None]], minlength=n_slots) > 0
        freeze = (~loose[paths]).any(axis=1)
        rates[flow_ids[freeze]] = flow_min[freeze]
        remaining -= np.bincount(
            paths[freeze].ravel(), weights=(weights[freeze] * flow_min[freeze][:, None]).ravel(), minlength=n_slots
        )
        np.maximum(remaining, 0.0, out=remaining)
        remaining[-1] = np.inf
        keep = ~freeze
        paths, flow_ids, weights = paths[keep], flow_ids[keep], weights[keep]
    return rates
