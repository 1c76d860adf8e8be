"""Real PyTorch layers and ops for each dcsim op: forward and backward callables on fixed inputs.

The forward callable runs the layer (the harness disables autograd around it). The backward callable
runs ``torch.autograd.grad`` of a retained graph with a fixed output gradient: it computes every
gradient a training step needs for that op (input and weights) and nothing else. The residual ``add``
has no backward kernel of its own; what it costs in training is the accumulation of the two gradients
where the branches meet, so its backward is timed as that add. Likewise the backward of a layout
``copy`` is the same copy applied to the gradient.

Operands a serving step streams from memory can be timed cold (``dcsim calibrate --cold``; off by default; the
shipped host-cpu profile has its GEMVs, skinny GEMMs and decode attention timed cold, the H100 profile hot): a
decode step reads every layer's weights (GEMMs of at most :data:`~dcsim.compute.ops.SKINNY_ROWS` rows) and every
sequence's KV cache (decode attention) once, from DRAM or HBM, while a benchmark that calls one layer again and
again finds them in the last-level cache. For those forward cases the callable rotates through copies of the
operands totalling :data:`COLD_BYTES`, so each call reads its own from memory. On this machine's CPU (32 MiB L3) a
hot 8 x 768 x 3072 fp32 Linear took 1.44 ms and a cold one 1.95 ms; at one row 0.35 and 0.87 ms (``torch`` 2.13,
one thread)."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcsim.compute.ops import (
    SKINNY_ROWS,
    Attention,
    Conv2d,
    Embedding,
    Matmul,
    Normalization,
    Op,
    Pointwise,
    Pool2d,
    SparseMatmul,
)

#: Bytes of operand copies a cold case rotates through: 4x this machine's 32 MiB L3, 2.7x an H100's 50 MB L2.
COLD_BYTES = 128 << 20
#: At most this many copies: operands under 32 KiB (all copies under this CPU's L3) stay partly cached
MAX_COLD_COPIES = 1024

DTYPES = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


@dataclass
class Case:
    """The callables that time one op (``backward`` None where only the forward is measured)."""

    forward: Callable[[], object]
    backward: Callable[[], object] | None


def _backward(forward: Callable[[], torch.Tensor], inputs: list[torch.Tensor]) -> Callable[[], object]:
    with torch.enable_grad():
        out = forward()
    grad = torch.randn_like(out)
    return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)


def cold_operand_bytes(op: Op) -> float:
    """Bytes of the operands one forward call of ``op`` streams from memory in a serving step (the weights
    of a GEMM of at most :data:`SKINNY_ROWS` rows, the KV cache of a decode attention), 0 for ops timed hot."""
    if isinstance(op, Matmul) and op.batch == 1 and op.m <= SKINNY_ROWS:
        return op.n * op.k * op.element_bytes
    if isinstance(op, Attention) and op.q_len == 1:
        return 2.0 * op.batch * (op.kv_heads or op.heads) * op.kv_len * op.head_dim * op.element_bytes
    return 0.0


def cold_copies(op: Op) -> int:
    """Operand copies a cold forward case rotates through (1: the op is timed hot)."""
    nbytes = cold_operand_bytes(op)
    if not nbytes:
        return 1
    return max(1, min(MAX_COLD_COPIES, math.ceil(COLD_BYTES / nbytes)))


def _rotating(calls: Sequence[Callable[[], object]]) -> Callable[[], object]:
    """A callable that runs the next of ``calls`` each time (one call: that call)."""
    if len(calls) == 1:
        return calls[0]
    cycle = itertools.cycle(calls)
    return lambda: next(cycle)()


def _randn(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, grad: bool = True) -> torch.Tensor:
    return torch.randn(shape, device=device, dtype=dtype).requires_grad_(grad)


def _matmul(op: Matmul, device: torch.device, dtype: torch.dtype, copies: int = 1) -> Case:
    if op.precision == "fp8":
        return _fp8_matmul(op, device, copies)
    if op.precision == "int8":
        return _int8_dynamic_matmul(op, device, copies)
    if op.sparse_2_4:
        return _sparse_matmul(op, device, dtype, copies)
    if op.batch == 1:
        layers = [nn.Linear(op.k, op.n, device=device, dtype=dtype) for _ in range(copies)]
        layer = layers[0]
        x = _randn((op.m, op.k), device, dtype)
        forward = _rotating([functools.partial(each, x) for each in layers])
        return Case(forward, _backward(lambda: layer(x), [x, layer.weight, layer.bias]))
    a = _randn((op.batch, op.m, op.k), device, dtype)
    b = _randn((op.batch, op.k, op.n), device, dtype)
    return Case(lambda: torch.bmm(a, b), _backward(lambda: torch.bmm(a, b), [a, b]))


def _fp8_matmul(op: Matmul, device: torch.device, copies: int = 1) -> Case:
    a = torch.randn(op.m, op.k, device=device).to(torch.float8_e4m3fn)
    # column-major operands
    weights = [torch.randn(op.n, op.k, device=device).to(torch.float8_e4m3fn).t() for _ in range(copies)]
    one = torch.ones((), device=device, dtype=torch.float32)
    scaled_mm = torch._scaled_mm
    calls = [functools.partial(scaled_mm, a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16) for b in weights]
    return Case(_rotating(calls), None)


def _int8_dynamic_matmul(op: Matmul, device: torch.device, copies: int = 1) -> Case:
    """An int8 GEMM on a CPU: ``torch.ao.quantization.quantize_dynamic`` of an fp32 ``nn.Linear`` (int8
    weights, per-tensor; activations quantized to 8 bits on the fly, output in fp32; fbgemm/onednn int8
    kernels). Forward only: quantized layers are for inference."""
    if device.type != "cpu":
        raise ValueError("dynamic int8 quantized Linear runs on CPUs only")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layers = [
            torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.Linear(op.k, op.n)), {nn.Linear}, torch.qint8)
            for _ in range(copies)
        ]
    x = torch.randn(op.m, op.k)
    return Case(_rotating([functools.partial(layer, x) for layer in layers]), None)


def _csr_matmul(op: SparseMatmul, device: torch.device, dtype: torch.dtype) -> Case:
    """An unstructured-sparse Linear: ``F.linear`` with a ``torch.sparse`` CSR weight keeping a random
    ``density`` of the (n x k) entries. Forward only."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(op.n, op.k, generator=generator)
    weight[torch.rand(op.n, op.k, generator=generator) >= op.density] = 0.0
    sparse = weight.to(device=device, dtype=dtype).to_sparse_csr()
    x = torch.randn(op.m, op.k, device=device, dtype=dtype)
    return Case(lambda: F.linear(x, sparse), None)


