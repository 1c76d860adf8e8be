"""Per-request records as numpy arrays (memory grows with requests, never with tokens or events)."""

from __future__ import annotations

import math
from array import array
from enum import IntEnum

import numpy as np
import pandas as pd

from dcsim.serving.traffic import Traffic


class Status(IntEnum):
    """Where a request is: not yet arrived, queued at a replica, running (prefill or decode), done, dropped."""

    PENDING = 0
    QUEUED = 1
    RUNNING = 2
    COMPLETED = 3
    DROPPED = 4


STATUS_NAMES = {s.value: s.name.lower() for s in Status}


class RequestRecords:
    """Columns for ``n`` requests: traffic, replica, times (NaN until they happen), tokens generated,
    preemptions and status. Times are seconds of simulated time.

    Columns are compact ``array.array`` buffers (fast scalar access from the simulation loop, 8 bytes or
    less per value); :meth:`column` gives a numpy view of one without copying.
    """

    def __init__(self, traffic: Traffic) -> None:
        n = len(traffic)
        nan = array("d", [math.nan]) * n
        self.arrival_s = array("d", traffic.arrival_s.astype(np.float64).tobytes())
        self.prompt_tokens = array("q", traffic.prompt_tokens.astype(np.int64).tobytes())
        self.output_tokens = array("q", traffic.output_tokens.astype(np.int64).tobytes())
        self.replica = array("i", [-1]) * n
        self.first_scheduled_s = array("d", nan)
        self.first_token_s = array("d", nan)
        self.end_s = nan
        self.generated = array("q", bytes(8 * n))
        self.preemptions = array("i", bytes(4 * n))
        self.status = array("b", bytes(n))

    def __len__(self) -> int:
        return len(self.arrival_s)

    def column(self, name: str) -> np.ndarray:
        """A numpy view of column ``name`` (no copy)."""
        buffer = getattr(self, name)
        return np.frombuffer(buffer, dtype=_DTYPES[buffer.typecode])

    def counts(self) -> dict[str, int]:
        """Requests per status name."""
        values = np.bincount(self.column("status"), minlength=len(Status))
        return {STATUS_NAMES[i]: int(values[i]) for i in range(len(Status))}

    def table(self, workload: str) -> pd.DataFrame:
        """One row per request: times, latencies (ms), tokens, replica, preemptions and status."""
        col = self.column
        arrival, first, end = col("arrival_s"), col("first_token_s"), col("end_s")
        output = col("output_tokens")
        decode_tokens = np.maximum(output - 1, 1)
        with np.errstate(invalid="ignore"):
            tpot = np.where(output > 1, (end - first) * 1e3 / decode_tokens, np.nan)
        return pd.DataFrame(
            {
                "workload": workload,
                "request": np.arange(len(self)),
                "arrival_s": arrival,
                "prompt_tokens": col("prompt_tokens"),
                "output_tokens": output,
                "replica": col("replica"),
                "first_token_s": first,
                "end_s": end,
                "queue_ms": (col("first_scheduled_s") - arrival) * 1e3,
                "ttft_ms": (first - arrival) * 1e3,
                "tpot_ms": tpot,
                "e2e_ms": (end - arrival) * 1e3,
                "generated_tokens": col("generated"),
                "preemptions": col("preemptions"),
                "status": pd.Categorical.from_codes(
                    col("status").astype(np.int64), pd.Index([STATUS_NAMES[i] for i in range(len(Status))])
                ),
            }
        )


_DTYPES = {"d": np.float64, "q": np.int64, "i": np.int32, "b": np.int8}
