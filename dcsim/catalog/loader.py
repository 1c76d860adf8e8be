"""Read the catalog's YAML data files into :class:`Catalog` (cached: the files are immutable data).

:func:`load_catalog` is the catalog in effect: the data files' entries, plus the accelerators a scenario
declares while that scenario is validated or run (:mod:`dcsim.catalog.declared` sets them for the current
context only, so they never reach another scenario's run).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, fields
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from dcsim.catalog.entries import Accelerator, Interconnect

OPTIONAL_FIGURES = ("idle_w", "max_w", "usd_per_hour", "nvls")
#: Optional fields that are not figures (``None`` when absent); given, they need a source like any figure.
OPTIONAL_FIELDS = (*OPTIONAL_FIGURES, "based_on")


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
        elif name in OPTIONAL_FIELDS:
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


def check_based_on(accelerators: Mapping[str, Accelerator], where: Mapping[str, str]) -> None:
    """CatalogError unless every ``based_on`` names another accelerator of ``accelerators`` and no chain of them
    comes back to where it started; ``where`` maps an id to where its entry is (``accelerators[3]``)."""
    for acc_id, acc in accelerators.items():
        seen = [acc_id]
        current = acc
        while current.based_on is not None:
            if current.based_on not in accelerators:
                raise CatalogError(f"{where[current.id]}: based_on {current.based_on!r} is not in the catalog")
            if current.based_on in seen:
                chain = " -> ".join([*seen, current.based_on])
                raise CatalogError(f"{where[acc_id]}: based_on chain {chain} is a loop")
            seen.append(current.based_on)
            current = accelerators[current.based_on]


@functools.cache
def catalog_files() -> Catalog:
    """The catalog of the data files alone: load and validate every file (once per process)."""
    accelerators = _table(Accelerator, _read("accelerators.yaml")["accelerators"], "accelerators")
    check_based_on(accelerators, {acc_id: f"accelerators[{i}]" for i, acc_id in enumerate(accelerators)})
    return Catalog(
        accelerators=accelerators,
        interconnects=_table(Interconnect, _read("interconnects.yaml")["interconnects"], "interconnects"),
    )


#: The catalog in effect in this context when a scenario declares accelerators (None: the data files').
ACTIVE_CATALOG: ContextVar[Catalog | None] = ContextVar("dcsim_active_catalog", default=None)


def load_catalog() -> Catalog:
    """The catalog in effect: the data files' (:func:`catalog_files`), with the accelerators of the scenario
    being validated or run in this context added (:func:`dcsim.catalog.declared.declared_accelerators`)."""
    active = ACTIVE_CATALOG.get()
    return catalog_files() if active is None else active
