"""Hardware catalog: accelerators and intra-node interconnects, loaded from YAML data files.

Hardware is data, not code: every figure lives in ``dcsim/catalog/data/*.yaml`` with a ``source:`` entry
naming where it comes from. :func:`load_catalog` returns frozen dataclasses: the data files' entries, plus the
accelerators the scenario being validated or run declares (:func:`declared_accelerators`).
"""

from dcsim.catalog.declared import declared_accelerators
from dcsim.catalog.entries import Accelerator, Interconnect
from dcsim.catalog.loader import Catalog, CatalogError, catalog_files, load_catalog

__all__ = [
    "Accelerator",
    "Catalog",
    "CatalogError",
    "Interconnect",
    "catalog_files",
    "declared_accelerators",
    "load_catalog",
]
