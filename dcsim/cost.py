"""Dollar cost: COST = compute + storage + network + compression + inference optimization.

Compute is priced per node type, in this order of preference:
- ``usd_per_hour`` (per node, cloud style: power and facility included) x hours;
- ``capex_usd`` per node written off linearly over ``amortization_years``, plus the node's facility energy
  at ``electricity_usd_per_kwh``;
- else the catalog's reference price per accelerator-hour (``usd_per_hour`` there, with its source).
Storage is ``capacity_tb x usd_per_tb_month`` for the simulated period (a month = 30.4375 days).
Compression is the cost of producing the compressed models the workloads serve (distillation: a teacher
forward and the student's training; quantization calibration), from :mod:`dcsim.compression`. Network
equipment and inference optimization are not priced by this version's workloads (they are 0 here and
reported so the breakdown always has the same keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dcsim.catalog import load_catalog

if TYPE_CHECKING:
    from dcsim.scenario.schema import Datacenter, NodeType

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_YEAR = 365.25 * 24 * 3600.0
SECONDS_PER_MONTH = SECONDS_PER_YEAR / 12.0
COST_KEYS = ("compute", "storage", "network", "compression", "inference_optimization")


@dataclass(frozen=True)
class NodePrice:
    """What one node of a type costs: ``usd_per_s`` of ownership or rent; ``pays_electricity`` if owned."""

    usd_per_s: float
    pays_electricity: bool
    basis: str


def node_price(node: NodeType) -> NodePrice:
    """The price of one node of this type (ValueError naming the field if no price is known)."""
    if node.usd_per_hour is not None:
        return NodePrice(node.usd_per_hour / SECONDS_PER_HOUR, False, "usd_per_hour (scenario)")
    if node.capex_usd is not None and node.amortization_years is not None:
        return NodePrice(
            node.capex_usd / (node.amortization_years * SECONDS_PER_YEAR),
            True,
            "capex_usd amortized + electricity (scenario)",
        )
    accelerator = load_catalog().accelerator(node.accelerator)
    if accelerator.usd_per_hour is None:
        raise ValueError(
            f"usd_per_hour: the catalog has no reference price for {node.accelerator}; "
            "give usd_per_hour or capex_usd with amortization_years"
        )
    per_node = accelerator.usd_per_hour * node.accelerators_per_node
    return NodePrice(per_node / SECONDS_PER_HOUR, False, f"catalog: {accelerator.source['usd_per_hour']}")


def busy_accelerator_usd_per_s(node: NodeType, datacenter: Datacenter) -> float:
    """What one busy accelerator of a node type costs per second: its share of the node's price plus, for
    owned nodes, its electricity at full power (facility energy, PUE included)."""
    from dcsim.energy import node_power

    price = node_price(node)
    per_s = price.usd_per_s / node.accelerators_per_node
    if price.pays_electricity:
        per_s += datacenter.electricity_usd_per_kwh / 3.6e6 * node_power(node).max_w * datacenter.pue
    return per_s


def storage_cost_usd(datacenter: Datacenter, period_s: float) -> float:
    """Storage rent for ``period_s`` seconds."""
    storage = datacenter.storage
    return storage.capacity_tb * storage.usd_per_tb_month * period_s / SECONDS_PER_MONTH


def breakdown(compute_usd: float, storage_usd: float, compression_usd: float = 0.0) -> dict[str, float]:
    """The COST breakdown with every key of the contract and its total."""
    parts = dict.fromkeys(COST_KEYS, 0.0)
    parts["compute"] = compute_usd
    parts["storage"] = storage_usd
    parts["compression"] = compression_usd
    parts["total"] = sum(parts[key] for key in COST_KEYS)
    return parts
