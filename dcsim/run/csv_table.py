"""CSV tables written fast, to the byte what ``DataFrame.to_csv(path, index=False)`` writes.

pandas spends most of a large ``to_csv`` turning every cell into an object array and handing the rows to
:mod:`csv`, one field at a time. :func:`write_csv` formats whole columns instead and joins them, keeping
pandas' rules for every column it handles:

- float64: ``repr`` of each value (what numpy's ``astype(str)``, pandas' path, gives), missing values empty;
  other float widths: numpy's ``astype(str)`` itself;
- integers and bools: ``str`` of the Python value (pandas hands the csv module Python objects);
- object and string columns, and categoricals (their categories, formatted once): each value formatted by the
  same :mod:`csv` writer settings as pandas' (so quoting is the csv module's own), missing values empty;
- a one-column table writes an empty field as ``""``, as the csv module does for a row of one empty field.

Anything else (datetimes, periods, intervals, nullable numeric extension arrays, a MultiIndex or non-string
column labels, no columns at all) goes to ``to_csv`` unchanged.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CHUNK_CELLS = 100_000
"""Rows are formatted and written in chunks of about this many cells, to bound the memory of a large table."""

_LINETERMINATOR = os.linesep  # what to_csv ends rows with when not told otherwise


class _FieldFormatter:
    """One value as the csv module writes it in a row, with pandas' writer settings; strings are cached."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(
            self._buffer,
            lineterminator=_LINETERMINATOR,
            delimiter=",",
            quoting=csv.QUOTE_MINIMAL,
            doublequote=True,
            escapechar=None,
            quotechar='"',
        )
        self._strings: dict[str, str] = {}
        self._tail = len(",") + len(_LINETERMINATOR)

    def __call__(self, value: Any) -> str:
        if type(value) is str:
            field = self._strings.get(value)
            if field is None:
                field = self._strings[value] = self._format(value)
            return field
        return self._format(value)

    def _format(self, value: Any) -> str:
        # a second, empty field keeps the row from being a lone empty field (which the csv module quotes)
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow((value, ""))
        return self._buffer.getvalue()[: -self._tail]


def _blank(fields: list[str], mask: np.ndarray) -> list[str]:
    """``fields`` with the positions where ``mask`` is set made empty (pandas' ``na_rep``)."""
    for index in np.flatnonzero(mask).tolist():
        fields[index] = ""
    return fields


def _object_fields(values: np.ndarray, mask: np.ndarray, formatter: _FieldFormatter) -> list[str]:
    """Each value as the csv module writes it, missing ones empty (pandas hands the csv module the objects)."""
    objects = values.tolist()
    missing = mask.tolist()
    try:
        distinct = set(objects)
    except TypeError:  # an unhashable value: format one by one
        distinct = None
    if distinct is not None and len(distinct) <= len(objects) // 2:
        # few distinct strings (a workload name, a status): format each once and look the rest up; only strings,
        # since a set merges values that are equal but written differently (1, 1.0, True; 0.0, -0.0)
        present = {value for value, gone in zip(objects, missing, strict=True) if not gone}
        if all(type(value) is str for value in present):
            table = {value: formatter(value) for value in present}
            fields = [table.get(value, "") for value in objects]
            return _blank(fields, mask)
    return ["" if gone else formatter(value) for value, gone in zip(objects, missing, strict=True)]


def _int_fields(values: np.ndarray) -> list[str]:
    """``str`` of each integer (pandas hands the csv module Python ints); a small range goes through a table."""
    if values.dtype.kind == "b" or len(values) == 0:
        return list(map(str, values.tolist()))
    low, high = int(values.min()), int(values.max())
    if high - low >= len(values):
        return list(map(str, values.tolist()))
    table = np.array([str(number) for number in range(low, high + 1)], dtype=object)
    return table[(values - values.min()).astype(np.intp)].tolist()


def _float_repr_matches_numpy() -> bool:
    """Whether numpy writes a float64 as ``repr`` does (not so under ``np.set_printoptions(legacy=...)``)."""
    return not np.get_printoptions().get("legacy")


