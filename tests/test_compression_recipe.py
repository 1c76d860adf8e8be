"""Compression recipes: parsing, validation messages that name the field, and the order of the transforms."""

from __future__ import annotations

import pytest

from dcsim.compression import ORDER, apply_recipe, parse_recipe
from dcsim.compression.recipe import Recipe
from dcsim.models import TransformerConfig, get_model


def test_a_full_recipe_parses_into_typed_sections():
    recipe = parse_recipe(
        {
            "quantization": {"weights": "int4", "activations": "fp16", "method": "awq", "kv_cache": "fp8"},
            "pruning": {"sparsity": 0.5, "pattern": "2:4"},
            "distillation": {"student": "gpt3-1.3b", "tokens": 2e9},
            "layer_dropping": {"layers": 2},
        }
    )
    assert recipe.quantization is not None and recipe.quantization.weight_only
    assert recipe.quantization.kv_cache == "fp8" and recipe.quantization.group_size == 128
    assert recipe.pruning is not None and recipe.pruning.pattern == "2:4" and recipe.pruning.format == "dense"
    assert recipe.distillation is not None and recipe.distillation.tokens == 2e9
    assert recipe.layer_dropping is not None and recipe.layer_dropping.layers == 2
    assert parse_recipe(None).empty and parse_recipe({}).empty
    assert parse_recipe(recipe) is recipe


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"quantization": {"weights": "int3"}}, "quantization.weights:"),
        ({"quantization": {"activations": "fp16"}}, "quantization.weights: required"),
        ({"quantization": {"weights": "int4", "activations": "int8"}}, "quantization.activations:"),
        ({"quantization": {"weights": "int8", "method": "smoothquant"}}, "quantization.method:"),
        ({"quantization": {"weights": "int8", "kv_cache": "int2"}}, "quantization.kv_cache:"),
        ({"quantization": {"weights": "int8", "group_size": 0}}, "quantization.group_size:"),
        ({"quantization": {"weights": "int8", "bits": 8}}, "quantization.bits: unknown field"),
        ({"pruning": {"sparsity": 1.5}}, "pruning.sparsity:"),
        ({"pruning": {"sparsity": 0.3, "pattern": "2:4"}}, "pruning.sparsity:"),
        ({"pruning": {"sparsity": 0.3, "pattern": "structured"}}, "pruning.target: required"),
        ({"pruning": {"sparsity": 0.3, "target": "heads"}}, "pruning.target: only for pattern structured"),
        ({"pruning": {"sparsity": 0.3, "pattern": "blocky"}}, "pruning.pattern:"),
        ({"pruning": {"sparsity": 0.5, "pattern": "2:4", "format": "csr"}}, "pruning.format:"),
        ({"distillation": {"tokens": 1e9}}, "distillation.student: required"),
        ({"distillation": {"student": "gpt2-small", "tokens": -1}}, "distillation.tokens:"),
        ({"layer_dropping": {"layers": 0}}, "layer_dropping.layers:"),
        ({"layer_dropping": 3}, "layer_dropping: must be a mapping"),
        ({"sparsify": {}}, "sparsify: unknown compression technique"),
    ],
)
def test_bad_recipes_name_the_field(raw, field):
    with pytest.raises(ValueError) as error:
        parse_recipe(raw)
    assert str(error.value).startswith(field), str(error.value)
    assert "\n" not in str(error.value)


def test_bad_recipes_against_the_model_name_the_field():
    gpt2 = get_model("gpt2-small")
    with pytest.raises(ValueError, match=r"^layer_dropping.layers: must be below the model's 12 layers"):
        apply_recipe(gpt2, {"layer_dropping": {"layers": 12}})
    with pytest.raises(ValueError, match=r"^distillation.student: unknown model 'gpt2-tiny'"):
        apply_recipe(gpt2, {"distillation": {"student": "gpt2-tiny"}})
    with pytest.raises(ValueError, match=r"^distillation.student: heads: required"):
        apply_recipe(gpt2, {"distillation": {"student": {"family": "decoder", "layers": 0, "hidden": 64}}})
    with pytest.raises(ValueError, match=r"^pruning.target: ResNetConfig has no MLP channels"):
        apply_recipe(
            get_model("resnet50"), {"pruning": {"sparsity": 0.5, "pattern": "structured", "target": "channels"}}
        )
    with pytest.raises(ValueError, match=r"^precision:"):
        apply_recipe(gpt2, None, precision="int8")


