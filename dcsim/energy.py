"""Energy: accelerator power states integrated over time, node host power, facility PUE.

Model: an accelerator draws ``max_w`` while it runs work and ``idle_w`` otherwise (two power states; the
catalog's ``max_w`` is the vendor's TDP, so energy of busy time is an upper bound for work that does not
saturate the device). The rest of a node draws a constant ``host_power_w``. Facility energy is IT energy
times PUE. 1 kWh = 3.6e6 J.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dcsim.catalog import load_catalog

if TYPE_CHECKING:
    from dcsim.scenario.schema import NodeType

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class NodePower:
    """Power figures of one node type's accelerators (W each) and of the rest of a node (W)."""

    idle_w: float
    max_w: float
    host_w: float


def node_power(node: NodeType) -> NodePower:
    """The node type's power figures: its overrides, else the catalog's (ValueError if neither exists)."""
    accelerator = load_catalog().accelerator(node.accelerator)
    idle = node.accelerator_idle_w if node.accelerator_idle_w is not None else accelerator.idle_w
    peak = node.accelerator_max_w if node.accelerator_max_w is not None else accelerator.max_w
    if peak is None:
        raise ValueError(
            f"accelerator_max_w: the catalog has no published max power for {node.accelerator}; "
            "give accelerator_max_w (W)"
        )
    if idle is None:
        raise ValueError(
            f"accelerator_idle_w: the catalog has no published idle power for {node.accelerator}; "
            "give accelerator_idle_w (W)"
        )
    return NodePower(float(idle), float(peak), float(node.host_power_w))


def accelerator_energy_j(busy_s: np.ndarray, period_s: float, idle_w: np.ndarray, max_w: np.ndarray) -> np.ndarray:
    """Energy (J) of each accelerator over ``period_s`` seconds of which ``busy_s`` were busy."""
    busy = np.minimum(busy_s, period_s)
    return max_w * busy + idle_w * (period_s - busy)


def to_kwh(joules: float) -> float:
    """Joules to kilowatt-hours."""
    return joules / JOULES_PER_KWH
