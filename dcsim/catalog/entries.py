"""Frozen records for catalog entries. Units are in the field names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Bytes in a GiB (2^30): the unit of the catalog's ``memory_gib``.
BYTES_PER_GIB = 2**30
#: Bytes in a GB (10^9): the unit of the derived ``memory_gb`` (and of every other "GB" figure in dcsim).
BYTES_PER_GB = 1e9


@dataclass(frozen=True)
class Accelerator:
    """One accelerator (GPU, TPU or CPU socket) as its vendor documents it.

    ``peak_tflops`` maps a precision (``fp32``, ``tf32``, ``bf16``, ``fp16``, ``fp8``, ``int8``, ``int4``,
    ``fp64``) to dense peak throughput in 10^12 operations per second; a precision missing from it is not
    supported natively. ``idle_w``/``max_w`` are watts (``None`` where no figure is published).
    ``usd_per_hour`` is a reference on-demand price per accelerator-hour (``None`` where unknown).
    ``memory_gib`` is the memory capacity in GiB (2^30 bytes), as the vendor states it (HBM and DRAM are
    sized in binary units: an "80 GB" A100 holds 80 GiB); code reads :attr:`memory_bytes`, and
    :attr:`memory_gb` is the same capacity in 10^9 bytes (the name scenarios and scripts know).
    ``source`` maps each field name to the document its figure comes from. ``based_on`` names the catalog
    accelerator whose calibrated cost-model curves this one inherits, rescaled to its own peaks and bandwidth
    (``None``: its own profile if one exists, else its kind's priors; see ``docs/compute.md``).
    """

    id: str
    name: str
    kind: str
    peak_tflops: Mapping[str, float]
    sparse_2_4: bool
    memory_gib: float
    memory_bandwidth_gb_per_s: float
    interconnect: str
    idle_w: float | None
    max_w: float | None
    usd_per_hour: float | None
    source: Mapping[str, str]
    based_on: str | None = None

    @property
    def memory_bytes(self) -> float:
        """Memory capacity in bytes: the one figure every memory check reads."""
        return self.memory_gib * BYTES_PER_GIB

    @property
    def memory_gb(self) -> float:
        """Memory capacity in GB (10^9 bytes), derived from :attr:`memory_bytes` (80 GiB is 85.9 GB)."""
        return self.memory_bytes / BYTES_PER_GB

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision`` (raises KeyError naming the supported ones)."""
        try:
            return self.peak_tflops[precision] * 1e12
        except KeyError:
            supported = ", ".join(sorted(self.peak_tflops))
            raise KeyError(f"{self.id} has no {precision} units (supported: {supported})") from None


@dataclass(frozen=True)
class Interconnect:
    """An intra-node interconnect: per-accelerator, per-direction bandwidth in GB/s (10^9 bytes/s).
    ``nvls`` is True where the NVSwitch reduces in the switch (NVLink SHARP; None: not stated, taken as no)."""

    id: str
    name: str
    topology: str
    bandwidth_gb_per_s: float
    links_per_accelerator: int
    latency_us: float
    source: Mapping[str, str]
    nvls: bool | None = None
