"""Measure compressed layers and models on this CPU with real torch, for tests/test_compression_validation.py.

Every case times a baseline and a compressed variant (1 torch thread, thread CPU time, median of several
samples, the quieter of ``--passes`` passes) and records dcsim's prediction of the same pair on ``host-cpu``
(from the calibration profile) as data the test can recompute without torch:

- ``int8_linear``: ``nn.Linear`` vs ``torch.ao.quantization.quantize_dynamic`` (int8 weights, activations
  quantized on the fly): time ratio and serialized size ratio; dcsim: ``Matmul`` fp32 vs ``Matmul`` int8.
- ``int8_model``: GPT-2 small and BERT-base (``dcsim/calibrate/torch_models.py``), the Linear layers of the
  transformer blocks quantized dynamically (the embeddings and output head stay fp32, as dcsim's recipe does);
  dcsim: ``apply_recipe(model, W8A8)`` op lists.
- ``structured``: Linear layers with half the output channels (MLP channel pruning) and GPT-2 small with half
  its MLP channels; dcsim: the smaller ops / ``pruning: {pattern: structured, target: channels}``.
- ``dense_zeros``: a Linear whose weight has 50% / 90% zeros, kept dense (no speedup expected or predicted).
- ``csr``: the same weights in ``torch.sparse`` CSR at 50% to 98% sparsity; dcsim: ``SparseMatmul``.
- ``distilled``: GPT-2 small and BERT-base against 6-layer students of the same width; dcsim: the
  ``distillation`` recipe's student.

Writes ``calibration/validation/host-cpu-compression.json``. Run from the repository root:
``python calibration/validate_compression.py`` (a few minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import json
import platform
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dcsim.calibrate.timing import TimingSettings, measure
from dcsim.calibrate.torch_models import build_torch_model, example_inputs
from dcsim.compression import apply_recipe
from dcsim.compute import predict
from dcsim.compute.ops import Matmul, Op, SparseMatmul
from dcsim.models import TransformerConfig, get_model

OUT = Path(__file__).resolve().parent / "validation" / "host-cpu-compression.json"
DEVICE = "host-cpu"
LINEAR_SHAPES = (
    (1, 768, 768),
    (16, 768, 3072),
    (128, 768, 3072),
    (128, 3072, 768),
    (512, 1024, 4096),
    (64, 4096, 4096),
)
SPARSITIES = (0.5, 0.7, 0.9, 0.98)
W8A8 = {"quantization": {"weights": "int8", "activations": "int8", "method": "rtn"}}
SETTINGS = TimingSettings(sample_s=0.02, warmup_s=0.05, min_samples=7, max_samples=21, rel_tol=0.01, budget_s=6.0)
CPU = torch.device("cpu")


def _time(fn: Callable[[], object], passes: int) -> float:
    with torch.no_grad():
        return min(measure(fn, CPU, SETTINGS).median_s for _ in range(passes))


def _size(module: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def _quantize(module: nn.Module, names: set[str] | None = None) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec: Any = names if names is not None else {nn.Linear}
        return torch.ao.quantization.quantize_dynamic(module, spec, torch.qint8)


def _ops_ratio(base: list[Op], compressed: list[Op]) -> float:
    return sum(predict(op, DEVICE) for op in compressed) / sum(predict(op, DEVICE) for op in base)


def _row(case: str, name: str, measured: tuple[float, float], dcsim: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base_s, compressed_s = measured
    return {
        "case": case,
        "name": name,
        "measured_base_s": base_s,
        "measured_compressed_s": compressed_s,
        "measured_ratio": compressed_s / base_s,
        "dcsim": dcsim,
        **extra,
    }


def _summary(row: dict[str, Any]) -> str:
    return f"measured {row['measured_ratio']:.3f}, dcsim {row['dcsim']['predicted_ratio']:.3f}"


def _ops_spec(base: list[Op], compressed: list[Op]) -> dict[str, Any]:
    return {
        "kind": "ops",
        "base": [op.to_dict() for op in base],
        "compressed": [op.to_dict() for op in compressed],
        "predicted_ratio": _ops_ratio(base, compressed),
    }


def _model_spec(model: str | dict[str, Any], recipe: dict[str, Any], batch: int, seq: int) -> dict[str, Any]:
    cfg = get_model(model) if isinstance(model, str) else TransformerConfig(**model)
    base = apply_recipe(cfg, None, precision="fp32")
    cm = apply_recipe(cfg, recipe, precision="fp32")
    base_ops = base.step_ops(batch, seq)
    ops, _ = cm.transform_ops(cm.step_ops(batch, seq), DEVICE)
    ratio = ops.time(lambda op: predict(op, DEVICE)) / base_ops.time(lambda op: predict(op, DEVICE))
    size = cm.weight_bytes(DEVICE) / base.weight_bytes(DEVICE)
    return {
        "kind": "model",
        "model": model,
        "recipe": recipe,
        "batch": batch,
        "seq_len": seq,
        "predicted_ratio": ratio,
        "predicted_size_ratio": size,
    }


def int8_linear(passes: int) -> list[dict[str, Any]]:
    """Dynamic int8 quantized Linear layers against fp32."""
    rows = []
    for m, k, n in LINEAR_SHAPES:
        layer = nn.Linear(k, n)
        quantized = _quantize(nn.Sequential(layer))
        x = torch.randn(m, k)
        measured = (_time(partial(layer, x), passes), _time(partial(quantized, x), passes))
        spec = _ops_spec([Matmul(m, n, k)], [Matmul(m, n, k, precision="int8")])
        size = _size(quantized) / _size(nn.Sequential(layer))
        predicted_size = (k * n + 4 * n) / (4 * k * n + 4 * n)  # int8 weights, fp32 bias
        rows.append(
            _row(
                "int8_linear",
                f"m{m} k{k} n{n}",
                measured,
                spec,
                measured_size_ratio=size,
                predicted_size_ratio=predicted_size,
            )
        )
        print(f"  int8 linear m{m} k{k} n{n}: {_summary(rows[-1])}")
    return rows


def _block_linears(model: nn.Module) -> set[str]:
    return {
        name for name, module in model.named_modules() if name.startswith("blocks.") and isinstance(module, nn.Linear)
    }


def _model_pair(base: nn.Module, other: nn.Module, ids: torch.Tensor, passes: int) -> tuple[float, float]:
    return _time(partial(base, ids), passes), _time(partial(other, ids), passes)


def int8_model(passes: int) -> list[dict[str, Any]]:
    """GPT-2 small and BERT-base with their blocks' Linear layers quantized dynamically."""
    rows = []
    for model_id, batch, seq in (("gpt2-small", 1, 128), ("bert-base", 1, 128), ("bert-base", 4, 128)):
        cfg = get_model(model_id)
        assert isinstance(cfg, TransformerConfig)
        model = build_torch_model(cfg).eval()
        quantized = _quantize(model, _block_linears(model))  # a quantized copy with the same weights
        ids, _ = example_inputs(cfg, batch, seq, CPU)
        measured = _model_pair(model, quantized, ids, passes)
        spec = _model_spec(model_id, W8A8, batch, seq)
        size = _size(quantized) / _size(model)
        rows.append(_row("int8_model", f"{model_id} b{batch} s{seq}", measured, spec, measured_size_ratio=size))
        print(
            f"  int8 {model_id} b{batch}: {_summary(rows[-1])}; size {size:.3f} vs {spec['predicted_size_ratio']:.3f}"
        )
    return rows


