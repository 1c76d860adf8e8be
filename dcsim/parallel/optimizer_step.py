"""The optimizer step as ops the cost model prices: AdamW, SGD with momentum and Adafactor.

:func:`optimizer_step_ops` lists, for every parameter tensor of one rank (after sharding), the kernels
PyTorch's optimizer runs on it, in order, each as a :class:`~dcsim.compute.Pointwise` of a kind the
calibration profiles measure (Adafactor's outer product as a :class:`~dcsim.compute.Matmul`). The kernel
sequences mirror ``torch.optim`` 2.13 as it runs on a CPU: ``foreach`` defaults to off there, so each
optimizer loops over the tensors (``_single_tensor_adam``, ``_single_tensor_sgd``,
``_single_tensor_adafactor``); ``foreach=True`` runs the same kernels (``_foreach_*`` falls back to a
per-tensor loop on the CPU), except that AdamW divides its denominator in place.

No profile measures in-place kernels, a three-operand kernel or a square root, so each kernel is priced as
the measured class with its traffic (elements read and written per element) and arithmetic:

============================  ==================================  ================================
kernel                        traffic per element                 priced as
============================  ==================================  ================================
``x.mul_(s)``, ``x.add_(s)``  read 1, write 1                     ``relu`` (1 FLOP, 2 elements)
``x.div_(s)``, ``clamp_``     read 1, write 1                     ``relu``
``x.lerp_(y, w)``             read 2, write 1                     ``add`` (1 FLOP, 3 elements)
``x.addcmul_(y, y, v)``       read 2, write 1                     ``add``
``x.add_(y, alpha)``          read 2, write 1                     ``add``
``x.addcdiv_(y, z, v)``       read 3, write 1                     ``add`` + ``relu`` (5 elements)
``x.sqrt()``, ``rsqrt_``      read 1, write 1, compute-bound      ``gelu`` (see below)
``x.norm(dim)``               read 1 per element, one result      ``mul`` (``x * x``)
============================  ==================================  ================================

Square roots: torch's fp32 ``sqrt`` on the host CPU runs at 0.6-0.7 ns per element at every size from 64 K
to 2.4 M elements (compute-bound, about 5x a scalar multiply), like the transcendental ``gelu`` class
(0.9 ns), not like the memory-bound unary ``relu`` class; ``gelu`` is the nearest measured class.

In-place kernels allocate nothing, but every op of the cost model carries an output allocation, which a
profiled CPU charges page faults for above its allocator's fresh-page threshold (32 MiB on host-cpu). An
in-place kernel over a larger tensor is therefore listed as pieces of at most :data:`IN_PLACE_PIECE_ELEMENTS`
elements (the same bytes, no faults). Kernels that allocate (AdamW's ``sqrt()`` and, without ``foreach``,
its division) keep the whole tensor and its faults.

What the ops leave out is the Python work of the per-tensor loop (state lookups, the step counter, scalar
bias corrections, ``.item()`` calls): a fixed time per tensor, measured on the host CPU by
``calibration/validate_training.py`` (:data:`HOST_CPU_PER_TENSOR_S`), which :func:`optimizer_step_time_s`
adds when given.

Known gaps on the host CPU (docs/training.md, "Validation: a training step on this CPU"): Adafactor's column norm
(``torch.norm(grad, dim=-2)``) runs strided at 5-8 ns per element, 15-30x a row norm, which no measured
class prices, so Adafactor on matrices is predicted 30-45% low; and one tensor of 2-38 M elements stepped
over and over stays partly in the 32 MiB L3 cache or takes fresh pages at 16 MiB, which the fits of
allocating ops do not describe (errors of -15% to +84%, SGD worst); a model's parameter set, streamed through
once per step, is what the pricing is validated for (GPT-2 small: AdamW +15%, SGD +12%).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dcsim.compute.ops import Matmul, Op, Pointwise

OPTIMIZERS = ("adamw", "sgd", "adafactor")

#: Largest in-place kernel listed as one op, elements: 2**22 (16 MiB at fp32), below the 32 MiB allocation
#: size above which the host-cpu profile charges fresh-page faults (``mmap_threshold_bytes``).
IN_PLACE_PIECE_ELEMENTS = 2**22

#: Seconds of Python work per parameter tensor per step that no kernel contains (the per-tensor loop of
#: ``torch.optim`` 2.13 with 1 thread). Measured on this machine's CPU (host-cpu, AMD EPYC, torch 2.13.0+cpu)
#: by ``calibration/validate_training.py`` on 2026-12-07: the least-squares slope of (measured step -
#: predicted kernels) over steps on 64, 256 and 1,024 tensors of 1,024 elements, quietest of 3 passes
#: (``calibration/validation/host-cpu-training.json``, ``optimizer_steps``; re-derived by the test).
HOST_CPU_PER_TENSOR_S: dict[str, float] = {"adamw": 5.66e-6, "sgd": 2.20e-6, "adafactor": 2.42e-6}

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Kernel:
    """One kernel the optimizer runs on one tensor: the torch call and the op that prices it."""

    call: str
    op: Op


def _shapes(params: int | Sequence[int | Shape]) -> list[Shape]:
    if isinstance(params, int):
        if isinstance(params, bool) or params < 1:
            raise ValueError(f"params must be a positive integer or a list of tensor shapes, not {params!r}")
        return [(params,)]
    shapes: list[Shape] = []
    for item in params:
        shape = (item,) if isinstance(item, int) else tuple(item)
        if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape):
            raise ValueError(f"params: every tensor shape needs positive integer sizes, not {item!r}")
        shapes.append(shape)
    if not shapes:
        raise ValueError("params: no tensors")
    return shapes


def _numel(shape: Shape) -> int:
    n = 1
    for size in shape:
        n *= size
    return n


def _in_place(call: str, kind: str, numel: int, precision: str) -> list[Kernel]:
    """An in-place elementwise kernel, in pieces of at most :data:`IN_PLACE_PIECE_ELEMENTS`."""
    out = []
    while numel > 0:
        piece = min(numel, IN_PLACE_PIECE_ELEMENTS)
        out.append(Kernel(call, Pointwise(kind, piece, precision)))
        numel -= piece
    return out


def _adamw(shape: Shape, precision: str, foreach: bool) -> list[Kernel]:
    """``_single_tensor_adam`` with decoupled weight decay (AdamW), amsgrad off."""
    n, p = _numel(shape), precision
    div = (
        _in_place("denom.div_(bias_correction2_sqrt)", "relu", n, p)
        if foreach
        else [Kernel("denom / bias_correction2_sqrt", Pointwise("relu", n, p))]
    )
    return [
        *_in_place("param.mul_(1 - lr * weight_decay)", "relu", n, p),
        *_in_place("exp_avg.lerp_(grad, 1 - beta1)", "add", n, p),
        *_in_place("exp_avg_sq.mul_(beta2)", "relu", n, p),
        *_in_place("exp_avg_sq.addcmul_(grad, grad, 1 - beta2)", "add", n, p),
        Kernel("exp_avg_sq.sqrt()", Pointwise("gelu", n, p)),
        *div,
        *_in_place("denom.add_(eps)", "relu", n, p),
        *_in_place("param.addcdiv_(exp_avg, denom, -step_size) [2 of 3 reads]", "add", n, p),
        *_in_place("param.addcdiv_(exp_avg, denom, -step_size) [3rd read]", "relu", n, p),
    ]


def _sgd(shape: Shape, precision: str) -> list[Kernel]:
    """``_single_tensor_sgd`` with momentum (no weight decay, no Nesterov), from the second step on."""
    n, p = _numel(shape), precision
    return [
        *_in_place("buf.mul_(momentum)", "relu", n, p),
        *_in_place("buf.add_(grad, alpha=1 - dampening)", "add", n, p),
        *_in_place("param.add_(buf, alpha=-lr)", "add", n, p),
    ]


def _reduction(call: str, rows: int, cols: int, precision: str) -> list[Kernel]:
    """A sum-of-squares reduction (a norm) of ``rows`` x ``cols`` elements: priced as the elementwise
    ``x * x`` over them (``mul``), in pieces like an in-place kernel (it allocates only its result). No
    measured class reduces without writing: torch.norm measured 8-560 us over 768 to 2.4 M elements on
    host-cpu, ``mul`` predicts -83% to +45% of that, ``rmsnorm`` +110% to +220% (its fit's 26 us overhead),
    ``layernorm`` +6% to +110%."""
    return _in_place(call, "mul", rows * cols, precision)


def _adafactor(shape: Shape, precision: str) -> list[Kernel]:
    """``_single_tensor_adafactor`` (no weight decay): factored second moments for tensors of 2 or more
    dimensions (over the last two), a full one for vectors."""
    n, p = _numel(shape), precision
    head = _reduction("param.norm(2)", 1, n, p)
    tail = [
        *_in_place("var_estimate.clamp_(min=eps1 ** 2)", "relu", n, p),
        *_in_place("var_estimate.rsqrt_()", "gelu", n, p),
        *_in_place("update.mul_(grad)", "add", n, p),
        *_reduction("update.norm(2)", 1, n, p),
        *_in_place("param.add_(update, alpha)", "add", n, p),
    ]
    if len(shape) == 1:
        return [
            *head,
            Kernel("grad * grad", Pointwise("mul", n, p)),
            *_in_place("variance.lerp_(grad_squared, one_minus_beta2_t)", "add", n, p),
            Kernel("variance.clone()", Pointwise("copy", n, p)),
            *tail,
        ]
    rows, cols = shape[-2], shape[-1]
    batch = n // (rows * cols)
    r, c = batch * rows, batch * cols
    factored = [
        *_reduction("torch.norm(grad, dim=-1)", r, cols, p),
        *_in_place("row_mean.square_()", "relu", r, p),
        *_in_place("row_mean.div_(cols)", "relu", r, p),
        *_in_place("row_var.lerp_(row_mean, one_minus_beta2_t)", "add", r, p),
        *_reduction("torch.norm(grad, dim=-2)", c, rows, p),
        *_in_place("col_mean.square_()", "relu", c, p),
        *_in_place("col_mean.div_(rows)", "relu", c, p),
        *_in_place("col_var.lerp_(col_mean, one_minus_beta2_t)", "add", c, p),
        Kernel("row_var @ col_var", Matmul(rows, cols, 1, batch, precision=p)),
        *_reduction("row_var.mean(dim=-2)", batch, rows, p),
        *_in_place("var_estimate.div_(row_var_mean)", "relu", n, p),
    ]
    return [*head, *factored, *tail]


def optimizer_kernels(
    optimizer: str,
    params: int | Sequence[int | Shape],
    precision: str = "fp32",
    master_weights: bool = False,
    foreach: bool = False,
) -> list[Kernel]:
    """Every kernel of one optimizer step, tensor by tensor, in execution order (see the module doc).

    ``params``: the rank's parameters, either a count (one flat tensor, as a flat-buffer or ZeRO-sharded
    optimizer holds them) or the shape of each tensor (an int is a vector of that length). ``precision``:
    of the weights and gradients. ``master_weights``: mixed precision with fp32 master weights and optimizer
    state; the step then runs in fp32 after casting each gradient up, and casts the updated master weights
    back down (each cast priced as an fp32 ``copy``, which moves 8 bytes per element against the cast's 6).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    Pointwise("copy", 1, precision)  # validates precision with the op's own message
    state_precision = "fp32" if master_weights else precision
    out: list[Kernel] = []
    for shape in _shapes(params):
        n = _numel(shape)
        if master_weights:
            out.append(Kernel("grad.float()", Pointwise("copy", n, "fp32")))
        if optimizer == "adamw":
            out += _adamw(shape, state_precision, foreach)
        elif optimizer == "sgd":
            out += _sgd(shape, state_precision)
        else:
            out += _adafactor(shape, state_precision)
        if master_weights:
            out.append(Kernel("param.copy_(master)", Pointwise("copy", n, "fp32")))
    return out


def optimizer_step_ops(
    optimizer: str,
    params: int | Sequence[int | Shape],
    precision: str = "fp32",
    master_weights: bool = False,
    foreach: bool = False,
) -> list[tuple[Op, int]]:
    """(op, count) pairs of one optimizer step on one rank, identical ops merged (first-seen order).

    Arguments as for :func:`optimizer_kernels`; ``params`` are per rank, after sharding.
    """
    counts: dict[Op, int] = {}
    for kernel in optimizer_kernels(optimizer, params, precision, master_weights, foreach):
        counts[kernel.op] = counts.get(kernel.op, 0) + 1
    return list(counts.items())


def tensor_count(params: int | Sequence[int | Shape]) -> int:
    """Parameter tensors the optimizer loops over (1 for a flat count)."""
    return len(_shapes(params))


def optimizer_step_time_s(
    optimizer: str,
    params: int | Sequence[int | Shape],
    predict: Callable[[Op], float],
    precision: str = "fp32",
    master_weights: bool = False,
    foreach: bool = False,
    per_tensor_s: float = 0.0,
) -> float:
    """Seconds of one optimizer step: ``predict`` summed over :func:`optimizer_step_ops` plus
    ``per_tensor_s`` per tensor (the Python cost of the per-tensor loop on the device's host; on this
    machine's CPU :data:`HOST_CPU_PER_TENSOR_S`)."""
    ops = optimizer_step_ops(optimizer, params, precision, master_weights, foreach)
    if per_tensor_s < 0:
        raise ValueError(f"per_tensor_s must be >= 0, not {per_tensor_s!r}")
    return sum(predict(op) * count for op, count in ops) + per_tensor_s * tensor_count(params)
