"""Predict op times on a device: measured fits where a profile exists, datasheet priors elsewhere.

:class:`CostModel` finds a device's profile (``<device-id>.json`` in its profile folders), fits it once,
and caches every prediction per (op, device). Devices without a profile are costed from the catalog's
datasheet peaks and the assumptions in ``data/priors.yaml``; op classes a measured profile lacks (a
precision it did not measure, say) fall back to the same priors. Every fit says which it is.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from dcsim.catalog import Accelerator, load_catalog
from dcsim.compute.calibration import fit_profile
from dcsim.compute.ops import Op
from dcsim.compute.priors import KindPrior, load_priors
from dcsim.compute.profile import Profile, load_profile
from dcsim.compute.roofline import FloatArray, RooflineFit

PROFILE_DIRS_ENV = "DCSIM_PROFILE_DIRS"
#: op classes that borrow another class's fit where a device has no measurement of their own
FALLBACK_CLASSES = {"matmul_gemv": "matmul_skinny", "matmul_skinny": "matmul"}
MAX_CACHE_ENTRIES = 2_000_000


def default_profile_dirs() -> list[Path]:
    """Folders searched for ``<device-id>.json``: ``$DCSIM_PROFILE_DIRS`` (os.pathsep-separated), then
    ``calibration/profiles`` of the source tree dcsim runs from."""
    dirs = [Path(p) for p in os.environ.get(PROFILE_DIRS_ENV, "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "calibration" / "profiles")
    return dirs


class DeviceModel:
    """Fits for one device: measured ones from its profile (if any), priors built on demand."""

    def __init__(
        self,
        device_id: str,
        accelerator: Accelerator | None,
        profile: Profile | None,
        prior: KindPrior | None,
        references: Mapping[str, Mapping[str, RooflineFit]],
    ) -> None:
        if accelerator is None and profile is None:
            raise KeyError(f"unknown device {device_id!r}: not in the catalog and no calibration profile")
        self.device_id = device_id
        self.accelerator = accelerator
        self.profile = profile
        self.prior = prior
        self.references = references
        self.measured: Mapping[str, RooflineFit] = fit_profile(profile) if profile else {}
        self._fits: dict[str, RooflineFit] = dict(self.measured)
        #: bytes/s no op beats on an accelerator: its datasheet memory bandwidth (0 on CPUs, whose measured
        #: reference bandwidth is an in-cache figure)
        self.floor_bytes_per_s = 0.0
        if accelerator is not None and accelerator.kind != "cpu":
            self.floor_bytes_per_s = accelerator.memory_bandwidth_gb_per_s * 1e9

    @property
    def basis(self) -> str:
        """``measured`` if the device has a calibration profile, else ``prior``."""
        return "measured" if self.profile is not None else "prior"

    def fit_for(self, op: Op) -> RooflineFit:
        """The fit that prices ``op`` (measured for its class if there is one, else a prior). A class with
        a fallback (:data:`FALLBACK_CLASSES`: GEMVs -> skinny GEMMs -> GEMMs) uses the nearest class in that
        chain the device measured; a device that measured none of them gets a prior, from the nearest class a
        reference device measured. The answer does not depend on which ops were priced before."""
        key = op.fit_key
        fit = self._fits.get(key)
        if fit is None:
            name, rest = key.split("/", 1)
            chain = [key]
            while name in FALLBACK_CLASSES:
                name = FALLBACK_CLASSES[name]
                chain.append(f"{name}/{rest}")
            fit = next((self.measured[k] for k in chain if k in self.measured), None)
            if fit is None:
                fit = self._prior_fit(op, chain)
            self._fits[key] = fit
        return fit

    def predict(self, op: Op) -> float:
        """Seconds ``op`` takes on this device (roofline plus, on a profiled CPU, page faults); on an
        accelerator never less than its bytes at the datasheet memory bandwidth (see :meth:`predict_many`)."""
        fit = self.fit_for(op)
        unaligned = op.unaligned if fit.unaligned_factor else False
        segments = op.segments if fit.segment_s else 0.0
        flops = op.tile_flops(fit.tile_rows) if fit.tile_rows > 1 else op.flops
        if fit.fault_s_per_byte:
            return fit.time(flops, op.bytes, fit.fresh_bytes(op.allocations), unaligned, segments)
        seconds = fit.time(flops, op.bytes, 0.0, unaligned, segments)
        if self.profile is not None and self.profile.page_fault_s_per_byte:
            seconds += self.profile.fault_seconds(op)
        if self.floor_bytes_per_s:
            floor = op.bytes / self.floor_bytes_per_s
            if floor > seconds:
                return floor
        return seconds

    def predict_many(self, ops: Sequence[Op]) -> FloatArray:
        """Seconds for each op, evaluated one vectorised pass per op class.

        On an accelerator no op is priced below its bytes at the datasheet memory bandwidth (the roofline's
        memory floor): a class's fit extrapolated beyond the shapes it measured cannot then stream weights
        faster than HBM does (the H100 GEMM fit, measured on compute-bound and cache-resident shapes, put an
        8192 x 28672 bf16 product of 17 rows at 19 TB/s, 5.7x the HBM's 3.35 TB/s)."""
        out = np.empty(len(ops))
        groups: dict[str, list[int]] = defaultdict(list)
        for index, op in enumerate(ops):
            groups[op.fit_key].append(index)
        for indices in groups.values():
            fit = self.fit_for(ops[indices[0]])
            tile = fit.tile_rows
            if tile > 1:
                flops = np.fromiter((ops[i].tile_flops(tile) for i in indices), np.float64, len(indices))
            else:
                flops = np.fromiter((ops[i].flops for i in indices), np.float64, len(indices))
            nbytes = np.fromiter((ops[i].bytes for i in indices), np.float64, len(indices))
            unaligned = None
            if fit.unaligned_factor:
                unaligned = np.fromiter((ops[i].unaligned for i in indices), np.float64, len(indices))
            segments: FloatArray | float = 0.0
            if fit.segment_s:
                segments = np.fromiter((ops[i].segments for i in indices), np.float64, len(indices))
            times = fit.times(flops, nbytes, 0.0, unaligned, segments)
            if self.floor_bytes_per_s:
                np.maximum(times, nbytes / self.floor_bytes_per_s, out=times)
            out[indices] = times
        if self.profile is not None and self.profile.page_fault_s_per_byte:
            out += np.fromiter((self._fault_seconds(op) for op in ops), np.float64, len(ops))
        return out

    def _fault_seconds(self, op: Op) -> float:
        """Page-fault seconds: the fit's own term where it has one, else the profile's measured cost."""
        fit = self.fit_for(op)
        if fit.fault_s_per_byte:
            return fit.fresh_bytes(op.allocations) * fit.fault_s_per_byte
        assert self.profile is not None
        return self.profile.fault_seconds(op)

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

    def _prior_fit(self, op: Op, chain: Sequence[str] = ()) -> RooflineFit:
        """A prior for ``op``: the efficiency curve of the first class in ``chain`` (default: the op's own)
        that a reference device measured, rescaled to this device's peaks; else the kind's assumed curve."""
        peak, bandwidth = self._peaks(op)
        chain = list(chain) or [op.fit_key]
        if self.prior is None:
            raise ValueError(f"{self.device_id}: no measurement of {chain[0]} and no prior for its kind")
        for key in chain:
            for ref_id, fits in self.references.items():
                ref = fits.get(key)
                if ref is not None and ref_id != self.device_id:
                    note = f"prior: efficiency curve of measured {ref_id} rescaled to {self.device_id} peaks"
                    return ref.rescaled(peak, bandwidth, basis="prior", note=note)
        return self.prior.fit(op.kind, peak, bandwidth)


class CostModel:
    """Op-time predictions for every device, cached per (op, device).

    ``profile_dirs`` are the folders holding ``<device-id>.json`` profiles (default:
    :func:`default_profile_dirs`).
    """

    def __init__(self, profile_dirs: Iterable[str | Path] | None = None) -> None:
        dirs = default_profile_dirs() if profile_dirs is None else profile_dirs
        self.profile_dirs = [Path(d) for d in dirs]
        self._devices: dict[str, DeviceModel] = {}
        self._cache: dict[tuple[Op, str], float] = {}

    def find_profile(self, device_id: str) -> Profile | None:
        """The first ``<device_id>.json`` in the profile folders, loaded, or None."""
        for folder in self.profile_dirs:
            path = folder / f"{device_id}.json"
            if path.is_file():
                return load_profile(path)
        return None

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
                ref_profile = self.find_profile(ref_id)
                if ref_profile is not None:
                    references[ref_id] = self.device(ref_id).measured
        return DeviceModel(device_id, accelerator, profile, prior, references)

    def predict(self, op: Op, device_id: str) -> float:
        """Seconds ``op`` takes on ``device_id`` (cached)."""
        key = (op, device_id)
        cached = self._cache.get(key)
        if cached is None:
            cached = self.device(device_id).predict(op)
            if len(self._cache) >= MAX_CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = cached
        return cached

    def predict_many(self, ops: Sequence[Op], device_id: str) -> FloatArray:
        """Seconds for each op on ``device_id``, vectorised per op class (not cached)."""
        return self.device(device_id).predict_many(ops)

    def prediction_basis(self, device_id: str) -> str:
        """``measured`` if ``device_id`` has a calibration profile, else ``prior``."""
        return self.device(device_id).basis
