"""LLM inference serving at iteration level: traffic, replicas with batching and a paged KV cache, routing,
autoscaling and per-request metrics (see ``docs/serving.md``).

A :class:`ServingSystem` runs on a SimPy environment: requests arrive in order, a router sends each to a
replica, and each replica advances by iterations whose time comes from :class:`IterationCost` (the
calibrated cost model over the ops of :mod:`dcsim.models.inference`). Runs of identical decode iterations
are advanced in one event, so a request costs a handful of events, not one per token.
"""

from dcsim.serving.batching import BATCH_POLICIES, BatchPolicy, make_batch_policy, register_batch_policy
from dcsim.serving.costs import IterationCost, ReplicaMemory, replica_memory
from dcsim.serving.kvcache import KVCache
from dcsim.serving.records import RequestRecords, Status
from dcsim.serving.replica import Replica
from dcsim.serving.routing import ROUTERS, RequestRouter, Router, register_router, resolve_router
from dcsim.serving.system import ServingSystem
from dcsim.serving.traffic import Traffic, diurnal_arrivals, gamma_arrivals, poisson_arrivals, read_trace

__all__ = [
    "BATCH_POLICIES",
    "ROUTERS",
    "BatchPolicy",
    "IterationCost",
    "KVCache",
    "Replica",
    "ReplicaMemory",
    "RequestRecords",
    "RequestRouter",
    "Router",
    "ServingSystem",
    "Status",
    "Traffic",
    "diurnal_arrivals",
    "gamma_arrivals",
    "make_batch_policy",
    "poisson_arrivals",
    "read_trace",
    "register_batch_policy",
    "register_router",
    "replica_memory",
    "resolve_router",
]
