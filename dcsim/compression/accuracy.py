"""Accuracy ESTIMATES of compressed models from published results (``data/accuracy.yaml``).

:func:`estimate_accuracy` finds the published points whose recipe uses the same techniques with the same
settings (quantization: weights, weight-only or not, method, KV-cache precision; pruning: pattern, sparsity,
target, and the method where the recipe names one; a method by its registered name, :func:`accuracy_key`;
distillation; layer dropping) on a model of the same family (decoder or encoder: a decoder's perplexity says
nothing of an encoder's GLUE score) and returns the nearest one: the closest parameter count (log scale)
and, for distillation, the closest student/teacher size ratio. The point is returned as published, with its
model and source: dcsim never interpolates or invents a number. No matching point gives status ``unknown``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from dcsim.compression.method import method_class
from dcsim.compression.recipe import Recipe, parse_recipe
from dcsim.models import ModelConfig, TransformerConfig, model_from_spec


@dataclass(frozen=True)
class AccuracyPoint:
    """One published result: ``compressed`` against ``baseline`` on ``task`` in ``metric``."""

    id: str
    task: str
    metric: str
    higher_is_better: bool
    baseline: float
    compressed: float
    model: str
    family: str
    params_b: float
    recipe: Recipe
    source: str

    @property
    def change(self) -> float:
        """``compressed - baseline`` in the metric's units."""
        return self.compressed - self.baseline

    @property
    def relative_change(self) -> float:
        """``compressed / baseline - 1``."""
        return self.compressed / self.baseline - 1.0


@dataclass(frozen=True)
class AccuracyEstimate:
    """``status`` ``estimate`` (the nearest published point, ``point``) or ``unknown`` (``point`` None);
    ``note`` says why (which point, how near, or what has no published data)."""

    status: str
    point: AccuracyPoint | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what a runner puts in ``summary.json``)."""
        if self.point is None:
            return {"status": self.status, "note": self.note}
        p = self.point
        return {
            "status": self.status,
            "label": "estimate: nearest published result, not a prediction",
            "task": p.task,
            "metric": p.metric,
            "baseline": p.baseline,
            "compressed": p.compressed,
            "published_model": p.model,
            "point": p.id,
            "source": p.source,
            "note": self.note,
        }


@functools.cache
def load_accuracy_points() -> tuple[AccuracyPoint, ...]:
    """Every published point of ``data/accuracy.yaml`` (read once; each recipe validated)."""
    text = resources.files("dcsim.compression").joinpath("data", "accuracy.yaml").read_text(encoding="utf-8")
    out = []
    for raw in yaml.safe_load(text)["points"]:
        fields = dict(raw)
        for key in ("baseline", "compressed", "params_b"):
            fields[key] = float(fields[key])
        if not fields.get("source"):
            raise ValueError(f"accuracy.yaml: {fields.get('id')}: every point needs a source")
        fields["recipe"] = parse_recipe(fields["recipe"])
        out.append(AccuracyPoint(**fields))
    return tuple(out)


def accuracy_key(section: str, method: str | None) -> str | None:
    """The name a method's published rows carry: its registered name (also where the recipe names a registered
    class as ``module:Class``), else the reference as written."""
    if method is None:
        return None
    return method_class(section, method).name or method


def _signature(recipe: Recipe) -> tuple[Any, ...]:
    """What must match exactly: the techniques and their settings (not the pruning method or student)."""
    q, p = recipe.quantization, recipe.pruning
    return (
        (q.weights, q.weight_only, accuracy_key("quantization", q.method), q.kv_cache) if q else None,
        (p.pattern, round(p.sparsity, 2), p.target) if p else None,
        recipe.distillation is not None,
        recipe.layer_dropping.layers if recipe.layer_dropping else None,
    )


def _params(spec: str | Mapping[str, Any]) -> float:
    return float(model_from_spec(spec).param_count())


def _family(config: ModelConfig) -> str:
    """A transformer's family (``decoder``, ``encoder``), else the config class's name."""
    return config.family if isinstance(config, TransformerConfig) else type(config).__name__


def estimate_accuracy(model_config: ModelConfig, recipe: Recipe | Mapping[str, Any]) -> AccuracyEstimate:
    """The nearest published point for compressing ``model_config`` (the uncompressed model) with
    ``recipe``, or ``unknown``."""
    recipe = parse_recipe(recipe)
    if recipe.empty:
        return AccuracyEstimate("unknown", None, "no compression: the model's own accuracy applies")
    wanted = _signature(recipe)
    method = accuracy_key("pruning", recipe.pruning.method) if recipe.pruning else None
    family = _family(model_config)
    candidates = [
        point
        for point in load_accuracy_points()
        if _signature(point.recipe) == wanted
        and point.family == family
        and (method is None or (point.recipe.pruning is not None and point.recipe.pruning.method == method))
    ]
    if not candidates:
        return AccuracyEstimate(
            "unknown", None, f"no published result with these techniques and settings on a {family} model"
        )
    params = float(model_config.param_count()) / 1e9
    ratio = None
    if recipe.distillation is not None:
        ratio = _params(recipe.distillation.student) / 1e9 / params

    def distance(point: AccuracyPoint) -> float:
        d = abs(math.log(params / point.params_b))
        if ratio is not None and point.recipe.distillation is not None:
            published = _params(point.recipe.distillation.student) / 1e9 / point.params_b
            d += abs(math.log(ratio / published))
        return d

    best = min(candidates, key=lambda point: (distance(point), point.id))
    note = (
        f"nearest published point {best.id} ({best.model}, {best.task} {best.metric}); "
        f"log-size distance {distance(best):.2f}"
    )
    return AccuracyEstimate("estimate", best, note)
