"""Datasheet priors: assumed efficiencies for devices without a measured profile.

The assumptions and their reasoning live in ``dcsim/compute/data/priors.yaml`` (per device kind:
``gpu``, ``tpu``, ``cpu``). Every fit built here is labelled ``basis="prior"``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from dcsim.compute.roofline import RooflineFit


@dataclass(frozen=True)
class KindPrior:
    """The assumptions for one device kind (see ``priors.yaml`` for every field's reasoning)."""

    kind: str
    transfer_from: tuple[str, ...]
    overhead_s: float
    compute_efficiency: Mapping[str, float]
    memory_efficiency: Mapping[str, float]
    sources: Mapping[str, str]

    def fit(self, op_kind: str, peak_flops: float, bandwidth: float) -> RooflineFit:
        """A constant-efficiency fit for ``op_kind`` on a device with these peaks (FLOP/s, bytes/s)."""
        compute = self.compute_efficiency.get(op_kind, self.compute_efficiency["default"])
        memory = self.memory_efficiency.get(op_kind, self.memory_efficiency["default"])
        return RooflineFit(
            peak_flops=peak_flops,
            bandwidth=bandwidth,
            overhead_s=self.overhead_s,
            compute_factor=1.0 / compute,
            memory_factor=1.0 / memory,
            basis="prior",
            note=f"{self.kind} datasheet prior: {compute:g} of peak FLOP/s, {memory:g} of bandwidth",
        )


def _kind_prior(kind: str, raw: Mapping[str, Any]) -> KindPrior:
    for table in ("compute_efficiency", "memory_efficiency"):
        values = raw[table]
        if "default" not in values or not all(0 < float(v) <= 1 for v in values.values()):
            raise ValueError(f"priors.yaml: {kind}.{table} needs a default and values in (0, 1]")
    return KindPrior(
        kind=kind,
        transfer_from=tuple(raw.get("transfer_from", ())),
        overhead_s=float(raw["overhead_s"]),
        compute_efficiency={k: float(v) for k, v in raw["compute_efficiency"].items()},
        memory_efficiency={k: float(v) for k, v in raw["memory_efficiency"].items()},
        sources={k: str(v) for k, v in raw.items() if k.endswith("_source")},
    )


@functools.cache
def load_priors() -> Mapping[str, KindPrior]:
    """Priors by device kind (``gpu``, ``tpu``, ``cpu``), read once from the package data."""
    text = resources.files("dcsim.compute").joinpath("data", "priors.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)["device_kinds"]
    return {kind: _kind_prior(kind, values) for kind, values in raw.items()}
