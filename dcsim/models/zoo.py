"""Named architectures from ``dcsim/models/data/models.yaml`` (each entry with its source), and inline
architectures from a scenario (:func:`model_from_spec`).

Every config class here implements one interface, :class:`~dcsim.models.base.ModelConfig` (what the
training and serving layers call): ``param_count(tp=1, ep=1)``, ``active_param_count()``,
``step_ops(batch, seq_len=None, tp=1, precision="fp32", ep=1) -> ModelOps``, ``default_seq_len``,
``tokens_per_sample(seq_len)``, ``block_layers``, ``experts``, ``experts_per_token`` and ``moe_layers``;
the transformer-like ones (all but ResNet) are :class:`~dcsim.models.base.TransformerLike` too (``layers``,
``hidden``, ``heads``, ``kv_heads``, ``ffn_hidden``, ``vocab``, ...): :func:`transformer_like` narrows to it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from dcsim.models.base import ModelConfig, TransformerLike
from dcsim.models.encdec import EncoderDecoderConfig
from dcsim.models.resnet import ResNetConfig
from dcsim.models.transformer import TransformerConfig
from dcsim.models.vit import ViTConfig

#: The config classes that are stacks of attention layers (:class:`TransformerLike`): all but ResNet.
_TRANSFORMER_LIKE = (TransformerConfig, ViTConfig, EncoderDecoderConfig)
_TYPES: Mapping[str, type[ModelConfig]] = {
    "transformer": TransformerConfig,
    "resnet": ResNetConfig,
    "vit": ViTConfig,
    "encoder-decoder": EncoderDecoderConfig,
}
#: Inline ``family`` -> config class (``decoder`` and ``encoder`` are TransformerConfig families).
_FAMILIES: Mapping[str, type[ModelConfig]] = {
    "decoder": TransformerConfig,
    "encoder": TransformerConfig,
    "encoder-decoder": EncoderDecoderConfig,
    "vit": ViTConfig,
    "resnet": ResNetConfig,
}
_TUPLE_FIELDS = ("blocks", "widths")


def transformer_like(model: ModelConfig) -> TransformerLike | None:
    """``model`` as a stack of attention layers (``layers``, ``hidden``, ``heads``, ...), or None for a
    convolutional model."""
    return model if isinstance(model, _TRANSFORMER_LIKE) else None


def _config(raw: Mapping[str, Any]) -> ModelConfig:
    fields = dict(raw)
    kind = fields.pop("type")
    cls = _TYPES.get(kind)
    if cls is None:
        raise ValueError(f"models.yaml: {fields.get('id')}: unknown type {kind!r}")
    fields["name"] = fields.pop("id")
    for key in _TUPLE_FIELDS:
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
    """The architecture named ``model_id`` (KeyError naming close matches and the known ids otherwise)."""
    models = load_models()
    if model_id not in models:
        close = difflib.get_close_matches(str(model_id), list(models), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown model {model_id!r}{hint} (known: {', '.join(sorted(models))})")
    return models[model_id]


def model_from_spec(spec: str | Mapping[str, Any]) -> ModelConfig:
    """A zoo id, or an inline architecture as a mapping.

    The mapping's ``family`` (``decoder``, ``encoder``, ``encoder-decoder``, ``vit``, ``resnet``) picks the
    config class; the other keys are its fields (``name`` defaults to ``inline-<family>``), with the
    scenario shorthand ``seq_len`` for ``max_seq_len``. Example::

        {family: decoder, layers: 96, hidden: 12288, heads: 96, ffn_hidden: 49152, vocab: 51200, seq_len: 2048}

    Raises KeyError for an unknown id and ValueError, naming the field, for a bad mapping."""
    if isinstance(spec, str):
        return get_model(spec)
    if not isinstance(spec, Mapping):
        raise ValueError(f"model must be a zoo id or a mapping, not {type(spec).__name__}")
    fields = dict(spec)
    family = fields.pop("family", None)
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {', '.join(_FAMILIES)}, not {family!r}")
    cls = _FAMILIES[family]
    if cls is TransformerConfig:
        fields["family"] = family
    if "seq_len" in fields:
        if "max_seq_len" in fields:
            raise ValueError("seq_len: give seq_len or max_seq_len, not both")
        fields["max_seq_len"] = fields.pop("seq_len")
    fields.setdefault("name", f"inline-{family}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in fields.items():
        if key not in known:
            options = sorted(set(known) - {"name", "source"} | ({"seq_len"} if "max_seq_len" in known else set()))
            close = difflib.get_close_matches(str(key), options, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(options)})"
            raise ValueError(f"{key}: unknown field for family {family}{hint}")
        _check_type(key, value, known[key])
    missing = [
        name
        for name, f in known.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in fields
    ]
    if missing:
        shown = ["seq_len" if name == "max_seq_len" else name for name in missing]
        raise ValueError(f"{shown[0]}: required for family {family} (missing: {', '.join(shown)})")
    for key in _TUPLE_FIELDS:
        if key in fields:
            fields[key] = tuple(fields[key])
    config: ModelConfig = cls(**fields)
    return config


def _check_type(key: str, value: Any, field: dataclasses.Field[Any]) -> None:
    """ValueError naming ``key`` when ``value`` does not fit the field's declared type."""
    kind = str(field.type)
    if kind.startswith("int") and (not isinstance(value, int) or isinstance(value, bool)):
        if not (kind == "int | None" and value is None):
            raise ValueError(f"{key} must be an integer, not {value!r}")
    elif kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    elif kind == "str" and not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {value!r}")
    elif kind == "bool | None" and value is not None and not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    elif kind.startswith("tuple") and (
        not isinstance(value, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{key} must be a list of integers, not {value!r}")