def test_architecture_steps_run_in_the_documented_order():
    """Distillation first (the student is what gets pruned), then structured pruning and layer dropping."""
    assert ORDER[0] == "distillation" and ORDER[-1] == "quantization"
    teacher = get_model("gpt3-2.7b")
    cm = apply_recipe(
        teacher,
        {
            "distillation": {"student": "gpt3-1.3b"},
            "pruning": {"sparsity": 0.5, "pattern": "structured", "target": "layers"},
            "layer_dropping": {"layers": 2},
        },
    )
    student = get_model("gpt3-1.3b")
    assert isinstance(student, TransformerConfig)
    assert cm.config.layers == student.layers // 2 - 2  # 24 -> 12 (pruning) -> 10 (dropping)
    assert cm.config.hidden == student.hidden  # the student's width, not the teacher's
    assert cm.original is teacher
    assert isinstance(cm.recipe, Recipe)


# ------------------------------------------------------------------------ the recipe in a scenario's specs
def _compression_scenario(**compression: object) -> dict[str, object]:
    import yaml

    with open("scenarios/llama2_7b_compression.yaml", encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    raw["outputs"] = {"plots": False}
    if compression:
        raw["workloads"] = raw["workloads"][:1]
        raw["workloads"][0]["compression"] = compression["recipe"]
    return raw


def test_a_scenarios_recipe_is_validated_once_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The specs hold :class:`Recipe` models: loading validates each workload's recipe once; ``served()``,
    ``architecture()``, ``check`` and the runner reuse it (and the served compression made from it)."""
    from dcsim.engine.simulation import Simulation
    from dcsim.run.inference_runner import InferenceRunner, SharedReplicaPlacer
    from dcsim.scenario import load_scenario
    from dcsim.scenario.inference_spec import InferenceWorkload

    calls = []
    validate = Recipe.model_validate.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Recipe], obj: object, **kwargs: object) -> Recipe:
        calls.append(obj)
        return validate(cls, obj, **kwargs)

    monkeypatch.setattr(Recipe, "model_validate", classmethod(counted))
    scenario = load_scenario(_compression_scenario())
    specs = [w for w in scenario.workloads if isinstance(w, InferenceWorkload)]
    compressed = [s for s in specs if s.compression]
    assert len(compressed) == 3 and len(calls) == 3
    assert all(isinstance(s.compression, Recipe) for s in specs)
    calls.clear()
    placer = SharedReplicaPlacer(scenario)
    for spec in compressed:
        served = spec.served()
        assert served is not None and spec.served() is served and served.model.recipe is spec.compression
        assert spec.architecture() is served.config
        assert spec.check(scenario) == []
        InferenceRunner(spec, Simulation(1), scenario, placer)
    assert calls == []


def test_a_recipe_remembers_what_was_written() -> None:
    """Defaults are filled in for the transforms, while summaries and scenario dumps keep the mapping as
    written (so the summary's ``compression.recipe`` and a sweep's scenario hash read as before)."""
    from dcsim.scenario import load_scenario

    written = {"quantization": {"weights": "fp8", "kv_cache": "fp8"}, "pruning": {"pattern": "2:4"}}
    recipe = parse_recipe(written)
    assert recipe.quantization is not None and recipe.quantization.method == "fp8"
    assert recipe.pruning is not None and recipe.pruning.sparsity == 0.5
    assert recipe.written == written and recipe.model_dump() == written
    assert not Recipe() and Recipe().written == {} and recipe
    spec = load_scenario(_compression_scenario(recipe=written)).workloads[0]
    assert spec.model_dump(mode="json")["compression"] == written


@pytest.mark.parametrize(
    ("compression", "problem"),
    [
        (
            {"quantization": {"weights": "int3"}},
            "workloads[0].compression: quantization.weights: must be one of int8, int4, fp8, not 'int3'",
        ),
        (
            {"quantization": {"weights": "int4", "bits": 3}},
            "workloads[0].compression: quantization.bits: unknown field "
            "(known: weights, activations, method, kv_cache, group_size)",
        ),
        ({"sparsify": {}}, "workloads[0].compression: sparsify: unknown compression technique"),
        ({"pruning": {"pattern": "structured"}}, "workloads[0].compression: pruning.sparsity: must be a number"),
        ({"layer_dropping": 3}, "workloads[0].compression: layer_dropping: must be a mapping, not int"),
        ({1: 2}, "workloads[0].compression[1]: keys must be text"),
        ([], "workloads[0].compression: must be a mapping of fields (got [])"),
    ],
)
def test_a_bad_recipe_in_a_scenario_is_one_line_naming_the_field(compression: object, problem: str) -> None:
    from dcsim.errors import UserInputError
    from dcsim.scenario import load_scenario

    with pytest.raises(UserInputError) as error:
        load_scenario(_compression_scenario(recipe=compression))
    [found] = [str(p) for p in error.value.problems]
    assert found.startswith(problem), found
