"""Hardware catalog: accelerators and intra-node interconnects, loaded from YAML data files.

Hardware is data, not code: every figure lives in ``dcsim/catalog/data/*.yaml`` with a ``source:`` entry
naming where it comes from. :func:`load_catalog` returns frozen dataclasses.
"""

from dcsim.catalog.entries import Accelerator, Interconnect
from dcsim.catalog.loader import Catalog, CatalogError, load_catalog

__all__ = ["Accelerator", "Catalog", "CatalogError", "Interconnect", "load_catalog"]
