"""Measure GPT-2-small token generation on this CPU (real torch, KV cache) for dcsim's serving check.

A plain-torch GPT-2-small decoder (random weights: timing does not depend on their values) with a
preallocated KV cache generates tokens for a few prompts at batch 1 and batch 8, on one torch thread
(as the ``host-cpu`` calibration profile was measured). For each case it records the time to first token
(one prefill forward over the prompts, logits of each sequence's last position only) and the time of each
decode step (one token per sequence against the cache), as medians over repeats, timed with the calling
thread's CPU time so that other processes on a shared machine do not inflate them.

Each run also times two shapes of the host-cpu profile before and after the cases, as the calibration times
them: a hot 512 x 3072 by 3072 x 768 GEMM (compute speed) and a cold one-row 2304 x 2304 GEMM (the speed
weights stream from memory). On a shared machine both drift, each on its own, by 15-35% over hours; with
``--merge`` the record keeps, per case and metric, the quieter of its runs (other processes only ever slow a
run down), so that, like the profile's points, its figures approach the machine's own speed.

Writes ``calibration/validation/host-cpu-serving.json``; ``tests/test_serving_validation.py`` compares it
with dcsim's prediction from the host-cpu profile. Not imported by dcsim or the tests (needs torch).

    PYTHONPATH=. python calibration/validate_serving.py [--repeats 5] [--decode-steps 24] [--merge]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dcsim.calibrate.harness import RunConfig, measure_op
from dcsim.compute.ops import Matmul
from dcsim.models import TransformerConfig, get_model

OUT = Path(__file__).resolve().parent / "validation" / "host-cpu-serving.json"
#: (batch, prompt tokens) of each case.
CASES = ((1, 128), (1, 512), (8, 128))
#: the cold memory control: a GEMV of the host-cpu profile's grid
CONTROL_GEMV = Matmul(1, 2304, 2304, precision="fp32")


class Block(nn.Module):
    """A pre-norm GPT-2 block whose attention reads and appends to a preallocated KV cache."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.heads = cfg.heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.up = nn.Linear(d, cfg.ffn_hidden)
        self.down = nn.Linear(cfg.ffn_hidden, d)
        self.k_cache = torch.empty(0)
        self.v_cache = torch.empty(0)

    def reset(self, batch: int, max_len: int) -> None:
        """Allocate an empty cache for ``batch`` sequences of up to ``max_len`` tokens."""
        hd = self.qkv.in_features // self.heads
        self.k_cache = torch.zeros(batch, self.heads, max_len, hd)
        self.v_cache = torch.zeros(batch, self.heads, max_len, hd)

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        self.k_cache[:, :, start : start + s] = k
        self.v_cache[:, :, start : start + s] = v
        keys, values = self.k_cache[:, :, : start + s], self.v_cache[:, :, : start + s]
        y = F.scaled_dot_product_attention(q, keys, values, is_causal=s > 1)
        x = x + self.proj(y.transpose(1, 2).reshape(b, s, d))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class Decoder(nn.Module):
    """GPT-2: token and position embeddings, blocks, final LayerNorm, tied output head."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(cfg.vocab, cfg.hidden)
        self.positions = nn.Embedding(cfg.max_seq_len, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.hidden)

    def reset(self, batch: int, max_len: int) -> None:
        for block in self.blocks:
            block.reset(batch, max_len)  # type: ignore[operator]

    def forward(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        """Logits of the last position of each sequence, (batch, vocab)."""
        s = ids.shape[1]
        x = self.tokens(ids) + self.positions(torch.arange(start, start + s))
        for block in self.blocks:
            x = block(x, start)
        return self.norm(x[:, -1]) @ self.tokens.weight.t()


def generate(model: Decoder, batch: int, prompt: int, steps: int) -> tuple[float, list[float]]:
    """(TTFT seconds, seconds of each decode step) for one greedy generation."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.tokens.num_embeddings, (batch, prompt), generator=generator)
    model.reset(batch, prompt + steps + 1)
    clock = time.thread_time
    begin = clock()
    logits = model(ids, 0)
    token = logits.argmax(-1, keepdim=True)
    ttft = clock() - begin
    decode = []
    for step in range(steps):
        begin = clock()
        logits = model(token, prompt + step)
        token = logits.argmax(-1, keepdim=True)
        decode.append(clock() - begin)
    return ttft, decode


def control_gemm_s(repeats: int = 15) -> float:
    """Median seconds of a 512x3072 by 3072x768 fp32 Linear, a shape the host-cpu profile measured: how
    fast this machine runs now compared with the calibration run (other processes share its caches)."""
    x, layer = torch.randn(512, 3072), nn.Linear(3072, 768)
    times = []
    for _ in range(repeats + 3):
        begin = time.thread_time()
        layer(x)
        times.append(time.thread_time() - begin)
    return statistics.median(times[3:])


