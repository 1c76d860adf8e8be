"""Architectures as op lists with shapes (numpy-free, torch-free): the cost model prices these.

``get_model("gpt2-small").ops(batch=8, seq_len=1024)`` gives a :class:`ModelOps`; its ``param_count``,
``flops(phase)`` and ``time(predict, phase)`` all come from the same list. Every config also has the
uniform ``step_ops(batch, seq_len=None, tp=1, precision="fp32", ep=1)`` (see :mod:`dcsim.models.zoo`);
``model_from_spec`` takes a zoo id or an inline architecture.
"""

from dcsim.models.base import PARTS, LayerOp, ModelConfig, ModelOps, TransformerLike
from dcsim.models.encdec import EncoderDecoderConfig
from dcsim.models.resnet import ResNetConfig
from dcsim.models.transformer import TransformerConfig
from dcsim.models.vit import ViTConfig
from dcsim.models.zoo import get_model, load_models, model_from_spec, transformer_like

__all__ = [
    "PARTS",
    "EncoderDecoderConfig",
    "LayerOp",
    "ModelConfig",
    "ModelOps",
    "ResNetConfig",
    "TransformerConfig",
    "TransformerLike",
    "ViTConfig",
    "get_model",
    "load_models",
    "model_from_spec",
    "transformer_like",
]
