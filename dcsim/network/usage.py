"""Per-link utilization accounting for the flow simulator: bytes carried, peak and mean utilization,
and a timeline of the network's busiest-link and aggregate utilization."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dcsim.network.links import LinkTable


class LinkUsage:
    """Integrates each directed link's rate (bytes/s) over time since ``start_s``.

    ``bytes`` per link, ``peak_utilization`` per link (largest rate / capacity seen), and ``timeline``:
    (from_s, to_s, max link utilization, mean utilization over all links) for every interval between
    re-rates in which anything moved.
    """

    def __init__(self, links: LinkTable, start_s: float) -> None:
        self.links = links
        self.start_s = start_s
        self.end_s = start_s
        self.bytes = np.zeros(links.count)
        self.peak_utilization = np.zeros(links.count)
        self.timeline: list[tuple[float, float, float, float]] = []
        self._inverse_capacity = 1.0 / links.capacity_bytes_per_s
        self._scratch = np.empty(links.count)
        self._capacity_list: list[float] = links.capacity_bytes_per_s.tolist()

    def accumulate(self, from_s: float, to_s: float, link_rate: np.ndarray) -> None:
        """Add ``link_rate`` (bytes/s per link) held from ``from_s`` to ``to_s``."""
        self.end_s = to_s
        utilization = np.multiply(link_rate, self._inverse_capacity, out=self._scratch)
        busiest = float(utilization.max())
        if busiest <= 0:
            return
        mean = float(utilization.sum()) / utilization.size
        self.bytes += np.multiply(link_rate, to_s - from_s, out=self._scratch)
        self.timeline.append((from_s, to_s, busiest, mean))

    def observe_rates(self, link_rate: np.ndarray) -> None:
        """Record a new allocation's rates for the per-link peaks."""
        np.maximum(self.peak_utilization, link_rate / self.links.capacity_bytes_per_s, out=self.peak_utilization)

    def observe_links(self, links: np.ndarray, link_rate: np.ndarray) -> None:
        """Record new rates (bytes/s) of some ``links`` for their peaks."""
        peaks = link_rate / self.links.capacity_bytes_per_s[links]
        self.peak_utilization[links] = np.maximum(self.peak_utilization[links], peaks)

    def observe_link(self, link: int, rate: float) -> None:
        """Record a new rate (bytes/s) of one ``link`` for its peak (:meth:`observe_links` for one link)."""
        utilization = rate / self._capacity_list[link]
        if utilization > self.peak_utilization.item(link):
            self.peak_utilization[link] = utilization

    def table(self, until_s: float | None = None) -> pd.DataFrame:
        """One row per directed link: endpoints, tier, capacity (bytes/s), bytes carried, mean and peak
        utilization (mean over ``start_s``..``until_s``, default the last update)."""
        end = self.end_s if until_s is None else until_s
        elapsed = max(end - self.start_s, 0.0)
        links = self.links
        capacity = links.capacity_bytes_per_s
        mean = self.bytes / (capacity * elapsed) if elapsed > 0 else np.zeros_like(self.bytes)
        return pd.DataFrame(
            {
                "src": [links.nodes[i] for i in links.src],
                "dst": [links.nodes[i] for i in links.dst],
                "tier": links.tier,
                "capacity_bytes_per_s": capacity,
                "bytes": self.bytes,
                "mean_utilization": mean,
                "peak_utilization": self.peak_utilization,
            }
        )

    def timeline_frame(self) -> pd.DataFrame:
        """The timeline as a DataFrame (``from_s``, ``to_s``, ``max_utilization``, ``mean_utilization``)."""
        return pd.DataFrame(self.timeline, columns=["from_s", "to_s", "max_utilization", "mean_utilization"])
