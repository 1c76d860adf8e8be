"""Model FLOPs conventions for training: what "FLOPs" means when throughput and MFU are reported.

- ``6 * N * tokens`` (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", Section 2.1: the
  forward pass costs ``2N`` per token plus ``2 * n_layer * n_ctx * d_attn`` for attention, the backward
  twice the forward, so ``C ~ 6 * N`` per token when ``d_model >> n_ctx / 12``).
- Megatron-LM's FLOPs per iteration (Narayanan et al. 2021, "Efficient Large-Scale Language Model Training
  on GPU Clusters Using Megatron-LM", Eq. 3), for ``B`` sequences of ``s`` tokens, ``l`` layers, hidden
  ``h``, vocabulary ``V``, counting the matmuls of attention, MLP and output layer, with full activation
  recompute (one extra forward pass of every layer)::

      F = 96 * B * s * l * h^2 * (1 + s/(6h) + V/(16*l*h))

  Without recompute the layers' forward is not repeated: ``72 * B * s * l * h^2 * (1 + s/(6h) + V/(12*l*h))``
  (the same terms with the factor 4 of forward + backward + recompute replaced by 3; the output layer is
  never recomputed, so its ``6*B*s*h*V`` is the same in both).
- The contract's ``tflops_per_accelerator`` convention (:func:`model_flops_per_token`): ``6 * N`` plus the
  attention term ``12 * l * h * s`` per token (Chowdhery et al. 2022, "PaLM", Appendix B: the model FLOPs
  utilization definition; the same attention count as Eq. 3), without recompute: work the model needs, not
  work the implementation chooses to repeat. ``N`` is every parameter (for MoE models the parameters active
  per token). Attention is counted over all ``s x s`` query-key pairs even for causal models, as in both
  sources (Kaplan et al. count half of it).
"""

from __future__ import annotations

from dcsim.models import ModelConfig, TransformerConfig, TransformerLike, transformer_like


def training_flops(params: float, tokens: float) -> float:
    """``6 * N * D``: training FLOPs of ``params`` parameters over ``tokens`` tokens (Kaplan et al. 2020)."""
    _check_positive("params", params)
    _check_positive("tokens", tokens)
    return 6.0 * params * tokens


def megatron_flops_per_iteration(
    batch: int, seq_len: int, layers: int, hidden: int, vocab: int, recompute: bool = True
) -> float:
    """FLOPs of one training iteration of a GPT model (Narayanan et al. 2021, Eq. 3, which assumes full
    activation ``recompute``; ``recompute=False`` drops the repeated forward pass of the layers)."""
    for name, value in (("batch", batch), ("seq_len", seq_len), ("layers", layers), ("hidden", hidden)):
        _check_positive(name, value)
    _check_positive("vocab", vocab)
    b, s, n, h, v = float(batch), float(seq_len), float(layers), float(hidden), float(vocab)
    if recompute:
        return 96.0 * b * s * n * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * n * h))
    return 72.0 * b * s * n * h * h * (1.0 + s / (6.0 * h) + v / (12.0 * n * h))


def megatron_model_flops(model: ModelConfig, batch: int, seq_len: int, recompute: bool = True) -> float:
    """:func:`megatron_flops_per_iteration` for a transformer config (``layers``, ``hidden``, ``vocab``)."""
    shape = _require_transformer(model)
    return megatron_flops_per_iteration(batch, seq_len, shape.layers, shape.hidden, shape.vocab, recompute=recompute)


def attention_flops_per_token(layers: int, hidden: int, seq_len: int) -> float:
    """``12 * l * h * s``: training FLOPs per token of the attention scores and their product with V
    (``QK^T`` and ``AV``, ``2 * 2 * s * h`` per layer forward, times 3 for forward and backward;
    Chowdhery et al. 2022, Appendix B; Narayanan et al. 2021, Eq. 3)."""
    for name, value in (("layers", layers), ("hidden", hidden), ("seq_len", seq_len)):
        _check_positive(name, value)
    return 12.0 * layers * hidden * seq_len


def active_params(model: ModelConfig) -> float:
    """Parameters used per token: ``active_param_count()`` (all of them but a MoE's unpicked experts)."""
    return float(model.active_param_count())


def model_flops_per_token(model: ModelConfig, seq_len: int) -> float:
    """Model FLOPs per trained token, the contract's convention: ``6 * N_active + 12 * l * h * s`` (for
    language-model transformers: decoder or encoder stacks with a vocabulary). With multi-head latent
    attention ``h`` is the mean width of the two attention products, ``heads * (qk_head_dim + v_head_dim) / 2``."""
    config = _require_token_transformer(model)
    _check_positive("seq_len", seq_len)
    width = config.heads * (config.hidden // config.heads)  # query width, = hidden
    if config.attention_kind == "mla":  # QK^T over qk_nope + qk_rope wide heads, AV over v
        qk = config.qk_nope_head_dim + config.qk_rope_head_dim
        width = config.heads * (qk + config.v_head_dim) // 2
    return 6.0 * active_params(config) + attention_flops_per_token(config.block_layers, width, seq_len)


def model_flops_per_sample(model: ModelConfig, seq_len: int | None = None) -> float:
    """Model FLOPs per trained sample, without recompute. Language-model transformers: a sequence of
    ``seq_len`` tokens (default: the model's ``default_seq_len``), :func:`model_flops_per_token` times
    ``seq_len``. Other models (ResNet, ViT, encoder-decoder: weights reused at every pixel or patch, or two
    sequence lengths, so 6*N per token does not apply): the forward plus backward FLOPs of one sample's
    op list (``seq_len`` as the model reads it: the image side for vision models)."""
    if seq_len is None:
        seq_len = model.default_seq_len
    _check_positive("seq_len", seq_len)
    if isinstance(model, TransformerConfig):  # a language-model stack: decoder or encoder with a vocabulary
        return model_flops_per_token(model, seq_len) * seq_len
    return float(model.step_ops(1, seq_len).flops("fwd+bwd"))


def _require_transformer(model: ModelConfig) -> TransformerLike:
    shape = transformer_like(model)
    if shape is None:
        raise ValueError(f"model {model.name!r} is not a transformer (needs layers, hidden, heads, vocab)")
    return shape


def _require_token_transformer(model: ModelConfig) -> TransformerConfig:
    if not isinstance(model, TransformerConfig):
        raise ValueError(
            f"model {model.name!r} is not a language-model transformer (decoder or encoder stack with a vocabulary): "
            "use model_flops_per_sample"
        )
    return model


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive (got {value!r})")
