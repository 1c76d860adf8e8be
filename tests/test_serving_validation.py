"""dcsim's serving prediction for GPT-2-small on this CPU against real token generation in torch.

``calibration/validate_serving.py`` (torch, one thread) measured the time to first token (one prefill
iteration) and the per-token decode time for a few prompts at batch 1 and batch 8 and wrote
``calibration/validation/host-cpu-serving.json``. Here the serving cost model, from the ``host-cpu``
calibration profile, predicts the same iterations; the target is 15%. No torch is needed.

Cases outside the target are marked ``xfail(strict=True)`` with the reason (see ``docs/serving.md``): they
fail the day the cost model reaches the target, so the mark cannot outlive the gap.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from dcsim.compute import load_profile
from dcsim.compute.ops import Matmul
from dcsim.models import get_model
from dcsim.serving import IterationCost

MEASURED = Path(__file__).resolve().parent.parent / "calibration" / "validation" / "host-cpu-serving.json"
PROFILE = MEASURED.parents[1] / "profiles" / "host-cpu.json"
TARGET = 0.15
#: how far the record's quietest control timings may sit from the profile's times of the same shapes (the
#: validation's own target: a record taken in a state that much slower than the profile's would measure the drift)
CONTROL_TOLERANCE = TARGET
# (metric, batch, prompt) whose error exceeds the target, with why (docs/serving.md, "Validation").
KNOWN_GAPS: dict[tuple[str, int, int], str] = {}


def _record() -> dict[str, Any]:
    return json.loads(MEASURED.read_text(encoding="utf-8"))


def predictions(case: dict[str, Any]) -> dict[str, float]:
    """Predicted TTFT and median decode step (seconds) for one measured case."""
    cfg = get_model("gpt2-small")
    cost = IterationCost(cfg, "fp32", "host-cpu")  # type: ignore[arg-type]
    batch, prompt = case["batch"], case["prompt_tokens"]
    ttft = cost.iteration_s(0, 0, [(prompt, 0)] * batch, batch)
    steps = [cost.decode_s(batch, batch * (prompt + i + 1)) for i in range(case["decode_steps"])]
    return {"ttft_s": ttft, "decode_s_per_token": statistics.median(steps)}


def errors() -> list[tuple[str, int, int, float, float]]:
    """(metric, batch, prompt, measured s, predicted s) for every case and metric."""
    rows = []
    for case in _record()["cases"]:
        predicted = predictions(case)
        for metric in ("ttft_s", "decode_s_per_token"):
            rows.append((metric, case["batch"], case["prompt_tokens"], case[metric], predicted[metric]))
    return rows


def test_measurement_record_is_complete() -> None:
    record = _record()
    assert record["device_id"] == "host-cpu" and record["threads"] == 1
    assert record["torch_version"] and record["date"]
    batches = {case["batch"] for case in record["cases"]}
    assert {1, 8} <= batches


def test_record_was_measured_with_the_machine_as_fast_as_for_the_profile() -> None:
    """The record's quietest control GEMM (512 x 3072 by 3072 x 768 fp32, compute-bound) and cold GEMV (one row,
    2304 x 2304, weights from memory) ran within 15% of the profile's times for the same shapes: this shared
    machine's compute and memory speeds drift by 15-35% over hours, each on its own, so both the record and the
    profile keep the quieter of several runs, and a record whose quietest runs were slower than the profile's
    would measure the drift, not the cost model."""
    record, profile = _record(), load_profile(PROFILE)
    assert any("matmul_gemv" in note and "cold" in note for note in profile.notes)
    median_s = {point.op: point.median_s for point in profile.points}
    gemm = median_s[Matmul(512, 768, 3072, precision="fp32")]
    gemv = median_s[Matmul(1, 2304, 2304, precision="fp32")]
    for name, reference in (("control_gemm_s", gemm), ("control_gemv_cold_s", gemv)):
        quietest = min(seconds for run in record["runs"] for seconds in run[name])
        assert quietest == pytest.approx(reference, rel=CONTROL_TOLERANCE), f"{name}: {quietest / reference - 1:+.1%}"
    runs = {run["date"] for run in record["runs"]}
    assert all(case["ttft_run"] in runs and case["decode_run"] in runs for case in record["cases"])


def _params() -> list[Any]:
    params = []
    for metric, batch, prompt, _, _ in errors():
        key = (metric, batch, prompt)
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[key])] if key in KNOWN_GAPS else []
        params.append(pytest.param(key, marks=marks, id=f"{metric}-b{batch}-p{prompt}"))
    return params


@pytest.mark.parametrize("key", _params())
def test_prediction_within_target(key: tuple[str, int, int]) -> None:
    row = next(r for r in errors() if r[:3] == key)
    measured, predicted = row[3], row[4]
    assert predicted == pytest.approx(measured, rel=TARGET), f"error {predicted / measured - 1:+.1%}"
