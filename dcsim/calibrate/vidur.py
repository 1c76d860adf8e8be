"""Import Vidur's published GPU layer timings as calibration profile points (no torch needed).

Vidur (microsoft/vidur, MIT licence) publishes timings of real transformer layers on NVIDIA A100 and H100
GPUs, measured as vLLM / Sarathi-Serve run them, in fp16 (``../shared/data/vidur-profiles/``; its README
gives the units, the provenance and the licence). :func:`import_vidur` turns them into profile points of
the catalog's ``a100-sxm-80gb`` and ``h100-sxm``:

- ``compute/<gpu>/<org>/<model>/mlp.csv``: one row per (model shape, ``num_tokens``, tensor-parallel
  degree), milliseconds, CUDA events around each op of one decoder layer (Vidur's
  ``vidur/profiling/mlp/mlp_impl.py``, vidur 0.0.26 on PyPI). Imported as dcsim ops: ``attn_pre_proj``
  (the QKV GEMM of one TP shard), ``attn_post_proj``, ``mlp_up_proj`` (gate and up together when the MLP is
  gated) and ``mlp_down_proj`` as :class:`~dcsim.compute.ops.Matmul`; ``input_layernorm`` and
  ``post_attention_layernorm`` as RMSNorm (LayerNorm for models without a post-attention norm, which are the
  ones that use it); ``add`` (the residual add after the MLP) as an ``add``; ``emb`` (a vocabulary-parallel
  embedding: ``vocab / tp`` rows) as an :class:`~dcsim.compute.ops.Embedding`; ``mlp_act`` as a ``gelu``
  where the MLP is not gated. Not imported, because no dcsim op is the same kernel: ``attn_rope`` (vLLM's
  fused rotary kernel), the gated ``mlp_act`` (vLLM's fused SiLU-and-multiply), and the ``add`` of models
  without a post-attention norm (it adds three tensors).
- ``compute/a100/attention_llama_family.csv``: FlashAttention kernels (Kineto timing) of a
  Llama-2-70B-shaped layer at TP 2 (32 query and 4 key-value heads of 128 per GPU). Decode rows
  (``batch_size`` sequences of ``kv_cache_size`` cached tokens plus the new one) become
  ``Attention(q_len=1, kv_len=kv_cache_size + 1)``; prefill rows (``prefill_chunk_size`` new tokens after
  ``kv_cache_size`` cached ones) become causal ``Attention(q_len=chunk, kv_len=kv_cache_size + chunk)``.

Each point keeps its source (file, line and column). In the op classes the import covers, imported points supersede
those ``dcsim calibrate`` measured on the device (:func:`imported_profile` says why). Identical op shapes measured
more than once (the norms of every TP degree, models sharing a width) become one point: the median of their medians.
To keep profiles small, only some token counts are imported (:func:`kept_tokens`: every count up to 16, powers of two,
multiples of 256 and a few counts that are not whole GEMM tiles) and decode batches and cache lengths on a similar
grid; the rest of the rows are not imported (:mod:`dcsim.calibrate.layer_check` compares dcsim with them).

Decode GEMMs stream their weights from HBM: every layer reads its own weights once per step. Forward
products of at most :data:`~dcsim.compute.ops.SKINNY_ROWS` rows whose weights fit in the GPU's L2 cache
(:data:`L2_BYTES`) were timed with their weights hot in L2 (the same layer timed again and again), which a
decode step never sees; such points, imported or measured by ``dcsim calibrate``, are left out of the
profile (:func:`hot_decode_gemm`).
"""

from __future__ import annotations

import datetime
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcsim.catalog import load_catalog
from dcsim.compute.ops import SKINNY_ROWS, Attention, Embedding, Matmul, Normalization, Op, Pointwise
from dcsim.compute.profile import Measurement, Profile

