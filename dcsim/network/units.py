"""Unit conversions. Network links are specified in gigabits per second (``_gbps``, 10^9 bit/s, the
scenario contract's unit); catalog interconnects in gigabytes per second (``_gb_per_s``, 10^9 byte/s).
Inside the network layer every rate is bytes per second and every time is seconds."""

from __future__ import annotations

BITS_PER_BYTE = 8


def gbps_to_bytes_per_s(gbps: float) -> float:
    """Gigabits per second (10^9 bit/s) to bytes per second."""
    return float(gbps) * 1e9 / BITS_PER_BYTE


def bytes_per_s_to_gbps(bytes_per_s: float) -> float:
    """Bytes per second to gigabits per second (10^9 bit/s)."""
    return float(bytes_per_s) * BITS_PER_BYTE / 1e9


def gb_per_s_to_bytes_per_s(gb_per_s: float) -> float:
    """Gigabytes per second (10^9 byte/s, the catalog's interconnect unit) to bytes per second."""
    return float(gb_per_s) * 1e9


def us_to_s(microseconds: float) -> float:
    """Microseconds to seconds."""
    return float(microseconds) * 1e-6
