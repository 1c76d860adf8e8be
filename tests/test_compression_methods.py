"""Compression methods are plugins: a method registered from one file (tests/toy_compression_method.py) is
accepted by a recipe and a scenario, validated by its own rules and priced; a taken name is refused."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from dcsim.compression import apply_recipe, parse_recipe
from dcsim.compression.method import (
    COMPRESSION_METHODS,
    PruningMethod,
    QuantizationMethod,
    method_names,
    register_compression_method,
)
from dcsim.compression.methods import AWQ_GRID, Awq
from dcsim.compression.production import CALIBRATION_TOKENS
from dcsim.models import get_model
from dcsim.parallel.stages import part_times, step_ops

TOY = {"quantization": {"weights": "int4", "method": "toy_grid"}}


@pytest.fixture
def toy() -> Iterator[ModuleType]:
    """tests/toy_compression_method.py freshly imported (registering ``toy_grid``), unregistered afterwards."""
    with COMPRESSION_METHODS.scope():
        sys.modules.pop("toy_compression_method", None)
        yield importlib.import_module("toy_compression_method")
        sys.modules.pop("toy_compression_method", None)


def _forward_per_token_s(model_id: str, device: str = "h100-sxm", seq: int = 2048) -> float:
    times = part_times(step_ops(get_model(model_id), 1, seq, 1, "bf16"), device)
    return sum(times.fwd_s.values()) / seq


def _compression_scenario(recipe: dict[str, Any]) -> dict[str, Any]:
    """The shipped compression scenario, its first workload with ``recipe``."""
    raw = yaml.safe_load(Path("scenarios/llama2_7b_compression.yaml").read_text(encoding="utf-8"))
    raw["outputs"] = {"plots": False}
    raw["workloads"] = raw["workloads"][:1]
    raw["workloads"][0]["compression"] = recipe
    return dict(raw)


def test_the_built_in_methods_are_registered_by_section() -> None:
    assert method_names("quantization") == ("gptq", "awq", "smoothquant", "rtn", "fp8")
    assert method_names("pruning") == ("magnitude", "sparsegpt", "wanda")
    assert method_names("distillation") == ("distillation",)
    assert all(COMPRESSION_METHODS[name].source for name in COMPRESSION_METHODS)


def test_a_method_from_one_file_is_accepted_checked_and_priced(toy: ModuleType) -> None:
    recipe = parse_recipe(TOY)
    assert recipe.quantization is not None and recipe.quantization.method == "toy_grid"
    assert recipe.written == TOY  # the YAML as written
    # its own rule: it stores int4 weights only
    with pytest.raises(ValueError, match=r"^quantization\.method: toy_grid needs weights: int4, not int8$"):
        parse_recipe({"quantization": {"weights": "int8", "method": "toy_grid"}})
    # listed with the built-ins where a method name is wrong
    with pytest.raises(ValueError, match=r"must be one of gptq, awq, smoothquant, rtn, fp8, toy_grid, not 'x'"):
        parse_recipe({"quantization": {"weights": "int4", "method": "x"}})
    llama = apply_recipe(get_model("llama2-7b"), TOY)
    cost = llama.production_cost("h100-sxm")
    forward = _forward_per_token_s("llama2-7b") * CALIBRATION_TOKENS
    assert cost.calibration_s == pytest.approx(3 * forward)
    assert cost.basis == (f"toy_grid: calibration over {CALIBRATION_TOKENS} tokens, 3 forward passes",)
    awq = apply_recipe(get_model("llama2-7b"), {"quantization": {"weights": "int4", "method": "awq"}})
    assert awq.production_cost("h100-sxm").calibration_s == pytest.approx(AWQ_GRID / 3 * cost.calibration_s)
    # the op transform follows the formats, not the method: the same ops as AWQ's
    ops = llama.step_ops(1, 128)
    assert llama.transform_ops(ops, "h100-sxm")[0] == awq.transform_ops(ops, "h100-sxm")[0]
    # no published accuracy row names it
    assert llama.accuracy.status == "unknown"


def test_a_method_named_as_module_class_works_without_registration() -> None:
    with COMPRESSION_METHODS.scope():
        recipe = {"quantization": {"weights": "int4", "method": "toy_compression_method:ToyGrid"}}
        cost = apply_recipe(get_model("llama2-7b"), recipe).production_cost("h100-sxm", calibration_tokens=1000)
        assert cost.basis == ("toy_compression_method:ToyGrid: calibration over 1000 tokens, 3 forward passes",)
        with pytest.raises(ValueError, match=r"^pruning\.method: 'toy_compression_method:ToyGrid' is not a Pruning"):
            parse_recipe({"pruning": {"sparsity": 0.5, "method": "toy_compression_method:ToyGrid"}})
    sys.modules.pop("toy_compression_method", None)


def test_a_registered_method_named_as_module_class_finds_its_published_rows() -> None:
    llama = get_model("llama2-7b")
    by_name = apply_recipe(llama, {"quantization": {"weights": "int4", "method": "awq"}}).accuracy
    by_class = apply_recipe(
        llama, {"quantization": {"weights": "int4", "method": "dcsim.compression.methods:Awq"}}
    ).accuracy
    assert by_name.point is not None and by_class.point == by_name.point


def test_a_scenario_accepts_a_registered_method_and_names_the_field_otherwise(toy: ModuleType) -> None:
    from dcsim.errors import UserInputError
    from dcsim.scenario import load_scenario
    from dcsim.scenario.inference_spec import InferenceWorkload

    scenario = load_scenario(_compression_scenario(TOY))
    spec = scenario.workloads[0]
    assert isinstance(spec, InferenceWorkload) and spec.compression.quantization is not None
    assert spec.compression.quantization.method == "toy_grid"
    with pytest.raises(UserInputError, match=r"workloads\[0\]\.compression: quantization\.method: toy_grid needs"):
        load_scenario(_compression_scenario({"quantization": {"weights": "int8", "method": "toy_grid"}}))


def test_a_taken_name_is_refused_across_sections(toy: ModuleType) -> None:
    class Other(PruningMethod):
        pass

    with pytest.raises(ValueError, match=r"compression method 'toy_grid' is already registered \(ToyGrid\)"):
        register_compression_method("toy_grid")(Other)
    with pytest.raises(ValueError, match=r"compression method 'awq' is already registered \(Awq\)"):
        register_compression_method("awq")(Other)
    assert COMPRESSION_METHODS["awq"] is Awq and Other.name == ""


def test_a_method_of_another_section_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^pruning\.method: must be one of magnitude, sparsegpt, wanda, not 'awq'$"):
        parse_recipe({"pruning": {"sparsity": 0.5, "method": "awq"}})
    with pytest.raises(ValueError, match=r"^quantization\.method: must be one of .*, not 'wanda'$"):
        parse_recipe({"quantization": {"weights": "int4", "method": "wanda"}})
    assert issubclass(COMPRESSION_METHODS["gptq"], QuantizationMethod)
