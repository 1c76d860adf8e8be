"""The models of the end-to-end check and the op list dcsim prices for each of its phases (numpy-free,
torch-free: the report uses it).

A case is a model, a batch of sequences of ``size`` tokens (or images of ``size`` pixels) and a phase:

- ``fwd``: one forward pass with logits at every position (:meth:`ModelOps.ops` ``"fwd"``);
- ``fwd+bwd``: a training step (forward, cross-entropy loss over every position, backward), the op list
  training prices (:meth:`ModelOps.time` with ``"fwd+bwd"``, as :mod:`dcsim.parallel.stages` does);
- ``prefill``: a serving engine's prompt pass, the op list serving prices
  (:func:`dcsim.models.inference.prefill_ops`: dense layers over every prompt token, a KV-cache write,
  causal attention per prompt, the output head at the last position of each prompt).

Besides zoo ids (GPT-2 small, BERT-base, ResNet-50), the check runs Llama-style decoders described inline
(:data:`LLAMA_SPECS`: RMSNorm, SwiGLU, grouped-query attention, rotary positions, no biases) at hidden 512 to
1024. Their op shapes are none of the calibration grid's (:mod:`dcsim.calibrate.grid`): token counts that are
not powers of two, a 32000-token vocabulary and grouped-query attention, which the grid has none of; so no fit
used them (``tests/test_calibration_e2e_llama.py`` checks this against the shipped profile).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcsim.compute.ops import Op
from dcsim.models import ModelConfig, ResNetConfig, TransformerConfig, get_model, model_from_spec
from dcsim.models.inference import prefill_ops

#: Phases an end-to-end case can measure (see the module docstring).
E2E_PHASES = ("fwd", "fwd+bwd", "prefill")

_LLAMA: Mapping[str, Any] = {
    "family": "decoder",
    "norm": "rmsnorm",
    "activation": "swiglu",
    "positional": "rope",
    "bias": False,
    "vocab": 32000,
    "max_seq_len": 2048,
}

#: Llama-style decoders of the end-to-end check, as inline architectures (``model_from_spec``). Widths as
#: in Llama (MLP about 8/3 x hidden rounded up to a multiple of 128 or 256, head width 64, Llama 2's
#: 32000-token vocabulary); depths kept small so that a training step takes about a second on one CPU
#: thread. Sources: the Llama 2 paper (Touvron et al. 2023) and its ``config.json`` files for the layout,
#: TinyLlama-1.1B (hidden 2048, 32 heads, 4 KV heads, MLP 5632) for the GQA ratio and MLP rounding.
LLAMA_SPECS: Mapping[str, Mapping[str, Any]] = {
    "llama-h512-l8": {**_LLAMA, "layers": 8, "hidden": 512, "heads": 8, "kv_heads": 2, "ffn_hidden": 1408},
    "llama-h768-l6": {
        **_LLAMA,
        "layers": 6,
        "hidden": 768,
        "heads": 12,
        "kv_heads": 4,
        "ffn_hidden": 2048,
        "tied_embeddings": True,
    },
    "llama-h1024-l4": {**_LLAMA, "layers": 4, "hidden": 1024, "heads": 16, "kv_heads": 4, "ffn_hidden": 2816},
}

#: End-to-end cases on CPUs: (model, tokens per sequence or image side, batches, phases).
E2E_CPU: tuple[tuple[str, int, tuple[int, ...], tuple[str, ...]], ...] = (
    ("gpt2-small", 128, (1, 2), ("fwd", "fwd+bwd")),
    ("bert-base", 128, (1, 2), ("fwd", "fwd+bwd")),
    ("resnet50", 224, (1, 2), ("fwd", "fwd+bwd")),
    ("llama-h512-l8", 192, (1, 2), ("prefill", "fwd+bwd")),
    ("llama-h768-l6", 160, (1, 2), ("prefill", "fwd+bwd")),
    ("llama-h1024-l4", 96, (1, 2), ("prefill", "fwd+bwd")),
)
#: End-to-end cases on CUDA devices.
E2E_CUDA: tuple[tuple[str, int, tuple[int, ...], tuple[str, ...]], ...] = (
    ("gpt2-small", 1024, (4, 16), ("fwd", "fwd+bwd")),
    ("bert-base", 512, (8, 32), ("fwd", "fwd+bwd")),
    ("resnet50", 224, (32, 128), ("fwd", "fwd+bwd")),
)


def e2e_model(model_id: str) -> ModelConfig:
    """The architecture of an end-to-end case: one of :data:`LLAMA_SPECS` (named by its key) or a zoo id."""
    if model_id in LLAMA_SPECS:
        return model_from_spec({**LLAMA_SPECS[model_id], "name": model_id})
    return get_model(model_id)


def e2e_ops(model_id: str, batch: int, size: int, phase: str, precision: str) -> list[tuple[Op, int]]:
    """(op, count) pairs dcsim prices for one end-to-end case (see the module docstring)."""
    if phase not in E2E_PHASES:
        raise ValueError(f"phase must be one of {', '.join(E2E_PHASES)}, not {phase!r}")
    cfg = e2e_model(model_id)
    if phase == "prefill":
        if not isinstance(cfg, TransformerConfig) or cfg.family != "decoder":
            raise ValueError(f"{model_id}: a prefill case needs a decoder")
        return prefill_ops(cfg, [size] * batch, precision=precision)
    if isinstance(cfg, ResNetConfig):
        return cfg.ops(batch, size, precision).ops(phase)
    if not isinstance(cfg, TransformerConfig):
        raise ValueError(f"{model_id}: end-to-end cases are decoder/encoder transformers and ResNets")
    return cfg.ops(batch, size, precision=precision).ops(phase)
