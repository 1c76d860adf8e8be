"""The cost of producing a compressed model: distillation (teacher forward + student training) and calibration."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dcsim.catalog import load_catalog
from dcsim.compression import apply_recipe
from dcsim.compression.methods import AWQ_GRID
from dcsim.compression.production import CALIBRATION_TOKENS, SECONDS_PER_HOUR
from dcsim.models import get_model
from dcsim.parallel.stages import part_times, step_ops

DISTIL = {"distillation": {"student": "gpt3-1.3b", "tokens": 1e9}}


def _per_token(model, part, device="h100-sxm", seq=2048):
    times = part_times(step_ops(model, 1, seq, 1, "bf16"), device)
    fwd = sum(times.fwd_s.values())
    return (fwd if part == "fwd" else fwd + sum(times.bwd_s.values())) / seq


def test_distillation_costs_teacher_forward_plus_student_training():
    cm = apply_recipe(get_model("gpt3-6.7b"), DISTIL)
    cost = cm.production_cost("h100-sxm")
    teacher, student = get_model("gpt3-6.7b"), get_model("gpt3-1.3b")
    assert cost.teacher_forward_s == pytest.approx(_per_token(teacher, "fwd") * 1e9)
    assert cost.student_training_s == pytest.approx(_per_token(student, "train") * 1e9)
    assert cost.calibration_s == 0.0
    price = load_catalog().accelerator("h100-sxm").usd_per_hour
    assert price is not None
    assert cost.usd == pytest.approx(cost.accelerator_s * price / SECONDS_PER_HOUR)
    assert cost.accelerator_hours == pytest.approx(cost.accelerator_s / 3600)
    # sanity against 6ND: a 1.3B student on 1e9 tokens at well under the H100's 989 TFLOP/s peak
    flops = 6 * student.param_count() * 1e9
    assert flops / 989.5e12 < cost.student_training_s < flops / (0.1 * 989.5e12)
    doubled = apply_recipe(get_model("gpt3-6.7b"), {"distillation": {"student": "gpt3-1.3b", "tokens": 2e9}})
    assert doubled.production_cost("h100-sxm").accelerator_s == pytest.approx(2 * cost.accelerator_s)
    assert apply_recipe(get_model("gpt3-6.7b"), DISTIL).production_cost("h100-sxm", usd_per_accelerator_hour=0).usd == 0


def test_a_given_training_plan_prices_the_student():
    @dataclass(frozen=True)
    class Plan:
        world_size: int

    @dataclass(frozen=True)
    class Evaluation:  # what dcsim.parallel.evaluate.PlanEvaluation exposes
        tokens_per_s: float
        plan: Plan

    cm = apply_recipe(get_model("gpt3-6.7b"), DISTIL)
    cost = cm.production_cost("h100-sxm", training=Evaluation(1e6, Plan(64)))
    assert cost.student_training_s == pytest.approx(1e9 / 1e6 * 64)
    assert any("given plan" in line for line in cost.basis)


def test_quantization_calibration_is_cheap_and_method_dependent():
    llama = get_model("llama2-7b")
    rtn = apply_recipe(llama, {"quantization": {"weights": "int4", "method": "rtn"}}).production_cost("h100-sxm")
    gptq = apply_recipe(llama, {"quantization": {"weights": "int4", "method": "gptq"}}).production_cost("h100-sxm")
    awq = apply_recipe(llama, {"quantization": {"weights": "int4", "method": "awq"}}).production_cost("h100-sxm")
    assert rtn.accelerator_s == 0.0
    forward = _per_token(llama, "fwd") * CALIBRATION_TOKENS
    assert gptq.calibration_s > forward  # a forward pass plus the per-layer Hessian and updates
    assert awq.calibration_s == pytest.approx(AWQ_GRID * forward)
    assert gptq.accelerator_hours < 1.0  # post-training quantization of a 7B model: minutes, not days
    distil = apply_recipe(get_model("gpt3-6.7b"), DISTIL).production_cost("h100-sxm")
    assert distil.accelerator_s > 100 * gptq.accelerator_s


def test_bad_inputs_name_the_parameter():
    cm = apply_recipe(get_model("llama2-7b"), {"quantization": {"weights": "int4", "method": "gptq"}})
    with pytest.raises(ValueError, match=r"^usd_per_accelerator_hour:"):
        cm.production_cost("h100-sxm", usd_per_accelerator_hour=-1)
    with pytest.raises(ValueError, match=r"^calibration_tokens:"):
        cm.production_cost("h100-sxm", calibration_tokens=-5)
    no_price = next(acc for acc, entry in load_catalog().accelerators.items() if entry.usd_per_hour is None)
    with pytest.raises(ValueError, match=r"^usd_per_accelerator_hour: the catalog has no reference price"):
        cm.production_cost(no_price)