#: Vidur's GPU folder -> the catalog id its timings calibrate.
DEVICES: Mapping[str, str] = {"a100": "a100-sxm-80gb", "h100": "h100-sxm"}
#: Device names for the profile header (the GPUs Vidur's profiles were measured on, as catalogued).
DEVICE_NAMES: Mapping[str, str] = {
    "a100-sxm-80gb": "NVIDIA A100-SXM4-80GB (Vidur's a100 profiles)",
    "h100-sxm": "NVIDIA H100 80GB HBM3",
}
#: L2 cache per GPU, bytes: NVIDIA A100 Tensor Core GPU Architecture whitepaper (40 MB L2) and NVIDIA H100
#: Tensor Core GPU Architecture whitepaper (50 MB L2 on H100 SXM5).
L2_BYTES: Mapping[str, float] = {"a100-sxm-80gb": 40 * 2**20, "h100-sxm": 50 * 2**20}
#: The data set's name in a profile's ``imported_from``, with the commits of microsoft/vidur the files are
#: from (../shared/data/vidur-profiles/README.md, provenance table).
DATASET = "Vidur profiling data (microsoft/vidur 7d47513363ec: mlp.csv; e2d00e9afba9: attention)"
SOURCE_PREFIX = "vidur:"
PRECISION = "fp16"
MS = 1e-3
#: Decode batches and cache lengths imported from the attention file (the rest are not imported).
DECODE_BATCHES = frozenset((1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128))


def kept_tokens(count: int) -> bool:
    """True for the token counts whose rows are imported: up to 16, powers of two, multiples of 256 and
    counts 8 or 200 above a multiple of 512 (rows that are not whole GEMM tiles, so the fits see tile
    quantization) up to 4,096; multiples of 4,096 beyond."""
    if count <= SKINNY_ROWS or count & (count - 1) == 0 or count % 4096 == 0:
        return True
    return count <= 4096 and (count % 256 == 0 or count % 512 in (8, 200))


def kept_cache_tokens(count: int) -> bool:
    """True for the cached-token counts of attention rows imported: 0, powers of two, multiples of 512."""
    return count == 0 or count & (count - 1) == 0 or count % 512 == 0


def hot_decode_gemm(op: Op, device_id: str) -> bool:
    """True for a forward product of at most :data:`SKINNY_ROWS` rows whose weights fit in the device's L2: a
    measurement of it repeated on one weight kept it in cache, unlike a decode step (module docstring)."""
    if not isinstance(op, Matmul) or op.phase != "fwd" or op.kind != "matmul" or op.m > SKINNY_ROWS:
        return False
    return op.n * op.k * op.element_bytes <= L2_BYTES.get(device_id, 0.0)


@dataclass(frozen=True)
class _Row:
    """One timing read from a file: the op, its median/min/max seconds and where it was read."""

    op: Op
    median_s: float
    min_s: float
    max_s: float
    source: str


def _row(record: Mapping[Any, Any], column: str, op: Op, source: str) -> _Row | None:
    """The timing of ``column`` in one CSV record (milliseconds read as seconds); None where none was taken."""
    median = float(record[f"time_stats.{column}.median"]) * MS
    if not median > 0:
        return None
    low = float(record[f"time_stats.{column}.min"]) * MS
    high = float(record[f"time_stats.{column}.max"]) * MS
    return _Row(op, median, low, high, f"{SOURCE_PREFIX}{source}:{column}")


