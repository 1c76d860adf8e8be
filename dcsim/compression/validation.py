"""Compression effects measured on a device against dcsim's prediction (for the report and the tests).

``calibration/validate_compression.py`` (torch) writes ``calibration/validation/<device>-compression.json``:
rows of a ``case`` (``int8_linear``, ``int8_model``, ``structured``, ``dense_zeros``, ``csr``, ``distilled``),
the measured baseline and compressed seconds and their ratio, and what dcsim must price (``dcsim``: an op
pair, or a model with a recipe, batch and sequence length). The prediction is recomputed from the device's
calibration profile each time, so the errors follow the cost model.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from dcsim.compute import op_from_dict, predict
from dcsim.models import get_model, model_from_spec


def load_rows(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """(device id, rows) of a compression validation record."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return str(data["device_id"]), list(data["rows"])


def predicted_ratios(row: dict[str, Any], device: str) -> tuple[float, float | None]:
    """(time ratio, weight-size ratio or None) that dcsim predicts now for the row's pair on ``device``."""
    from dcsim.compression import apply_recipe

    spec = row["dcsim"]
    if spec["kind"] == "ops":
        base_ops_s = sum(predict(op_from_dict(op), device) for op in spec["base"])
        compressed_s = sum(predict(op_from_dict(op), device) for op in spec["compressed"])
        return compressed_s / base_ops_s, None
    model = spec["model"]
    cfg = get_model(model) if isinstance(model, str) else model_from_spec(model)
    base = apply_recipe(cfg, None, "fp32")
    cm = apply_recipe(cfg, spec["recipe"], "fp32")
    ops, _ = cm.transform_ops(cm.step_ops(spec["batch"], spec["seq_len"]), device)
    base_s = base.step_ops(spec["batch"], spec["seq_len"]).time(lambda op: predict(op, device))
    ratio = ops.time(lambda op: predict(op, device)) / base_s
    return ratio, cm.weight_bytes(device) / base.weight_bytes(device)


def ratio_errors_pct(rows: list[dict[str, Any]], case: str, device: str) -> list[float]:
    """|predicted / measured time ratio - 1| in percent, for each row of ``case``."""
    return [
        abs(predicted_ratios(row, device)[0] / row["measured_ratio"] - 1.0) * 100.0
        for row in rows
        if row["case"] == case
    ]


def summary_rows(rows: list[dict[str, Any]], device: str) -> list[tuple[str, int, float, float, str]]:
    """Per case: (case, rows, median and worst error in percent, measured ratio range as text)."""
    out = []
    for case in dict.fromkeys(row["case"] for row in rows):
        errors = ratio_errors_pct(rows, case, device)
        measured = [row["measured_ratio"] for row in rows if row["case"] == case]
        span = f"{min(measured):.2f}-{max(measured):.2f}x"
        out.append((case, len(errors), statistics.median(errors), max(errors), span))
    return out
