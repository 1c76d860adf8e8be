"""Compression on this CPU: dcsim's predicted time and size ratios against real torch (issue 7, "Prove it").

The measurements come from ``calibration/validate_compression.py`` (torch, run by hand; this test needs no
torch): ``calibration/validation/host-cpu-compression.json``. Each row holds the measured baseline and compressed
times and what dcsim must price (an op pair or a model with a recipe); the prediction is recomputed here from
the host-cpu calibration profile. Error = |predicted ratio / measured ratio - 1|; targets per case are the ones
reported in docs/compression.md.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from dcsim.compression.validation import predicted_ratios, ratio_errors_pct

DATA = Path(__file__).resolve().parents[1] / "calibration" / "validation" / "host-cpu-compression.json"
DEVICE = "host-cpu"
#: median and worst error of the predicted time ratio, per case (percent)
TARGETS = {
    "int8_linear": (25.0, 60.0),
    "int8_model": (15.0, 15.0),
    "structured": (15.0, 40.0),
    "csr": (35.0, 70.0),
    "distilled": (10.0, 10.0),
}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    data = json.loads(DATA.read_text())
    assert data["device_id"] == DEVICE and data["threads"] == 1
    return list(data["rows"])


def _predicted(row: dict[str, Any]) -> tuple[float, float | None]:
    """(time ratio, weight-size ratio or None) that dcsim predicts now for the row's pair."""
    return predicted_ratios(row, DEVICE)


def _errors(rows: list[dict[str, Any]], case: str) -> list[float]:
    return ratio_errors_pct(rows, case, DEVICE)


def test_every_case_was_measured(rows):
    cases = {row["case"] for row in rows}
    assert cases == {"int8_linear", "int8_model", "structured", "dense_zeros", "csr", "distilled"}
    for row in rows:
        assert row["measured_base_s"] > 0 and row["measured_compressed_s"] > 0
        assert row["measured_ratio"] == pytest.approx(row["measured_compressed_s"] / row["measured_base_s"])


def _rows_m(row: dict[str, Any]) -> int:
    """The GEMM's row count of an op-pair row (its name starts ``m<rows> k<K> n<N>``)."""
    return int(row["name"].split()[0].removeprefix("m"))


#: CSR rows whose dense baseline dcsim prices as it runs in a decode step, with its weights cold (GEMVs and
#: skinny GEMMs of at most 16 rows; docs/serving.md), while the measurement ran both layers hot, one call
#: after another: their ratio is checked for its direction only (test_csr_sparsity_is_slower_until_very_sparse).
COLD_PRICED_ROWS = 16


@pytest.mark.parametrize("case", sorted(TARGETS))
def test_predicted_time_ratios_meet_the_targets(rows, case):
    if case == "csr":
        rows = [row for row in rows if row["case"] != "csr" or _rows_m(row) > COLD_PRICED_ROWS]
    errors = _errors(rows, case)
    median_target, worst_target = TARGETS[case]
    assert errors, case
    assert statistics.median(errors) <= median_target, (case, [round(e, 1) for e in errors])
    assert max(errors) <= worst_target, (case, [round(e, 1) for e in errors])


def test_int8_quantization_speeds_up_and_shrinks_as_predicted(rows):
    for row in rows:
        if row["case"] in ("int8_linear", "int8_model"):
            predicted, size = _predicted(row)
            assert predicted < 1.0 and row["measured_ratio"] < 1.0
            expected_size = row.get("predicted_size_ratio") if size is None else size
            assert expected_size == pytest.approx(row["measured_size_ratio"], abs=0.02)


def test_dense_zeros_speed_nothing_up(rows):
    """Zeros kept in a dense matrix: dcsim predicts no change, and torch runs at the dense speed."""
    zeros = [row for row in rows if row["case"] == "dense_zeros"]
    assert len(zeros) >= 6
    for row in zeros:
        assert _predicted(row)[0] == 1.0
    assert statistics.median(row["measured_ratio"] for row in zeros) == pytest.approx(1.0, abs=0.1)


def test_csr_sparsity_is_slower_until_very_sparse(rows):
    """torch.sparse CSR at 50-70% sparsity is several times slower than dense; only near 98% does it win.
    Where dcsim prices both sides as measured (more than 16 rows), it predicts the same side of 1 wherever the
    measurement is clearly on one side, and more than 2x at 50-70% sparsity. At 16 rows or fewer the
    measurement timed the dense layer hot, while dcsim prices it cold, as a decode step reads its weights, and
    CSR as measured: the predicted ratio is below the measured one there."""
    for row in rows:
        if row["case"] != "csr":
            continue
        predicted, _ = _predicted(row)
        if _rows_m(row) <= COLD_PRICED_ROWS:
            assert predicted < row["measured_ratio"], row["name"]
        else:
            if "50% sparse" in row["name"] or "70% sparse" in row["name"]:
                assert row["measured_ratio"] > 2.0 and predicted > 2.0, row["name"]
            if row["measured_ratio"] > 1.25 or row["measured_ratio"] < 0.8:
                assert (predicted > 1.0) == (row["measured_ratio"] > 1.0), row["name"]
        assert row["predicted_size_ratio"] == pytest.approx(row["measured_size_ratio"], rel=0.01)


def test_calibration_report_lists_the_compression_errors():
    """docs/calibration.md (``dcsim calibrate --report``) carries a row per case with the errors above."""
    from dcsim.calibrate.report import _compression_section

    lines = _compression_section(DATA.parent)
    assert lines[0] == f"## Compression effects on {DEVICE}"
    table = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ") and "%" in line}
    assert set(table) == {"int8_linear", "int8_model", "structured", "dense_zeros", "csr", "distilled"}
    data = json.loads(DATA.read_text())
    median = statistics.median(_errors(list(data["rows"]), "distilled"))
    assert f"| {median:.1f}% |" in table["distilled"]
