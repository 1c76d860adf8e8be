"""Calibration profiles: what ``dcsim calibrate`` measured on one device, as JSON.

A profile (``calibration/profiles/<device-id>.json``) records the device, the torch version, the
thread count, the date, the reference peak FLOP/s per precision and bandwidth that efficiencies are
fractions of, every measured op (median, 10th and 90th percentile seconds) and end-to-end model
timings. Reading one needs only the standard library and numpy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dcsim.compute.ops import Op, op_from_dict

SCHEMA_VERSION = 1


class ProfileError(ValueError):
    """A profile file is malformed."""


@dataclass(frozen=True)
class Measurement:
    """One measured op: median, 10th and 90th percentile seconds per call over ``samples`` samples.

    ``source`` says where a point measured elsewhere comes from (an imported profile: the file, row and
    column it was read from, see :mod:`dcsim.calibrate.vidur`); empty for a point ``dcsim calibrate``
    measured on the profile's device itself."""

    op: Op
    median_s: float
    p10_s: float
    p90_s: float
    samples: int
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (FLOPs and bytes included for readers; they are recomputed on load)."""
        out = {
            "op": self.op.to_dict(),
            "median_s": self.median_s,
            "p10_s": self.p10_s,
            "p90_s": self.p90_s,
            "samples": self.samples,
            "flops": self.op.flops,
            "bytes": self.op.bytes,
        }
        if self.source:
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class EndToEnd:
    """One measured model step: ``phase`` is ``fwd`` or ``fwd+bwd``; ``size`` is the sequence length
    (transformers) or image side in pixels (CNNs)."""

    model: str
    batch: int
    size: int
    phase: str
    precision: str
    median_s: float
    p10_s: float
    p90_s: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(vars(self))


@dataclass(frozen=True)
class Profile:
    """A device's calibration profile (see the module docstring). ``peak_tflops`` maps precision to the
    reference peak in 10^12 FLOP/s, ``memory_bandwidth_gb_per_s`` is the reference bandwidth in 10^9
    bytes/s; ``reference`` says where those come from (datasheet or measured). ``fits`` caches the
    parameters fitted to ``points`` (per op class) by fit code version ``fit_version``, so loading a
    profile need not refit it (see :func:`dcsim.compute.calibration.fit_profile`).
    ``imported_from`` names the published data sets some of its points were imported from (each point's ``source``
    says which file and row). ``page_fault_s_per_byte`` is the measured cost of faulting in fresh memory, paid by
    allocations larger than ``mmap_threshold_bytes`` (glibc's malloc serves those with new pages on every call; 32
    MiB is its largest dynamic threshold on 64-bit Linux); 0 on GPUs, whose allocators cache memory."""

    device_id: str
    device_name: str
    backend: str
    torch_version: str
    threads: int
    date: str
    peak_tflops: Mapping[str, float]
    memory_bandwidth_gb_per_s: float
    reference: str
    points: Sequence[Measurement]
    end_to_end: Sequence[EndToEnd] = ()
    notes: Sequence[str] = field(default_factory=tuple)
    fits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fit_version: int = 0
    page_fault_s_per_byte: float = 0.0
    mmap_threshold_bytes: float = float(32 << 20)
    imported_from: Sequence[str] = ()

    @property
    def basis_note(self) -> str:
        """Where the profile's points come from: ``measured`` (by ``dcsim calibrate`` on the device),
        ``measured (imported: ...)`` or ``measured (dcsim calibrate + imported: ...)``."""
        if not self.imported_from:
            return "measured"
        own = any(not p.source for p in self.points)
        return f"measured ({'dcsim calibrate + ' if own else ''}imported: {'; '.join(self.imported_from)})"

    def fresh_bytes(self, op: Op) -> float:
        """Bytes ``op`` allocates above the C allocator's mmap threshold: they get new pages from the
        OS on each call (on CPUs: 0 where the profile measured no page-fault cost, as on GPUs)."""
        if not self.page_fault_s_per_byte:
            return 0.0
        return sum(size for size in op.allocations if size > self.mmap_threshold_bytes)

    def fault_seconds(self, op: Op) -> float:
        """Seconds ``op`` spends faulting in fresh pages at the profile's measured cost per byte (the
        fallback for op classes whose fit has no page-fault term of its own)."""
        return self.fresh_bytes(op) * self.page_fault_s_per_byte

    def peak_flops(self, precision: str) -> float:
        """Reference peak FLOP/s at ``precision`` (KeyError if the profile has none)."""
        if precision not in self.peak_tflops:
            raise KeyError(f"profile {self.device_id} has no reference peak for {precision}")
        return self.peak_tflops[precision] * 1e12

    @property
    def bandwidth(self) -> float:
        """Reference memory bandwidth, bytes/s."""
        return self.memory_bandwidth_gb_per_s * 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict that :func:`profile_from_dict` reads back."""
        return {
            "schema": SCHEMA_VERSION,
            "device_id": self.device_id,
            "device_name": self.device_name,
            "backend": self.backend,
            "torch_version": self.torch_version,
            "threads": self.threads,
            "date": self.date,
            "peak_tflops": dict(self.peak_tflops),
            "memory_bandwidth_gb_per_s": self.memory_bandwidth_gb_per_s,
            "reference": self.reference,
            "notes": list(self.notes),
            "page_fault_s_per_byte": self.page_fault_s_per_byte,
            "mmap_threshold_bytes": self.mmap_threshold_bytes,
            **({"imported_from": list(self.imported_from)} if self.imported_from else {}),
            "fit_version": self.fit_version,
            "fits": {k: dict(v) for k, v in self.fits.items()},
            "points": [p.to_dict() for p in self.points],
            "end_to_end": [e.to_dict() for e in self.end_to_end],
        }


