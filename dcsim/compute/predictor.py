"""Predict op times on a device: measured fits where a profile exists, datasheet priors elsewhere.

:class:`CostModel` finds a device's profile (``<device-id>.json`` in its profile folders), fits it once,
and caches every prediction per (op, device). A device without a profile whose catalog entry (or scenario
declaration) is ``based_on`` another inherits that device's fits, rescaled to its own peaks and bandwidth
(:func:`inherited_fits`). Other devices without a profile are costed from the catalog's datasheet peaks and the
assumptions in ``data/priors.yaml``; op classes a measured profile lacks (a
precision it did not measure, say) borrow a measured class (:meth:`DeviceModel.fallback_chain`: the 16-bit
twin, the next row class), are priced from their forward (backward GEMMs) or fall back to the same priors.
Every fit says which it is. :meth:`DeviceModel.predict` keeps a larger GEMM from costing less than a smaller
one across the fits' class switches and slow paths, and no op on an accelerator below its datasheet roofline.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from dcsim.catalog import Accelerator, load_catalog
from dcsim.catalog.declared import forget_on_redeclaration
from dcsim.compute.calibration import MIN_INTENSITY_SPAN, fit_profile
from dcsim.compute.ops import GEMV_ROWS, SKINNY_ROWS, Op
from dcsim.compute.priors import KindPrior, load_priors
from dcsim.compute.profile import Profile, load_profile
from dcsim.compute.roofline import FloatArray, RooflineFit

PROFILE_DIRS_ENV = "DCSIM_PROFILE_DIRS"
#: op classes that borrow another class's fit where a device has no measurement of their own
FALLBACK_CLASSES = {"matmul_gemv": "matmul_skinny", "matmul_skinny": "matmul", "conv2d_1x1": "conv2d"}
#: The two 16-bit float precisions: one borrows the other's fit where a device has a measurement of only one
#: and its peaks at the two are equal (NVIDIA tensor cores run fp16 and bf16 at the same rate: H100 SXM
#: datasheet, 989.5 TFLOP/s dense for both; A100, 312 for both).
HALF_PRECISION_TWINS = {"fp16": "bf16", "bf16": "fp16"}
#: Op classes that are GEMMs. The backward of one is two GEMMs of the forward's FLOPs (dX = dY W^T, dW = X^T dY),
#: on the units the forward runs on: where no device measured the backward class it is priced as twice the
#: forward (see :meth:`DeviceModel.backward_from_forward`).
GEMM_CLASSES = frozenset({"matmul", "matmul_gemv", "matmul_skinny", "bmm", "matmul_sparse24", "matmul_csr"})
MAX_CACHE_ENTRIES = 2_000_000
#: fit-key prefixes of the classes dense products are priced along (:func:`~dcsim.compute.ops.matmul_class`)
ROW_CLASS_KEYS = ("matmul_gemv/", "matmul_skinny/", "matmul/")
#: per op type priced along the row classes, its field names but ``m`` (the key of a product at any row count)
_OTHER_FIELDS: dict[type, tuple[str, ...]] = {}


def default_profile_dirs() -> list[Path]:
    """Folders searched for ``<device-id>.json``: ``$DCSIM_PROFILE_DIRS`` (os.pathsep-separated), then
    ``calibration/profiles`` of the source tree dcsim runs from."""
    dirs = [Path(p) for p in os.environ.get(PROFILE_DIRS_ENV, "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "calibration" / "profiles")
    return dirs


class DeviceModel:
    """Fits for one device: measured ones from its profile (if any), else those inherited from the device it is
    ``based_on`` (``inherited``: see :func:`inherited_fits`), priors built on demand."""

    def __init__(
        self,
        device_id: str,
        accelerator: Accelerator | None,
        profile: Profile | None,
        prior: KindPrior | None,
        references: Mapping[str, Mapping[str, RooflineFit]],
        based_on: str | None = None,
        inherited: Mapping[str, RooflineFit] | None = None,
    ) -> None:
        if accelerator is None and profile is None:
            raise KeyError(f"unknown device {device_id!r}: not in the catalog and no calibration profile")
        self.device_id = device_id
        self.accelerator = accelerator
        self.profile = profile
        self.prior = prior
        self.references = references
        #: the device whose fits this one inherits (None with a profile of its own)
        self.based_on = None if profile else based_on
        #: the fits of its own profile, else those inherited from :attr:`based_on`
        self.measured: Mapping[str, RooflineFit] = fit_profile(profile) if profile else dict(inherited or {})
        self._fits: dict[str, RooflineFit] = dict(self.measured)
        #: classes priced as two forward GEMMs (see :meth:`backward_from_forward`)
        self._from_forward: set[str] = set()
        #: boundary prices between the row classes of a product, by its type and fields but ``m``
        #: (:meth:`_row_bounds`)
        self._boundaries: dict[tuple[object, ...], tuple[float, float]] = {}
        #: per class, the datasheet floors (FLOP/s at its precision, bytes/s); 0 = none
        self._floors: dict[str, tuple[float, float]] = {}
        #: per class, what predict_many needs of it (:meth:`_plan`)
        self._plans: dict[str, tuple[RooflineFit, bool, bool, tuple[float, float] | None]] = {}
        #: an accelerator's datasheet peaks bound every op from below; a CPU's catalog figures do not (the
        #: host CPU's are measured references that other ops beat: bf16 attention ran at 2.7x its bf16 GEMM
        #: reference FLOP/s and an add at 1.07x its reference bandwidth, calibration/profiles/host-cpu.json)
        self.has_floors = accelerator is not None and accelerator.kind != "cpu"
        #: bytes/s no op beats (the datasheet memory bandwidth of an accelerator; 0 on CPUs)
        self.floor_bytes_per_s = accelerator.memory_bandwidth_gb_per_s * 1e9 if self.has_floors and accelerator else 0.0
        self._has_faults = bool(profile and profile.page_fault_s_per_byte) or any(
            fit.fault_s_per_byte for fits in (self.measured, *references.values()) for fit in fits.values()
        )

    @property
    def basis(self) -> str:
        """``measured`` if the device has a calibration profile, ``inherited`` if it has the measured fits of the
        device it is based on (rescaled), else ``prior``."""
        if self.profile is not None:
            return "measured"
        return "inherited" if self.based_on is not None and self.measured else "prior"

    def fallback_chain(self, key: str) -> list[str]:
        """The classes whose fits may price class ``key`` (``kind/phase/precision``), nearest first: the class
        itself, then along :data:`FALLBACK_CLASSES` (GEMVs -> skinny GEMMs -> GEMMs), each followed by its
        16-bit twin (:data:`HALF_PRECISION_TWINS`) where this device's peaks at the two precisions are equal."""
        name, phase, precision = key.split("/")
        precisions = [precision]
        twin = HALF_PRECISION_TWINS.get(precision)
        if twin is not None and self._same_peak(precision, twin):
            precisions.append(twin)
        names = [name]
        while names[-1] in FALLBACK_CLASSES:
            names.append(FALLBACK_CLASSES[names[-1]])
        return [f"{n}/{phase}/{p}" for n in names for p in precisions]

    def _same_peak(self, first: str, second: str) -> bool:
        """True if the catalog (else the profile) gives this device equal peaks at both precisions."""
        peaks = self.accelerator.peak_tflops if self.accelerator is not None else {}
        if not peaks and self.profile is not None:
            peaks = self.profile.peak_tflops
        return first in peaks and peaks.get(first) == peaks.get(second)

    def fit_for(self, op: Op) -> RooflineFit:
        """The fit that prices ``op``: the first class of :meth:`fallback_chain` the device measured, else the
        first a reference device measured (rescaled to this device's peaks), else, for a backward GEMM, the
        forward's fit (:meth:`backward_from_forward`: the op is priced as two forward GEMMs), else the device
        kind's prior. The answer does not depend on which ops were priced before."""
        key = op.fit_key
        fit = self._fits.get(key)
        if fit is None:
            chain = self.fallback_chain(key)
            fit = next((self.measured[k] for k in chain if k in self.measured), None)
            if fit is None:
                reference = self._reference_fit(chain)
                if reference is not None:
                    ref_id, ref = reference
                    note = f"prior: efficiency curve of measured {ref_id} rescaled to {self.device_id} peaks"
                    fit = ref.rescaled(*self._peaks(op), basis="prior", note=note)
                elif op.phase == "bwd" and key.split("/", 1)[0] in GEMM_CLASSES:
                    self._from_forward.add(key)
                    fit = self.fit_for(op.forward())
                else:
                    fit = self._kind_prior(op, chain[0], *self._peaks(op))
            self._fits[key] = fit
        return fit

    def backward_from_forward(self, op: Op) -> bool:
        """True for a backward GEMM whose class (along :meth:`fallback_chain`) neither this device nor a
        reference device measured: it is priced as two forward GEMMs of its shape (dX and dW, each the forward's
        FLOPs), at the forward's price. An fp8 backward is one: PyTorch has no autograd through fp8 GEMMs, so
        calibration times only the forward, and Transformer Engine runs both backward GEMMs on the FP8 tensor
        cores with E5M2 gradients times E4M3 operands (``Format.HYBRID``, the ``DelayedScaling`` default,
        ``transformer_engine/common/recipe/__init__.py``; the dgrad and wgrad ``general_gemm`` calls of
        ``transformer_engine/pytorch/module/linear.py``, Transformer Engine 2.20.2), whose peak is the E4M3
        forward's (the H100 datasheet gives one FP8 figure), so the backward never beats the forward's measured
        rate. A backward class that was measured keeps its measurement: on the host CPU four bf16 batched-matmul
        backwards ran 4-11x faster than two of their forwards (calibration/profiles/host-cpu.json)."""
        self.fit_for(op)
        return op.fit_key in self._from_forward

    def predict(self, op: Op) -> float:
        """Seconds ``op`` takes on this device: its class's roofline (:meth:`fit_for`) under three rules that
        keep a larger op from ever costing less, plus, on a profiled CPU, page faults.

        - Two measured steps stay: unaligned GEMMs (``n`` or ``k`` not a multiple of 8) keep their measured
          penalty and may cost more than the next aligned size up (PyTorch runs them unpadded), and on the host
          CPU a GEMV whose weight rows are shorter than a page keeps its measured cost per short-row page
          (:func:`~dcsim.compute.ops.short_row_pages`) and may cost more than one whose rows reach a page
          (measured: 4-13 GB/s for rows of 256 B to 2 KiB, 15-24 GB/s from 4 KiB).
        - Row classes: products of 1 row (GEMV), 2-16 rows (skinny) and more (GEMM) have separate fits
          (:func:`~dcsim.compute.ops.matmul_class`). At each switch a boundary price ``b`` (:meth:`_row_bounds`)
          caps the class below and floors the class above, so more rows never cost less. ``b`` is the lower
          class's price at its largest row count (a larger product contains the smaller one) unless the upper
          class's price at its smallest row count is lower and the lower class is extrapolating there:
          ``b = min(L, max(c, U))`` with ``L`` and ``U`` the two sides' prices and ``c`` the lower class's
          price with the FLOPs and bytes held at the largest it measured. Where the lower class measured such
          sizes, ``b = L`` (containment); beyond them its trend is not evidence, and ``b`` falls towards ``U``
          no lower than ``c``. Each of ``L``, ``c`` and ``U`` grows with ``n`` and ``k``, so ``b`` does.
        - Datasheet floors on accelerators: never below the op's FLOPs at the catalog's peak FLOP/s for its
          precision, nor its bytes at the datasheet memory bandwidth (a fit extrapolated beyond its measured
          shapes put an 8192 x 28672 bf16 GEMM of 17 rows on H100 at 19 TB/s, 5.7x its HBM's 3.35 TB/s).

        A backward GEMM no device measured is two forward GEMMs (:meth:`backward_from_forward`)."""
        return self._device_seconds(op) + self._fault_seconds(op)

    def _device_seconds(self, op: Op) -> float:
        """:meth:`predict` without page faults."""
        seconds = self._class_seconds(op)
        bounds = self._row_bounds(op)
        if bounds is not None:
            seconds = min(max(seconds, bounds[0]), bounds[1])
        if self.has_floors:
            flops_per_s, bytes_per_s = self._floor_rates(op)
            if flops_per_s:
                seconds = max(seconds, op.flops / flops_per_s)
            seconds = max(seconds, op.bytes / bytes_per_s)
        return seconds

    def _class_seconds(self, op: Op, measured_sizes: bool = False) -> float:
        """Seconds of ``op`` in its own class, without the row bounds and floors: twice the forward for a
        backward priced from it, else the fit's price.
        ``measured_sizes``: with FLOPs and bytes held at the largest the fit measured (the class's price where
        it stops extrapolating; unchanged for a prior that measured nothing)."""
        fit = self.fit_for(op)
        if op.fit_key in self._from_forward:
            return 2.0 * self._device_seconds(op.forward())
        clip = measured_sizes and fit.flops_range != (1.0, 1.0)
        return self._fit_seconds(fit, op, clip)

    @staticmethod
    def _fit_seconds(fit: RooflineFit, op: Op, clip: bool = False) -> float:
        """The fit's device seconds for ``op`` (no page faults); ``clip``: FLOPs and bytes held at most at the
        largest the fit measured."""
        unaligned = op.unaligned if fit.unaligned_factor else False
        segments = op.segments if fit.segment_s else 0.0
        flops = op.tile_flops(fit.tile_rows) if fit.tile_rows > 1 else op.flops
        nbytes = op.bytes
        if clip:
            flops, nbytes = min(flops, fit.flops_range[1]), min(nbytes, fit.bytes_range[1])
        return fit.time(flops, nbytes, 0.0, unaligned, segments)

    def _row_bounds(self, op: Op) -> tuple[float, float] | None:
        """(least, greatest) seconds of a product priced along the row classes, from the boundary prices
        between them (see :meth:`predict`); None for other ops."""
        if not op.row_classes:
            return None
        rows: int = op.m  # type: ignore[attr-defined]
        names = _OTHER_FIELDS.get(type(op))
        if names is None:
            names = _OTHER_FIELDS[type(op)] = tuple(f.name for f in dataclasses.fields(op) if f.name != "m")  # type: ignore[arg-type]
        product = (type(op), *(getattr(op, name) for name in names))  # the op at any row count
        bounds = self._boundaries.get(product)
        if bounds is None:
            bounds = self._boundary_prices(op)
            if len(self._boundaries) >= MAX_CACHE_ENTRIES:
                self._boundaries.clear()
            self._boundaries[product] = bounds
        gemv_skinny, skinny_gemm = bounds
        if rows <= GEMV_ROWS:
            return (0.0, gemv_skinny)
        if rows <= SKINNY_ROWS:
            return (gemv_skinny, skinny_gemm)
        return (skinny_gemm, math.inf)

    def _boundary_prices(self, op: Op) -> tuple[float, float]:
        """Boundary prices (GEMV | skinny, skinny | GEMM) of the product ``op`` at any row count:
        ``min(L, max(c, U))`` each (see :meth:`predict`), the second no lower than the first."""

        def at(rows: int) -> Op:
            shaped = op.with_rows(rows)
            assert shaped is not None
            return shaped

        gemv, skinny_low, skinny_high, gemm_low = (
            at(r) for r in (GEMV_ROWS, GEMV_ROWS + 1, SKINNY_ROWS, SKINNY_ROWS + 1)
        )
        lower = self._class_seconds(gemv)
        edge = min(self._class_seconds(gemv, measured_sizes=True), lower)
        first = min(lower, max(edge, self._class_seconds(skinny_low)))
        lower = max(self._class_seconds(skinny_high), first)
        edge = max(min(self._class_seconds(skinny_high, measured_sizes=True), lower), first)
        second = min(lower, max(edge, self._class_seconds(gemm_low)))
        return first, second

    def _floor_rates(self, op: Op) -> tuple[float, float]:
        """(peak FLOP/s at the op's precision, 0 where the catalog has none; datasheet bytes/s)."""
        rates = self._floors.get(op.fit_key)
        if rates is None:
            assert self.accelerator is not None
            peak = self.accelerator.peak_tflops.get(op.precision, 0.0) * 1e12
            if op.kind == "matmul_sparse24" and self.accelerator.sparse_2_4:
                peak *= 2.0  # 2:4 sparse tensor cores double the dense peak (datasheet "with sparsity" figures)
            rates = (peak, self.floor_bytes_per_s)
            self._floors[op.fit_key] = rates
        return rates

    def predict_many(self, ops: Sequence[Op]) -> FloatArray:
        """Seconds for each op, as :meth:`predict` gives them, evaluated one vectorised pass per op class."""
        out = self._device_many(ops)
        if self._has_faults:
            out += np.fromiter((self._fault_seconds(op) for op in ops), np.float64, len(ops))
        return out

    def _device_many(self, ops: Sequence[Op]) -> FloatArray:
        """:meth:`_device_seconds` of each op, vectorised per op class (:meth:`_class_many`)."""
        keys = [op.fit_key for op in ops]
        count = len(keys)
        if count and keys.count(keys[0]) == count:  # one class (a block of chunk lengths, one op): no scatter
            return self._class_many(keys[0], ops)
        groups: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            indices = groups.get(key)
            if indices is None:
                groups[key] = [index]
            else:
                indices.append(index)
        out = np.empty(count)
        for key, indices in groups.items():
            out[indices] = self._class_many(key, [ops[i] for i in indices])
        return out

    def _class_many(self, key: str, ops: Sequence[Op]) -> FloatArray:
        """:meth:`_device_seconds` of ops of one class ``key`` (their ``fit_key``), vectorised: the class's price,
        then the row bounds, then the datasheet floors, each element by element."""
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(key, ops[0])
        fit, from_forward, row_classes, floors = plan
        count = len(ops)
        flops = np.fromiter([op.flops for op in ops], np.float64, count)
        nbytes = np.fromiter([op.bytes for op in ops], np.float64, count)
        if from_forward:
            times = 2.0 * self._device_many([op.forward() for op in ops])
        else:
            times = self._fit_many(fit, ops, flops, nbytes)
        if row_classes:  # products priced along the row classes (matmul_class: GEMV, skinny, GEMM fit keys)
            bounded = [(i, bound) for i, op in enumerate(ops) if (bound := self._row_bounds(op)) is not None]
            if bounded:
                rows = [i for i, _ in bounded]
                low = np.fromiter([bound[0] for _, bound in bounded], np.float64, len(rows))
                high = np.fromiter([bound[1] for _, bound in bounded], np.float64, len(rows))
                if len(rows) == count:
                    times = np.minimum(np.maximum(times, low), high)
                else:
                    times[rows] = np.minimum(np.maximum(times[rows], low), high)
        if floors is not None:
            flops_per_s, bytes_per_s = floors
            floor = nbytes / bytes_per_s
            if flops_per_s:
                np.maximum(floor, flops / flops_per_s, out=floor)
            times = np.maximum(times, floor)
        return times

    def _plan(self, key: str, op: Op) -> tuple[RooflineFit, bool, bool, tuple[float, float] | None]:
        """What :meth:`_class_many` needs of class ``key`` (``op`` is one of it), worked out once per class:
        (its fit, priced from the forward, priced along the row classes, the datasheet floors or None)."""
        fit = self.fit_for(op)
        floors = self._floor_rates(op) if self.has_floors else None
        plan = (fit, key in self._from_forward, key.startswith(ROW_CLASS_KEYS), floors)
        self._plans[key] = plan
        return plan

    @staticmethod
    def _fit_many(
        fit: RooflineFit, ops: Sequence[Op], flops: FloatArray | None = None, nbytes: FloatArray | None = None
    ) -> FloatArray:
        """The fit's device seconds for each op (no page faults), vectorised; ``flops`` and ``nbytes``: the ops'
        (computed here where None)."""
        count = len(ops)
        tile = fit.tile_rows
        if tile > 1:  # GPU GEMM kernels compute whole tiles of output rows (Op.tile_flops)
            flops = np.fromiter([op.tile_flops(tile) for op in ops], np.float64, count)
        elif flops is None:
            flops = np.fromiter([op.flops for op in ops], np.float64, count)
        if nbytes is None:
            nbytes = np.fromiter([op.bytes for op in ops], np.float64, count)
        unaligned = np.fromiter([op.unaligned for op in ops], np.float64, count) if fit.unaligned_factor else None
        segments: FloatArray | float = 0.0
        if fit.segment_s:
            segments = np.fromiter([op.segments for op in ops], np.float64, count)
        return fit.times(flops, nbytes, 0.0, unaligned, segments)

    def _fault_seconds(self, op: Op) -> float:
        """Page-fault seconds: the fit's own term where it has one, else the profile's measured cost (twice the
        forward's for a backward priced as two forward GEMMs). A product priced along the row classes is priced
        at every row count as its GEMM class (more than :data:`~dcsim.compute.ops.SKINNY_ROWS` rows) prices its
        fresh pages: they cost what the allocation costs, whichever kernel fills them, and one rule for all
        row counts keeps more rows from costing less (their allocations only grow)."""
        if op.fit_key in self._from_forward:
            return 2.0 * self._fault_seconds(op.forward())
        fit = self.fit_for(op)
        if op.row_classes and op.m <= SKINNY_ROWS:  # type: ignore[attr-defined]
            widest = op.with_rows(SKINNY_ROWS + 1)
            if widest is not None and widest.fit_key not in self._from_forward:
                fit = self.fit_for(widest)
        if fit.fault_s_per_byte:
            return fit.fresh_bytes(op.allocations) * fit.fault_s_per_byte
        if self.profile is not None and self.profile.page_fault_s_per_byte:
            return self.profile.fault_seconds(op)
        return 0.0

    def _peaks(self, op: Op) -> tuple[float, float]:
        """Peak FLOP/s at the op's precision and bandwidth (bytes/s): catalog, else the profile's."""
        sparse = op.kind == "matmul_sparse24"
        if self.accelerator is not None:
            acc = self.accelerator
            try:
                peak = acc.peak_flops(op.precision)
            except KeyError as error:
                raise ValueError(str(error.args[0])) from None
            return peak * (2.0 if sparse and acc.sparse_2_4 else 1.0), acc.memory_bandwidth_gb_per_s * 1e9
        assert self.profile is not None
        try:
            return self.profile.peak_flops(op.precision), self.profile.bandwidth
        except KeyError as error:
            raise ValueError(str(error.args[0])) from None

    def _reference_fit(self, chain: Sequence[str]) -> tuple[str, RooflineFit] | None:
        """(reference device, its measured fit) of the first class in ``chain`` a reference device measured,
        or None."""
        for key in chain:
            for ref_id, fits in self.references.items():
                ref = fits.get(key)
                if ref is not None and ref_id != self.device_id:
                    return ref_id, ref
        return None

    def _kind_prior(self, op: Op, key: str, peak: float, bandwidth: float) -> RooflineFit:
        """The device kind's assumed constant-efficiency curve for ``op``."""
        if self.prior is None:
            raise ValueError(f"{self.device_id}: no measurement of {key} and no prior for its kind")
        kind = op.kind
        while kind not in self.prior.compute_efficiency and kind in FALLBACK_CLASSES:
            kind = FALLBACK_CLASSES[kind]
        return self.prior.fit(kind, peak, bandwidth)


