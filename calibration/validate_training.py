"""Measure training steps on this CPU with real torch, for tests/test_training_validation.py.

Parts (``--parts``, default all):

- ``optimizer``: torch.optim.AdamW, SGD (momentum 0.9) and Adafactor steps (1 torch thread) on flat tensors
  of 64 K to 38.6 M elements, on 64 to 1,024 small tensors (the per-tensor overhead) and on GPT-2 small's
  parameter set;
- ``single``: GPT-2 small (``dcsim/calibrate/torch_models.py``) trained for a few steps at batch 1, 128
  tokens (zero_grad, forward with cross-entropy, backward, AdamW step; 1 thread): median step and parts;
- ``dp``: two CPU ranks (``torch.multiprocessing`` spawn, gloo over a localhost TCP store, 1 thread each)
  doing data-parallel steps of a 2-layer GPT-2-small-like model (forward, backward, one ``all_reduce``
  per gradient tensor after the backward pass, AdamW step) and gloo ``all_reduce`` of 1 KiB to 256 MiB.

Writes ``calibration/validation/host-cpu-training.json``. Every part waits (up to ``--max-wait-s``) for the
machine's load average to drop below ``--max-load``: the 2 cores are shared with other jobs, which take
time slices and share the L3 cache and memory bandwidth. Training steps are timed in parts with both the
thread's CPU time (``time.thread_time``) and wall time (``time.perf_counter``); steps whose compute took at
most 10% more wall than CPU time are "quiet" and summarised apart. Optimizer cases keep the quietest of
``--passes`` passes. The all-reduce runs in gloo's threads, so only its wall time counts.
Run from the repository root: ``python calibration/validate_training.py`` (5-20 minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from dcsim.calibrate.harness import cpu_name
from dcsim.calibrate.torch_models import build_torch_model, example_inputs
from dcsim.models import TransformerConfig, get_model

OUT = Path(__file__).resolve().parent / "validation" / "host-cpu-training.json"
SINGLE: dict[str, Any] = {"model": "gpt2-small", "batch": 1, "seq_len": 128, "steps": 15, "warmup": 2}
DP: dict[str, Any] = {
    "model": "gpt2-small",
    "layers": 2,
    "batch": 1,
    "seq_len": 128,
    "steps": 9,
    "warmup": 2,
    "world_size": 2,
}
ALLREDUCE_BYTES = [2**k for k in range(10, 29, 2)]  # 1 KiB .. 256 MiB


def _stats(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def q(p: float) -> float:
        pos = p * (len(ordered) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {"median_s": statistics.median(samples), "p10_s": q(0.1), "p90_s": q(0.9), "samples": len(samples)}


def _make_optimizer(name: str, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-4)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    return torch.optim.Adafactor(params, lr=1e-4)


def _transformer(model_id: str) -> TransformerConfig:
    cfg = get_model(model_id)
    if not isinstance(cfg, TransformerConfig):
        raise TypeError(f"{model_id} is not a transformer")
    return cfg


def _gpt2_shapes() -> list[list[int]]:
    model = build_torch_model(_transformer("gpt2-small"))
    return [list(p.shape) for p in model.parameters()]


def _optimizer_cases() -> dict[str, list[list[int]]]:
    return {
        "flat-64k": [[2**16]],
        "flat-1m": [[2**20]],
        "flat-4m": [[2**22]],
        "flat-16m": [[2**24]],
        "matrix-768x3072": [[768, 3072]],
        "matrix-50257x768": [[50257, 768]],
        "many-64x1k": [[1024]] * 64,
        "many-256x1k": [[1024]] * 256,
        "many-1024x1k": [[1024]] * 1024,
        "gpt2-small": _gpt2_shapes(),
    }


def _optimizer_pass(repeats: int) -> list[dict[str, Any]]:
    """One pass over every case: median seconds of one optimizer step (after two warm-up steps that create
    the state), with the 1-minute load average when the case started."""
    out = []
    generator = torch.Generator().manual_seed(0)
    for case, shapes in _optimizer_cases().items():
        params = [torch.randn(*s, generator=generator).requires_grad_() for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator) * 1e-3
        for name in ("adamw", "sgd", "adafactor"):
            load = os.getloadavg()[0]
            opt = _make_optimizer(name, params)
            opt.step()
            opt.step()
            samples = []
            for _ in range(repeats if sum(p.numel() for p in params) < 2**23 else max(3, repeats // 2)):
                begin = time.thread_time()
                opt.step()
                samples.append(time.thread_time() - begin)
            out.append({"optimizer": name, "case": case, "shapes": shapes, "load_average": load, **_stats(samples)})
            print(f"  {name:9s} {case:18s} {out[-1]['median_s'] * 1e3:9.3f} ms (load {load:.2f})", flush=True)
            del opt
    return out


def measure_optimizers(repeats: int, passes: int) -> list[dict[str, Any]]:
    """``passes`` passes over the cases (minutes apart); each case keeps its quietest pass (the lowest
    median: other jobs on this shared machine only ever slow a pass down), and lists every pass's median."""
    runs = [_optimizer_pass(repeats) for _ in range(passes)]
    out = []
    for index, first in enumerate(runs[0]):
        rows = [run[index] for run in runs]
        best = min(rows, key=lambda row: row["median_s"])
        out.append({**best, "pass_medians_s": [row["median_s"] for row in rows]})
        assert best["case"] == first["case"] and best["optimizer"] == first["optimizer"]
    return out


