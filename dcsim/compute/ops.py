"""Operations the cost model can price: small frozen dataclasses with ``flops`` and ``bytes``.

Every op carries its ``precision`` (``fp32``, ``tf32``, ``bf16``, ``fp16``, ``fp8``, ``int8``, ``int4``) and
its ``phase``: ``fwd`` for the forward computation, ``bwd`` for everything its backward pass computes
(input and weight gradients). ``flops`` counts floating-point operations (a multiply-add is 2), ``bytes``
the minimum traffic to and from device memory (each operand read once, each result written once), in
bytes. Both are analytic: the fitted efficiencies in :mod:`dcsim.compute.roofline` absorb what a real
kernel does beyond that. ``fit_key`` names the class of ops that share one fitted efficiency curve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

#: Bytes per element of each precision (tf32 is stored as fp32; int4 packs two values per byte).
BYTES_PER_ELEMENT: Mapping[str, float] = {
    "fp64": 8.0,
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
PHASES = ("fwd", "bwd")
#: Largest row count (``Matmul.m``) of a "skinny" product: the GEMMs of a decode step at batch <= 16.
SKINNY_ROWS = 16
#: Row count of a matrix-vector product (GEMV): a decode step's GEMMs at batch 1.
GEMV_ROWS = 1


#: Bytes of a memory page: weight rows shorter than this stream slower in a GEMV (see :func:`short_row_pages`).
PAGE_BYTES = 4096
#: GEMM operands whose rows are a multiple of this many elements start on vector and cache-line boundaries
#: (see :attr:`Matmul.unaligned`): cuBLAS picks its fastest tensor-core kernels only for dimensions that are
#: multiples of 8 at 16-bit precision (NVIDIA, "Matrix Multiplication Background User's Guide", Tensor Core
#: Requirements), and the host CPU runs ``Linear(768, 50257)`` 20-40% slower than ``Linear(768, 50256)``.
ALIGN_ELEMENTS = 8


def short_row_pages(rows: int, row_bytes: float) -> float:
    """The weight bytes of a GEMV whose ``rows`` weight rows are each shorter than a page (``row_bytes`` <
    :data:`PAGE_BYTES`), in pages; 0 for longer rows. A GEMV computes one dot product per weight row, and short rows
    stream slower: on this machine's CPU a cold fp32 GEMV read rows of 256 bytes to 2 KiB at 4-13 GB/s and rows of 4
    KiB and more mostly at 15-24 GB/s (docs/serving.md, Validation). The fit prices each such page with a fixed
    extra cost (the op's ``segments``)."""
    return rows * row_bytes / PAGE_BYTES if row_bytes < PAGE_BYTES else 0.0


def matmul_class(m: int) -> str:
    """The fit class of a dense product of ``m`` rows: ``matmul_gemv`` (one row: BLAS libraries run a
    matrix-vector kernel that streams the weights), ``matmul_skinny`` (at most :data:`SKINNY_ROWS` rows: a GEMM
    kernel on a few rows) or ``matmul`` (see :attr:`Matmul.fit_key`)."""
    if m <= GEMV_ROWS:
        return "matmul_gemv"
    return "matmul_skinny" if m <= SKINNY_ROWS else "matmul"


def _check_common(precision: str, phase: str) -> None:
    if precision not in BYTES_PER_ELEMENT:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(BYTES_PER_ELEMENT)})")
    if phase not in PHASES:
        raise ValueError(f"phase must be 'fwd' or 'bwd', not {phase!r}")


