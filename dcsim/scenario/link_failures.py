"""Checks and figures of the scenario's network link failures (``failures.links``) on its fabric."""

from __future__ import annotations

from dcsim.scenario.network import build_fabric
from dcsim.scenario.schema import Scenario

Link = tuple[str, str]


def switch_links(scenario: Scenario) -> list[Link]:
    """The fabric's links between two switches (the cables a drawn link failure picks from), sorted."""
    graph = build_fabric(scenario.datacenter, scenario.seed).graph
    roles = graph.nodes
    return sorted(
        (min(str(u), str(v)), max(str(u), str(v)))
        for u, v in graph.edges()
        if roles[u].get("role") == "switch" and roles[v].get("role") == "switch"
    )


def link_problems(scenario: Scenario) -> list[tuple[str, str]]:
    """``(field, message)`` for each scheduled link failure naming no link of the fabric, and for link
    failures with ``scheduler.network_contention`` off."""
    spec = scenario.failures.links if scenario.failures is not None else None
    if spec is None:
        return []
    problems = []
    if not scenario.scheduler.network_contention:
        problems.append(
            ("failures.links", "link failures re-price jobs through scheduler.network_contention: turn it on")
        )
    if spec.events:
        graph = build_fabric(scenario.datacenter, scenario.seed).graph
        for index, event in enumerate(spec.events):
            u, v = event.link
            if not graph.has_edge(u, v):
                known = ", ".join(f"{a}-{b}" for a, b in switch_links(scenario)[:6])
                problems.append(
                    (
                        f"failures.links.events[{index}].link",
                        f"no link {u}-{v} in the datacenter's network (its switch-to-switch links: {known}, ...)",
                    )
                )
    if spec.mtbf_h and not switch_links(scenario):
        problems.append(("failures.links.mtbf_h", "the datacenter's network has no link between two switches"))
    return problems
