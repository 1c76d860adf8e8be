"""Per-link utilization accounting for the flow simulator: bytes carried, peak and mean utilization,
and a timeline of the network's busiest-link and aggregate utilization."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from dcsim.network.links import LinkTable

RESUM_EVERY = 1024  # re-add the kept utilization's running total from scratch after this many accumulations


class LinkUsage:
    """Each directed link's traffic since ``start_s``.

    ``bytes`` per link, ``peak_utilization`` per link (largest rate x 1 / capacity seen), and ``timeline``:
    (from_s, to_s, max link utilization, mean utilization over all links) for every interval between
    re-rates in which anything moved.

    A link's bytes are those of the flows that crossed it: the simulator credits a flow's bytes to its
    links when it ends (or is rerouted: what it sent so far), and ``in_flight`` (set by the simulator)
    gives what the flows still running have sent, so keeping bytes costs nothing per interval or rate
    change. The rates (for peaks, utilization and the timeline) are kept in two ways, switched as the
    changes come: after bulk changes (:meth:`observe_rates`, :meth:`observe_links`, :meth:`rates_changed`)
    as arrays; once links are updated a few at a time (:meth:`set_link_rates`), in Python lists, so a rate
    change costs a few scalar updates. ``peak_utilization`` reads the same either way.
    """

    def __init__(self, links: LinkTable, start_s: float) -> None:
        self.links = links
        self.start_s = start_s
        self.end_s = start_s
        self._credited = np.zeros(links.count)  # bytes of the flows that ended (or moved off) per link
        # (links per entry, bytes per entry) of what the running flows sent by a time (s) and is not credited
        self.in_flight: Callable[[float], tuple[np.ndarray, np.ndarray]] | None = None
        self._peak = np.zeros(links.count)
        self.timeline: list[tuple[float, float, float, float]] = []
        self._inverse_capacity = 1.0 / links.capacity_bytes_per_s
        self._inverse_list: list[float] = self._inverse_capacity.tolist()
        self._utilization: np.ndarray | None = None  # link rate x inverse capacity, None: recompute
        self._busiest: float | None = None  # its largest value, None: recompute
        self._busiest_link = -1
        self._total = 0.0  # sum of the kept utilization, updated link by link (re-added every RESUM_EVERY)
        self._since_sum = 0  # accumulations since it was last added from scratch
        # per link, while links are updated one by one (None: the arrays hold everything): its rate
        # (bytes/s) and its peak utilization
        self._rate: list[float] | None = None
        self._peak_list: list[float] = []

    @property
    def bytes(self) -> np.ndarray:
        """Bytes carried per link from ``start_s`` to ``end_s``."""
        if self.in_flight is None:
            return self._credited.copy()
        links, sent = self.in_flight(self.end_s)
        return self._credited + np.bincount(links, weights=sent, minlength=self._credited.size)

    def credit(self, links: Iterable[int], nbytes: float) -> None:
        """Count ``nbytes`` (bytes) on each of a few ``links`` (a flow that ended, or moved off them)."""
        credited = self._credited
        for link in links:
            credited[link] += nbytes

    def credit_entries(self, links: np.ndarray, nbytes: np.ndarray) -> None:
        """Count ``nbytes[i]`` (bytes) on link ``links[i]`` for every entry (many flows' links at once;
        entries on the padding link, ``links.count``, are dropped)."""
        n = self._credited.size
        self._credited += np.bincount(links, weights=nbytes, minlength=n + 1)[:n]

    @property
    def peak_utilization(self) -> np.ndarray:
        """Largest utilization seen per link (rate / capacity)."""
        return self._peak if self._rate is None else np.array(self._peak_list, dtype=float)

    def _to_arrays(self) -> None:
        """Leave the per-link lists."""
        if self._rate is not None:
            self._peak = np.array(self._peak_list, dtype=float)
            self._rate = None

    def _to_lists(self, link_rate: np.ndarray) -> None:
        """Keep links one by one from now on, at the rates ``link_rate`` held so far."""
        self._rate = link_rate.tolist()
        self._peak_list = self._peak.tolist()

    def accumulate(self, from_s: float, to_s: float, link_rate: np.ndarray) -> None:
        """Record the link rates held from ``from_s`` to ``to_s`` on the timeline: ``link_rate`` (bytes/s
        per link), unless links are being kept one by one (then it is not read: the kept rates are).

        The per-link utilization, its total and the busiest link are kept between calls:
        :meth:`set_link_rates` updates a few links, other changes to ``link_rate`` must be announced
        (:meth:`rates_changed`, :meth:`observe_rates`, :meth:`observe_links`) and are recomputed here. The
        mean utilization comes from the running total (re-added from scratch at least every RESUM_EVERY
        calls, so rounding cannot build up past ~1e-12 relative)."""
        self.end_s = to_s
        utilization = self._utilization
        if utilization is None:
            rates = link_rate if self._rate is None else np.array(self._rate, dtype=float)
            utilization = self._utilization = np.multiply(rates, self._inverse_capacity)
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
        self.timeline.append((from_s, to_s, busiest, self._total / utilization.size))

    def rates_changed(self) -> None:
        """``link_rate`` changed in bulk (at ``end_s``): recompute the utilization at the next :meth:`accumulate`."""
        self._to_arrays()
        self._utilization = None

    def observe_rates(self, link_rate: np.ndarray) -> None:
        """Record a new allocation's rates (from ``end_s`` on) for the per-link peaks."""
        self._to_arrays()
        self._utilization = None
        np.maximum(self._peak, link_rate * self._inverse_capacity, out=self._peak)

    def observe_links(self, links: np.ndarray, link_rate: np.ndarray) -> None:
        """Record new rates (bytes/s, from ``end_s`` on) of some ``links`` for their peaks."""
        self._to_arrays()
        self._utilization = None
        peaks = link_rate * self._inverse_capacity[links]
        self._peak[links] = np.maximum(self._peak[links], peaks)

    def set_link_rates(self, links: Iterable[int], loads: list[float] | np.ndarray, link_rate: np.ndarray) -> None:
        """Record the new rates ``loads[link]`` (bytes/s, from ``end_s`` on) of a few ``links``: their peaks,
        utilization, its total and the busiest link. Links whose rate is unchanged are skipped.

        ``loads`` as a list keeps links one by one in lists from now on (``link_rate``: every link's rate
        until now, read only when the links were last changed in bulk; it is not written). ``loads`` as an
        array is ``link_rate`` itself, already holding the new rates: the arrays are updated in place."""
        if isinstance(loads, np.ndarray):
            self._set_in_arrays(links, loads)
            return
        if self._rate is None:
            self._to_lists(link_rate)
        rates, peaks = self._rate, self._peak_list
        assert rates is not None
        inverse = self._inverse_list
        utilization = self._utilization
        busiest, busiest_link = self._busiest, self._busiest_link
        total = self._total
        for link in links:
            rate = loads[link]
            old = rates[link]
            if rate == old:
                continue
            rates[link] = rate
            scale = inverse[link]
            value = rate * scale  # as np.multiply(link_rate, inverse capacity) computes it
            if value > peaks[link]:
                peaks[link] = value
            if utilization is None:
                continue
            total += value - old * scale
            utilization[link] = value
            if busiest is None:
                continue
            if not value < busiest:
                busiest, busiest_link = value, link
            elif link == busiest_link:  # the busiest link slowed down: find the new one when needed
                busiest = None
        self._busiest, self._busiest_link = busiest, busiest_link
        self._total = total

    def _set_in_arrays(self, links: Iterable[int], link_rate: np.ndarray) -> None:
        """:meth:`set_link_rates` while the arrays hold everything (``link_rate`` already updated)."""
        self._to_arrays()
        read, inverse = link_rate.item, self._inverse_list
        peaks, peak_of = self._peak, self._peak.item
        utilization = self._utilization
        busiest, busiest_link = self._busiest, self._busiest_link
        total = self._total
        for link in links:
            value = read(link) * inverse[link]  # as np.multiply(link_rate, inverse capacity) computes it
            if value > peak_of(link):
                peaks[link] = value
            if utilization is None:
                continue
            old = utilization.item(link)
            if value == old:
                continue
            total += value - old
            utilization[link] = value
            if busiest is None:
                continue
            if not value < busiest:
                busiest, busiest_link = value, link
            elif link == busiest_link:
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
        carried = self.bytes
        mean = carried / (capacity * elapsed) if elapsed > 0 else np.zeros_like(carried)
        return pd.DataFrame(
            {
                "src": [links.nodes[i] for i in links.src],
                "dst": [links.nodes[i] for i in links.dst],
                "tier": links.tier,
                "capacity_bytes_per_s": capacity,
                "bytes": carried,
                "mean_utilization": mean,
                "peak_utilization": self.peak_utilization,
            }
        )

    def timeline_frame(self) -> pd.DataFrame:
        """The timeline as a DataFrame (``from_s``, ``to_s``, ``max_utilization``, ``mean_utilization``)."""
        return pd.DataFrame(self.timeline, columns=["from_s", "to_s", "max_utilization", "mean_utilization"])
