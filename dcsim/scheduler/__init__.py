"""Cluster scheduling: a resource pool of accelerators, policies and placements (registries), dispatch."""

from dcsim.scheduler.cluster import Cluster, Node
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.placement import Placement, register_placement, resolve_placement
from dcsim.scheduler.policies import SchedulingPolicy, register_policy, resolve_policy

__all__ = [
    "Cluster",
    "ClusterScheduler",
    "Node",
    "Placement",
    "SchedulingPolicy",
    "register_placement",
    "register_policy",
    "resolve_placement",
    "resolve_policy",
]
