"""The shipped calibration profiles: they load with current fits, and the host CPU's held-out error
meets its target (a check of the fit on real measurements; nothing is timed here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dcsim.compute import heldout_errors, load_profile
from dcsim.compute.calibration import FIT_VERSION

PROFILES = Path(__file__).parents[1] / "calibration" / "profiles"
CPU_TARGET_PCT = 10.0


@pytest.mark.parametrize("name", ["host-cpu", "h100-sxm", "a100-sxm-80gb"])
def test_shipped_profiles_load_with_current_fits(name):
    profile = load_profile(PROFILES / f"{name}.json")
    assert profile.device_id == name
    assert profile.torch_version and profile.date and profile.threads >= 1
    assert profile.fit_version == FIT_VERSION, "run `dcsim calibrate --report` to refresh the stored fits"
    assert set(profile.fits) <= {p.op.fit_key for p in profile.points}
    if not profile.imported_from:  # end-to-end steps are measured by dcsim calibrate, not imported
        assert len(profile.end_to_end) >= 6


@pytest.mark.parametrize("name", ["a100-sxm-80gb", "h100-sxm"])
def test_imported_gpu_points_held_out_error_meets_the_target(name):
    """Target (issue 16): on the points imported from Vidur's published A100/H100 timings, every op class's
    median absolute error on its held-out shapes (every 4th by size, never fitted) is at most 10%."""
    profile = load_profile(PROFILES / f"{name}.json")
    _, _, pairs = heldout_errors(profile)
    errors: dict[str, list[float]] = {}
    for point, predicted in pairs:
        if point.source:
            errors.setdefault(point.op.fit_key, []).append(abs(predicted / point.median_s - 1.0) * 100.0)
    assert {"matmul/fwd/fp16", "matmul_skinny/fwd/fp16", "matmul_gemv/fwd/fp16"} <= set(errors)
    worst = {key: float(np.median(values)) for key, values in errors.items()}
    assert max(worst.values()) <= CPU_TARGET_PCT, worst


def test_host_cpu_profile_is_one_thread_cpu_time():
    profile = load_profile(PROFILES / "host-cpu.json")
    assert profile.backend == "cpu" and profile.threads == 1
    assert "clock=thread_cpu_time" in profile.notes
    assert {"fp32", "bf16"} <= set(profile.peak_tflops)


E2E_TARGET_PCT = 15.0


def test_host_cpu_held_out_error_meets_the_target():
    """Target: median absolute held-out error at most 10% per op type (and pooled over all held-out
    shapes)."""
    _, kinds, pairs = heldout_errors(load_profile(PROFILES / "host-cpu.json"))
    assert len(pairs) > 100
    errors = sorted(abs(predicted / point.median_s - 1.0) for point, predicted in pairs)
    assert errors[len(errors) // 2] * 100 <= CPU_TARGET_PCT
    over = {row.name: round(row.median_abs_pct, 2) for row in kinds if row.median_abs_pct > CPU_TARGET_PCT}
    assert not over, f"median held-out error above target: {over}"


def test_host_cpu_end_to_end_predictions_meet_the_target():
    """Target: the sum of dcsim's op predictions within 15% of each stored end-to-end measurement
    (GPT-2 small, BERT-base, ResNet-50; forward and forward+backward; batch 1 and 2)."""
    from dcsim.calibrate.report import end_to_end_rows
    from dcsim.compute import CostModel

    profile = load_profile(PROFILES / "host-cpu.json")
    models = ("gpt2-small", "bert-base", "resnet50")  # Llama-style cases: tests/test_calibration_e2e_llama.py
    rows = [row for row in end_to_end_rows(profile, CostModel([PROFILES])) if row.model in models]
    assert {(r.model, r.batch, r.phase) for r in rows} == {
        (model, batch, phase) for model in models for batch in (1, 2) for phase in ("fwd", "fwd+bwd")
    }
    off = {
        f"{r.model} b{r.batch} {r.phase}": round(r.error_pct, 1)
        for r in rows
        if abs(r.error_pct) > E2E_TARGET_PCT and (r.model, r.batch, r.phase) not in E2E_KNOWN_GAPS
    }
    assert not off, f"end-to-end error above {E2E_TARGET_PCT}%: {off}"
    gaps = {(r.model, r.batch, r.phase): r.error_pct for r in rows if (r.model, r.batch, r.phase) in E2E_KNOWN_GAPS}
    assert set(gaps) == E2E_KNOWN_GAPS and all(-25.0 < error < 0.0 for error in gaps.values()), gaps


#: Cases outside the end-to-end target, with the measurement that says why. ResNet-50's forward at batch 1
#: is predicted 17% short: in one session (calibration/validation/host-cpu-e2e-ops-resnet50.json, written by
#: ``calibration/validate_e2e_ops.py --models resnet50``) the whole forward took 12.6% longer than its own ops
#: timed one by one, framework time between its 170 module calls that no op measurement holds, and dcsim's
#: prediction was within 4% of that op sum.
E2E_KNOWN_GAPS = {("resnet50", 1, "fwd")}


def test_resnet50_forward_gap_is_framework_time_between_ops():
    record = json.loads((PROFILES.parent / "validation" / "host-cpu-e2e-ops-resnet50.json").read_text())
    (case,) = [c for c in record["cases"] if c["model"] == "resnet50" and c["phase"] == "fwd"]
    assert case["e2e_s"] / case["op_sum_s"] > 1.08  # the whole forward: framework time between ops
    assert abs(case["predicted_s"] / case["op_sum_s"] - 1.0) < 0.10  # dcsim prices the ops themselves