class _ColumnFormatter:
    """The fields of one column, or ``None`` for a column pandas' own path must write."""

    def __init__(self, series: pd.Series, formatter: _FieldFormatter) -> None:
        self.series = series
        self.formatter = formatter
        dtype = series.dtype
        self.kind: str | None = None
        self.category_fields: np.ndarray | None = None
        if isinstance(dtype, np.dtype):
            if dtype.kind in "iub":
                self.kind = "int"
            elif dtype.kind == "f":
                self.kind = "float64" if dtype == np.float64 and _float_repr_matches_numpy() else "float"
            elif dtype.kind == "O":
                self.kind = "object"
        elif isinstance(dtype, pd.CategoricalDtype):
            if dtype.categories.dtype.kind not in "Mm":
                self.kind = "category"
                categories = pd.Categorical.from_codes(np.arange(len(dtype.categories)), dtype=dtype)
                objects = np.asarray(categories.astype(object))
                fields = _object_fields(objects, np.asarray(pd.isna(categories)), formatter)
                self.category_fields = np.array([*fields, ""], dtype=object)  # code -1 (missing) takes the last
        elif isinstance(dtype, pd.StringDtype):
            self.kind = "string"

    def fields(self, start: int, stop: int) -> list[str]:
        part = self.series.iloc[start:stop]
        if self.kind == "int":
            return _int_fields(part.to_numpy())
        if self.kind == "float64":
            values = part.to_numpy()
            return _blank(list(map(repr, values.tolist())), pd.isna(values))
        if self.kind == "float":
            values = part.to_numpy()
            return _blank(values.astype(str).tolist(), pd.isna(values))
        if self.kind == "object":
            values = part.to_numpy()
            return _object_fields(values, np.asarray(pd.isna(values)), self.formatter)
        if self.kind == "category":
            assert self.category_fields is not None
            codes = np.asarray(part.array.codes)
            return self.category_fields[codes].tolist()
        array = part.array  # string
        return _object_fields(np.asarray(array.astype(object)), np.asarray(pd.isna(array)), self.formatter)


def fast_path_columns(frame: pd.DataFrame) -> list[_ColumnFormatter] | None:
    """A formatter per column, or ``None`` when some column or the labels need pandas' own writer."""
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex) or len(columns) == 0 or not all(type(label) is str for label in columns):
        return None
    formatter = _FieldFormatter()
    formatters = [_ColumnFormatter(frame.iloc[:, position], formatter) for position in range(len(columns))]
    if any(column.kind is None for column in formatters):
        return None
    return formatters


def csv_text_chunks(frame: pd.DataFrame, columns: list[_ColumnFormatter]) -> Any:
    """The CSV text of ``frame`` (header first) in pieces, ``columns`` from :func:`fast_path_columns`."""
    formatter = columns[0].formatter
    header = [formatter(label) for label in frame.columns]
    width = len(columns)
    lone = width == 1  # the csv module writes a row of one empty field as ""
    yield ",".join(['""' if lone and field == "" else field for field in header]) + _LINETERMINATOR
    rows = len(frame)
    step = max(1, CHUNK_CELLS // width)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        count = stop - start
        # one flat list, field, separator, field, ..., line end: a single join makes the chunk's text
        cells: list[str] = [","] * (2 * width * count)
        for position, column in enumerate(columns):
            fields = column.fields(start, stop)
            if lone:
                fields = ['""' if field == "" else field for field in fields]
            cells[2 * position :: 2 * width] = fields
        cells[2 * width - 1 :: 2 * width] = [_LINETERMINATOR] * count
        yield "".join(cells)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` to ``path`` as ``frame.to_csv(path, index=False)`` would, byte for byte, faster."""
    columns = fast_path_columns(frame)
    if columns is None:
        frame.to_csv(path, index=False)
        return
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for text in csv_text_chunks(frame, columns):
            handle.write(text)