def _measurement(raw: Mapping[str, Any]) -> Measurement:
    return Measurement(
        op=op_from_dict(raw["op"]),
        median_s=float(raw["median_s"]),
        p10_s=float(raw.get("p10_s", raw["median_s"])),
        p90_s=float(raw.get("p90_s", raw["median_s"])),
        samples=int(raw.get("samples", 1)),
        source=str(raw.get("source", "")),
    )


def profile_from_dict(raw: Mapping[str, Any], where: str = "profile") -> Profile:
    """Build a :class:`Profile` from its JSON dict (ProfileError naming the problem otherwise)."""
    try:
        if raw.get("schema") != SCHEMA_VERSION:
            raise ProfileError(f"{where}: schema must be {SCHEMA_VERSION}, not {raw.get('schema')!r}")
        return Profile(
            device_id=str(raw["device_id"]),
            device_name=str(raw["device_name"]),
            backend=str(raw["backend"]),
            torch_version=str(raw["torch_version"]),
            threads=int(raw["threads"]),
            date=str(raw["date"]),
            peak_tflops={str(k): float(v) for k, v in raw["peak_tflops"].items()},
            memory_bandwidth_gb_per_s=float(raw["memory_bandwidth_gb_per_s"]),
            reference=str(raw.get("reference", "")),
            points=tuple(_measurement(p) for p in raw["points"]),
            end_to_end=tuple(EndToEnd(**e) for e in raw.get("end_to_end", ())),
            notes=tuple(raw.get("notes", ())),
            fits={str(k): dict(v) for k, v in raw.get("fits", {}).items()},
            fit_version=int(raw.get("fit_version", 0)),
            page_fault_s_per_byte=float(raw.get("page_fault_s_per_byte", 0.0)),
            mmap_threshold_bytes=float(raw.get("mmap_threshold_bytes", 32 << 20)),
            imported_from=tuple(str(s) for s in raw.get("imported_from", ())),
        )
    except ProfileError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise ProfileError(f"{where}: {type(error).__name__}: {error}") from None


def load_profile(path: str | Path) -> Profile:
    """Read a profile JSON file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ProfileError(f"{path}: {error}") from None
    return profile_from_dict(raw, where=str(path))


def save_profile(profile: Profile, path: str | Path) -> None:
    """Write a profile as indented JSON (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile.to_dict(), indent=1) + "\n", encoding="utf-8")


def op_class(op: Op) -> str:
    """The fit class of ``op``: its :attr:`Op.fit_key` without phase and precision (``matmul_skinny``)."""
    return op.fit_key.split("/", 1)[0]


def without_classes(profile: Profile, classes: Iterable[str]) -> Profile:
    """``profile`` without the measurements of ops of these fit classes (to measure them anew: a merge
    would otherwise keep whichever measurement was lower, old or new)."""
    drop = set(classes)
    return replace(
        profile, points=tuple(p for p in profile.points if op_class(p.op) not in drop), fits={}, fit_version=0
    )


def merge_profiles(old: Profile, new: Profile) -> Profile:
    """``new`` with, per op and per end-to-end case, the quieter (lower-median) measurement of the two
    runs: on a shared machine other processes only ever slow a measurement down, so more runs can only
    bring each point closer to the device's own speed. Both must be of one device and thread count."""
    if (old.device_id, old.threads, old.backend) != (new.device_id, new.threads, new.backend):
        raise ProfileError(f"cannot merge profiles of {old.device_id} and {new.device_id} (or thread counts)")
    points: dict[Op, Measurement] = {}
    for point in (*old.points, *new.points):
        if point.op not in points or point.median_s < points[point.op].median_s:
            points[point.op] = point
    cases: dict[tuple[str, int, int, str, str], EndToEnd] = {}
    for entry in (*old.end_to_end, *new.end_to_end):
        key = (entry.model, entry.batch, entry.size, entry.phase, entry.precision)
        if key not in cases or entry.median_s < cases[key].median_s:
            cases[key] = entry
    note = f"merged with the run of {old.date}: the quieter measurement of each point is kept"
    return replace(
        new,
        points=tuple(points.values()),
        end_to_end=tuple(cases.values()),
        notes=(*old.notes, *(n for n in new.notes if n not in old.notes), note),
        fits={},
        fit_version=0,
    )
