"""Read the catalog's YAML data files into :class:`Catalog` (cached: the files are immutable data)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from dcsim.catalog.entries import Accelerator, Interconnect

OPTIONAL_FIGURES = ("idle_w", "max_w", "usd_per_hour", "nvls")


class CatalogError(ValueError):
    """A catalog data file is malformed (missing field, missing source, duplicate id)."""


@dataclass(frozen=True)
class Catalog:
    """All hardware entries by id."""

    accelerators: Mapping[str, Accelerator]
    interconnects: Mapping[str, Interconnect]

    def accelerator(self, accelerator_id: str) -> Accelerator:
        """The accelerator with this id (KeyError listing the known ids otherwise)."""
        return _lookup(self.accelerators, accelerator_id, "accelerator")

    def interconnect(self, interconnect_id: str) -> Interconnect:
        """The interconnect with this id (KeyError listing the known ids otherwise)."""
        return _lookup(self.interconnects, interconnect_id, "interconnect")


def _lookup(table: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in table:
        raise KeyError(f"unknown {what} id {key!r} (known: {', '.join(sorted(table))})")
    return table[key]


def _read(name: str) -> Any:
    text = resources.files("dcsim.catalog").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _build(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    names = [f.name for f in fields(cls)]
    unknown = set(raw) - set(names)
    if unknown:
        raise CatalogError(f"{where}: unknown fields {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name in names:
        if name in raw:
            values[name] = raw[name]
        elif name in OPTIONAL_FIGURES:
            values[name] = None
        else:
            raise CatalogError(f"{where}: missing field {name!r}")
    source = values["source"]
    if not isinstance(source, dict):
        raise CatalogError(f"{where}: source must be a mapping of field name to document")
    for name in names:
        if name in raw and name not in ("id", "name", "kind", "topology", "source") and name not in source:
            raise CatalogError(f"{where}: field {name!r} has no source")
    for key in ("peak_tflops", "source"):
        if key in values:
            values[key] = MappingProxyType(dict(values[key]))
    return cls(**values)


def _table(cls: type, entries: list[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    table: dict[str, Any] = {}
    for index, raw in enumerate(entries):
        entry = _build(cls, raw, f"{kind}[{index}]")
        if entry.id in table:
            raise CatalogError(f"{kind}[{index}]: duplicate id {entry.id!r}")
        table[entry.id] = entry
    return MappingProxyType(table)


@functools.cache
def load_catalog() -> Catalog:
    """Load and validate every catalog data file (once per process)."""
    return Catalog(
        accelerators=_table(Accelerator, _read("accelerators.yaml")["accelerators"], "accelerators"),
        interconnects=_table(Interconnect, _read("interconnects.yaml")["interconnects"], "interconnects"),
    )
