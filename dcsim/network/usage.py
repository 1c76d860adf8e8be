"""Per-link utilization accounting for the flow simulator: bytes carried, peak and mean utilization,
and a timeline of the network's busiest-link and aggregate utilization."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from dcsim.network.links import LinkTable

RESUM_EVERY = 1024  # re-add the kept utilization's running total from scratch after this many accumulations


class LinkUsage:
    """Integrates each directed link's rate (bytes/s) over time since ``start_s``.

    ``bytes`` per link, ``peak_utilization`` per link (largest rate x 1 / capacity seen), and ``timeline``:
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
        self._inverse_list: list[float] = self._inverse_capacity.tolist()
        self._utilization: np.ndarray | None = None  # link rate x inverse capacity, None: recompute
        self._busiest: float | None = None  # its largest value, None: recompute
        self._busiest_link = -1
        self._total = 0.0  # sum of the kept utilization, updated link by link (re-added every RESUM_EVERY)
        self._since_sum = 0  # accumulations since it was last added from scratch

    def accumulate(self, from_s: float, to_s: float, link_rate: np.ndarray) -> None:
        """Add ``link_rate`` (bytes/s per link) held from ``from_s`` to ``to_s``.

        The per-link utilization, its total and the busiest link are kept between calls:
        :meth:`set_link_rates` updates a few links, other changes to ``link_rate`` must be announced
        (:meth:`rates_changed`, :meth:`observe_rates`, :meth:`observe_links`) and are recomputed here. The
        mean utilization comes from the running total (re-added from scratch at least every RESUM_EVERY
        calls, so rounding cannot build up past ~1e-12 relative)."""
        self.end_s = to_s
        utilization = self._utilization
        if utilization is None:
            utilization = self._utilization = np.multiply(link_rate, self._inverse_capacity)
            self._busiest = None
            self._since_sum = RESUM_EVERY
        if self._since_sum >= RESUM_EVERY:
            self._total = float(np.add.reduce(utilization))  # (ndarray.sum without its Python wrapper)
            self._since_sum = 0
        self._since_sum += 1
        busiest = self._busiest
        if busiest is None:
            self._busiest_link = int(utilization.argmax())
            busiest = self._busiest = utilization.item(self._busiest_link)
        if busiest <= 0:
            return
        mean = self._total / utilization.size
        self.bytes += np.multiply(link_rate, to_s - from_s, out=self._scratch)
        self.timeline.append((from_s, to_s, busiest, mean))

    def rates_changed(self) -> None:
        """``link_rate`` changed in bulk: recompute the utilization at the next :meth:`accumulate`."""
        self._utilization = None

    def observe_rates(self, link_rate: np.ndarray) -> None:
        """Record a new allocation's rates for the per-link peaks."""
        self._utilization = None
        np.maximum(self.peak_utilization, link_rate * self._inverse_capacity, out=self.peak_utilization)

    def observe_links(self, links: np.ndarray, link_rate: np.ndarray) -> None:
        """Record new rates (bytes/s) of some ``links`` for their peaks."""
        self._utilization = None
        peaks = link_rate * self._inverse_capacity[links]
        self.peak_utilization[links] = np.maximum(self.peak_utilization[links], peaks)

    def set_link_rates(self, links: Iterable[int], loads: Sequence[float], link_rate: np.ndarray) -> None:
        """Write the new rates ``loads[link]`` (bytes/s) of a few ``links`` into ``link_rate`` and record
        them: peaks, utilization, its total and the busiest link. Links whose rate is unchanged are skipped."""
        read = link_rate.item
        peaks, peak_of = self.peak_utilization, self.peak_utilization.item
        inverse = self._inverse_list
        utilization = self._utilization
        if utilization is not None:
            kept = utilization.item
        busiest, busiest_link = self._busiest, self._busiest_link
        total = self._total
        for link in links:
            rate = loads[link]
            if rate == read(link):
                continue
            link_rate[link] = rate
            value = rate * inverse[link]  # as np.multiply(link_rate, inverse capacity) computes it
            if value > peak_of(link):
                peaks[link] = value
            if utilization is None:
                continue
            total += value - kept(link)
            utilization[link] = value
            if busiest is None:
                continue
            if not value < busiest:
                busiest, busiest_link = value, link
            elif link == busiest_link:  # the busiest link slowed down: find the new one when needed
                busiest = None
        self._busiest, self._busiest_link = busiest, busiest_link
        self._total = total

    def check(self, link_rate: np.ndarray) -> None:
        """Assert that the kept utilization, its total and the busiest link match ``link_rate`` (for tests)."""
        if self._utilization is None:
            return
        exact = np.multiply(link_rate, self._inverse_capacity)
        if not np.array_equal(self._utilization, exact):
            raise AssertionError("kept link utilization differs from the link rates")
        if self._busiest is not None and self._busiest != exact.max():
            raise AssertionError("kept busiest link utilization differs from the link rates")
        if not np.isclose(self._total, exact.sum(), rtol=1e-9, atol=1e-12 * exact.size):
            raise AssertionError("kept total utilization differs from the link rates")

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