def _check_positive(op: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(op, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(op).__name__}.{name} must be a positive integer, not {value!r}")


class Op:
    """Base of every op: subclasses are frozen dataclasses defining ``flops``, ``bytes`` and ``kind``."""

    precision: str
    phase: str
    _registry: ClassVar[dict[str, type[Op]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Op._registry[cls.__name__] = cls

    @property
    def kind(self) -> str:
        """The op type (``matmul``, ``attention``, ``gelu``, ...)."""
        raise NotImplementedError

    @property
    def flops(self) -> float:
        """Floating-point operations of this op in this phase."""
        raise NotImplementedError

    @property
    def bytes(self) -> float:
        """Minimum device-memory traffic of this op in this phase, bytes."""
        raise NotImplementedError

    @property
    def allocations(self) -> tuple[float, ...]:
        """Bytes of each tensor the op allocates (its outputs; for ``bwd``, the gradients it returns)."""
        raise NotImplementedError

    @property
    def unaligned(self) -> bool:
        """True for ops whose operand rows are not a multiple of 8 elements wide (see :class:`Matmul`):
        vectorised kernels then run a slower path; the fit prices it with an extra compute factor."""
        return False

    @property
    def segments(self) -> float:
        """Units of work with a fixed extra cost each, fitted per class: the independent rows, channels or heads
        a kernel loops over (norms, pools), the short weight rows of a GEMV, the causal pairs of an attention
        chunk (see each op); 0 where that is not modelled (GEMMs, convolutions, elementwise ops)."""
        return 0.0

    @property
    def fit_key(self) -> str:
        """``kind/phase/precision``: ops with one key share one fitted efficiency curve."""
        return f"{self.kind}/{self.phase}/{self.precision}"

    def tile_flops(self, tile_rows: int) -> float:
        """FLOPs the kernel computes when it works on whole tiles of ``tile_rows`` output rows (see
        :meth:`Matmul.tile_flops`); :attr:`flops` for ops that are not tiled by rows."""
        return self.flops

    @property
    def element_bytes(self) -> float:
        """Bytes per element at this op's precision."""
        return BYTES_PER_ELEMENT[self.precision]

    @property
    def row_classes(self) -> bool:
        """True for ops priced along the row classes of :func:`matmul_class` (dense products of kind ``matmul``,
        which have ``m`` rows)."""
        return False

    def with_rows(self, rows: int) -> Op | None:
        """The same product with ``rows`` rows where :attr:`row_classes`; None for other ops."""
        return None

    def backward(self) -> Op:
        """The same op in the backward phase (what its gradient computation costs)."""
        return dataclasses.replace(self, phase="bwd")  # type: ignore[type-var]

    def forward(self) -> Op:
        """The same op in the forward phase."""
        return dataclasses.replace(self, phase="fwd")  # type: ignore[type-var]

    def with_precision(self, precision: str) -> Op:
        """The same op at another precision."""
        return dataclasses.replace(self, precision=precision)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :func:`op_from_dict` reads back."""
        return {"op": type(self).__name__, **dataclasses.asdict(self)}  # type: ignore[call-overload]


def op_from_dict(data: Mapping[str, Any]) -> Op:
    """Rebuild an op written by :meth:`Op.to_dict` (ValueError for an unknown op name)."""
    fields = dict(data)
    name = fields.pop("op", None)
    cls = Op._registry.get(str(name))
    if cls is None:
        raise ValueError(f"unknown op {name!r} (known: {', '.join(sorted(Op._registry))})")
    return cls(**fields)


@dataclass(frozen=True, slots=True)
class Matmul(Op):
    """``batch`` independent products of an (m x k) by a (k x n) matrix.

    ``nn.Linear`` is batch 1 with m = tokens (kind ``matmul``); a batched matmul has batch > 1 (kind
    ``bmm``). Backward computes both the input gradient and the weight gradient (two products of the
    same size). ``sparse_2_4`` marks a 2:4 structured-sparse weight (kind ``matmul_sparse24``).
    """

    m: int
    n: int
    k: int
    batch: int = 1
    precision: str = "fp32"
    phase: str = "fwd"
    sparse_2_4: bool = False

    def __post_init__(self) -> None:
        _check_positive(self, ("m", "n", "k", "batch"))
        _check_common(self.precision, self.phase)

    @property
    def kind(self) -> str:
        if self.sparse_2_4:
            return "matmul_sparse24"
        return "bmm" if self.batch > 1 else "matmul"

    @property
    def fit_key(self) -> str:
        """Products of at most :data:`SKINNY_ROWS` rows (a decode step's GEMMs) have a class of their own, and
        one-row products (GEMV, batch-1 decode) another (:func:`matmul_class`): CPU and GPU libraries run other
        kernels for them than for square-ish products, so one efficiency curve over all fits none. A device
        that measured no such product prices a GEMV with its skinny curve and a skinny product with its
        ``matmul`` curve (see :mod:`dcsim.compute.predictor`)."""
        if self.kind == "matmul":
            return f"{matmul_class(self.m)}/{self.phase}/{self.precision}"
        return f"{self.kind}/{self.phase}/{self.precision}"

    @property
    def segments(self) -> float:
        """A GEMV's weight held in short rows, in pages (:func:`short_row_pages`); 0 for other products."""
        if self.kind != "matmul" or self.m > GEMV_ROWS:
            return 0.0
        return short_row_pages(self.n, self.k * self.element_bytes)

    @property
    def unaligned(self) -> bool:
        """``n`` or ``k`` not a multiple of :data:`ALIGN_ELEMENTS` (8): rows of the weight and output start off
        vector and cache-line boundaries (a 50,257-token output head). On the host CPU such a GEMM runs 20-40%
        slower than one a column narrower or wider (50,256 or 50,264)."""
        return self.n % ALIGN_ELEMENTS != 0 or self.k % ALIGN_ELEMENTS != 0

    @property
    def row_classes(self) -> bool:
        """Products of kind ``matmul`` (batch 1, dense) are priced along the row classes."""
        return not self.sparse_2_4 and self.batch == 1

    def with_rows(self, rows: int) -> Op | None:
        """The product with ``rows`` rows where :attr:`row_classes`, else None."""
        return dataclasses.replace(self, m=rows) if self.row_classes else None

    def tile_flops(self, tile_rows: int) -> float:
        """FLOPs of the product with its ``m`` rows rounded up to whole tiles of ``tile_rows``: GPU GEMM
        kernels compute whole tiles of the output, so a product of 520 rows costs about what one of 640 does
        with 128-row tiles ("tile quantization": NVIDIA Deep Learning Performance Documentation, Matrix
        Multiplication Background User's Guide). :attr:`flops` stays the useful work (MFU counts that)."""
        if tile_rows <= 1 or self.kind == "matmul_sparse24":
            return self.flops
        rows = -(-self.m // tile_rows) * tile_rows
        return self.flops * rows / self.m

    @property
    def flops(self) -> float:
        fwd = 2.0 * self.batch * self.m * self.n * self.k
        return fwd if self.phase == "fwd" else 2.0 * fwd

    @property
    def allocations(self) -> tuple[float, ...]:
        e = self.element_bytes
        if self.phase == "fwd":
            return (self.batch * self.m * self.n * e,)
        return (self.batch * self.m * self.k * e, self.batch * self.k * self.n * e)

    @property
    def bytes(self) -> float:
        weight = self.k * self.n * (0.5625 if self.sparse_2_4 else 1.0)  # 2:4 keeps half plus metadata
        fwd = self.batch * (self.m * self.k + weight + self.m * self.n) * self.element_bytes
        return fwd if self.phase == "fwd" else 2.0 * fwd


def _attention_pairs(q_len: int, kv_len: int, causal: bool) -> float:
    """:attr:`Attention.pairs` of these lengths."""
    if not causal:
        return float(q_len * kv_len)
    q = kv_len if kv_len < q_len else q_len
    return q * (kv_len - q) + q * (q + 1) / 2.0


@dataclass(frozen=True, slots=True)
class Attention(Op):
    """Scaled dot-product attention core (QK^T, softmax, PV) as one fused kernel.

    Prefill: ``q_len == kv_len`` (kind ``attention``); decode: ``q_len == 1`` against a KV cache of
    ``kv_len`` tokens (kind ``attention_decode``: a memory-bound kernel of its own).
    ``kv_heads`` < ``heads`` is grouped-query attention (``None`` means equal). Causal attention computes
    only the query-key pairs at or before each query. Backward (flash-attention style) recomputes the
    scores: 2.5x the forward FLOPs, and reads Q, K, V, O, dO and writes dQ, dK, dV.
    ``kv_precision`` (``None``: ``precision``) is the element type K and V are read in, for a quantized KV
    cache (an ``int8``/``fp8`` cache read by a kernel that dequantizes in registers, as vLLM's fp8 KV cache):
    it changes ``bytes`` only; the arithmetic, ``precision`` and ``fit_key`` stay those of the kernel."""

    batch: int
    heads: int
    q_len: int
    kv_len: int
    head_dim: int
    causal: bool = True
    kv_heads: int | None = None
    precision: str = "fp32"
    phase: str = "fwd"
    kv_precision: str | None = None

    def __post_init__(self) -> None:
        # hot (serving prices tens of thousands of prefill chunk shapes): positive ints pass at a glance, the
        # rest get _check_positive's message
        b, h, q, kv, d = self.batch, self.heads, self.q_len, self.kv_len, self.head_dim
        ints = type(b) is int and type(h) is int and type(q) is int and type(kv) is int and type(d) is int
        if not (ints and b >= 1 and h >= 1 and q >= 1 and kv >= 1 and d >= 1):
            _check_positive(self, ("batch", "heads", "q_len", "kv_len", "head_dim"))
        _check_common(self.precision, self.phase)
        if self.kv_heads is not None and (self.kv_heads < 1 or self.heads % self.kv_heads):
            raise ValueError(f"Attention.kv_heads ({self.kv_heads}) must divide heads ({self.heads})")
        if self.kv_precision is not None and self.kv_precision not in BYTES_PER_ELEMENT:
            raise ValueError(f"unknown kv_precision {self.kv_precision!r} (known: {', '.join(BYTES_PER_ELEMENT)})")

    @property
    def kind(self) -> str:
        return "attention_decode" if self.q_len == 1 else "attention"

    @property
    def segments(self) -> float:
        """The query-key pairs of a causal chunk's own triangle (each new token against the chunk's earlier
        tokens), over the batch and heads; 0 for decode and bidirectional attention. Causal kernels run them
        slower than the rectangle of cached keys before the chunk: query tiles get unequal work and diagonal
        tiles are masked (on the A100, Vidur's FlashAttention prefill of 4,096 new tokens ran at 59 TFLOP/s,
        1,024 new tokens after 2,560 cached ones at 107). Fitted as an extra cost per pair where a class's
        points mix chunks with and without cached keys."""
        q, kv = self.q_len, self.kv_len
        if q == 1 or not self.causal:
            return 0.0
        if kv < q:
            q = kv
        return self.batch * self.heads * q * (q + 1) / 2.0

    @property
    def pairs(self) -> float:
        """Query-key pairs computed per head (causal: queries are the last ``q_len`` positions)."""
        return _attention_pairs(self.q_len, self.kv_len, self.causal)

    @property
    def flops(self) -> float:
        fwd = 4.0 * self.batch * self.heads * _attention_pairs(self.q_len, self.kv_len, self.causal) * self.head_dim
        return fwd if self.phase == "fwd" else 2.5 * fwd

    @property
    def allocations(self) -> tuple[float, ...]:
        q = self.batch * self.heads * self.q_len * self.head_dim * self.element_bytes
        if self.phase == "fwd":
            return (q,)
        kv = self.batch * (self.kv_heads or self.heads) * self.kv_len * self.head_dim * self.element_bytes
        return (q, kv, kv)

    @property
    def bytes(self) -> float:
        kv_heads = self.kv_heads or self.heads
        q_o = 2 * self.heads * self.q_len
        k_v = 2 * kv_heads * self.kv_len
        if self.kv_precision is None:
            fwd = self.batch * (q_o + k_v) * self.head_dim * BYTES_PER_ELEMENT[self.precision]
        else:
            kv_bytes = BYTES_PER_ELEMENT[self.kv_precision]
            fwd = self.batch * (q_o * self.element_bytes + k_v * kv_bytes) * self.head_dim
        return fwd if self.phase == "fwd" else 2.0 * fwd

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`Op.to_dict`, leaving ``kv_precision`` out when unset (so dicts written before the field
        existed, e.g. in calibration profiles, are what an unquantized op writes)."""
        data = Op.to_dict(self)
        if data["kv_precision"] is None:
            del data["kv_precision"]
        return data


@dataclass(frozen=True, slots=True)
class Conv2d(Op):
    """A 2-D convolution (NCHW) of a ``batch`` x ``in_channels`` x ``height`` x ``width`` input with a
    square ``kernel``. Backward computes the input gradient and the weight gradient."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    precision: str = "fp32"
    phase: str = "fwd"

    def __post_init__(self) -> None:
        _check_positive(self, ("batch", "in_channels", "out_channels", "height", "width", "kernel"))
        _check_positive(self, ("stride", "groups"))
        _check_common(self.precision, self.phase)
        if self.out_height < 1 or self.out_width < 1:
            raise ValueError("Conv2d kernel larger than the padded input")

    @property
    def kind(self) -> str:
        """``conv2d_1x1`` for a 1x1 kernel, else ``conv2d``. A 1x1 convolution is a GEMM over the pixels, and
        CPU and GPU libraries run it as one (oneDNN's ``jit_*_1x1_convolution`` kernels, cuDNN's
        ``IMPLICIT_GEMM``); larger kernels run direct or Winograd algorithms (oneDNN's
        ``convolution_winograd``, cuDNN's ``WINOGRAD``), which do fewer multiplications than the FLOPs counted
        here. On the host CPU 1x1 forward convolutions ran at 84-111 GFLOP/s of counted FLOPs and 3x3 ones at
        up to 233 (calibration/profiles/host-cpu.json): one fit cannot price both. A device that measured no
        1x1 convolution prices it with its ``conv2d`` fit (``FALLBACK_CLASSES``)."""
        return "conv2d_1x1" if self.kernel == 1 else "conv2d"

    @property
    def out_height(self) -> int:
        """Output rows."""
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        """Output columns."""
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def weight_count(self) -> int:
        """Weights (without bias)."""
        return self.out_channels * (self.in_channels // self.groups) * self.kernel**2

    @property
    def flops(self) -> float:
        outputs = self.batch * self.out_channels * self.out_height * self.out_width
        fwd = 2.0 * outputs * (self.in_channels // self.groups) * self.kernel**2
        return fwd if self.phase == "fwd" else 2.0 * fwd

    @property
    def allocations(self) -> tuple[float, ...]:
        e = self.element_bytes
        if self.phase == "fwd":
            return (self.batch * self.out_channels * self.out_height * self.out_width * e,)
        return (self.batch * self.in_channels * self.height * self.width * e, self.weight_count * e)

    @property
    def bytes(self) -> float:
        inputs = self.batch * self.in_channels * self.height * self.width
        outputs = self.batch * self.out_channels * self.out_height * self.out_width
        fwd = (inputs + self.weight_count + outputs) * self.element_bytes
        return fwd if self.phase == "fwd" else 2.0 * fwd


#: Pointwise kinds: (FLOPs per element, elements moved per element forward, the same backward).
#: Forward ``add`` reads two operands and writes one; the unary ones read one and write one. Backward of
#: an activation reads x and dy and writes dx; backward of a residual ``add`` is the gradient accumulation
#: where the two branches meet (dx = dy_skip + dy_branch). FLOP figures count the arithmetic of the
#: usual formulas (GELU tanh form, SiLU = x * sigmoid(x)).
POINTWISE: Mapping[str, tuple[float, float, float]] = {
    "add": (1.0, 3.0, 3.0),
    "mul": (1.0, 3.0, 6.0),
    "relu": (1.0, 2.0, 3.0),
    "gelu": (8.0, 2.0, 3.0),
    "silu": (4.0, 2.0, 3.0),
    "copy": (0.0, 2.0, 2.0),
}


@dataclass(frozen=True, slots=True)
class Pointwise(Op):
    """An elementwise op over ``numel`` elements (see :data:`POINTWISE` for the kinds)."""

    op_kind: str
    numel: int
    precision: str = "fp32"
    phase: str = "fwd"

    def __post_init__(self) -> None:
        if self.op_kind not in POINTWISE:
            raise ValueError(f"unknown pointwise kind {self.op_kind!r} (known: {', '.join(POINTWISE)})")
        _check_positive(self, ("numel",))
        _check_common(self.precision, self.phase)

    @property
    def kind(self) -> str:
        return self.op_kind

    @property
    def flops(self) -> float:
        factor = POINTWISE[self.op_kind][0]
        return factor * self.numel * (1.0 if self.phase == "fwd" else 2.0)

    @property
    def allocations(self) -> tuple[float, ...]:
        size = self.numel * self.element_bytes
        return (size, size) if self.phase == "bwd" and self.op_kind == "mul" else (size,)

    @property
    def bytes(self) -> float:
        _, fwd, bwd = POINTWISE[self.op_kind]
        return (fwd if self.phase == "fwd" else bwd) * self.numel * self.element_bytes


#: Row-wise kinds: (FLOPs per element forward, elements moved per element forward, the same backward).
#: ``rows`` x ``cols`` with the reduction over ``cols`` (the hidden size; for ``batchnorm`` the reduction
#: is over rows = batch x height x width for each of ``cols`` channels, in training mode: statistics are
#: computed from the batch, so the input is read twice).
NORMALIZATION: Mapping[str, tuple[float, float, float]] = {
    "layernorm": (7.0, 2.0, 3.0),
    "rmsnorm": (4.0, 2.0, 3.0),
    "softmax": (5.0, 2.0, 3.0),
    "batchnorm": (6.0, 3.0, 4.0),
}


@dataclass(frozen=True, slots=True)
class Normalization(Op):
    """LayerNorm, RMSNorm, softmax or BatchNorm over a ``rows`` x ``cols`` activation."""

    op_kind: str
    rows: int
    cols: int
    precision: str = "fp32"
    phase: str = "fwd"

    def __post_init__(self) -> None:
        if self.op_kind not in NORMALIZATION:
            known = ", ".join(NORMALIZATION)
            raise ValueError(f"unknown normalization kind {self.op_kind!r} (known: {known})")
        _check_positive(self, ("rows", "cols"))
        _check_common(self.precision, self.phase)

    @property
    def kind(self) -> str:
        return self.op_kind

    @property
    def segments(self) -> float:
        """Reductions: one per channel for BatchNorm, one per row for the others."""
        return float(self.cols if self.op_kind == "batchnorm" else self.rows)

    @property
    def flops(self) -> float:
        factor = NORMALIZATION[self.op_kind][0]
        return factor * self.rows * self.cols * (1.0 if self.phase == "fwd" else 2.0)

    @property
    def allocations(self) -> tuple[float, ...]:
        return (self.rows * self.cols * self.element_bytes,)

    @property
    def bytes(self) -> float:
        _, fwd, bwd = NORMALIZATION[self.op_kind]
        return (fwd if self.phase == "fwd" else bwd) * self.rows * self.cols * self.element_bytes


@dataclass(frozen=True, slots=True)
class Embedding(Op):
    """Lookup of ``tokens`` rows of a ``vocab`` x ``hidden`` table. Backward builds the dense table
    gradient: it writes the whole table (zeros) and accumulates one row per token."""

    tokens: int
    vocab: int
    hidden: int
    precision: str = "fp32"
    phase: str = "fwd"

    def __post_init__(self) -> None:
        _check_positive(self, ("tokens", "vocab", "hidden"))
        _check_common(self.precision, self.phase)

    @property
    def kind(self) -> str:
        return "embedding"

    @property
    def flops(self) -> float:
        return 0.0 if self.phase == "fwd" else float(self.tokens * self.hidden)

    @property
    def allocations(self) -> tuple[float, ...]:
        rows = self.vocab if self.phase == "bwd" else self.tokens
        return (rows * self.hidden * self.element_bytes,)

    @property
    def bytes(self) -> float:
        rows = self.tokens * self.hidden * self.element_bytes
        if self.phase == "fwd":
            return 2.0 * rows + 8.0 * self.tokens
        return self.vocab * self.hidden * self.element_bytes + 3.0 * rows + 8.0 * self.tokens


@dataclass(frozen=True, slots=True)
class Pool2d(Op):
    """Max or average pooling (NCHW) with a square window; ``global`` average pooling is
    ``kernel == height == width``."""

    op_kind: str
    batch: int
    channels: int
    height: int
    width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    precision: str = "fp32"
    phase: str = "fwd"

    def __post_init__(self) -> None:
        if self.op_kind not in ("maxpool", "avgpool"):
            raise ValueError(f"Pool2d.op_kind must be 'maxpool' or 'avgpool', not {self.op_kind!r}")
        _check_positive(self, ("batch", "channels", "height", "width", "kernel", "stride"))
        _check_common(self.precision, self.phase)

    @property
    def kind(self) -> str:
        return self.op_kind

    @property
    def segments(self) -> float:
        """Planes pooled: one per (image, channel)."""
        return float(self.batch * self.channels)

    @property
    def outputs(self) -> int:
        """Output elements."""
        out_h = (self.height + 2 * self.padding - self.kernel) // self.stride + 1
        out_w = (self.width + 2 * self.padding - self.kernel) // self.stride + 1
        return self.batch * self.channels * out_h * out_w

    @property
    def flops(self) -> float:
        fwd = float(self.outputs * self.kernel**2)
        return fwd if self.phase == "fwd" else 2.0 * fwd

    @property
    def allocations(self) -> tuple[float, ...]:
        inputs = self.batch * self.channels * self.height * self.width
        return ((self.outputs if self.phase == "fwd" else inputs) * self.element_bytes,)

    @property
    def bytes(self) -> float:
        inputs = self.batch * self.channels * self.height * self.width
        moved = inputs + self.outputs if self.phase == "fwd" else 2 * inputs + self.outputs
        return moved * self.element_bytes


#: Dequantization work of a weight-only quantized GEMM, per weight element and per tile of activation rows
#: that reuses it (subtract the zero point, multiply by the group scale). ASSUMPTION, not a measurement:
#: fused kernels (AWQ, GPTQ-Marlin) dequantize each weight tile in registers once per block of output rows;
#: 64 rows is a typical CUTLASS/Triton tile height.
DEQUANT_FLOPS_PER_WEIGHT = 2.0
DEQUANT_TILE_ROWS = 64
#: From this many input rows on, the weights are dequantized to the activation precision by a kernel of their
#: own and a dense GEMM runs on them (vLLM's AWQ layer does so from 256 tokens:
#: ``FP16_MATMUL_HEURISTIC_CONDITION`` in ``vllm/model_executor/layers/quantization/awq.py``).
DEQUANT_THEN_GEMM_ROWS = 256
#: Bytes of quantization metadata per group of weights: an fp16 scale and an fp16 zero point (AWQ/GPTQ
#: checkpoints store the zero points packed, so this is an upper bound).
GROUP_METADATA_BYTES = 4.0


@dataclass(frozen=True, slots=True)
class WeightOnlyMatmul(Op):
    """An ``nn.Linear`` (m x k input, k x n weight) whose weights are stored in ``weight_precision``
    (``int8``, ``int4`` or ``fp8``; GPTQ/AWQ style, one scale and zero point per ``group_size`` weights)
    and dequantized inside the GEMM, which runs in the activation ``precision``.

    It is a ``matmul`` of the activation precision (same ``kind`` and ``fit_key`` as the dense product: priced by
    the dense GEMM curve of the device). Below :data:`DEQUANT_THEN_GEMM_ROWS` rows the kernel is fused: it reads
    the low-bit weights and does extra dequantization work (:data:`DEQUANT_FLOPS_PER_WEIGHT` per weight element
    per :data:`DEQUANT_TILE_ROWS` rows of the input), so memory-bound shapes (decode) get faster. From that many
    rows on (prefill), the weights are first dequantized (read low-bit, write the activation precision) and a
    dense GEMM reads them: never faster than the unquantized GEMM.
    """

    m: int
    n: int
    k: int
    weight_precision: str = "int4"
    group_size: int = 128
    precision: str = "fp16"
    phase: str = "fwd"

    def __post_init__(self) -> None:
        _check_positive(self, ("m", "n", "k", "group_size"))
        _check_common(self.precision, self.phase)
        if self.weight_precision not in ("int8", "int4", "fp8"):
            raise ValueError(
                f"WeightOnlyMatmul.weight_precision must be int8, int4 or fp8, not {self.weight_precision!r}"
            )

    @property
    def kind(self) -> str:
        return "matmul"

    @property
    def fit_key(self) -> str:
        """The dense GEMM's class at the activation precision, as :attr:`Matmul.fit_key` (GEMVs and skinny
        products of at most :data:`SKINNY_ROWS` rows have their own)."""
        return f"{matmul_class(self.m)}/{self.phase}/{self.precision}"

    @property
    def segments(self) -> float:
        """As :attr:`Matmul.segments`, for the stored (low-bit) weight rows."""
        if self.m > GEMV_ROWS:
            return 0.0
        return short_row_pages(self.n, self.k * BYTES_PER_ELEMENT[self.weight_precision])

    @property
    def unaligned(self) -> bool:
        """As :attr:`Matmul.unaligned`."""
        return self.n % ALIGN_ELEMENTS != 0 or self.k % ALIGN_ELEMENTS != 0

    @property
    def row_classes(self) -> bool:
        """True: a dense ``matmul`` of the activation precision (see :attr:`fit_key`)."""
        return True

    def with_rows(self, rows: int) -> Op | None:
        """The product with ``rows`` input rows (see :meth:`Matmul.with_rows`)."""
        return dataclasses.replace(self, m=rows)

    def tile_flops(self, tile_rows: int) -> float:
        """As :meth:`Matmul.tile_flops`: the GEMM's rows rounded up to whole tiles (dequantization FLOPs are
        per weight, not per row, and are not padded)."""
        if tile_rows <= 1:
            return self.flops
        rows = -(-self.m // tile_rows) * tile_rows
        extra = 2.0 * (rows - self.m) * self.n * self.k
        return self.flops + (extra if self.phase == "fwd" else 2.0 * extra)

    @property
    def weight_bytes(self) -> float:
        """Stored weight bytes: low-bit values plus per-group metadata."""
        weights = self.k * self.n
        return (
            weights * BYTES_PER_ELEMENT[self.weight_precision] + -(-weights // self.group_size) * GROUP_METADATA_BYTES
        )

    @property
    def flops(self) -> float:
        tiles = 1 if self.dequantize_first else -(-self.m // DEQUANT_TILE_ROWS)
        fwd = 2.0 * self.m * self.n * self.k + DEQUANT_FLOPS_PER_WEIGHT * self.k * self.n * tiles
        return fwd if self.phase == "fwd" else 2.0 * fwd

    @property
    def allocations(self) -> tuple[float, ...]:
        e = self.element_bytes
        if self.phase == "fwd":
            return (self.m * self.n * e,)
        return (self.m * self.k * e,)

    @property
    def dequantize_first(self) -> bool:
        """True from :data:`DEQUANT_THEN_GEMM_ROWS` rows on: dequantize the weights, then a dense GEMM."""
        return self.m >= DEQUANT_THEN_GEMM_ROWS

    @property
    def bytes(self) -> float:
        fwd = (self.m * self.k + self.m * self.n) * self.element_bytes + self.weight_bytes
        if self.dequantize_first:  # the dequantized copy is written once and read by the GEMM
            fwd += 2.0 * self.k * self.n * self.element_bytes
        return fwd if self.phase == "fwd" else 2.0 * fwd


@dataclass(frozen=True, slots=True)
class SparseMatmul(Op):
    """An ``nn.Linear`` whose (n x k) weight is unstructured-sparse, stored in CSR (values plus
    ``index_bytes``-wide column indices and row pointers; torch uses int64, 8 bytes), at ``density``
    (fraction of weights kept, in (0, 1]). FLOPs count only the nonzero products (kind ``matmul_csr``:
    a class of its own, priced only where it was measured, e.g. ``torch.sparse`` on the host CPU)."""

    m: int
    n: int
    k: int
    density: float = 0.5
    precision: str = "fp32"
    phase: str = "fwd"
    index_bytes: int = 8

    def __post_init__(self) -> None:
        _check_positive(self, ("m", "n", "k", "index_bytes"))
        _check_common(self.precision, self.phase)
        if not 0.0 < float(self.density) <= 1.0:
            raise ValueError(f"SparseMatmul.density must be in (0, 1], not {self.density!r}")

    @property
    def kind(self) -> str:
        return "matmul_csr"

    @property
    def nnz(self) -> int:
        """Stored nonzero weights."""
        return max(1, round(self.n * self.k * self.density))

    @property
    def weight_bytes(self) -> float:
        """Bytes of the CSR weight: values, column indices and row pointers."""
        return self.nnz * (self.element_bytes + self.index_bytes) + (self.n + 1) * self.index_bytes

    @property
    def flops(self) -> float:
        fwd = 2.0 * self.m * self.nnz
        return fwd if self.phase == "fwd" else 2.0 * fwd

    @property
    def allocations(self) -> tuple[float, ...]:
        e = self.element_bytes
        return (self.m * self.n * e,) if self.phase == "fwd" else (self.m * self.k * e,)

    @property
    def bytes(self) -> float:
        fwd = (self.m * self.k + self.m * self.n) * self.element_bytes + self.weight_bytes
        return fwd if self.phase == "fwd" else 2.0 * fwd
