"""What the harness measures: op shapes per backend and precision, from tiny to large (numpy only).

Shapes are drawn reproducibly (a fixed seed per op type) from log-spaced candidate sizes and the sizes
transformer and ResNet-50 layers use, then capped by a FLOP budget per call so a run stays within its
time. Each entry says whether the backward pass is measured too.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dcsim.compute.ops import (
    NORMALIZATION,
    Attention,
    Conv2d,
    Embedding,
    Matmul,
    Normalization,
    Op,
    Pointwise,
    Pool2d,
)
from dcsim.models import ResNetConfig

DIMS = (64, 128, 256, 512, 768, 1024, 2048, 2304, 3072, 4096, 8192)
VOCABS = (30522, 50257)


@dataclass(frozen=True)
class GridSpec:
    """Sizes of one run: how many shapes per op type (``scale``), the largest forward FLOPs per call,
    the largest token count and the largest sequence length."""

    scale: float
    max_flops: float
    max_tokens: int
    max_seq: int
    max_numel: int


def grid_spec(backend: str, precision: str, quick: bool) -> GridSpec:
    """The sizes for a backend (``cpu``/``cuda``) and precision; ``quick`` is a smaller, faster grid."""
    if backend == "cuda":
        return GridSpec(0.6 if quick else 1.0, 4e12, 65536, 8192, 1 << 28)
    if precision == "fp32":
        return GridSpec(0.5 if quick else 1.0, 1.5e9 if quick else 1.2e10, 4096, 2048, 1 << 24)
    # bf16/fp16 matmul-like ops on CPUs without native 16-bit units run ~50x slower than fp32
    return GridSpec(0.35 if quick else 0.7, 2.5e7 if quick else 2e8, 2048, 1024, 1 << 23)


def _rng(name: str, precision: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{name}/{precision}".encode()))


def _count(base: int, spec: GridSpec) -> int:
    return max(3, round(base * spec.scale))


def _sample(
    make: Callable[[np.random.Generator], Op | None], rng: np.random.Generator, count: int, spec: GridSpec
) -> list[Op]:
    """Up to ``count`` distinct ops from ``make`` within the FLOP cap (gives up after many tries)."""
    out: dict[Op, None] = {}
    for _ in range(count * 30):
        if len(out) >= count:
            break
        op = make(rng)
        if op is not None and op.flops <= spec.max_flops:
            out[op] = None
    return sorted(out, key=lambda o: (o.flops, o.bytes))


def _pick(rng: np.random.Generator, values: Sequence[int]) -> int:
    return int(values[int(rng.integers(len(values)))])


def _pow2(rng: np.random.Generator, low: int, high: int) -> int:
    return int(2 ** int(rng.integers(low, high + 1)))


def linear_ops(precision: str, spec: GridSpec) -> list[Op]:
    """nn.Linear shapes: tokens m from 1 up, in/out widths from transformer layers and vocabularies."""
    top = int(np.log2(spec.max_tokens))

    def make(rng: np.random.Generator) -> Op | None:
        m = _pow2(rng, 0, top)
        k = _pick(rng, DIMS)
        n = _pick(rng, DIMS + VOCABS)
        return Matmul(m, n, k, precision=precision)

    sampled = _sample(make, _rng("linear", precision), _count(48, spec), spec)

    # one-row products (GEMV: batch-1 decode) run a kernel of their own whose speed depends on the row
    # length k: enough of them for a fit of their own
    def make_gemv(rng: np.random.Generator) -> Op | None:
        return Matmul(1, _pick(rng, DIMS + VOCABS), _pick(rng, DIMS), precision=precision)

    sampled += [op for op in _sample(make_gemv, _rng("gemv", precision), _count(16, spec), spec) if op not in sampled]
    # and the layer shapes transformers are made of (QKV, MLP, output head over the vocabulary),
    # at token counts other than the end-to-end check's, so that check stays an interpolation
    layers = [(768, 2304), (768, 3072), (3072, 768), (1024, 4096), (4096, 1024), (768, 30522), (768, 50257)]
    fixed = [Matmul(m, n, k, precision=precision) for m in (32, 512) for k, n in layers]
    # and as GEMVs (batch-1 decode), whose speed depends on the row length k
    fixed += [Matmul(1, n, k, precision=precision) for k, n in layers]
    # output heads are the only GEMMs whose width is not a multiple of 8 (unaligned rows run slower
    # on CPUs): more token counts of them, so the fit sees the penalty where it matters
    fixed += [Matmul(m, n, k, precision=precision) for m in (8, 64, 96, 144) for k, n in layers[-2:]]
    fixed = [op for op in fixed if op.flops <= spec.max_flops and op not in sampled]
    return sorted([*sampled, *fixed], key=lambda o: (o.flops, o.bytes))


def bmm_ops(precision: str, spec: GridSpec) -> list[Op]:
    """Batched matmuls as in attention written by hand: batch x (m x k) @ (k x n)."""

    def make(rng: np.random.Generator) -> Op | None:
        batch = _pick(rng, (2, 4, 8, 12, 24, 48, 96))
        m = _pow2(rng, 4, int(np.log2(spec.max_seq)))
        n = _pow2(rng, 4, int(np.log2(spec.max_seq)))
        k = _pick(rng, (32, 64, 128))
        if batch * m * max(n, k) > spec.max_numel:
            return None
        return Matmul(m, n, k, batch=batch, precision=precision)

    return _sample(make, _rng("bmm", precision), _count(16, spec), spec)


def attention_ops(precision: str, spec: GridSpec) -> list[Op]:
    """SDPA prefill shapes (causal, q_len == kv_len) and decode shapes (one query, KV cache of L)."""
    top = int(np.log2(spec.max_seq))

    def prefill(rng: np.random.Generator) -> Op | None:
        seq = _pow2(rng, 5, top)
        batch, heads, dim = _pick(rng, (1, 2, 4, 8)), _pick(rng, (4, 8, 12, 16)), _pick(rng, (64, 128))
        if batch * heads * seq * dim > spec.max_numel:
            return None
        return Attention(batch, heads, seq, seq, dim, True, None, precision)

    def decode(rng: np.random.Generator) -> Op | None:
        length = _pow2(rng, 7, top + 3)
        batch, heads, dim = _pick(rng, (1, 4, 16, 64)), _pick(rng, (8, 12, 32)), _pick(rng, (64, 128))
        if batch * heads * length * dim > spec.max_numel:
            return None
        return Attention(batch, heads, 1, length, dim, False, None, precision)

    return _sample(prefill, _rng("prefill", precision), _count(22, spec), spec) + _sample(
        decode, _rng("decode", precision), _count(18, spec), spec
    )


def resnet_convs(batch: int, image: int, precision: str) -> list[Conv2d]:
    """The distinct convolutions of ResNet-50 at this batch and image size."""
    model = ResNetConfig("resnet50").ops(batch, image, precision)
    seen: dict[Conv2d, None] = {}
    for layer in model.layers:
        if isinstance(layer.op, Conv2d):
            seen[layer.op] = None
    return list(seen)


def conv_ops(precision: str, spec: GridSpec) -> list[Op]:
    """Conv2d in ResNet-50 shapes at a few batch and image sizes."""
    settings = [(1, 224), (1, 112)] if spec.scale >= 1 else [(1, 224)]
    if spec.max_flops > 1e11:
        settings = [(8, 224), (32, 224), (1, 224)]
    ops: dict[Op, None] = {}
    for batch, image in settings:
        convs = resnet_convs(batch, image, precision)
        step = 1 if spec.scale >= 0.6 else 2
        for conv in convs[::step]:
            if conv.flops <= spec.max_flops:
                ops[conv] = None
    return list(ops)


def norm_ops(kind: str, precision: str, spec: GridSpec) -> list[Op]:
    """LayerNorm / RMSNorm / softmax over (rows x cols); BatchNorm over ResNet-50 activations."""
    if kind == "batchnorm":
        shapes = [(112, 64), (56, 64), (56, 256), (28, 128), (28, 512), (14, 256), (14, 1024), (7, 2048)]
        batches = (1, 2, 8, 32) if spec.max_flops > 1e11 else (1, 2, 4)
        ops: list[Op] = [
            Normalization("batchnorm", b * side * side, c, precision) for b in batches for side, c in shapes
        ]
        return [op for op in ops if op.bytes / 4 <= spec.max_numel]
    cols_choices = (256, 768, 1024, 3072, 4096) + (VOCABS if kind == "softmax" else (8192,))

    def make(rng: np.random.Generator) -> Op | None:
        rows = _pow2(rng, 0, int(np.log2(spec.max_tokens)))
        cols = _pick(rng, cols_choices)
        return Normalization(kind, rows, cols, precision) if rows * cols <= spec.max_numel else None

    return _sample(make, _rng(kind, precision), _count(18, spec), spec)


def pointwise_ops(kind: str, precision: str, spec: GridSpec) -> list[Op]:
    """Elementwise ops over 2^10 .. max_numel elements (multiples of 128, log-spaced)."""
    top = int(np.log2(spec.max_numel))
    sizes = np.unique(np.logspace(10, top, _count(15, spec), base=2).astype(np.int64) // 128 * 128)
    return [Pointwise(kind, int(n), precision) for n in sizes]


def embedding_ops(precision: str, spec: GridSpec) -> list[Op]:
    """Embedding lookups: token, position and segment tables of GPT-2, BERT and Llama sizes."""
    tables = ((50257, 768), (30522, 768), (1024, 768), (512, 768), (2, 768), (32000, 4096))

    def make(rng: np.random.Generator) -> Op | None:
        vocab, hidden = tables[int(rng.integers(len(tables)))]
        tokens = _pow2(rng, 0, int(np.log2(spec.max_tokens)))
        return Embedding(tokens, vocab, hidden, precision)

    return _sample(make, _rng("embedding", precision), _count(15, spec), spec)


def pool_ops(precision: str, spec: GridSpec) -> list[Op]:
    """The stem max-pool of ResNets and global average pools, at a few batch and image sizes."""
    ops: list[Op] = []
    for batch in (1, 2, 4, 8) if spec.scale >= 1 else (1, 2):
        for channels, side in ((64, 112), (64, 56), (128, 56), (64, 28)):
            ops.append(Pool2d("maxpool", batch, channels, side, side, 3, 2, 1, precision=precision))
        for channels, side in ((2048, 7), (512, 7), (2048, 4), (1024, 14)):
            ops.append(Pool2d("avgpool", batch, channels, side, side, side, precision=precision))
    return ops


def op_grid(backend: str, precision: str, quick: bool) -> list[tuple[Op, bool]]:
    """Every (op, measure backward too) for a backend and precision."""
    spec = grid_spec(backend, precision, quick)
    out: list[tuple[Op, bool]] = [(op, True) for op in linear_ops(precision, spec)]
    out += [(op, True) for op in bmm_ops(precision, spec)]
    out += [(op, op.q_len > 1) for op in attention_ops(precision, spec) if isinstance(op, Attention)]
    out += [(op, True) for op in conv_ops(precision, spec)]
    for kind in NORMALIZATION:
        out += [(op, True) for op in norm_ops(kind, precision, spec)]
    for kind in ("add", "mul", "gelu", "silu", "relu", "copy"):
        out += [(op, True) for op in pointwise_ops(kind, precision, spec)]
    out += [(op, True) for op in embedding_ops(precision, spec)]
    out += [(op, True) for op in pool_ops(precision, spec)]
    return out


def matmul_only_grid(precision: str, quick: bool, sparse: bool = False) -> list[tuple[Op, bool]]:
    """GPU-only extra precisions (tf32, fp8) and 2:4 sparse GEMMs: large Linear shapes, forward only
    for fp8 and sparse (no training kernels), forward and backward for tf32."""
    spec = grid_spec("cuda", precision, quick)
    dims = (1024, 2048, 4096, 8192, 16384)
    ops: list[tuple[Op, bool]] = []
    rng = _rng(f"matmul-extra{sparse}", precision)
    seen: set[Op] = set()
    for _ in range(_count(28 if not sparse else 10, spec) * 10):
        m = _pow2(rng, 4 if not sparse else 9, 14)
        op = Matmul(m, _pick(rng, dims), _pick(rng, dims), precision=precision, sparse_2_4=sparse)
        if op not in seen and op.flops <= spec.max_flops:
            seen.add(op)
            ops.append((op, precision == "tf32"))
        if len(ops) >= _count(28 if not sparse else 10, spec):
            break
    return sorted(ops, key=lambda item: item[0].flops)


#: Widths of the compression grids (transformer layer widths the CPU validation uses)
COMPRESSION_DIMS = (256, 512, 768, 1024, 2048, 3072, 4096)
#: Fractions of weights kept by the unstructured-sparse grid (50% to 98% sparsity)
SPARSE_DENSITIES = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02)


def int8_matmul_grid(quick: bool) -> list[tuple[Op, bool]]:
    """CPU dynamic int8 quantized Linear shapes (``Matmul`` at precision ``int8``), forward only."""
    cap = 1.5e9 if quick else 4e9
    rng = _rng("matmul-int8", "int8")
    count = 16 if quick else 44
    seen: dict[Op, None] = {}
    for _ in range(count * 30):
        op = Matmul(_pow2(rng, 0, 10), _pick(rng, COMPRESSION_DIMS), _pick(rng, COMPRESSION_DIMS), precision="int8")
        if op.flops <= cap:
            seen[op] = None
        if len(seen) >= count:
            break
    return [(op, False) for op in sorted(seen, key=lambda o: (o.flops, o.bytes))]


def sparse_matmul_grid(quick: bool) -> list[tuple[Op, bool]]:
    """CPU unstructured-sparse Linear shapes (``SparseMatmul``, torch CSR, fp32) over a range of
    densities, forward only."""
    from dcsim.compute.ops import SparseMatmul

    cap = 1e9 if quick else 3e9
    rng = _rng("matmul-csr", "fp32")
    count = 16 if quick else 44
    seen: dict[Op, None] = {}
    for _ in range(count * 30):
        density = SPARSE_DENSITIES[int(rng.integers(len(SPARSE_DENSITIES)))]
        m, n, k = _pow2(rng, 0, 9), _pick(rng, COMPRESSION_DIMS), _pick(rng, COMPRESSION_DIMS)
        op = SparseMatmul(m, n, k, density)
        if 2.0 * m * n * k <= cap:  # the dense product's FLOPs: CSR kernels run far below dense peak
            seen[op] = None
        if len(seen) >= count:
            break
    return [(op, False) for op in sorted(seen, key=lambda o: (o.flops, o.bytes))]


def known_op_classes() -> frozenset[str]:
    """Fit classes (``Op.fit_key`` before the first slash) the calibration grids measure, on CPUs and GPUs."""
    grids = [op_grid(backend, "fp32", True) for backend in ("cpu", "cuda")]
    grids += [int8_matmul_grid(True), sparse_matmul_grid(True), matmul_only_grid("bf16", True, sparse=True)]
    return frozenset(op.fit_key.split("/", 1)[0] for grid in grids for op, _ in grid)
