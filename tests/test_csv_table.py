"""The fast CSV writer writes, byte for byte, what ``DataFrame.to_csv(path, index=False)`` writes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dcsim
from dcsim.run import csv_table
from dcsim.run.csv_table import fast_path_columns, write_csv

REPO = Path(__file__).resolve().parent.parent

SPECIAL_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1 + 0.2,
    0.1,
    1e16,
    1e15,
    9999999999999998.0,
    1e-4,
    1e-5,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    123456789012345678.0,
    1234567890123456.7,
    2.0**53 + 2,
    100000.0,
]
TRICKY_TEXT = ["", " ", "a,b", 'say "hi"', '"', "line\nbreak", "carriage\rreturn", "\r\n", "tab\there", "é ü 漢", "x"]


def same_bytes(frame: pd.DataFrame) -> tuple[bytes, bytes]:
    """What ``write_csv`` and ``to_csv(index=False)`` write for ``frame``, as bytes."""
    with tempfile.TemporaryDirectory() as folder:
        mine, theirs = Path(folder, "mine.csv"), Path(folder, "theirs.csv")
        write_csv(frame, mine)
        frame.to_csv(theirs, index=False)
        return mine.read_bytes(), theirs.read_bytes()


def assert_same(frame: pd.DataFrame, *, fast: bool = True) -> None:
    mine, theirs = same_bytes(frame)
    assert mine == theirs
    assert (fast_path_columns(frame) is not None) is fast  # the case under test took the path it means to


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(SPECIAL_FLOATS))
tiny_or_huge = st.one_of(
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.floats(min_value=1e15, max_value=1e300),
    st.integers(-(2**60), 2**60).map(float),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(floats, tiny_or_huge), min_size=0, max_size=60))
def test_float64_columns(values: list[float]) -> None:
    assert_same(pd.DataFrame({"x": values, "y": list(reversed(values))}, dtype=np.float64))
    assert_same(pd.DataFrame({"only": np.array(values, dtype=np.float64)}))  # NaN alone on a row: ""


@settings(max_examples=60, deadline=None)
@given(st.lists(floats, min_size=1, max_size=40))
def test_float32_and_float16_columns(values: list[float]) -> None:
    with np.errstate(over="ignore"):
        frame = pd.DataFrame({"f32": np.array(values, dtype=np.float32), "f16": np.array(values, dtype=np.float16)})
    assert_same(frame)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=40),
    st.lists(st.integers(0, 5), min_size=1, max_size=40),
)
def test_integer_and_bool_columns(wide: list[int], narrow: list[int]) -> None:
    n = min(len(wide), len(narrow))
    frame = pd.DataFrame(
        {
            "i64": np.array(wide[:n], dtype=np.int64),
            "i32": np.array(narrow[:n], dtype=np.int32) - 2,
            "u64": np.array(wide[:n], dtype=np.int64).view(np.uint64),
            "u8": np.array(narrow[:n], dtype=np.uint8),
            "flag": np.array(narrow[:n], dtype=np.int64) % 2 == 0,
        }
    )
    assert_same(frame)


texts = st.one_of(st.text(max_size=8), st.sampled_from(TRICKY_TEXT))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(texts, st.none(), st.just(float("nan"))), min_size=1, max_size=40))
def test_string_object_and_categorical_columns(values: list[Any]) -> None:
    frame = pd.DataFrame(
        {
            "object": pd.Series(values, dtype=object),
            "string": pd.Series(values, dtype="string"),
            "str": pd.Series(values, dtype=pd.StringDtype(na_value=np.nan)),
            "category": pd.Series(values, dtype="category"),
        }
    )
    assert_same(frame)
    for column in frame.columns:
        assert_same(frame[[column]])  # one column: an empty field is written ""


def test_many_repeats_of_few_strings_take_the_lookup_and_match() -> None:
    values = ["chat", "a,b", 'q"q', "", None, float("nan"), "line\nbreak"] * 50
    assert_same(pd.DataFrame({"object": pd.Series(values, dtype=object), "n": range(len(values))}))
    assert_same(pd.DataFrame({"string": pd.Series(values, dtype="str"), "n": range(len(values))}))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(texts, st.none(), floats, st.integers(-(10**20), 10**20), st.booleans()), max_size=30))
def test_mixed_object_columns(values: list[Any]) -> None:
    frame = pd.DataFrame({"mixed": pd.Series(values, dtype=object), "n": np.arange(len(values))})
    assert_same(frame)
    numpy_scalars = [
        np.float64(v) if type(v) is float else np.int64(v) if type(v) is int and abs(v) < 2**63 else v for v in values
    ]
    assert_same(pd.DataFrame({"mixed": pd.Series(numpy_scalars, dtype=object)}))
    assert_same(pd.DataFrame({"nested": pd.Series([[1, "a,b"], (0.5,), {"k": 1}, None] * 3, dtype=object)}))


def test_categoricals_of_numbers_and_unused_or_missing_categories() -> None:
    frame = pd.DataFrame(
        {
            "floats": pd.Categorical([0.1, 1.0, None, -0.0, 0.1], categories=[-0.0, 0.1, 1.0, 2.5]),
            "ints": pd.Categorical([3, 1, 3, None, 1]),
            "bools": pd.Categorical([True, False, None, True, True]),
            "ordered": pd.Categorical(["b", "a,z", "b", "", None], categories=["b", "a,z", ""], ordered=True),
        }
    )
    assert_same(frame)


def test_header_labels_are_quoted_as_pandas_does() -> None:
    frame = pd.DataFrame([[1, 2.5, "x", True]], columns=["plain", "with,comma", 'with "quote"', ""])
    assert_same(frame)
    assert_same(pd.DataFrame({"": [1.0, float("nan")]}))
    assert_same(pd.DataFrame([[1, 2]], columns=["same", "same"]))  # duplicate labels


def test_empty_tables() -> None:
    assert_same(pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)}))
    assert_same(pd.DataFrame(), fast=False)  # no columns: pandas' path


def test_other_dtypes_fall_back_to_pandas() -> None:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-01-01", None]),
            "nullable": pd.array([1, None], dtype="Int64"),
            "x": [0.1, 0.2],
        }
    )
    assert_same(frame, fast=False)
    assert_same(pd.DataFrame({"span": pd.to_timedelta([1, 2], unit="s")}), fast=False)
    assert_same(pd.DataFrame({"bad": [1.5 + 2j, 0j]}), fast=False)
    assert_same(pd.DataFrame({1: [0.5], 2: ["x"]}), fast=False)  # labels that are not strings
    assert_same(pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")])), fast=False)


def test_a_table_over_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_table, "CHUNK_CELLS", 7)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "name": pd.Series(rng.choice(["a", "b,c", ""], 101), dtype="str"),
            "status": pd.Series(rng.choice(["done", "late"], 101), dtype="category"),
            "value": np.where(rng.random(101) < 0.2, np.nan, rng.normal(size=101) * 1e6),
            "count": rng.integers(0, 10, 101),
        }
    )
    assert_same(frame)


def small_serving_scenario() -> dict[str, Any]:
    spec = yaml.safe_load((REPO / "scenarios" / "llama2_7b_chat_a100.yaml").read_text())
    spec["workloads"][0]["traffic"]["duration_s"] = 20
    spec["duration_s"] = 15  # requests still running at the end: their times are NaN
    spec["outputs"] = {"plots": False}
    return spec


def test_the_tables_of_a_serving_run_match_to_csv(tmp_path: Path) -> None:
    result = dcsim.run_scenario(small_serving_scenario())
    assert {"requests", "accelerators", "timeline"} <= set(result.tables)
    assert result.tables["requests"].isna().any(axis=None)  # the NaN case is exercised
    for name, frame in result.tables.items():
        assert fast_path_columns(frame) is not None, name
        mine, theirs = same_bytes(frame)
        assert mine == theirs, name
    files = result.write(tmp_path / "out", plots=False)
    for path in files:
        if path.suffix == ".csv":
            expected = tmp_path / "expected.csv"
            result.tables[path.stem].to_csv(expected, index=False)
            assert path.read_bytes() == expected.read_bytes(), path.name