def inherited_fits(base: DeviceModel, accelerator: Accelerator) -> dict[str, RooflineFit]:
    """The fits ``base`` measured (or itself inherited), carried to ``accelerator``, a device ``based_on`` it.

    Each fit keeps its efficiency curves (fractions of peak as functions of the op's size), its fixed per-call
    overhead, row tile and other terms, and is rescaled by the ratios of the two devices' catalog figures: the
    peaks at its precision (times the 2:4 sparse factors for sparse GEMMs) and the memory bandwidths.

    - A class whose fit has both terms and whose points span arithmetic intensities (FLOPs per byte) by
      :data:`~dcsim.compute.calibration.MIN_INTENSITY_SPAN` or more (GEMMs from a few rows to thousands) scales its
      compute term by the peak ratio and its memory term by the bandwidth ratio: the fit told them apart.
    - Any other class (one term, or points of one intensity, whose split between the terms says nothing: an add,
      a norm) scales whole by one ratio: the bandwidth's where its largest op's intensity is below the base's
      ridge point (peak over bandwidth; a memory-bound class, even where the fit priced it through its FLOPs),
      else the peak's.

    A figure the two share leaves the terms it scales unchanged: on an A100 40GB based on the A100 80GB (the same
    312 TFLOP/s bf16; 1,555 against 2,039 GB/s) prefill attention takes what it takes on the 80GB, an add or a
    norm 2,039/1,555 = 1.31x as long, an 8192^3 GEMM 0.3% longer (the small memory phase of the A100's GEMM
    fit). This assumes the device's kernels reach the same fraction of its own peaks as the base's reach of
    theirs; the base's cache effects (working sets in L2 running faster than HBM) are rescaled with the HBM
    bandwidth too. Classes at a precision the device or the base has no catalog peak for are not carried (the
    device's own fallbacks and priors price them)."""
    base_acc = base.accelerator
    assert base_acc is not None, "based_on names a catalog accelerator"
    memory = accelerator.memory_bandwidth_gb_per_s / base_acc.memory_bandwidth_gb_per_s
    out: dict[str, RooflineFit] = {}
    for key, fit in base.measured.items():
        kind, _, precision = key.split("/")
        own, theirs = accelerator.peak_tflops.get(precision), base_acc.peak_tflops.get(precision)
        if own is None or theirs is None:
            continue
        compute = own / theirs
        if kind == "matmul_sparse24":
            compute *= (2.0 if accelerator.sparse_2_4 else 1.0) / (2.0 if base_acc.sparse_2_4 else 1.0)
        top = fit.flops_range[1] / fit.bytes_range[1]  # FLOPs per byte of the class's largest op
        spread = top / (fit.flops_range[0] / fit.bytes_range[0])
        separate = fit.compute_factor > 0 and fit.memory_factor > 0 and max(spread, 1 / spread) >= MIN_INTENSITY_SPAN
        if separate:
            peak, bandwidth = compute, memory
        else:
            peak = bandwidth = memory if top < fit.peak_flops / fit.bandwidth else compute
        note = f"{base.device_id} fit ({fit.basis}) with peak FLOP/s x{peak:.4g}, bandwidth x{bandwidth:.4g}"
        out[key] = fit.rescaled(fit.peak_flops * peak, fit.bandwidth * bandwidth, basis="inherited", note=note)
    return out


