"""The roofline time model with size-dependent efficiency, for one class of ops on one device.

For an op of ``F`` FLOPs moving ``B`` bytes, with compute time ``t_c = F / (peak_flops * e_c(F))`` and
memory time ``t_m = B / (bandwidth * e_m(B))``::

    t = overhead_s + max(t_c, t_m)          (combine="max", overlap=False: the classic roofline)
    t = overhead_s + t_c + t_m              (combine="sum": compute and memory phases do not overlap)
    t = max(overhead_s, max(t_c, t_m))      (overlap=True: asynchronous launches hide the device time
                                             of small ops behind the host's dispatch cost, as on GPUs)
    e_c(F) = compute_efficiency * (clip(F, *flops_range) / flops_range[1]) ** flops_exponent
    e_m(B) = memory_efficiency  * (clip(B, *bytes_range) / bytes_range[1]) ** bytes_exponent

``compute_efficiency`` is the fraction of ``peak_flops`` reached by the largest op of the class that was
measured (``flops_range[1]``); ``flops_exponent`` >= 0 says how fast efficiency falls for smaller ops (small
GEMMs are far from peak). ``memory_efficiency`` and ``bytes_exponent`` do the same for bandwidth (a
negative exponent means small working sets run faster than DRAM bandwidth: they stay in cache).
Outside the measured range efficiency is held at its value at the nearest edge, so the model never
extrapolates a trend. Inside it ``t_c`` grows as ``F ** (1 - flops_exponent)`` and ``t_m`` as
``B ** (1 - bytes_exponent)``: both exponents are at most 1 (checked), so time never falls as an op grows
(the fit's grids stop at 0.4 and 0.2). ``overhead_s`` is the fixed per-call cost (kernel launch, framework dispatch);
the fit picks ``combine`` and ``overlap`` per op class, whichever explains the measurements best.
A factor of 0 (``compute_factor`` or ``memory_factor``) switches that side of the roofline off.
Where working sets beyond a cache run slower than the power law says, the bytes beyond
``cache_bytes`` cost ``beyond_cache_factor / bandwidth`` seconds each, added to the time.

On CPUs every allocation larger than the C allocator's mmap threshold gets fresh pages from the OS on
each call; the page faults cost ``fault_s_per_byte`` seconds per such byte, added to the time
(``fault_threshold_bytes``; infinite, i.e. no such term, on GPUs).

Ops whose rows are not a multiple of 8 elements wide (``op.unaligned``: the 50,257-token output head
of GPT-2) run a slower kernel path: their compute factor is ``compute_factor + unaligned_factor``
(0 where the class measured no such op or the fit found no penalty). ``segment_s`` is a fixed cost
per segment (``op.segments``: the channels a BatchNorm or a pool reduces, the rows of a LayerNorm),
added to the time: small kernels that loop over many short segments pay it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RooflineFit:
    """Fitted (or assumed) parameters of the model above. Units: seconds, FLOP/s, bytes/s, FLOPs, bytes.

    ``compute_factor`` = 1 / ``compute_efficiency`` and ``memory_factor`` = 1 / ``memory_efficiency``
    (0 = that term unused). ``basis`` is ``measured`` (fitted to a profile) or ``prior`` (assumed).
    ``points`` is the number of measurements fitted (0 for a prior). ``max_compute_efficiency`` (0 = none)
    caps the predicted FLOP rate at the best the class measured, as a fraction of peak: a power law
    fitted to noisy points must not extrapolate beyond what the device was ever seen to do. ``tile_rows``
    (1 = none) is the row tile of a GPU GEMM class: the FLOPs given to :meth:`time` are then
    ``op.tile_flops(tile_rows)``, the product's rows rounded up to whole tiles.
    """

    peak_flops: float
    bandwidth: float
    overhead_s: float
    compute_factor: float
    memory_factor: float
    flops_exponent: float = 0.0
    bytes_exponent: float = 0.0
    flops_range: tuple[float, float] = (1.0, 1.0)
    bytes_range: tuple[float, float] = (1.0, 1.0)
    combine: str = "max"
    overlap: bool = False
    fault_s_per_byte: float = 0.0
    fault_threshold_bytes: float = math.inf
    unaligned_factor: float = 0.0
    segment_s: float = 0.0
    cache_bytes: float = math.inf
    beyond_cache_factor: float = 0.0
    max_compute_efficiency: float = 0.0
    tile_rows: int = 1
    basis: str = "prior"
    points: int = 0
    note: str = ""

    def __post_init__(self) -> None:
        if self.combine not in ("max", "sum"):
            raise ValueError(f"RooflineFit.combine must be 'max' or 'sum', not {self.combine!r}")
        if self.peak_flops <= 0 or self.bandwidth <= 0:
            raise ValueError("RooflineFit needs positive peak_flops and bandwidth")
        terms = (self.overhead_s, self.compute_factor, self.memory_factor, self.unaligned_factor, self.segment_s)
        if min(*terms, self.fault_s_per_byte, self.beyond_cache_factor, self.max_compute_efficiency) < 0:
            raise ValueError("RooflineFit overhead and factors must be >= 0")
        if self.flops_exponent > 1 or self.bytes_exponent > 1:
            # t_c grows as F ** (1 - flops_exponent) inside the measured range, t_m as B ** (1 - bytes_exponent)
            raise ValueError("RooflineFit exponents must be <= 1: a larger op would take less time")
        if self.compute_factor == 0 and self.memory_factor == 0:
            raise ValueError("RooflineFit needs a compute or a memory term")

    @property
    def compute_efficiency(self) -> float:
        """Fraction of peak FLOP/s at the top of the measured range (inf if the term is unused)."""
        return math.inf if self.compute_factor == 0 else 1.0 / self.compute_factor

    @property
    def memory_efficiency(self) -> float:
        """Fraction of bandwidth at the top of the measured range (inf if the term is unused)."""
        return math.inf if self.memory_factor == 0 else 1.0 / self.memory_factor

    def fresh_bytes(self, allocations: tuple[float, ...]) -> float:
        """Bytes of the allocations above the fault threshold (0 where the fit has no fault term)."""
        if not self.fault_s_per_byte:
            return 0.0
        return sum(size for size in allocations if size > self.fault_threshold_bytes)

    def time(
        self, flops: float, nbytes: float, fresh_bytes: float = 0.0, unaligned: bool = False, segments: float = 0.0
    ) -> float:
        """Predicted seconds for one op of ``flops`` FLOPs moving ``nbytes`` bytes that allocates
        ``fresh_bytes`` bytes above the fault threshold (see :meth:`fresh_bytes`); ``unaligned`` and
        ``segments``: see ``Op.unaligned`` and ``Op.segments``."""
        lo, hi = self.flops_range
        t_c = 0.0
        if self.compute_factor and flops > 0:
            factor = self.compute_factor + self.unaligned_factor if unaligned else self.compute_factor
            scale = (min(max(flops, lo), hi) / hi) ** -self.flops_exponent
            t_c = flops * factor * scale / self.peak_flops
        t_m = 0.0
        if self.memory_factor and nbytes > 0:
            lo, hi = self.bytes_range
            scale = (min(max(nbytes, lo), hi) / hi) ** -self.bytes_exponent
            t_m = nbytes * self.memory_factor * scale / self.bandwidth
        device = t_c + t_m if self.combine == "sum" else (t_c if t_c > t_m else t_m)
        extra = fresh_bytes * self.fault_s_per_byte + segments * self.segment_s
        if self.beyond_cache_factor and nbytes > self.cache_bytes:
            extra += (nbytes - self.cache_bytes) * self.beyond_cache_factor / self.bandwidth
        total = (
            (device if device > self.overhead_s else self.overhead_s) + extra
            if self.overlap
            else (self.overhead_s + device + extra)
        )
        if self.max_compute_efficiency and flops > 0:
            return max(total, flops / (self.peak_flops * self.max_compute_efficiency))
        return total

    def times(
        self,
        flops: FloatArray,
        nbytes: FloatArray,
        fresh_bytes: FloatArray | float = 0.0,
        unaligned: FloatArray | None = None,
        segments: FloatArray | float = 0.0,
    ) -> FloatArray:
        """Vectorised :meth:`time` over arrays of FLOPs, bytes, fresh bytes, unaligned flags and segments
        (broadcast together). Terms that add exactly 0 or scale by exactly 1 are skipped (a side whose factor is
        0, a scale to the power 0, faults of no fresh bytes: every time is at least +0, so adding +0 changes
        none); the floats are those of the whole formula (:meth:`terms` plus the extras)."""
        flops = np.asarray(flops, dtype=np.float64)
        nbytes = np.asarray(nbytes, dtype=np.float64)
        t_c = t_m = None
        if self.compute_factor:
            factor: FloatArray | float = self.compute_factor
            if unaligned is not None and self.unaligned_factor:
                factor = self.compute_factor + self.unaligned_factor * np.asarray(unaligned, dtype=np.float64)
            t_c = flops * factor / self.peak_flops
            if self.flops_exponent:
                lo, hi = self.flops_range
                t_c = t_c * (np.minimum(np.maximum(flops, lo), hi) / hi) ** -self.flops_exponent
        if self.memory_factor:
            t_m = nbytes * self.memory_factor / self.bandwidth
            if self.bytes_exponent:
                lo, hi = self.bytes_range
                t_m = t_m * (np.minimum(np.maximum(nbytes, lo), hi) / hi) ** -self.bytes_exponent
        if t_c is None:
            assert t_m is not None  # a fit has a compute or a memory term (__post_init__)
            device = t_m
        elif t_m is None:
            device = t_c
        else:
            device = t_c + t_m if self.combine == "sum" else np.maximum(t_c, t_m)
        faults = None
        if self.fault_s_per_byte and np.any(fresh_bytes):
            faults = np.asarray(fresh_bytes, dtype=np.float64) * self.fault_s_per_byte
        if self.segment_s:
            extra = np.asarray(segments, dtype=np.float64) * self.segment_s
            faults = extra if faults is None else faults + extra
        if self.beyond_cache_factor:
            extra = np.maximum(nbytes - self.cache_bytes, 0.0) * self.beyond_cache_factor / self.bandwidth
            faults = extra if faults is None else faults + extra
        total = np.maximum(device, self.overhead_s) if self.overlap else self.overhead_s + device
        if faults is not None:
            total = total + faults
        if self.max_compute_efficiency:
            total = np.maximum(total, flops / (self.peak_flops * self.max_compute_efficiency))
        shape, extras = flops.shape, (np.shape(fresh_bytes), np.shape(segments))
        if nbytes.shape != shape or any(other != shape and other != () for other in extras):
            # the whole formula's shape: a skipped term (it adds +0) would have broadcast the others
            shape = np.broadcast_shapes(shape, nbytes.shape, *extras)
            if total.shape != shape:
                total = np.broadcast_to(total, shape).copy()
        return total

    def terms(
        self, flops: FloatArray, nbytes: FloatArray, unaligned: FloatArray | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Compute-side and memory-side seconds (without overhead) for arrays of FLOPs and bytes (and
        unaligned flags, 0 or 1)."""
        flops = np.asarray(flops, dtype=np.float64)
        nbytes = np.asarray(nbytes, dtype=np.float64)
        c_lo, c_hi = self.flops_range
        m_lo, m_hi = self.bytes_range
        factor: FloatArray | float = self.compute_factor
        if unaligned is not None and self.unaligned_factor and self.compute_factor:
            factor = self.compute_factor + self.unaligned_factor * np.asarray(unaligned, dtype=np.float64)
        t_c = flops * factor / self.peak_flops
        t_c = t_c * (np.clip(flops, c_lo, c_hi) / c_hi) ** -self.flops_exponent
        t_m = nbytes * self.memory_factor / self.bandwidth
        t_m = t_m * (np.clip(nbytes, m_lo, m_hi) / m_hi) ** -self.bytes_exponent
        return t_c, t_m

    def rescaled(self, peak_flops: float, bandwidth: float, basis: str, note: str) -> RooflineFit:
        """The same efficiency curves on a device with other peaks (transfer of a fit as a prior)."""
        values = asdict(self)
        values.update(peak_flops=peak_flops, bandwidth=bandwidth, basis=basis, note=note, points=0)
        return RooflineFit(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (read back by :meth:`from_dict`; an infinite threshold is written as
        ``null``)."""
        out = {**asdict(self), "flops_range": list(self.flops_range), "bytes_range": list(self.bytes_range)}
        for key in ("fault_threshold_bytes", "cache_bytes"):
            if math.isinf(out[key]):
                out[key] = None
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RooflineFit:
        """Parameters written by :meth:`to_dict`."""
        values = dict(raw)
        for key in ("fault_threshold_bytes", "cache_bytes"):
            threshold = values.get(key)
            values[key] = math.inf if threshold is None else float(threshold)
        for key in ("flops_range", "bytes_range"):
            low, high = values[key]
            values[key] = (float(low), float(high))
        values["tile_rows"] = int(values.get("tile_rows", 1))
        return cls(**values)
