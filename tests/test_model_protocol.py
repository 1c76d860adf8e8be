"""The uniform model interface (dcsim.models.ModelConfig) and its transformer-like part, over the zoo."""

import dataclasses

import pytest

from dcsim.models import ResNetConfig, TransformerConfig, ViTConfig, load_models, transformer_like

MODELS = sorted(load_models().values(), key=lambda m: m.name)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_every_zoo_model_answers_the_uniform_interface(model):
    assert model.block_layers >= 1
    assert model.default_seq_len >= 1
    assert 1 <= model.experts_per_token <= model.experts
    assert 0 <= model.moe_layers <= model.block_layers
    assert (model.moe_layers > 0) == (model.experts > 1)
    assert model.active_param_count() <= model.param_count()
    assert model.step_ops(1).param_count == model.param_count()
    assert dataclasses.is_dataclass(model) and hash(model) == hash(dataclasses.replace(model))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_transformer_like_is_every_attention_stack(model):
    shape = transformer_like(model)
    assert (shape is None) == isinstance(model, ResNetConfig)
    if shape is not None:
        assert shape.heads % shape.kv_heads == 0
        assert shape.head_dim * shape.heads == shape.hidden
        assert shape.layers >= 1 and shape.ffn_hidden >= 1


def test_dense_defaults_of_the_non_transformer_models():
    resnet = next(m for m in MODELS if isinstance(m, ResNetConfig))
    assert (resnet.experts, resnet.experts_per_token, resnet.moe_layers) == (1, 1, 0)
    vit = next(m for m in MODELS if isinstance(m, ViTConfig))
    assert (vit.vocab, vit.activation, vit.tied_embeddings) == (0, "gelu", False)


def test_moe_layers_skip_the_leading_dense_layers():
    moe = TransformerConfig("t", 4, 64, 4, 128, 100, 32, experts=4, experts_per_token=2, first_dense_layers=1)
    assert moe.moe_layers == 3 and moe.experts == 4
