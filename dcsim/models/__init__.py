"""Architectures as op lists with shapes (numpy-free, torch-free): the cost model prices these.

``get_model("gpt2-small").ops(batch=8, seq_len=1024)`` gives a :class:`ModelOps`; its ``param_count``,
``flops(phase)`` and ``time(predict, phase)`` all come from the same list.
"""

from dcsim.models.base import LayerOp, ModelOps
from dcsim.models.resnet import ResNetConfig
from dcsim.models.transformer import TransformerConfig
from dcsim.models.zoo import ModelConfig, get_model, load_models

__all__ = ["LayerOp", "ModelConfig", "ModelOps", "ResNetConfig", "TransformerConfig", "get_model", "load_models"]
