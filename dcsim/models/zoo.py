"""Named architectures from ``dcsim/models/data/models.yaml`` (each entry with its source)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from dcsim.models.resnet import ResNetConfig
from dcsim.models.transformer import TransformerConfig

ModelConfig = TransformerConfig | ResNetConfig
_TYPES: Mapping[str, type] = {"transformer": TransformerConfig, "resnet": ResNetConfig}


def _config(raw: Mapping[str, Any]) -> ModelConfig:
    fields = dict(raw)
    kind = fields.pop("type")
    cls = _TYPES.get(kind)
    if cls is None:
        raise ValueError(f"models.yaml: {fields.get('id')}: unknown type {kind!r}")
    fields["name"] = fields.pop("id")
    for key in ("blocks", "widths"):
        if key in fields:
            fields[key] = tuple(fields[key])
    config: ModelConfig = cls(**fields)
    return config


@functools.cache
def load_models() -> Mapping[str, ModelConfig]:
    """Every named architecture by id (read once)."""
    text = resources.files("dcsim.models").joinpath("data", "models.yaml").read_text(encoding="utf-8")
    table: dict[str, ModelConfig] = {}
    for raw in yaml.safe_load(text)["models"]:
        if raw["id"] in table:
            raise ValueError(f"models.yaml: duplicate id {raw['id']!r}")
        table[raw["id"]] = _config(raw)
    return table


def get_model(model_id: str) -> ModelConfig:
    """The architecture named ``model_id`` (KeyError listing the known ids otherwise)."""
    models = load_models()
    if model_id not in models:
        raise KeyError(f"unknown model {model_id!r} (known: {', '.join(sorted(models))})")
    return models[model_id]
