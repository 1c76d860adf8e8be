"""Frozen records for catalog entries. Units are in the field names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Accelerator:
    """One accelerator (GPU, TPU or CPU socket) as its vendor documents it.

    ``peak_tflops`` maps a precision (``fp32``, ``tf32``, ``bf16``, ``fp16``, ``fp8``, ``int8``, ``int4``,
    ``fp64``) to dense peak throughput in 10^12 operations per second; a precision missing from it is not
    supported natively. ``idle_w``/``max_w`` are watts (``None`` where no figure is published).
    ``usd_per_hour`` is a reference on-demand price per accelerator-hour (``None`` where unknown).
    ``source`` maps each field name to the document its figure comes from.
    """

    id: str
    name: str
    kind: str
    peak_tflops: Mapping[str, float]
    sparse_2_4: bool
    memory_gb: float
    memory_bandwidth_gb_per_s: float
    interconnect: str
    idle_w: float | None
    max_w: float | None
    usd_per_hour: float | None
    source: Mapping[str, str]

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision`` (raises KeyError naming the supported ones)."""
        try:
            return self.peak_tflops[precision] * 1e12
        except KeyError:
            supported = ", ".join(sorted(self.peak_tflops))
            raise KeyError(f"{self.id} has no {precision} units (supported: {supported})") from None


@dataclass(frozen=True)
class Interconnect:
    """An intra-node interconnect: per-accelerator, per-direction bandwidth in GB/s (10^9 bytes/s)."""

    id: str
    name: str
    topology: str
    bandwidth_gb_per_s: float
    links_per_accelerator: int
    latency_us: float
    source: Mapping[str, str]
