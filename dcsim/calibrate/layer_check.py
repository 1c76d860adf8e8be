"""Whole decoder layers on rows the import left out: Vidur's per-op timings summed, against dcsim.

:mod:`dcsim.calibrate.vidur` imports the rows of Vidur's ``mlp.csv`` files at some token counts only
(:func:`~dcsim.calibrate.vidur.kept_tokens`); the rows at the other counts are in no profile and no fit. This
module takes such rows, a decode step (:data:`DECODE_TOKENS` sequences: one new token each) and a prefill
chunk (:data:`PREFILL_TOKENS` tokens), sums the measured medians of the ops of one layer that dcsim imports
(the four GEMMs, the norms, the residual add, the embedding and, for ungated MLPs, the activation) and
compares the sum with dcsim's prediction of the same ops on the same device. For Llama-2-70B at TP 2 on the
A100 the layer also holds its attention core, from the attention file's rows at a batch and cache length not
imported either. What the sums leave out on both sides: the rotary embedding and the fused SiLU-and-multiply
(no dcsim op is that kernel), and the attention cores of the other models (Vidur measured one attention shape).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dcsim.calibrate.vidur import DEVICES, MS, PRECISION, _mlp_ops, kept_cache_tokens, kept_tokens
from dcsim.compute.ops import Attention, Op

#: Token counts of the rows compared: decode steps of this many sequences and prefill chunks of this many
#: tokens (none is imported).
DECODE_TOKENS = (24, 40)
PREFILL_TOKENS = (600, 1000)
#: The attention rows joined to Llama-2-70B's layer at TP 2 on the A100: decode at this many cached tokens,
#: and the prefill chunk after no cached tokens (the chunk is the step's token count rounded to the file's grid).
DECODE_CACHE_TOKENS = 1056
ATTENTION_MODEL = "meta-llama/Llama-2-70b-hf"


@dataclass(frozen=True)
class LayerRow:
    """One layer's measured sum of per-op medians and dcsim's prediction of the same ops, seconds."""

    device_id: str
    model: str
    tp: int
    tokens: int
    phase: str
    with_attention: bool
    measured_s: float
    predicted_s: float

    @property
    def error_pct(self) -> float:
        """(predicted / measured - 1) in percent."""
        return (self.predicted_s / self.measured_s - 1.0) * 100.0


def _attention(frame: pd.DataFrame, phase: str, tokens: int) -> tuple[Op, float] | None:
    """The attention core (op, measured median seconds) of a 70B TP-2 layer for this step, if the file has a
    row that was not imported."""
    if phase == "decode":
        rows = frame[(~frame["is_prefill"]) & (frame["batch_size"] == tokens)]
        rows = rows[rows["kv_cache_size"] == DECODE_CACHE_TOKENS]
        column, cached, q = "attn_decode", DECODE_CACHE_TOKENS, 1
    else:
        sizes = frame.loc[frame["is_prefill"], "prefill_chunk_size"]
        chunk = int(sizes.iloc[int(np.argmin(np.abs(sizes.to_numpy() - tokens)))])
        if kept_cache_tokens(chunk):
            return None
        rows = frame[frame["is_prefill"] & (frame["prefill_chunk_size"] == chunk) & (frame["kv_cache_size"] == 0)]
        column, cached, q = "attn_prefill", 0, chunk
    if rows.empty:
        return None
    record = rows.iloc[0]
    tp = int(record["num_tensor_parallel_workers"])
    heads, kv_heads = int(record["n_q_head"]) // tp, int(record["n_kv_head"]) // tp
    head_dim = int(record["n_embd"]) // int(record["n_q_head"])
    batch = tokens if phase == "decode" else 1
    op = Attention(batch, heads, q, cached + q, head_dim, phase == "prefill", kv_heads, PRECISION)
    return op, float(rows[f"time_stats.{column}.median"].median()) * MS


def layer_rows(root: Path, predict: Callable[[Op, str], float]) -> list[LayerRow]:
    """Every compared layer of every GPU folder under ``root``; ``predict(op, device_id)`` is dcsim's."""
    out: list[LayerRow] = []
    for gpu, device_id in DEVICES.items():
        attention_file = root / "compute" / gpu / "attention_llama_family.csv"
        attention = pd.read_csv(attention_file) if attention_file.is_file() else None
        for path in sorted((root / "compute" / gpu).glob("*/*/mlp.csv")):
            model = path.parent.relative_to(root / "compute" / gpu).as_posix()
            frame = pd.read_csv(path)
            for phase, counts in (("decode", DECODE_TOKENS), ("prefill", PREFILL_TOKENS)):
                for tokens in counts:
                    assert not kept_tokens(tokens)
                    rows = frame[frame["num_tokens"] == tokens]
                    for degree in sorted(set(rows["num_tensor_parallel_workers"].astype(int))):
                        tp = int(degree)
                        group = rows[rows["num_tensor_parallel_workers"] == tp]
                        record = group.iloc[0].to_dict()
                        pairs = [
                            (op, float(group[f"time_stats.{column}.median"].median()) * MS)
                            for column, op in _mlp_ops(record, tokens, tp).items()
                        ]
                        core = None
                        if attention is not None and model == ATTENTION_MODEL and tp == 2:
                            core = _attention(attention, phase, tokens)
                            if core is not None:
                                pairs.append(core)
                        out.append(
                            LayerRow(
                                device_id,
                                model,
                                tp,
                                tokens,
                                phase,
                                core is not None,
                                sum(seconds for _, seconds in pairs),
                                sum(predict(op, device_id) for op, _ in pairs),
                            )
                        )
    return out
