"""Every plugin family is one dcsim.registry.Registry: a second class under a taken name is refused, and a
``module:Class`` reference resolves to that class (checked against the family's base class)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dcsim.compression.method import COMPRESSION_METHODS, register_compression_method
from dcsim.compression.methods import Awq
from dcsim.network.routing import ROUTING_POLICIES, register_routing_policy
from dcsim.network.routing.policies import Ecmp
from dcsim.registry import Registry
from dcsim.scenario.workloads import WORKLOAD_KINDS, CollectiveWorkload, register_workload_kind
from dcsim.scheduler.placement import PLACEMENTS, Spread, register_placement
from dcsim.scheduler.policies import POLICIES, Backfill, register_policy
from dcsim.serving.routing import ROUTERS, LeastLoadedRouter, register_router
from dcsim.workloads.trace_formats import TRACE_FORMATS, HeliosFormat, register_trace_format

Register = Callable[[str], Callable[[type], type]]

FAMILIES: dict[str, tuple[Registry[Any], Register, str, str, type]] = {
    # family: (registry, its register decorator, a taken name, a module:Class reference, the class it names)
    "scheduler policy": (POLICIES, register_policy, "fifo", "dcsim.scheduler.policies:Backfill", Backfill),
    "placement": (PLACEMENTS, register_placement, "pack", "dcsim.scheduler.placement:Spread", Spread),
    "request router": (
        ROUTERS,
        register_router,
        "random",
        "dcsim.serving.routing:LeastLoadedRouter",
        LeastLoadedRouter,
    ),
    "routing policy": (ROUTING_POLICIES, register_routing_policy, "ecmp", "dcsim.network.routing.policies:Ecmp", Ecmp),
    "workload kind": (
        WORKLOAD_KINDS,
        lambda name: register_workload_kind(name, runner="dcsim.run.jobs_runner:JobsRunner"),
        "collective",
        "dcsim.scenario.workloads:CollectiveWorkload",
        CollectiveWorkload,
    ),
    "trace format": (
        TRACE_FORMATS,
        register_trace_format,
        "helios",
        "dcsim.workloads.trace_formats:HeliosFormat",
        HeliosFormat,
    ),
    "compression method": (
        COMPRESSION_METHODS,
        register_compression_method,
        "gptq",
        "dcsim.compression.methods:Awq",
        Awq,
    ),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_taken_name_is_refused(family: str) -> None:
    registry, register, taken, _, _ = FAMILIES[family]
    other = type("Other", (registry.base,), {"__module__": __name__})
    before = registry.items()
    with pytest.raises(ValueError, match=f"{family} '{taken}' is already registered"):
        register(taken)(other)
    assert registry.items() == before  # nothing half-registered


@pytest.mark.parametrize("family", FAMILIES)
def test_module_class_resolves_and_is_checked(family: str) -> None:
    registry, _, _, reference, cls = FAMILIES[family]
    assert registry.resolve(reference) is cls
    with pytest.raises(ValueError, match=f"is not a {registry.base.__name__} subclass"):
        registry.resolve("dcsim.run.jobs_runner:JobsRunner")
    with pytest.raises(ValueError, match=f"unknown {family} 'no_such_name'"):
        registry.resolve("no_such_name")


def test_aliases_resolve_to_one_class_and_are_not_listed() -> None:
    assert ROUTERS.resolve("least_outstanding") is ROUTERS.resolve("least_loaded") is LeastLoadedRouter
    assert "least_outstanding" in ROUTERS and "least_outstanding" not in ROUTERS.names()
