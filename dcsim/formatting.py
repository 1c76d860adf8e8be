"""Human-readable numbers for reports and plots, one formatter per kind of quantity.

Every number goes through :func:`format_number` (3 significant digits, thousands separated, no exponent from
0.001 to 1e15, whole numbers above 1,000 in full); durations are shown in µs, ms, s, min or h, sizes in
B/KB/MB/GB/TB (powers of 1000), money in $, fractions as percentages. :func:`quantity_of` tells a figure's
kind from its name, by dcsim's naming rules (``jct_s``, ``ttft_ms``, ``cost_usd``, ``energy_kwh``,
``accelerator_utilization``...); :func:`format_figure` formats a value by its name.
"""

from __future__ import annotations

import math
from typing import Any

SIGNIFICANT_DIGITS = 3

#: (unit, seconds per unit, shown from this many seconds on), smallest first.
DURATION_UNITS = (("µs", 1e-6, 0.0), ("ms", 1e-3, 1e-3), ("s", 1.0, 1.0), ("min", 60.0, 120.0), ("h", 3600.0, 7200.0))
BYTE_UNITS = (("B", 1.0), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("PB", 1e15))

#: Words in a figure's name that make it a fraction of a whole (shown as %, bounded to [0, 1]).
FRACTION_WORDS = ("utilization", "goodput", "mfu", "attainment", "fraction", "occupancy", "hit_rate")
#: Name endings and their quantity, checked in this order on each dotted part, the last part first.
SUFFIX_QUANTITIES = (
    ("_per_s", "rate"),
    ("_per_h", "hourly_rate"),
    ("_ms", "ms"),
    ("_us", "us"),
    ("_s", "s"),
    ("_h", "h"),
    ("_hours", "h"),
    ("_usd", "usd"),
    ("usd", "usd"),
    ("_kwh", "kwh"),
    ("_kg", "kg"),
    ("_w", "w"),
    ("_gb", "gb"),
    ("_gbps", "gbps"),
    ("bytes", "bytes"),
)
#: Units written after the number, by quantity.
SUFFIX_UNITS = {"kwh": " kWh", "kg": " kg", "w": " W", "gbps": " Gb/s", "rate": "/s", "hourly_rate": "/h"}
#: Abbreviations written in capitals in labels.
ACRONYMS = frozenset({"jct", "ttft", "tpot", "mfu", "slo", "kv", "e2e", "it", "tp", "pp", "dp", "ep", "id", "usd"})


def format_number(value: Any, digits: int = SIGNIFICANT_DIGITS) -> str:
    """``value`` to ``digits`` significant digits with thousands separators ("9,299", "63.3", "0.00412");
    an exponent only below 0.001 or from 1e15 on; "∞" and "—" (missing) for the non-finite; text as is."""
    if value is None or isinstance(value, bool | str):
        return "—" if value is None else str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "—"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    size = abs(number)
    if size == 0:
        return "0"
    if size < 1e-3 or size >= 1e15:
        return f"{number:.{digits - 1}e}".replace("-", "−")
    if size >= 10 ** (digits - 1):
        text = f"{round(number):,}"
    else:
        decimals = digits - 1 - math.floor(math.log10(size))
        text = f"{number:,.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return text.replace("-", "−") if text != "-0" else "0"


def duration_unit(seconds: float) -> tuple[str, float]:
    """The unit (name, seconds per unit) in which a duration of about ``seconds`` reads best."""
    size = abs(seconds) if math.isfinite(seconds) else 0.0
    chosen = DURATION_UNITS[2]  # seconds for zero
    for unit in DURATION_UNITS if size > 0 else ():
        if size >= unit[2]:
            chosen = unit
    return chosen[0], chosen[1]


def format_duration(seconds: Any) -> str:
    """A duration given in seconds, in the unit that reads best ("850 ms", "42.5 min", "71.9 h")."""
    if not _finite(seconds):
        return format_number(seconds)
    unit, scale = duration_unit(float(seconds))
    return f"{format_number(float(seconds) / scale)} {unit}"


def byte_unit(nbytes: float) -> tuple[str, float]:
    """The unit (name, bytes per unit, powers of 1000) in which about ``nbytes`` bytes reads best."""
    size = abs(nbytes) if math.isfinite(nbytes) else 0.0
    chosen = BYTE_UNITS[0]
    for unit in BYTE_UNITS:
        if size >= unit[1]:
            chosen = unit
    return chosen