def _sparse_matmul(op: Matmul, device: torch.device, dtype: torch.dtype, copies: int = 1) -> Case:
    from torch.sparse import to_sparse_semi_structured

    mask = torch.tensor([1, 1, 0, 0], device=device, dtype=dtype).tile(op.n, op.k // 4)
    weights = [
        to_sparse_semi_structured(torch.randn(op.n, op.k, device=device, dtype=dtype) * mask) for _ in range(copies)
    ]
    x = torch.randn(op.m, op.k, device=device, dtype=dtype)
    return Case(_rotating([functools.partial(F.linear, x, weight) for weight in weights]), None)


def _attention(op: Attention, device: torch.device, dtype: torch.dtype, copies: int = 1) -> Case:
    kv_heads = op.kv_heads or op.heads
    q = _randn((op.batch, op.heads, op.q_len, op.head_dim), device, dtype)
    k = _randn((op.batch, kv_heads, op.kv_len, op.head_dim), device, dtype)
    v = _randn((op.batch, kv_heads, op.kv_len, op.head_dim), device, dtype)
    causal = op.causal and op.q_len > 1
    gqa = kv_heads != op.heads

    def attend(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        if gqa:
            return F.scaled_dot_product_attention(q, keys, values, is_causal=causal, enable_gqa=True)
        return F.scaled_dot_product_attention(q, keys, values, is_causal=causal)

    def forward() -> torch.Tensor:
        return attend(k, v)

    caches = [(k, v)] + [
        (_randn(k.shape, device, dtype, False), _randn(v.shape, device, dtype, False)) for _ in range(copies - 1)
    ]
    calls = [functools.partial(attend, keys, values) for keys, values in caches]
    return Case(_rotating(calls), _backward(forward, [q, k, v]))


def _conv(op: Conv2d, device: torch.device, dtype: torch.dtype) -> Case:
    layer = nn.Conv2d(
        op.in_channels, op.out_channels, op.kernel, op.stride, op.padding, groups=op.groups, bias=False
    ).to(device=device, dtype=dtype)
    x = _randn((op.batch, op.in_channels, op.height, op.width), device, dtype)
    return Case(lambda: layer(x), _backward(lambda: layer(x), [x, layer.weight]))


def _pointwise(op: Pointwise, device: torch.device, dtype: torch.dtype) -> Case:
    x = _randn((op.numel,), device, dtype)
    y = _randn((op.numel,), device, dtype)
    if op.op_kind == "add":
        gx, gy = x.detach(), y.detach()
        return Case(lambda: x + y, lambda: gx + gy)
    if op.op_kind == "mul":
        return Case(lambda: x * y, _backward(lambda: x * y, [x, y]))
    if op.op_kind == "copy":  # a layout change (heads, tokens, 32) -> (tokens, heads, 32), both phases
        shaped = x.detach().view(4, -1, 32)
        grad = y.detach().view(4, -1, 32)
        return Case(lambda: shaped.transpose(0, 1).contiguous(), lambda: grad.transpose(0, 1).contiguous())
    activations: dict[str, Callable[..., torch.Tensor]] = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}
    fn = activations[op.op_kind]
    return Case(lambda: fn(x), _backward(lambda: fn(x), [x]))


def _normalization(op: Normalization, device: torch.device, dtype: torch.dtype) -> Case:
    if op.op_kind == "softmax":
        x = _randn((op.rows, op.cols), device, dtype)
        return Case(lambda: torch.softmax(x, -1), _backward(lambda: torch.softmax(x, -1), [x]))
    if op.op_kind == "batchnorm":  # channel-major like an NCHW activation, training mode
        bn = nn.BatchNorm2d(op.cols).to(device=device, dtype=dtype).train()
        x = _randn((1, op.cols, op.rows, 1), device, dtype)
        return Case(lambda: bn(x), _backward(lambda: bn(x), [x, bn.weight, bn.bias]))
    norm: nn.Module = nn.LayerNorm(op.cols) if op.op_kind == "layernorm" else nn.RMSNorm(op.cols)
    norm = norm.to(device=device, dtype=dtype)
    x = _randn((op.rows, op.cols), device, dtype)
    return Case(lambda: norm(x), _backward(lambda: norm(x), [x, *norm.parameters()]))


def _embedding(op: Embedding, device: torch.device, dtype: torch.dtype) -> Case:
    table = nn.Embedding(op.vocab, op.hidden).to(device=device, dtype=dtype)
    index = torch.randint(0, op.vocab, (op.tokens,), device=device)
    return Case(lambda: table(index), _backward(lambda: table(index), [table.weight]))


def _pool(op: Pool2d, device: torch.device, dtype: torch.dtype) -> Case:
    x = _randn((op.batch, op.channels, op.height, op.width), device, dtype)
    if op.op_kind == "maxpool":

        def forward() -> torch.Tensor:
            return F.max_pool2d(x, op.kernel, op.stride, op.padding)
    else:

        def forward() -> torch.Tensor:
            return F.avg_pool2d(x, op.kernel, op.stride, op.padding)

    return Case(forward, _backward(forward, [x]))


def build_case(op: Op, device: torch.device, cold: bool = False) -> Case:
    """Tensors and callables that run ``op`` (its forward-phase shape) on ``device``; with ``cold``, the
    forward of an op that streams its operands in a serving step rotates through :func:`cold_copies`."""
    dtype = DTYPES.get(op.precision, torch.float32)
    if isinstance(op, Matmul):
        return _matmul(op, device, dtype, cold_copies(op) if cold else 1)
    if isinstance(op, Attention):
        return _attention(op, device, dtype, cold_copies(op) if cold else 1)
    builders: dict[type, Callable[..., Case]] = {
        Conv2d: _conv,
        Pointwise: _pointwise,
        Normalization: _normalization,
        Embedding: _embedding,
        Pool2d: _pool,
        SparseMatmul: _csr_matmul,
    }
    return builders[type(op)](op, device, dtype)
