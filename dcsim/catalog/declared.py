"""Accelerators a scenario declares: in the catalog while that scenario is validated or run, and nowhere else.

:func:`declared_accelerators` extends the catalog for the current context only (a ``ContextVar``): code after the
``with`` block, and other threads, see the data files' catalog (:func:`dcsim.catalog.loader.catalog_files`).
Entering it with no accelerators gives the data files' catalog too, so a scenario that declares none never sees
another's.

Results cached by accelerator id (op times, step times, fabrics) hold for the figures the id had when they were
computed. When an id is declared with other figures than it last had in this process (a sweep over a declared
accelerator's ``memory_bandwidth_gb_per_s``), every module-level ``functools`` cache of dcsim is cleared (but the
data-file loaders of :data:`KEPT_CACHES`) and every :class:`~dcsim.compute.CostModel` forgets the id, so nothing
computed for the old figures is reused. Runs in concurrent threads of one process that declare one id with
different figures are not isolated from each other (sweeps run their points in processes).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from types import MappingProxyType
from typing import Any, Protocol

from dcsim.catalog.entries import Accelerator
from dcsim.catalog.loader import ACTIVE_CATALOG, Catalog, CatalogError, catalog_files

#: Module-level caches that do not depend on declared accelerators (data files read once) or that forget a
#: redeclared id themselves (the process-wide cost model, a :class:`Forgetful`): kept on redeclaration.
KEPT_CACHES = frozenset(
    {
        "dcsim.catalog.loader.catalog_files",
        "dcsim.compute.default_cost_model",
        "dcsim.compute.priors.load_priors",
    }
)


class Forgetful(Protocol):
    """An object holding results per accelerator id that can drop those of some ids."""

    def forget(self, accelerator_ids: frozenset[str]) -> None:
        """Drop everything held for these ids."""


#: The figures each declared id last had in this process (see :func:`figures`).
_LAST_FIGURES: dict[str, tuple[Any, ...]] = {}
#: Objects told when an id is redeclared with other figures (held weakly).
_FORGETFUL: weakref.WeakSet[Any] = weakref.WeakSet()


def figures(accelerator: Accelerator) -> tuple[Any, ...]:
    """Every field of ``accelerator`` as a hashable tuple (mappings as sorted item tuples)."""
    out: list[Any] = []
    for field in fields(accelerator):
        value = getattr(accelerator, field.name)
        out.append(tuple(sorted(value.items())) if isinstance(value, Mapping) else value)
    return tuple(out)


def forget_on_redeclaration(holder: Forgetful) -> None:
    """Call ``holder.forget(ids)`` whenever ids are declared with other figures than they last had."""
    _FORGETFUL.add(holder)


def with_accelerators(base: Catalog, accelerators: Iterable[Accelerator]) -> Catalog:
    """``base`` plus ``accelerators`` (CatalogError for an id ``base`` already has or one given twice)."""
    table = dict(base.accelerators)
    for accelerator in accelerators:
        if accelerator.id in table:
            raise CatalogError(f"accelerator id {accelerator.id!r} is already in the catalog")
        table[accelerator.id] = accelerator
    return Catalog(accelerators=MappingProxyType(table), interconnects=base.interconnects)


@contextmanager
def declared_accelerators(accelerators: Sequence[Accelerator]) -> Iterator[Catalog]:
    """Within the block, :func:`~dcsim.catalog.load_catalog` in this context is the data files' catalog plus
    ``accelerators`` (and only the data files' when there are none); yields that catalog."""
    base = catalog_files()
    catalog = with_accelerators(base, accelerators) if accelerators else base
    _note_figures(accelerators)
    token = ACTIVE_CATALOG.set(catalog)
    try:
        yield catalog
    finally:
        ACTIVE_CATALOG.reset(token)


def _note_figures(accelerators: Sequence[Accelerator]) -> None:
    """Record the figures of ``accelerators``; where an id had others before, drop what was computed for them."""
    changed = []
    for accelerator in accelerators:
        now = figures(accelerator)
        before = _LAST_FIGURES.get(accelerator.id)
        if before is not None and before != now:
            changed.append(accelerator.id)
        _LAST_FIGURES[accelerator.id] = now
    if changed:
        ids = frozenset(changed)
        for holder in list(_FORGETFUL):
            holder.forget(ids)
        clear_module_caches()


def clear_module_caches() -> None:
    """Clear every ``functools.cache``/``lru_cache`` defined at module level in the loaded dcsim modules,
    but :data:`KEPT_CACHES`."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "dcsim" or name.startswith("dcsim.")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) or not hasattr(value, "cache_info") or not hasattr(value, "cache_clear"):
                continue
            if getattr(value, "__module__", None) != name:
                continue  # imported from another module: cleared (or kept) there
            if f"{name}.{getattr(value, '__qualname__', '')}" not in KEPT_CACHES:
                value.cache_clear()