def format_bytes(nbytes: Any) -> str:
    """A size given in bytes ("1.5 GB", "820 MB")."""
    if not _finite(nbytes):
        return format_number(nbytes)
    unit, scale = byte_unit(float(nbytes))
    return f"{format_number(float(nbytes) / scale)} {unit}"


def format_usd(dollars: Any) -> str:
    """Dollars ("$9,299", "$0.42", "−$12.5")."""
    if not _finite(dollars):
        return format_number(dollars)
    text = format_number(abs(float(dollars)))
    return f"−${text}" if float(dollars) < 0 else f"${text}"


def format_percent(fraction: Any) -> str:
    """A fraction as a percentage ("63.3%")."""
    if not _finite(fraction):
        return format_number(fraction)
    return f"{format_number(100.0 * float(fraction))}%"


def quantity_of(name: str) -> str:
    """The kind of figure a (dotted) summary or column name holds: ``fraction``, ``s``, ``ms``, ``us``, ``h``,
    ``usd``, ``kwh``, ``kg``, ``w``, ``gb``, ``gbps``, ``bytes``, ``rate`` (per second), ``hourly_rate`` or
    ``number``."""
    parts = name.lower().split(".")
    if any(word in part for part in parts for word in FRACTION_WORDS):
        return "fraction"
    for part in reversed(parts):
        if part.startswith("usd_"):
            return "usd"
        for suffix, quantity in SUFFIX_QUANTITIES:
            if part.endswith(suffix):
                return quantity
    return "number"


def format_figure(name: str, value: Any) -> str:
    """``value`` formatted by what its ``name`` says it is (see :func:`quantity_of`)."""
    if not _finite(value) or isinstance(value, bool):
        return format_number(value)
    quantity = quantity_of(name)
    number = float(value)
    if quantity == "fraction":
        return format_percent(number)
    if quantity == "h":  # an amount of (accelerator, replica) hours: kept in hours
        return f"{format_number(number)} h"
    if quantity in ("s", "ms", "us"):
        return format_duration(number * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[quantity])
    if quantity == "usd":
        return format_usd(number)
    if quantity == "gb":
        return format_bytes(number * 1e9)
    if quantity == "bytes":
        return format_bytes(number)
    if quantity == "kwh" and abs(number) < 1:
        return f"{format_number(number * 1000.0)} Wh"
    return format_number(number) + SUFFIX_UNITS.get(quantity, "")


def format_interval(name: str, mean: Any, low: Any, high: Any) -> str:
    """A mean and its interval, "mean [low – high]": durations and sizes in one unit (the mean's: "42.7
    [27.8 – 57.6] min"), the unit written once after the interval for energy, rates... ("9.47 [4.08 – 14.9]
    kWh"), each value formatted by :func:`format_figure` otherwise ("$64.1 [$30.1 – $98.2]")."""
    if not all(_finite(v) for v in (mean, low, high)):
        return format_figure(name, mean)
    quantity = quantity_of(name)
    values = [float(v) for v in (mean, low, high)]
    if quantity in ("s", "ms", "us", "gb", "bytes"):
        scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "gb": 1e9, "bytes": 1.0}[quantity]
        typical = (values[0] or values[2]) * scale
        unit, per = duration_unit(typical) if quantity in ("s", "ms", "us") else byte_unit(typical)
        shown = [format_number(v * scale / per) for v in values]
        return f"{shown[0]} [{shown[1]} – {shown[2]}] {unit}"
    if quantity in SUFFIX_UNITS:
        shown = [format_number(v) for v in values]
        return f"{shown[0]} [{shown[1]} – {shown[2]}]{SUFFIX_UNITS[quantity]}"
    shown = [format_figure(name, v) for v in values]
    return f"{shown[0]} [{shown[1]} – {shown[2]}]"


def label_of(name: str) -> str:
    """A figure's name as words: units dropped (the value carries them), underscores as spaces, known
    abbreviations in capitals ("jct_s.p50" -> "JCT p50", "cost_usd.total" -> "cost total")."""
    words = []
    for part in name.split("."):
        for suffix in ("_ms", "_us", "_s", "_h", "_usd", "_kwh", "_kg", "_w", "_gb", "_gbps"):
            if part.endswith(suffix) and not part.endswith("_per" + suffix):
                part = part[: -len(suffix)]
                break
        words += [w.upper() if w in ACRONYMS else w for w in part.split("_") if w]
    return " ".join(words)


def _finite(value: Any) -> bool:
    """A real, finite number (not a bool, not text)."""
    if value is None or isinstance(value, bool | str):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
