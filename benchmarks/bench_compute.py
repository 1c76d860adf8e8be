"""Op predictions per second: uncached, cached (the simulation hot path) and vectorised.

    python benchmarks/bench_compute.py [--device h100-sxm] [--ops 20000]

The target is at least 200,000 op predictions per second on the hot path.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dcsim.compute import Attention, CostModel, Op
from dcsim.models import TransformerConfig, get_model


def workload(count: int) -> list[Op]:
    """A serving-like mix: model ops at many batch sizes and decode attention over growing KV caches."""
    ops: list[Op] = []
    gpt3 = TransformerConfig("gpt3-6.7b", 32, 4096, 32, 16384, 50257, 2048)
    batch = 1
    while len(ops) < count:
        for config in (gpt3, get_model("gpt2-small")):
            assert isinstance(config, TransformerConfig)
            ops += [op for op, _ in config.ops(batch, 1, precision="bf16").ops("fwd")]
            ops.append(Attention(batch, config.heads, 1, 16 * batch + 1, config.head_dim, False, None, "bf16"))
        batch += 1
    return ops[:count]


def rate(fn, calls: int) -> float:
    """Calls per second of ``fn`` (best of three runs)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return calls / best


def main() -> None:
    """Print predictions per second."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="h100-sxm")
    parser.add_argument("--ops", type=int, default=20000)
    args = parser.parse_args()
    ops = workload(args.ops)
    distinct = len(set(ops))
    model = CostModel()
    model.device(args.device)  # load and fit the profile once, outside the timing
    start = time.perf_counter()
    for op in ops:
        model.predict(op, args.device)
    cold = len(ops) / (time.perf_counter() - start)
    hot = rate(lambda: [model.predict(op, args.device) for op in ops], len(ops))
    vector = rate(lambda: model.predict_many(ops, args.device), len(ops))
    total = float(np.sum(model.predict_many(ops, args.device)))
    print(f"device {args.device} ({model.prediction_basis(args.device)}), {len(ops)} ops, {distinct} distinct")
    print(f"first pass (fits cached, predictions not): {cold:12,.0f} predictions/s")
    print(f"cached predict(op, device):                {hot:12,.0f} predictions/s  (target >= 200,000)")
    print(f"predict_many (vectorised, uncached):       {vector:12,.0f} predictions/s")
    print(f"(sum of predicted times: {total:.3f} s)")


if __name__ == "__main__":
    main()