def _train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    ids: torch.Tensor,
    targets: torch.Tensor,
    between: Callable[[], None] | None = None,
) -> dict[str, dict[str, float]]:
    """One step, timed in parts by both clocks (``cpu``: this thread's CPU time, ``wall``); ``between``
    runs after the backward pass (the data-parallel gradient all-reduce)."""
    marks = []

    def mark() -> None:
        marks.append((time.thread_time(), time.perf_counter()))

    mark()
    model.zero_grad(set_to_none=True)
    logits = model(ids)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
    mark()
    loss.backward()
    mark()
    if between is not None:
        between()
    mark()
    opt.step()
    mark()
    out = {}
    for index, clock in enumerate(("cpu", "wall")):
        t = [m[index] for m in marks]
        out[clock] = {
            "step_s": t[4] - t[0],
            "fwd_s": t[1] - t[0],
            "bwd_s": t[2] - t[1],
            "allreduce_s": t[3] - t[2],
            "optimizer_s": t[4] - t[3],
        }
    return out


def _quiet(step: dict[str, dict[str, float]]) -> bool:
    """A step during which this process kept its core: its compute parts took at most 10% more wall time
    than CPU time (on this 2-core machine other jobs otherwise take slices of it and share the L3 cache
    and memory bandwidth, which inflates even the CPU time of memory-bound kernels)."""
    keys = ("fwd_s", "bwd_s", "optimizer_s")
    return sum(step["wall"][k] for k in keys) <= 1.1 * sum(step["cpu"][k] for k in keys)


