"""The one place an SDN controller and a flow simulator are built, for every user of the network model
(``dcsim net``, ``kind: collective``, training's communication model, serving's transfers).

A controller holds the route tables (the costly part), so callers that run many short simulations on one
fabric build it once with :func:`make_controller` and give it to :func:`make_flow_simulator` each time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import simpy

from dcsim.network.controller import Controller
from dcsim.network.flows import FlowSimulator
from dcsim.network.routing import RoutingPolicy


def make_controller(
    graph: nx.Graph,
    routing: str | type[RoutingPolicy] = "ecmp",
    seed: int = 0,
    policy_params: Mapping[str, Any] | None = None,
    route_tables: bool | None = None,
) -> Controller:
    """An SDN controller over ``graph`` routing with ``routing`` (a registered name, ``module:Class`` or a
    class; ``policy_params`` go to it); ``seed`` feeds the ECMP hash. ``route_tables``: per-destination
    route tables or region routing (see :class:`~dcsim.network.controller.Controller`; None picks by size,
    both give the same routes)."""
    return Controller(graph, routing, seed, policy_params, route_tables)


def make_flow_simulator(
    env: simpy.Environment,
    network: nx.Graph | Controller,
    routing: str | type[RoutingPolicy] = "ecmp",
    seed: int = 0,
    *,
    incremental: bool = True,
    check: bool = False,
) -> FlowSimulator:
    """A max-min fair flow simulator on ``env`` over ``network``: a graph (a controller is built for it
    with ``routing`` and ``seed``) or an existing controller (``routing`` and ``seed`` are then unused).
    ``incremental`` and ``check``: see :class:`~dcsim.network.flows.FlowSimulator`."""
    controller = network if isinstance(network, Controller) else make_controller(network, routing, seed)
    return FlowSimulator(env, controller, incremental=incremental, check=check)
