"""Model transforms of a compression recipe, in a fixed order.

1. **Distillation**: the architecture becomes the student (zoo id or inline, :func:`dcsim.models.model_from_spec`).
2. **Structured pruning / layer dropping**: the architecture shrinks: ``target: layers`` or ``layer_dropping``
   remove repeated layers (a new config with fewer ``layers``), ``channels`` narrows every MLP
   (``ffn_hidden``), ``heads`` removes attention heads (whole key-value groups under grouped-query attention)
   while keeping the head width; the config classes tie the head width to ``hidden / heads``, so head pruning
   is applied to the op list (:func:`prune_heads`), not to the config.
3. **2:4 / unstructured sparsity** of the Linear weights of the repeated layers: 2:4 becomes
   ``Matmul(sparse_2_4=True)`` only where the catalog says ``sparse_2_4: true`` and the cost model (the device's
   measured 2:4 GEMMs where it has them) prices it below the dense GEMM of that shape; else the dense kernel
   runs (a runtime picks the faster kernel). Unstructured sparsity stored ``dense`` changes nothing; stored
   ``csr`` becomes a :class:`~dcsim.compute.ops.SparseMatmul` where the device's calibration profile measured
   a CSR kernel (``matmul_csr``) and it prices below the dense GEMM, else the dense kernel runs. Storage
   (:func:`storage_recipe`, :func:`weight_bytes`) counts the compressed formats: 2:4 values plus metadata on
   devices with sparse tensor cores, CSR values plus indices; a shape that falls back to the dense kernel would
   need a dense copy of its weights, which is not counted.
4. **Quantization** of the same Linear weights: W8A8 (int8) and fp8 run the GEMM at that precision where the
   device has the units (an ``int8``/``fp8`` peak in the catalog, or a measured ``matmul/fwd/int8`` class in
   its profile); otherwise, and for weight-only recipes, a :class:`~dcsim.compute.ops.WeightOnlyMatmul` reads
   low-bit weights and runs in the model's precision with the dequantization work added.

Embeddings, the output head and norms keep the model's precision (GPTQ and AWQ leave them unquantized).
"""

from __future__ import annotations

import dataclasses

from dcsim.compression.recipe import Recipe
from dcsim.compute import default_cost_model, predict
from dcsim.compute.ops import BYTES_PER_ELEMENT, Attention, Matmul, Op, Pointwise, SparseMatmul, WeightOnlyMatmul
from dcsim.models import LayerOp, ModelConfig, ModelOps, model_from_spec, transformer_like

ORDER = ("distillation", "structured pruning / layer dropping", "2:4 / unstructured sparsity", "quantization")
#: Bytes per stored weight of a 2:4 matrix relative to dense: half the values plus 2 bits of position per
#: kept value (NVIDIA A100 whitepaper, sparse tensor cores; the same figure as ``Matmul.bytes``).
SPARSE_2_4_WEIGHT_FACTOR = 0.5625
#: MLP widths are kept a multiple of this after channel pruning (GEMM-friendly shapes).
CHANNEL_MULTIPLE = 8


# --- architecture -----------------------------------------------------------------------------------------