def control_gemv_cold_s() -> float:
    """Median seconds of a one-row 2304 x 2304 fp32 Linear with its weights cold, timed as ``dcsim calibrate
    --cold`` times it (the host-cpu profile has this shape): how fast this machine streams weights from
    memory now compared with the calibration run (memory speed on a shared machine drifts apart from compute
    speed)."""
    config = RunConfig(cold=True, end_to_end=False)
    return measure_op(CONTROL_GEMV, False, torch.device("cpu"), config)[0].median_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--decode-steps", type=int, default=24)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--merge", action="store_true", help="keep, per case and metric, the quieter of this run and the existing one"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = get_model("gpt2-small")
    assert isinstance(cfg, TransformerConfig)
    model = Decoder(cfg).eval()
    for p in model.parameters():
        nn.init.normal_(p, std=0.02)
    cases = []
    with torch.inference_mode():
        generate(model, 1, 64, 4)  # warm-up: first-call allocations and kernel selection
        control_before = control_gemm_s()
        gemv_before = control_gemv_cold_s()
        for batch, prompt in CASES:
            ttfts, steps = [], []
            for _ in range(args.repeats):
                ttft, decode = generate(model, batch, prompt, args.decode_steps)
                ttfts.append(ttft)
                steps.append(decode)
            per_step = [statistics.median(s[i] for s in steps) for i in range(args.decode_steps)]
            cases.append(
                {
                    "batch": batch,
                    "prompt_tokens": prompt,
                    "decode_steps": args.decode_steps,
                    "ttft_s": statistics.median(ttfts),
                    "ttft_spread_s": [min(ttfts), max(ttfts)],
                    # step i appends token prompt+i+1 to the cache: kv length prompt+i+1
                    "decode_step_s": per_step,
                    "decode_s_per_token": statistics.median(per_step),
                    "ttft_min_s": min(ttfts),
                    "decode_min_s_per_token": statistics.median(
                        min(s[i] for s in steps) for i in range(args.decode_steps)
                    ),
                }
            )
            print(
                f"batch {batch} prompt {prompt}: TTFT {cases[-1]['ttft_s'] * 1e3:.1f} ms, "
                f"decode {cases[-1]['decode_s_per_token'] * 1e3:.2f} ms/step"
            )
        control_after = control_gemm_s()
        gemv_after = control_gemv_cold_s()
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for case in cases:
        case["ttft_run"] = case["decode_run"] = date
    record = {
        "device_id": "host-cpu",
        "model": "gpt2-small",
        "precision": "fp32",
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "clock": "thread_cpu_time",
        "repeats": args.repeats,
        "date": date,
        "notes": (
            "random weights (N(0, 0.02)); greedy decoding; logits of the last position only; "
            "exact (erf) GELU, the form the host-cpu profile measured"
        ),
        # the profile's 512 x 3072 by 3072 x 768 fp32 GEMM (hot) and one-row 2304 x 2304 fp32 GEMM (cold, timed
        # as `dcsim calibrate --cold` times it), before and after the cases of each run
        "runs": [
            {
                "date": date,
                "control_gemm_s": [control_before, control_after],
                "control_gemv_cold_s": [gemv_before, gemv_after],
            }
        ],
        "cases": cases,
    }
    assert all(math.isfinite(c["ttft_s"]) for c in cases)
    if args.merge and args.out.is_file():
        record = merge_records(json.loads(args.out.read_text(encoding="utf-8")), record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


#: fields of a case that come from one run's prefill, and from one run's decode steps
TTFT_FIELDS = ("ttft_s", "ttft_spread_s", "ttft_min_s", "ttft_run")
DECODE_FIELDS = ("decode_step_s", "decode_s_per_token", "decode_min_s_per_token", "decode_run")


def merge_records(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with, per case, the quieter (lower) TTFT and the quieter decode time of the two records, and the
    controls of every run: on a shared machine other processes only ever slow a run down, so more runs bring
    each figure closer to the machine's own speed (as ``dcsim calibrate --merge`` does for the profile)."""
    if (old["device_id"], old["threads"], old["model"]) != (new["device_id"], new["threads"], new["model"]):
        raise SystemExit("--merge: the existing record is of another device, thread count or model")
    previous = {(c["batch"], c["prompt_tokens"], c["decode_steps"]): c for c in old["cases"]}
    cases = []
    for case in new["cases"]:
        prev = previous.get((case["batch"], case["prompt_tokens"], case["decode_steps"]))
        merged = dict(case)
        if prev is not None:
            for metric, fields in (("ttft_s", TTFT_FIELDS), ("decode_s_per_token", DECODE_FIELDS)):
                if prev[metric] < case[metric]:
                    merged.update({field: prev[field] for field in fields})
        cases.append(merged)
    return {**new, "runs": [*old["runs"], *new["runs"]], "cases": cases}


if __name__ == "__main__":
    main()
