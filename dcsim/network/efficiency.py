"""Achievable fraction of an interconnect's datasheet bandwidth (data: ``catalog/data/link_efficiency.yaml``,
each entry with its source). Raw figures are used where no entry exists."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

import yaml


@functools.cache
def link_efficiencies() -> Mapping[str, float]:
    """Efficiency (0..1] by interconnect id, read once per process."""
    text = resources.files("dcsim.catalog").joinpath("data", "link_efficiency.yaml").read_text(encoding="utf-8")
    table: dict[str, float] = {}
    for index, entry in enumerate(yaml.safe_load(text)["link_efficiency"]):
        value = float(entry["efficiency"])
        if not 0 < value <= 1 or not entry.get("source"):
            raise ValueError(f"link_efficiency[{index}]: efficiency must be in (0, 1] with a source")
        if entry["id"] in table:
            raise ValueError(f"link_efficiency[{index}]: duplicate id {entry['id']!r}")
        table[entry["id"]] = value
    return MappingProxyType(table)


def link_efficiency(interconnect_id: str) -> float:
    """Efficiency of ``interconnect_id`` (1.0 where the data file has no entry)."""
    return link_efficiencies().get(interconnect_id, 1.0)
