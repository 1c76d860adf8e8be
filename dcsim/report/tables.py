"""Tables as people read them: the columns that say what a row is (and its status or error) first, every
number in human units (one unit per column, named in the header), headers as words that can wrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dcsim.formatting import byte_unit, duration_unit, format_number, label_of, quantity_of

#: Columns that name a row, shown first in this order when present.
IDENTITY_COLUMNS = ("policy", "workload", "variant", "seed", "job_id", "request_id", "replica", "name", "node")
#: Columns that say how a row ended, shown right after the identity columns.
STATUS_COLUMNS = ("status", "completed", "error")
#: Whole numbers shown without thousands separators (labels rather than amounts).
LABEL_NUMBERS = ("seed", "replica", "job_id", "request_id", "n")

SECONDS_PER = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "h": 3600.0}
UNIT_NAMES = {
    "usd": "$",
    "fraction": "%",
    "kwh": "kWh",
    "kg": "kg",
    "w": "W",
    "gbps": "Gb/s",
    "rate": "/s",
    "hourly_rate": "/h",
}


def ordered_columns(columns: list[str]) -> list[str]:
    """``columns`` with identity columns first, then status/error, then the rest in their order."""
    first = [c for c in IDENTITY_COLUMNS if c in columns]
    status = [c for c in STATUS_COLUMNS if c in columns]
    return first + status + [c for c in columns if c not in first and c not in status]


def _typical(values: np.ndarray) -> float:
    """The median magnitude of the finite non-zero values (0 if none)."""
    magnitudes = np.abs(values[np.isfinite(values)])
    magnitudes = magnitudes[magnitudes > 0]
    return float(np.median(magnitudes)) if magnitudes.size else 0.0


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def typical_seconds(frame: pd.DataFrame) -> float:
    """The median magnitude (s) of the non-zero durations in all of ``frame``'s duration columns."""
    durations = [
        _numbers(frame[c]) * SECONDS_PER[quantity_of(str(c))]
        for c in frame.columns
        if quantity_of(str(c)) in SECONDS_PER and pd.api.types.is_numeric_dtype(frame[c])
    ]
    return _typical(np.concatenate(durations)) if durations else 0.0


def column_unit(name: str, values: pd.Series, seconds: float | None = None) -> tuple[str, float]:
    """The unit (name, "" for plain numbers) to show column ``name`` in, and the factor that takes its
    values there: one unit for the whole column, picked by its median magnitude (for durations, by
    ``seconds``, the table's, unless the column's is over 100 times smaller or larger: one unit for the
    durations of a table where they are alike)."""
    quantity = quantity_of(name)
    numbers = _numbers(values)
    if quantity in SECONDS_PER:
        typical = _typical(numbers) * SECONDS_PER[quantity]
        if seconds and typical and 0.01 <= typical / seconds <= 100:
            typical = seconds
        unit, per = duration_unit(typical)
        return unit, SECONDS_PER[quantity] / per
    if quantity in ("gb", "bytes"):
        scale = 1e9 if quantity == "gb" else 1.0
        unit, per = byte_unit(_typical(numbers) * scale)
        return unit, scale / per
    if quantity == "fraction":
        return "%", 100.0
    return UNIT_NAMES.get(quantity, ""), 1.0


def _cell(value: object, factor: float, label_number: bool) -> str:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    if label_number and float(value).is_integer():
        return str(int(value))
    return "" if math.isnan(float(value)) else format_number(float(value) * factor)


def readable_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as text: columns reordered (:func:`ordered_columns`), numbers formatted in one unit per
    column (all durations in one), headers as words with the unit ("jct_s" -> "JCT (h)")."""
    out = {}
    seconds = typical_seconds(frame)
    for name in ordered_columns([str(c) for c in frame.columns]):
        column = frame[name]
        header = label_of(name) or name
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            unit, factor = column_unit(name, column, seconds)
            header = f"{header} ({unit})" if unit else header
            header = header if header not in out else name
            label_number = name in LABEL_NUMBERS or name.endswith(("_index", "_id"))
            out[header] = [_cell(v, factor, label_number) for v in column.tolist()]
        else:
            header = header if header not in out else name
            out[header] = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in column]
    return pd.DataFrame(out, index=frame.index)