class CostModel:
    """Op-time predictions for every device, cached per (op, device).

    ``profile_dirs`` are the folders holding ``<device-id>.json`` profiles (default:
    :func:`default_profile_dirs`). A device a scenario redeclares with other figures is forgotten
    (:func:`dcsim.catalog.declared.forget_on_redeclaration`).
    """

    def __init__(self, profile_dirs: Iterable[str | Path] | None = None) -> None:
        dirs = default_profile_dirs() if profile_dirs is None else profile_dirs
        self.profile_dirs = [Path(d) for d in dirs]
        self._devices: dict[str, DeviceModel] = {}
        #: per device, seconds per op
        self._cache: dict[str, dict[Op, float]] = {}
        forget_on_redeclaration(self)

    def forget(self, accelerator_ids: frozenset[str]) -> None:
        """Drop the models and cached predictions of these devices (their figures changed)."""
        for device_id in accelerator_ids:
            self._devices.pop(device_id, None)
            self._cache.pop(device_id, None)

    def profile_path(self, device_id: str) -> Path | None:
        """The first ``<device_id>.json`` in the profile folders, or None."""
        for folder in self.profile_dirs:
            path = folder / f"{device_id}.json"
            if path.is_file():
                return path
        return None

    def find_profile(self, device_id: str) -> Profile | None:
        """The first ``<device_id>.json`` in the profile folders, loaded, or None."""
        path = self.profile_path(device_id)
        return None if path is None else load_profile(path)

    def device(self, device_id: str) -> DeviceModel:
        """The (cached) model of one device; KeyError for an id neither catalogued nor profiled."""
        model = self._devices.get(device_id)
        if model is None:
            model = self._build(device_id)
            self._devices[device_id] = model
        return model

    def _build(self, device_id: str) -> DeviceModel:
        accelerator = load_catalog().accelerators.get(device_id)
        profile = self.find_profile(device_id)
        kind = accelerator.kind if accelerator else ("gpu" if profile and profile.backend == "cuda" else "cpu")
        prior = load_priors().get(kind)
        references: dict[str, Mapping[str, RooflineFit]] = {}
        for ref_id in prior.transfer_from if prior else ():
            if ref_id != device_id:
                if self.profile_path(ref_id) is not None:  # its model loads the profile once
                    references[ref_id] = self.device(ref_id).measured
        based_on = accelerator.based_on if accelerator is not None and profile is None else None
        inherited = inherited_fits(self.device(based_on), accelerator) if based_on and accelerator else None
        return DeviceModel(device_id, accelerator, profile, prior, references, based_on, inherited)

    def predict(self, op: Op, device_id: str) -> float:
        """Seconds ``op`` takes on ``device_id`` (cached)."""
        cache = self._cache.get(device_id)
        if cache is None:
            cache = self._cache[device_id] = {}
        cached = cache.get(op)
        if cached is None:
            cached = self.device(device_id).predict(op)
            if len(cache) >= MAX_CACHE_ENTRIES:
                cache.clear()
            cache[op] = cached
        return cached

    def predict_many(self, ops: Sequence[Op], device_id: str) -> FloatArray:
        """Seconds for each op on ``device_id``, vectorised per op class (not cached)."""
        return self.device(device_id).predict_many(ops)

    def prediction_basis(self, device_id: str) -> str:
        """``measured`` if ``device_id`` has a calibration profile, ``inherited`` if it has the measured fits of
        the device it is ``based_on``, else ``prior``."""
        return self.device(device_id).basis