def _mlp_ops(row: Mapping[Any, Any], tokens: int, tp: int) -> dict[str, Op]:
    """The dcsim ops of one mlp.csv row (module docstring), by Vidur's column name."""
    e, heads, kv_heads = int(row["n_embd"]), int(row["n_head"]), int(row["n_kv_head"])
    ffn, vocab = int(row["n_expanded_embd"]), int(row["vocab_size"])
    gated = str(row["use_gated_mlp"]).lower() == "true"
    head_dim = e // heads
    p = PRECISION
    ops: dict[str, Op] = {
        "attn_pre_proj": Matmul(tokens, (heads + 2 * kv_heads) * head_dim // tp, e, precision=p),
        "attn_post_proj": Matmul(tokens, e, heads * head_dim // tp, precision=p),
        "mlp_up_proj": Matmul(tokens, (2 if gated else 1) * ffn // tp, e, precision=p),
        "mlp_down_proj": Matmul(tokens, e, ffn // tp, precision=p),
        "emb": Embedding(tokens, vocab // tp, e, p),
    }
    post_norm = not math.isnan(float(row.get("time_stats.post_attention_layernorm.median", math.nan)))
    if post_norm:  # Llama family: RMSNorm before attention and before the MLP, one residual add timed
        ops["input_layernorm"] = Normalization("rmsnorm", tokens, e, p)
        ops["post_attention_layernorm"] = Normalization("rmsnorm", tokens, e, p)
        ops["add"] = Pointwise("add", tokens * e, p)
    else:  # parallel attention and MLP (phi-2): LayerNorm
        ops["input_layernorm"] = Normalization("layernorm", tokens, e, p)
    if not gated:
        ops["mlp_act"] = Pointwise("gelu", tokens * ffn // tp, p)
    return ops


def mlp_rows(path: Path, name: str) -> list[_Row]:
    """The imported timings of one ``mlp.csv`` (``name``: its path under the data folder, for sources)."""
    frame = pd.read_csv(path)
    frame = frame[frame["num_tokens"].map(lambda t: kept_tokens(int(t)))]
    rows: list[_Row] = []
    records = frame.to_dict("records")
    lines = [int(i) + 2 for i in frame.index]  # header is line 1
    for record, line in zip(records, lines, strict=True):
        tokens, tp = int(record["num_tokens"]), int(record["num_tensor_parallel_workers"])
        for column, op in _mlp_ops(record, tokens, tp).items():
            row = _row(record, column, op, f"{name}:{line}")
            if row is not None:
                rows.append(row)
    return rows


def attention_rows(path: Path, name: str) -> list[_Row]:
    """The imported timings of the attention file (module docstring)."""
    frame = pd.read_csv(path)
    rows: list[_Row] = []
    for index, record in zip(frame.index, frame.to_dict("records"), strict=True):
        tp = int(record["num_tensor_parallel_workers"])
        heads, kv_heads = int(record["n_q_head"]) // tp, int(record["n_kv_head"]) // tp
        head_dim = int(record["n_embd"]) // int(record["n_q_head"])
        cached = int(record["kv_cache_size"])
        if not kept_cache_tokens(cached):
            continue
        if str(record["is_prefill"]).lower() == "true":
            chunk = int(record["prefill_chunk_size"])
            if not kept_cache_tokens(chunk):
                continue
            op: Op = Attention(1, heads, chunk, cached + chunk, head_dim, True, kv_heads, PRECISION)
            column = "attn_prefill"
        else:
            batch = int(record["batch_size"])
            if batch not in DECODE_BATCHES:
                continue
            op = Attention(batch, heads, 1, cached + 1, head_dim, False, kv_heads, PRECISION)
            column = "attn_decode"
        row = _row(record, column, op, f"{name}:{int(index) + 2}")
        if row is not None:
            rows.append(row)
    return rows


def read_device(root: Path, gpu: str) -> list[_Row]:
    """Every imported timing of one of Vidur's GPU folders (``a100``, ``h100``) under ``root``."""
    folder = root / "compute" / gpu
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    rows: list[_Row] = []
    for path in sorted(folder.glob("*/*/mlp.csv")):
        rows += mlp_rows(path, path.relative_to(root).as_posix())
    for path in sorted(folder.glob("attention*.csv")):
        rows += attention_rows(path, path.relative_to(root).as_posix())
    return rows


def merge_rows(rows: Iterable[_Row]) -> list[Measurement]:
    """One measurement per distinct op: the median of its rows' medians, the least minimum and the largest
    maximum as p10 and p90 (Vidur publishes min and max, not percentiles), ``samples`` the number of rows."""
    groups: dict[Op, list[_Row]] = defaultdict(list)
    for row in rows:
        groups[row.op].append(row)
    points = []
    for op, group in groups.items():
        source = group[0].source + (f" (and {len(group) - 1} more rows)" if len(group) > 1 else "")
        points.append(
            Measurement(
                op=op,
                median_s=float(np.median([r.median_s for r in group])),
                p10_s=min(r.min_s for r in group),
                p90_s=max(r.max_s for r in group),
                samples=len(group),
                source=source,
            )
        )
    return points


def _peaks(device_id: str) -> tuple[dict[str, float], float]:
    acc = load_catalog().accelerators[device_id]
    return dict(acc.peak_tflops), acc.memory_bandwidth_gb_per_s


def imported_profile(
    root: Path, gpu: str, existing: Profile | None = None, date: str | None = None
) -> tuple[Profile, int]:
    """The profile of Vidur's ``gpu`` folder's device: ``existing``'s own points (those without a Vidur
    source; an earlier import's points are replaced) plus the imported ones, hot decode GEMMs left out
    (:func:`hot_decode_gemm`). Returns it (fits not computed) and the number of points left out as hot.

    In an op class the import covers, the imported points supersede the ones ``dcsim calibrate`` measured:
    it times one op at a time in eager PyTorch, so its small ops measure the host's dispatch (8-50 us per
    call on the H100), and its ``nn.RMSNorm`` is several kernels where vLLM runs one; Vidur times each op
    inside a running layer, with the GPU's queue fed ahead. Classes the import lacks (bf16, backward passes,
    convolutions, ...) keep the points dcsim measured."""
    device_id = DEVICES[gpu]
    imported = merge_rows(read_device(root, gpu))
    covered = {p.op.fit_key for p in imported}
    own = [p for p in existing.points if not p.source.startswith(SOURCE_PREFIX)] if existing else []
    kept = [p for p in own if p.op.fit_key not in covered]
    points = [p for p in (*kept, *imported) if not hot_decode_gemm(p.op, device_id)]
    dropped = len(kept) + len(imported) - len(points)
    stamp = date or datetime.date.today().isoformat()
    note = (
        f"imported {len(imported)} points from {DATASET} on {stamp}; {dropped} forward GEMMs of at most"
        f" {SKINNY_ROWS} rows with weights inside the {L2_BYTES[device_id] / 2**20:.0f} MiB L2 left out"
        " (timed hot; a decode step reads them from HBM)"
    )
    if len(kept) < len(own):
        note += (
            f"; {len(own) - len(kept)} points dcsim calibrate measured in the imported op classes"
            f" ({', '.join(sorted(covered & {p.op.fit_key for p in own}))}) are superseded by the imported ones"
        )
    if existing is not None:
        notes = (*(n for n in existing.notes if not n.startswith("imported ")), note)
        profile = replace(existing, points=tuple(points), notes=notes, imported_from=(DATASET,), fits={}, fit_version=0)
        return profile, dropped
    peaks, bandwidth = _peaks(device_id)
    profile = Profile(
        device_id=device_id,
        device_name=DEVICE_NAMES[device_id],
        backend="cuda",
        torch_version="not recorded (imported)",
        threads=1,
        date=stamp,
        peak_tflops=peaks,
        memory_bandwidth_gb_per_s=bandwidth,
        reference=f"datasheet figures of {device_id}",
        points=tuple(points),
        notes=(note,),
        imported_from=(DATASET,),
    )
    return profile, dropped


def import_vidur(
    root: Path, profile_dir: Path, gpus: Sequence[str] = tuple(DEVICES), date: str | None = None
) -> list[Path]:
    """Import each of ``gpus`` under ``root`` into ``profile_dir/<device-id>.json`` (merged with the
    profile there, if any), fits computed; returns the written paths."""
    from dcsim.compute.calibration import with_fits
    from dcsim.compute.profile import load_profile, save_profile

    written = []
    for gpu in gpus:
        path = profile_dir / f"{DEVICES[gpu]}.json"
        existing = load_profile(path) if path.is_file() else None
        profile, _ = imported_profile(root, gpu, existing, date)
        save_profile(with_fits(profile), path)
        written.append(path)
    return written
