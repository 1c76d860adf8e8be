"""Measure end-to-end cases of this CPU against the sum of their own ops timed in the same session, for
tests/test_calibration_e2e_llama.py.

An end-to-end error against a profile mixes two things: whether dcsim's op list describes what the model
runs, and whether the profile's fits (fitted to op measurements of another day) price those ops as this
machine runs them today. This script separates them. For each case (default: the Llama-style decoders of
``dcsim/calibrate/e2e_models.py`` at batch 1) it times, one torch thread, thread CPU time:

- the whole case (``measure_end_to_end``: a training step, ``fwd+bwd``, or a serving ``prefill``), before
  and after the ops, keeping the quieter of the two;
- every distinct op of dcsim's op list for the case, with the calibration's own case for that op
  (``measure_op_sum``), summed with the list's counts: the case as dcsim describes it, measured now;
- dcsim's prediction from the shipped profile.

``e2e / op_sum`` checks the description alone (what the op list leaves out: framework time between ops,
ops it does not list); ``op_sum / predicted`` is how far this machine today is from the profile's fits. As a
control, it re-times ``--control`` of the profile's own fp32 GEMM points (forward and backward, spread
over sizes) with the same cases: their ``now / stored`` ratio is how much faster or slower this machine runs
today than when the profile was measured, on shapes the fits did use.
Writes ``calibration/validation/host-cpu-e2e-ops.json``.
Run from the repository root: ``PYTHONPATH=. python calibration/validate_e2e_ops.py`` (about 2 minutes).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from dcsim.calibrate.e2e_models import E2E_CPU, LLAMA_SPECS, e2e_ops
from dcsim.calibrate.harness import cpu_name, measure_end_to_end, measure_op_sum
from dcsim.calibrate.timing import clock_name
from dcsim.compute import CostModel, Matmul, Measurement, load_profile

ROOT = Path(__file__).resolve().parents[1]
PRECISION = "fp32"


def measure_case(model_id: str, size: int, batch: int, phase: str, model: CostModel) -> dict[str, Any]:
    """One case: whole-model time (quieter of two), op-by-op sum and the profile's prediction."""
    device = torch.device("cpu")
    load_before = os.getloadavg()[0]
    first = measure_end_to_end(model_id, size, batch, device, PRECISION, False, (phase,))[0]
    ops = e2e_ops(model_id, batch, size, phase, PRECISION)
    seconds = measure_op_sum(ops, device, False)
    second = measure_end_to_end(model_id, size, batch, device, PRECISION, False, (phase,))[0]
    whole = min(first, second, key=lambda e: e.median_s)
    op_sum = sum(seconds[op] * count for op, count in ops)
    predicted = sum(model.predict(op, "host-cpu") * count for op, count in ops)
    by_kind: dict[str, list[float]] = {}
    for op, count in ops:
        entry = by_kind.setdefault(f"{op.kind}/{op.phase}", [0.0, 0.0])
        entry[0] += seconds[op] * count
        entry[1] += model.predict(op, "host-cpu") * count
    return {
        "model": model_id,
        "batch": batch,
        "size": size,
        "phase": phase,
        "e2e_s": whole.median_s,
        "e2e_passes_s": [first.median_s, second.median_s],
        "op_sum_s": op_sum,
        "predicted_s": predicted,
        "by_kind_s": {kind: {"op_sum": v[0], "predicted": v[1]} for kind, v in sorted(by_kind.items())},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


def control_points(count: int) -> list[Measurement]:
    """``count`` of the profile's fp32 GEMM points (half forward, half backward; 64 rows or more, 0.2 to 4
    GFLOP per call), evenly spread over their sizes."""
    profile = load_profile(ROOT / "calibration" / "profiles" / "host-cpu.json")
    chosen: list[Measurement] = []
    for phase in ("fwd", "bwd"):
        points = sorted(
            (
                p
                for p in profile.points
                if isinstance(p.op, Matmul)
                and p.op.precision == PRECISION
                and p.op.phase == phase
                and p.op.batch == 1
                and p.op.m >= 64
                and 2e8 <= p.op.flops <= 4e9
            ),
            key=lambda p: p.op.flops,
        )
        share = count // 2
        chosen += [points[i * len(points) // share] for i in range(min(share, len(points)))]
    return chosen


def measure_control(count: int) -> list[dict[str, Any]]:
    """The control points re-timed now, each with its stored time."""
    points = control_points(count)
    seconds = measure_op_sum([(point.op, 1) for point in points], torch.device("cpu"), False)
    return [{"op": p.op.to_dict(), "stored_s": p.median_s, "now_s": seconds[p.op]} for p in points]


def main() -> None:
    """Measure the cases and write the record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(LLAMA_SPECS), help="comma-separated end-to-end models")
    parser.add_argument("--batches", default="1", help="comma-separated batches (each must be a case's)")
    parser.add_argument("--out", default=str(ROOT / "calibration" / "validation" / "host-cpu-e2e-ops.json"))
    parser.add_argument("--control", type=int, default=16, help="profile GEMM points re-timed as a control")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    batches = {int(b) for b in args.batches.split(",")}
    model = CostModel([ROOT / "calibration" / "profiles"])
    cases = []
    for model_id, size, case_batches, phases in E2E_CPU:
        if model_id not in models:
            continue
        for batch in sorted(batches & set(case_batches)):
            for phase in phases:
                case = measure_case(model_id, size, batch, phase, model)
                cases.append(case)
                print(
                    f"{model_id} b{batch} {phase}: e2e {case['e2e_s'] * 1e3:.1f} ms, op sum"
                    f" {case['op_sum_s'] * 1e3:.1f} ms, predicted {case['predicted_s'] * 1e3:.1f} ms"
                    f" (load {case['load_average_before']:.2f})",
                    flush=True,
                )
    control = measure_control(args.control)
    ratios = sorted(c["now_s"] / c["stored_s"] for c in control)
    print(f"control: {len(control)} profile GEMM points, now / stored median {ratios[len(ratios) // 2]:.3f}")
    record = {
        "device_id": "host-cpu",
        "machine": f"{cpu_name()} (shared with other jobs)",
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "threads": 1,
        "clock": clock_name(torch.device("cpu")),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "precision": PRECISION,
        "cases": cases,
        "control": control,
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
