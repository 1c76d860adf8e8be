"""Routing policy registry for the SDN controller (see :mod:`dcsim.network.routing.base`)."""

from dcsim.network.routing import policies
from dcsim.network.routing.base import (
    ROUTING_POLICIES,
    NoRouteError,
    RoutingPolicy,
    make_policy,
    mix64,
    register_routing_policy,
    resolve_policy,
    resolve_routing_policy,
)

__all__ = [
    "ROUTING_POLICIES",
    "NoRouteError",
    "RoutingPolicy",
    "make_policy",
    "mix64",
    "policies",
    "register_routing_policy",
    "resolve_policy",
    "resolve_routing_policy",
]