def structured(passes: int) -> list[dict[str, Any]]:
    """Half the output channels of a Linear; GPT-2 small with half its MLP channels."""
    rows = []
    for m, k, n in ((128, 768, 3072), (128, 3072, 768), (512, 1024, 4096)):
        full, half = nn.Linear(k, n), nn.Linear(k, n // 2)
        x = torch.randn(m, k)
        measured = (_time(partial(full, x), passes), _time(partial(half, x), passes))
        spec = _ops_spec([Matmul(m, n, k)], [Matmul(m, n // 2, k)])
        rows.append(_row("structured", f"linear m{m} k{k} n{n}->n{n // 2}", measured, spec))
    recipe = {"pruning": {"sparsity": 0.5, "pattern": "structured", "target": "channels"}}
    cfg = get_model("gpt2-small")
    assert isinstance(cfg, TransformerConfig)
    pruned = dataclasses.replace(cfg, ffn_hidden=cfg.ffn_hidden // 2)
    ids, _ = example_inputs(cfg, 1, 128, CPU)
    measured = _model_pair(build_torch_model(cfg).eval(), build_torch_model(pruned).eval(), ids, passes)
    spec = _model_spec("gpt2-small", recipe, 1, 128)
    rows.append(_row("structured", "gpt2-small b1 s128 MLP channels 50%", measured, spec))
    for row in rows:
        print(f"  structured {row['name']}: {_summary(row)}")
    return rows


def _sparse_weight(n: int, k: int, sparsity: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(n, k, generator=generator)
    weight[torch.rand(n, k, generator=generator) < sparsity] = 0.0
    return weight


def sparsity(passes: int) -> list[dict[str, Any]]:
    """Dense-with-zeros and torch.sparse CSR Linear layers against the dense layer."""
    rows = []
    for m, k, n in ((1, 768, 3072), (16, 768, 3072), (128, 768, 3072), (128, 3072, 768), (64, 4096, 4096)):
        dense = torch.randn(n, k)
        x = torch.randn(m, k)
        base_s = _time(partial(F.linear, x, dense), passes)
        for fraction in SPARSITIES:
            weight = _sparse_weight(n, k, fraction)
            if fraction in (0.5, 0.9):
                zeros_s = _time(partial(F.linear, x, weight), passes)
                spec = _ops_spec([Matmul(m, n, k)], [Matmul(m, n, k)])  # dcsim: dense zeros change nothing
                rows.append(_row("dense_zeros", f"m{m} k{k} n{n} {fraction:.0%} zeros", (base_s, zeros_s), spec))
            csr = weight.to_sparse_csr()
            csr_s = _time(partial(F.linear, x, csr), passes)
            op = SparseMatmul(m, n, k, 1.0 - fraction)
            stored = csr.values().nbytes + csr.crow_indices().nbytes + csr.col_indices().nbytes
            rows.append(
                _row(
                    "csr",
                    f"m{m} k{k} n{n} {fraction:.0%} sparse",
                    (base_s, csr_s),
                    _ops_spec([Matmul(m, n, k)], [op]),
                    measured_size_ratio=stored / dense.nbytes,
                    predicted_size_ratio=op.weight_bytes / (4.0 * n * k),
                )
            )
    for row in rows:
        print(f"  {row['case']} {row['name']}: {_summary(row)}")
    return rows


def distilled(passes: int) -> list[dict[str, Any]]:
    """6-layer students of GPT-2 small and BERT-base (same width) against their 12-layer teachers."""
    rows = []
    for model_id in ("gpt2-small", "bert-base"):
        cfg = get_model(model_id)
        assert isinstance(cfg, TransformerConfig)
        student = dataclasses.replace(cfg, name=f"{model_id}-6l", layers=6)
        inline = {k: v for k, v in dataclasses.asdict(student).items() if k != "source"}
        ids, _ = example_inputs(cfg, 1, 128, CPU)
        measured = _model_pair(build_torch_model(cfg).eval(), build_torch_model(student).eval(), ids, passes)
        recipe = {
            "distillation": {
                "student": {
                    **{k: v for k, v in inline.items() if k not in ("name", "max_seq_len")},
                    "seq_len": cfg.max_seq_len,
                }
            }
        }
        spec = _model_spec(model_id, recipe, 1, 128)
        rows.append(_row("distilled", f"{model_id} 12 -> 6 layers b1 s128", measured, spec))
        print(f"  distilled {model_id}: measured {rows[-1]['measured_ratio']:.3f}, dcsim {spec['predicted_ratio']:.3f}")
    return rows


PARTS: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "int8_linear": int8_linear,
    "int8_model": int8_model,
    "structured": structured,
    "sparsity": sparsity,
    "distilled": distilled,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts (default all)")
    parser.add_argument("--passes", type=int, default=2, help="timing passes per case; the quieter is kept")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    rows = [r for r in previous.get("rows", []) if r["case"] not in args.parts.split(",")]
    for part in args.parts.split(","):
        print(f"{part}:")
        produced = PARTS[part](args.passes)
        names = {"sparsity": ("dense_zeros", "csr")}.get(part, (part,))
        rows = [r for r in rows if r["case"] not in names] + produced
    result = {
        "device_id": DEVICE,
        "machine": platform.processor() or platform.machine(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "clock": "thread_cpu_time, median of samples, quieter of the passes",
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}: {len(rows)} rows")


if __name__ == "__main__":
    main()
