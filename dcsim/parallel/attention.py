"""Which attention implementation a training run uses, and where FlashAttention is available.

``flash`` is a fused, tiled attention kernel (Dao et al. 2022, "FlashAttention: Fast and Memory-Efficient
Exact Attention with IO-Awareness"; FlashAttention-2, Dao 2023; cuDNN/Transformer Engine fused attention):
it never materialises the ``s x s`` score matrix per head. The backward pass recomputes the scores from Q,
K, V, the output and the per-row softmax statistics (log-sum-exp, fp32), and attention dropout is
regenerated from the random seed rather than stored as a mask. Its activations are therefore linear in the
sequence length (:func:`dcsim.parallel.memory.transformer_layer_activation_bytes`).

``eager`` is the unfused ``softmax(QK^T / sqrt(d)) V`` of a framework's plain modules: the softmax output,
the dropout mask and the dropout output are kept for the backward pass (Korthikanti et al. 2022's
``5as/h`` term).

Compute is priced with the fused kernel's calibrated time either way (the cost model's ``Attention`` op);
``eager`` changes memory only.

Where FlashAttention runs: FlashAttention-2 supports NVIDIA GPUs of the Ampere generation or later
(sm80+; the flash-attention README, "Installation and features"). The catalog has no architecture field; it
tells the generation by the datasheet's tensor-core precisions: bf16 tensor throughput arrived with Ampere,
so a ``kind: gpu`` entry whose ``peak_tflops`` lists ``bf16`` is Ampere or later (A100, H100, H200, L4), and
one without it is older (V100: Volta, T4: Turing). TPUs and CPUs default to ``eager``.
"""

from __future__ import annotations

from dcsim.catalog import Accelerator, load_catalog

#: Attention implementations a training workload can name.
ATTENTION = ("flash", "eager")


def supports_flash_attention(accelerator: Accelerator) -> bool:
    """True for a GPU of the Ampere generation or later: its datasheet lists bf16 tensor throughput (see the
    module docstring)."""
    return accelerator.kind == "gpu" and "bf16" in accelerator.peak_tflops


def default_attention(accelerator_id: str) -> str:
    """``flash`` where the catalog's ``accelerator_id`` supports it, else ``eager``."""
    return "flash" if supports_flash_attention(load_catalog().accelerator(accelerator_id)) else "eager"


def check_attention(attention: str) -> None:
    """Raise ValueError unless ``attention`` is one of :data:`ATTENTION`."""
    if attention not in ATTENTION:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION)} (got {attention!r})")