def _replace(config: ModelConfig, field: str, value: int, where: str) -> ModelConfig:
    names = {f.name for f in dataclasses.fields(config)}
    if field not in names:
        raise ValueError(f"{where}: {type(config).__name__} has no {field} to prune")
    try:
        return dataclasses.replace(config, **{field: value, "name": f"{config.name}-compressed"})
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def compress_architecture(config: ModelConfig, recipe: Recipe) -> tuple[ModelConfig, int | None]:
    """Steps 1-2: (the new config, heads kept per layer or None when heads are not pruned)."""
    if recipe.distillation is not None:
        try:
            config = model_from_spec(recipe.distillation.student)
        except (KeyError, ValueError) as error:
            message = error.args[0] if error.args else str(error)
            raise ValueError(f"distillation.student: {message}") from None
    kept_heads = None
    pruning = recipe.pruning
    if pruning is not None and pruning.pattern == "structured":
        where = "pruning.target"
        if pruning.target == "layers":
            shape = transformer_like(config)
            if shape is None:
                raise ValueError(f"{where}: {type(config).__name__} has no repeated layers to prune")
            config = _replace(config, "layers", max(1, round(shape.layers * (1.0 - pruning.sparsity))), where)
        elif pruning.target == "channels":
            shape = transformer_like(config)
            if shape is None:
                raise ValueError(f"{where}: {type(config).__name__} has no MLP channels to prune")
            ffn = shape.ffn_hidden
            width = max(CHANNEL_MULTIPLE, round(ffn * (1.0 - pruning.sparsity) / CHANNEL_MULTIPLE) * CHANNEL_MULTIPLE)
            config = _replace(config, "ffn_hidden", width, where)
        else:
            shape = transformer_like(config)
            if shape is None:
                raise ValueError(f"{where}: {type(config).__name__} has no attention heads to prune")
            heads, kv = shape.heads, shape.kv_heads
            groups = max(1, round(kv * (1.0 - pruning.sparsity)))
            kept_heads = groups * (heads // kv)
    if recipe.layer_dropping is not None:
        shape = transformer_like(config)
        drop = recipe.layer_dropping.layers
        if shape is None:
            raise ValueError(f"layer_dropping.layers: {type(config).__name__} has no repeated layers")
        layers = shape.layers
        if drop >= layers:
            raise ValueError(f"layer_dropping.layers: must be below the model's {layers} layers, not {drop}")
        config = _replace(config, "layers", layers - drop, "layer_dropping.layers")
    return config, kept_heads


def prune_heads(ops: ModelOps, heads: int, kept: int) -> ModelOps:
    """The op list with ``kept`` of ``heads`` attention heads per layer (head width unchanged): QKV output
    columns, the attention core, its layout copy, the rotary embedding of queries and keys and the output
    projection's input rows shrink. ``ops`` may be a tensor-parallel shard (its ops then hold ``heads / tp``
    heads; the same fraction is kept)."""
    out = []
    for layer in ops.layers:
        op = layer.op
        name = layer.name.rsplit(".", 2)
        tail = ".".join(name[-2:])
        if isinstance(op, Attention):
            local = op.heads
            new_heads = max(1, local * kept // heads)
            kv = op.kv_heads or op.heads
            new_kv = max(1, kv * kept // heads)
            op = dataclasses.replace(op, heads=new_heads, kv_heads=new_kv)
        elif isinstance(op, Matmul) and tail in ("attn.qkv", "xattn.q", "xattn.kv"):
            op = dataclasses.replace(op, n=max(1, op.n * kept // heads))
        elif isinstance(op, Matmul) and tail in ("attn.proj", "xattn.proj"):
            op = dataclasses.replace(op, k=max(1, op.k * kept // heads))
        elif isinstance(op, Pointwise) and (
            tail in ("attn.layout", "xattn.layout", "attn.position_bias") or tail.startswith("rope_")
        ):  # per-head activations: the layout copy, position bias, rotary embedding of queries and keys
            op = dataclasses.replace(op, numel=max(1, op.numel * kept // heads))
        out.append(dataclasses.replace(layer, op=op))
    return ModelOps(f"{ops.name} heads{kept}/{heads}", tuple(out))


# --- op level ---------------------------------------------------------------------------------------------


def compressible(layer: LayerOp) -> bool:
    """A Linear weight of the repeated layers: what sparsity and quantization change."""
    op = layer.op
    return isinstance(op, Matmul) and layer.weights and op.batch == 1 and layer.part == "block"


@dataclasses.dataclass(frozen=True)
class DeviceSupport:
    """What a device can run fast: GEMM precisions with units, 2:4 sparse GEMMs, measured CSR kernels."""

    device: str
    low_precision: frozenset[str]
    sparse_2_4: bool
    csr_precisions: frozenset[str]


def device_support(device: str) -> DeviceSupport:
    """Read the catalog entry and the calibration profile of ``device`` (KeyError if it has neither)."""
    model = default_cost_model().device(device)
    acc = model.accelerator
    low = set()
    for precision in ("int8", "fp8", "int4"):
        if acc is not None and precision in acc.peak_tflops:
            low.add(precision)
        if f"matmul/fwd/{precision}" in model.measured:
            low.add(precision)
    csr = {key.rsplit("/", 1)[1] for key in model.measured if key.startswith("matmul_csr/fwd/")}
    return DeviceSupport(device, frozenset(low), bool(acc is not None and acc.sparse_2_4), frozenset(csr))


def _linear(op: Matmul, layer: LayerOp, recipe: Recipe, support: DeviceSupport | None) -> tuple[Op, str]:
    """Steps 3-4 for one Linear: (the new op, a note on what was applied). ``support`` None: storage only
    (every format assumed usable)."""
    pruning, quant = recipe.pruning, recipe.quantization
    new: Op = op
    notes = []
    sparse24 = False
    if pruning is not None and pruning.pattern == "2:4":
        if support is None:
            sparse24 = True
            new = dataclasses.replace(op, sparse_2_4=True)
        elif support.sparse_2_4:
            candidate = dataclasses.replace(op, sparse_2_4=True)
            if predict(candidate, support.device) < predict(op, support.device):
                sparse24 = True
                new = candidate
                notes.append("2:4 sparse kernel")
            else:
                notes.append("2:4 kernel slower than dense for this shape: dense kernel")
        else:
            notes.append("2:4 zeros kept dense (no sparse tensor cores)")
    if pruning is not None and pruning.pattern == "unstructured":
        if pruning.format == "csr":
            csr = SparseMatmul(op.m, op.n, op.k, 1.0 - pruning.sparsity, op.precision, op.phase)
            if support is None:
                return csr, ""
            if op.precision not in support.csr_precisions:
                notes.append("CSR storage, no measured sparse kernel: dense kernel")
            elif predict(csr, support.device) < predict(op, support.device):
                return csr, "CSR sparse kernel (measured faster)"
            else:
                notes.append("CSR kernel measured slower for this shape: dense kernel")
        else:
            notes.append("unstructured zeros kept dense (no memory or time saved)")
    if quant is None:
        return new, "; ".join(notes)
    if not quant.weight_only:
        target = quant.activations
        if support is None or target in support.low_precision:
            notes.append(f"{target} GEMM")
            return dataclasses.replace(op, precision=target, sparse_2_4=sparse24), "; ".join(notes)
        notes.append(f"no {target} units: weight-only {quant.weights} with dequantization")
    else:
        notes.append(f"weight-only {quant.weights}")
    if sparse24:
        notes.append("2:4 dropped: weight-only kernels are dense")
    wq = WeightOnlyMatmul(op.m, op.n, op.k, quant.weights, quant.group_size, op.precision, op.phase)
    return wq, "; ".join(notes)


def transform_ops(ops: ModelOps, recipe: Recipe, device: str | None) -> tuple[ModelOps, dict[str, str]]:
    """Steps 3-4 on an op list: (the transformed ops, a note per changed layer name). ``device`` None
    transforms for storage only (every format assumed usable)."""
    support = device_support(device) if device is not None else None
    out = []
    notes: dict[str, str] = {}
    for layer in ops.layers:
        if compressible(layer) and isinstance(layer.op, Matmul):
            op, note = _linear(layer.op, layer, recipe, support)
            if note:
                notes[layer.name] = note
            layer = dataclasses.replace(layer, op=op)
        out.append(layer)
    return ModelOps(f"{ops.name} compressed", tuple(out)), notes


def weight_bytes(ops: ModelOps) -> float:
    """Bytes of the stored weights of an op list: low-bit and sparse formats as stored (2:4: values plus
    metadata; CSR: values plus indices; weight-only: values plus group scales), the rest at their precision."""
    total = 0.0
    for layer in ops.layers:
        if not layer.weights and not layer.bias:
            continue
        op = layer.op
        e = BYTES_PER_ELEMENT[op.precision]
        bias = (op.n if layer.bias else 0) * e if isinstance(op, Matmul | WeightOnlyMatmul | SparseMatmul) else 0.0
        if isinstance(op, WeightOnlyMatmul | SparseMatmul):
            matrix = op.weight_bytes if layer.weights else 0.0
        elif isinstance(op, Matmul):
            factor = SPARSE_2_4_WEIGHT_FACTOR if op.sparse_2_4 else 1.0
            matrix = op.k * op.n * e * factor if layer.weights else 0.0
        else:
            matrix, bias = layer.params * e, 0.0
        total += (matrix + bias) * layer.count
    return total


def storage_recipe(recipe: Recipe, device: str | None) -> Recipe:
    """The recipe as it shapes stored weights on ``device``: 2:4 is stored compressed only on devices with
    sparse tensor cores (elsewhere the zeros stay in a dense matrix). ``device`` None: every format usable."""
    if device is None or recipe.pruning is None or recipe.pruning.pattern != "2:4":
        return recipe
    if device_support(device).sparse_2_4:
        return recipe
    return recipe.model_copy(update={"pruning": None})