def _summarise(steps: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Median and spread of every part under both clocks, over all steps and over the quiet ones."""

    def summary(chosen: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
        if not chosen:
            return {}
        return {
            clock: {key: _stats([s[clock][key] for s in chosen]) for key in chosen[0][clock]}
            for clock in ("cpu", "wall")
        }

    quiet = [s for s in steps if _quiet(s)]
    return {**summary(steps), "quiet": summary(quiet), "quiet_steps": len(quiet), "steps": steps}


def measure_single() -> dict[str, Any]:
    """GPT-2 small training steps in this process (1 thread)."""
    cfg = _transformer(str(SINGLE["model"]))
    model = build_torch_model(cfg)
    ids, targets = example_inputs(cfg, int(SINGLE["batch"]), int(SINGLE["seq_len"]), torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(int(SINGLE["warmup"])):
        _train_step(model, opt, ids, targets)
    steps = []
    for _ in range(int(SINGLE["steps"])):
        steps.append(_train_step(model, opt, ids, targets))
        cpu, wall = steps[-1]["cpu"]["step_s"], steps[-1]["wall"]["step_s"]
        print(f"  step {cpu:.3f} s (cpu), {wall:.3f} s (wall)", flush=True)
    return {
        **SINGLE,
        "optimizer": "adamw",
        "params": sum(p.numel() for p in model.parameters()),
        "tensors": len(list(model.parameters())),
        "parts": _summarise(steps),
    }


def _dp_config() -> TransformerConfig:
    base = _transformer(str(DP["model"]))
    return dataclasses.replace(base, name=f"{base.name}-{DP['layers']}l", layers=int(DP["layers"]))


def _dp_worker(rank: int, world: int, port: int, queue: Any) -> None:
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, world, is_master=rank == 0)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    try:
        cfg = _dp_config()
        torch.manual_seed(0)  # the same initial weights on both ranks
        model = build_torch_model(cfg)
        ids, targets = example_inputs(cfg, int(DP["batch"]), int(DP["seq_len"]), torch.device("cpu"))
        ids = (ids + rank) % cfg.vocab  # each rank its own data
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        params = list(model.parameters())

        def allreduce() -> None:
            for p in params:  # gradients summed (AdamW is invariant to their scale, up to eps)
                assert p.grad is not None
                dist.all_reduce(p.grad)

        steps = []
        for index in range(int(DP["warmup"]) + int(DP["steps"])):
            dist.barrier()
            parts = _train_step(model, opt, ids, targets, allreduce)
            if index >= int(DP["warmup"]):
                steps.append(parts)
        sizes = []
        for nbytes in ALLREDUCE_BYTES:
            buf = torch.ones(nbytes // 4)
            repeats = 30 if nbytes <= 2**20 else (10 if nbytes <= 2**24 else 5)
            dist.all_reduce(buf)
            samples = []
            for _ in range(repeats):
                dist.barrier()
                begin = time.perf_counter()
                dist.all_reduce(buf)
                samples.append(time.perf_counter() - begin)
            sizes.append({"bytes": nbytes, **_stats(samples)})
            del buf
        queue.put(
            {
                "rank": rank,
                "params": sum(p.numel() for p in params),
                "tensors": len(params),
                "tensor_bytes": [p.numel() * p.element_size() for p in params],
                "parts": _summarise(steps),
                "allreduce": sizes,
            }
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alpha_beta(points: list[dict[str, Any]]) -> tuple[float, float]:
    """Least-squares fit of t = a + b * bytes weighted by 1/t (relative errors): (a seconds, b s/byte)."""
    xs = [float(p["bytes"]) for p in points]
    ts = [float(p["median_s"]) for p in points]
    ws = [1.0 / t**2 for t in ts]
    sw = sum(ws)
    sx = sum(w * x for w, x in zip(ws, xs, strict=True))
    sy = sum(w * t for w, t in zip(ws, ts, strict=True))
    sxx = sum(w * x * x for w, x in zip(ws, xs, strict=True))
    sxy = sum(w * x * t for w, x, t in zip(ws, xs, ts, strict=True))
    b = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    a = (sy - b * sx) / sw
    return a, b


def measure_dp() -> dict[str, Any]:
    """Two gloo ranks: data-parallel steps and all-reduce sizes (rank 0's figures, rank 1's step too)."""
    world = int(DP["world_size"])
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = _free_port()
    procs = [ctx.Process(target=_dp_worker, args=(rank, world, port, queue)) for rank in range(world)]
    for proc in procs:
        proc.start()
    results = sorted((queue.get() for _ in procs), key=lambda r: r["rank"])
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise RuntimeError(f"data-parallel rank exited with {proc.exitcode}")
    rank0 = results[0]
    a, b = alpha_beta(rank0["allreduce"])
    n = world
    return {
        **DP,
        "optimizer": "adamw",
        "params": rank0["params"],
        "tensors": rank0["tensors"],
        "tensor_bytes": rank0["tensor_bytes"],
        "parts": rank0["parts"],
        "parts_rank1": results[1]["parts"],
        "allreduce": rank0["allreduce"],
        "allreduce_fit": {
            "form": "t = 2(n-1) * latency + 2(n-1)/n * bytes / bandwidth (ring), n = 2",
            "intercept_s": a,
            "slope_s_per_byte": b,
            "latency_s": a / (2 * (n - 1)),
            "bandwidth_gb_per_s": 2 * (n - 1) / n / b / 1e9,
        },
    }


def _wait_for_quiet(max_load: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) until the 1-minute load average is below ``max_load``; return it."""
    deadline = time.monotonic() + max_wait_s
    load = os.getloadavg()[0]
    while load >= max_load and time.monotonic() < deadline:
        print(f"  load average {load:.2f} >= {max_load}: waiting", flush=True)
        time.sleep(15)
        load = os.getloadavg()[0]
    return load


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _load(before: float) -> dict[str, float]:
    """The 1-minute load average of this 2-core machine before and after a part (others share it)."""
    return {"load_average_before": round(before, 2), "load_average_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="optimizer,single,dp", help="comma-separated: optimizer,single,dp")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--repeats", type=int, default=9, help="optimizer steps timed per case")
    parser.add_argument("--passes", type=int, default=3, help="passes over the optimizer cases (quietest kept)")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for a 1-minute load average below this")
    parser.add_argument("--max-wait-s", type=float, default=300.0, help="longest wait for it before each part")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    data.update(
        {
            "device_id": "host-cpu",
            "machine": f"{cpu_name()} ({os.cpu_count()} cores, shared with other jobs)",
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        }
    )
    parts = args.parts.split(",")
    if "optimizer" in parts:
        print("optimizer steps", flush=True)
        load = _wait_for_quiet(args.max_load, args.max_wait_s)
        cases = measure_optimizers(args.repeats, args.passes)
        data["optimizer_steps"] = {"date": _now(), "clock": "thread_cpu_time", **_load(load), "cases": cases}
    if "single" in parts:
        print("single-process GPT-2 small training steps", flush=True)
        load = _wait_for_quiet(args.max_load, args.max_wait_s)
        single = measure_single()
        data["single"] = {"date": _now(), **_load(load), **single}
    if "dp" in parts:
        print("two-rank data-parallel steps and all-reduce", flush=True)
        load = _wait_for_quiet(args.max_load, args.max_wait_s)
        dp = measure_dp()
        data["dp"] = {"date": _now(), **_load(load), **dp}
    data["notes"] = [
        "the machine has 2 cores shared with other jobs: medians of repeats; the p10-p90 spread shows the noise",
        "cpu: the thread's CPU time (leaves out time the OS gave to other processes, not their memory traffic);"
        " wall: elapsed time, which on this shared machine includes other jobs' time slices",
        "the all-reduce runs in gloo's own threads: only its wall time means anything",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
