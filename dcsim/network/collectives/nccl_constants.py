"""NCCL's tuning-model constants, read once from ``catalog/data/nccl_tuning.yaml`` (NCCL 2.30,
``src/graph/tuning.cc``; every entry carries its source there).

Latencies are converted to seconds and bandwidths to bytes per second here, so the model works in dcsim's
units. Tables indexed by protocol hold ``[ll, ll128, simple]``; tables indexed by node count hold
``[one node, two nodes, more than two]``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

PROTOCOLS = ("ll", "ll128", "simple")
GENERATIONS = ("volta", "ampere", "hopper", "blackwell")
US = 1e-6
GB = 1e9


@dataclass(frozen=True)
class NcclTuning:
    """The constants of NCCL's tuner in SI units (seconds, bytes/s)."""

    base_latency_s: Mapping[str, tuple[float | None, ...]]
    hw_latency_s: Mapping[str, Mapping[str, tuple[float | None, ...]]]
    net_overhead_s: Mapping[str, float]
    simple_overhead_multiplier: float
    plateau_min_bytes: int
    plateau_before_ampere: float
    plateau_ampere_and_newer: float
    factors: Mapping[str, float]
    ring_ll128_cap: Mapping[str, float]
    tree_ll128_cap: Mapping[str, tuple[float, ...]]
    tree_cap: Mapping[str, tuple[float, ...]]
    nvls_tree_cap: Mapping[str, tuple[float | None, ...]]
    ll_max_one_node: Mapping[str, float]
    ll_max_nodes: Mapping[str, tuple[float, ...]]
    nvls_efficiency: Mapping[str, float]
    collnet_arity_latency_s: float
    tree_correction: Mapping[str, tuple[float, ...]]
    channel_speed_intra: Mapping[str, float]
    channel_speed_inter: Mapping[str, float]
    max_channels: int
    compute_capability: Mapping[str, float]
    p2p_ll_threshold_bytes: int

    def generation(self, accelerator: str | None) -> str:
        """The GPU generation NCCL keys its figures by, from the accelerator's compute capability (Ampere
        for accelerators the table does not list)."""
        cc = self.compute_capability.get(accelerator or "", 8.0)
        return "blackwell" if cc >= 10 else "hopper" if cc >= 9 else "ampere" if cc >= 8 else "volta"


def _scaled(values: list[Any], unit: float) -> tuple[float | None, ...]:
    return tuple(None if v is None else float(v) * unit for v in values)


def _table(raw: Mapping[str, Any], unit: float) -> dict[str, Any]:
    return {k: _scaled(v, unit) if isinstance(v, list) else float(v) * unit for k, v in raw.items() if k != "source"}


@functools.cache
def nccl_tuning() -> NcclTuning:
    """The tuning constants (read once per process)."""
    text = resources.files("dcsim.catalog").joinpath("data", "nccl_tuning.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    if tuple(raw["protocols"]) != PROTOCOLS:
        raise ValueError(f"nccl_tuning.yaml: protocols must be {list(PROTOCOLS)}")
    hw = {link: _table(rows, US) for link, rows in raw["hw_latency_us"].items() if link != "source"}
    overhead = raw["net_overhead_us"]
    plateau = raw["ring_plateau"]
    caps = raw["per_channel_caps_gb_per_s"]
    ll_max = raw["ll_max_gb_per_s"]
    factors = {k: float(v) for k, v in raw["bandwidth_factors"].items() if k != "source"}
    correction = {k: tuple(float(x) for x in v) for k, v in raw["tree_correction"].items() if k != "source"}
    if any(len(v) != 24 for v in correction.values()):
        raise ValueError("nccl_tuning.yaml: tree_correction needs 24 factors per protocol")
    return NcclTuning(
        base_latency_s=_table(raw["base_latency_us"], US),
        hw_latency_s=hw,
        net_overhead_s={"intel": overhead["intel"] * US, "amd": overhead["amd"] * US},
        simple_overhead_multiplier=float(overhead["simple_multiplier"]),
        plateau_min_bytes=int(plateau["min_bytes_per_channel_rank"]),
        plateau_before_ampere=float(plateau["before_ampere"]),
        plateau_ampere_and_newer=float(plateau["ampere_and_newer"]),
        factors=factors,
        ring_ll128_cap=_table(caps["ring_ll128"], GB),
        tree_ll128_cap=_table(caps["tree_ll128"], GB),
        tree_cap=_table(caps["tree"], GB),
        nvls_tree_cap=_table(caps["nvls_tree"], GB),
        ll_max_one_node=_table(ll_max["one_node"], GB),
        ll_max_nodes={"intel": _scaled(ll_max["intel"], GB), "amd": _scaled(ll_max["amd"], GB)},  # type: ignore[dict-item]
        nvls_efficiency={k: float(v) for k, v in raw["nvls_efficiency"].items() if k != "source"},
        collnet_arity_latency_s=float(raw["collnet_arity_latency_us"]["value"]) * US,
        tree_correction=correction,
        channel_speed_intra=_table(raw["channel_speed_max_gb_per_s"]["intra"], GB),
        channel_speed_inter=_table(raw["channel_speed_max_gb_per_s"]["inter"], GB),
        max_channels=int(raw["max_channels"]["value"]),
        compute_capability={k: float(v) for k, v in raw["compute_capability"].items() if k != "source"},
        p2p_ll_threshold_bytes=int(raw["p2p"]["ll_threshold_bytes"]),
    )
