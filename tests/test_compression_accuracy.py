"""Accuracy estimates: the nearest published point, named with its source, or unknown; never a made-up number."""

from __future__ import annotations

from dcsim.compression import apply_recipe, estimate_accuracy, load_accuracy_points
from dcsim.models import get_model

AWQ = {"quantization": {"weights": "int4", "activations": "fp16", "method": "awq"}}


def test_every_published_point_has_a_source_and_a_valid_recipe():
    points = load_accuracy_points()
    assert len(points) >= 15
    assert len({p.id for p in points}) == len(points)
    for point in points:
        assert point.source and ("20" in point.source)  # a paper with its year
        assert not point.recipe.empty
        assert point.family in ("decoder", "encoder")
        assert point.params_b > 0 and point.baseline > 0 and point.compressed > 0


def test_same_model_gets_its_own_published_point():
    estimate = apply_recipe(get_model("llama2-7b"), AWQ).accuracy
    assert estimate.status == "estimate"
    assert estimate.point is not None and estimate.point.id == "awq-llama2-7b-w4g128"
    assert (estimate.point.baseline, estimate.point.compressed) == (5.47, 5.60)
    summary = estimate.to_dict()
    assert summary["source"].startswith("Lin et al.") and "estimate" in summary["label"]


def test_nearest_model_size_is_used_and_named():
    estimate = estimate_accuracy(get_model("llama3-70b"), AWQ)
    assert estimate.point is not None and estimate.point.model == "Llama-2-70B"
    assert "Llama-2-70B" in estimate.note
    estimate = estimate_accuracy(get_model("llama2-13b"), {"quantization": {"weights": "int4", "method": "rtn"}})
    assert estimate.point is not None and estimate.point.id == "rtn-llama2-13b-w4g128"
    gptq = estimate_accuracy(get_model("gpt3-175b"), {"quantization": {"weights": "int4", "method": "gptq"}})
    assert gptq.point is not None and gptq.point.model == "OPT-175B"


def test_pruning_method_narrows_the_match():
    llama = get_model("llama2-7b")
    wanda = estimate_accuracy(llama, {"pruning": {"sparsity": 0.5, "pattern": "2:4", "method": "wanda"}})
    assert wanda.point is not None and wanda.point.compressed == 11.02
    sparsegpt = estimate_accuracy(llama, {"pruning": {"sparsity": 0.5, "pattern": "2:4", "method": "sparsegpt"}})
    assert sparsegpt.point is not None and sparsegpt.point.compressed == 10.17
    assert estimate_accuracy(llama, {"pruning": {"sparsity": 0.5, "method": "magnitude"}}).status == "unknown"


def test_distillation_picks_the_closest_student_ratio():
    bert = get_model("bert-base")
    half = {
        "family": "encoder",
        "layers": 6,
        "hidden": 768,
        "heads": 12,
        "ffn_hidden": 3072,
        "vocab": 30522,
        "seq_len": 512,
    }
    estimate = estimate_accuracy(bert, {"distillation": {"student": half}})
    assert estimate.point is not None and estimate.point.id.startswith("distilbert")
    tiny = {**half, "layers": 4, "hidden": 312, "ffn_hidden": 1200}
    estimate = estimate_accuracy(bert, {"distillation": {"student": tiny}})
    assert estimate.point is not None and estimate.point.id == "tinybert4-glue"


def test_unknown_when_nothing_published_matches():
    llama = get_model("llama2-7b")
    for recipe in (
        {"quantization": {"weights": "int4", "method": "awq", "kv_cache": "int8"}},
        {"quantization": {"weights": "int8", "activations": "int8", "method": "smoothquant"}},
        {"pruning": {"sparsity": 0.3, "pattern": "structured", "target": "heads"}},
        {"layer_dropping": {"layers": 4}},
        {"quantization": {"weights": "int4", "method": "awq"}, "pruning": {"sparsity": 0.5, "pattern": "2:4"}},
        {"pruning": {"sparsity": 0.6}},
    ):
        estimate = estimate_accuracy(llama, recipe)
        assert estimate.status == "unknown" and estimate.point is None
        assert estimate.to_dict() == {"status": "unknown", "note": estimate.note}
    assert estimate_accuracy(llama, {}).status == "unknown"


def test_a_point_of_another_model_family_is_never_used():
    # the only 2:4 points are Llama-2 WikiText perplexities: they say nothing of BERT's GLUE score
    bert = get_model("bert-base")
    for recipe in (
        {"pruning": {"sparsity": 0.5, "pattern": "2:4", "method": "sparsegpt"}},
        {"quantization": {"weights": "int4", "activations": "fp16", "method": "awq"}},
    ):
        estimate = estimate_accuracy(bert, recipe)
        assert estimate.status == "unknown" and "encoder model" in estimate.note
