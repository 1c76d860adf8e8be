"""Adaptive routing (packet spraying as even splitting), weighted max-min sharing and least-loaded routing."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.network import FlowSimulator, build_topology
from dcsim.network.factory import make_controller, make_flow_simulator
from dcsim.network.maxmin import max_min_rows
from dcsim.network.routing import ROUTING_POLICIES
from dcsim.network.routing.policies import Adaptive, LeastLoadedRouting

GBPS = 100.0
CAPACITY = GBPS * 1e9 / 8


def _sim(graph: nx.Graph, routing: str = "adaptive") -> tuple[simpy.Environment, FlowSimulator]:
    env = simpy.Environment()
    return env, make_flow_simulator(env, graph, routing, check=True)


def _value(event: simpy.Event) -> Any:
    return event.value


def _thin_leaf_spine(spines: int = 4, hosts_per_leaf: int = 2) -> nx.Graph:
    """Two leaves, ``spines`` spines; each uplink a quarter of a host link."""
    params = {"leaves": 2, "spines": spines, "hosts_per_leaf": hosts_per_leaf, "uplink_gbps": GBPS / 4}
    return build_topology("leaf_spine", params, GBPS, 1.0)


def test_spraying_splits_a_flow_evenly_over_its_equal_cost_paths() -> None:
    controller = make_controller(_thin_leaf_spine(), "adaptive")
    src, dst = controller.index("host0"), controller.index("host2")
    links, fractions, latency = controller.policy.split(src, dst, 0)
    by_name = {controller.links.endpoints(lk): f for lk, f in zip(links, fractions, strict=True)}
    assert by_name[("host0", "leaf0")] == 1.0
    assert by_name[("leaf1", "host2")] == 1.0
    for s in range(4):
        assert by_name[("leaf0", f"spine{s}")] == pytest.approx(0.25)
        assert by_name[(f"spine{s}", "leaf1")] == pytest.approx(0.25)
    assert len(by_name) == 10
    assert latency == pytest.approx(4e-6)


def test_spraying_uses_every_spine_where_ecmp_uses_one() -> None:
    """One flow across thin uplinks (a quarter of the host link each): ECMP is held to one uplink,
    spraying fills all four and runs at the host link's rate."""
    times = {}
    for routing in ("ecmp", "adaptive"):
        env, sim = _sim(_thin_leaf_spine(), routing)
        done = sim.start_flow("host0", "host2", 1e9)
        env.run()
        times[routing] = _value(done).end_s
        table = sim.usage.table()
        assert float(table["peak_utilization"].max()) <= 1 + 1e-9
    assert times["ecmp"] == pytest.approx(4e-6 + 1e9 / (CAPACITY / 4), rel=1e-9)
    assert times["adaptive"] == pytest.approx(4e-6 + 1e9 / CAPACITY, rel=1e-9)


def test_a_sprayed_flow_gets_one_fair_share_of_a_link_it_shares() -> None:
    """Two flows out of host0 (one to its own leaf, one sprayed over four spines) share host0's link
    half and half: a flow counts once on a link, whatever the paths it is split over."""
    env, sim = _sim(_thin_leaf_spine(hosts_per_leaf=2))
    near = sim.start_flow("host0", "host1", 1e9)
    far = sim.start_flow("host0", "host2", 1e9)
    env.run(until=1e-3)
    assert sim.flows.rate[sim.flows.slots()].tolist() == pytest.approx([CAPACITY / 2] * 2)
    env.run()
    assert _value(near).end_s == pytest.approx(_value(far).end_s, abs=3e-6)  # (latencies 2 and 4 us)


def test_sprayed_flows_survive_a_failed_spine_link() -> None:
    env, sim = _sim(_thin_leaf_spine())
    done = sim.start_flow("host0", "host2", 1e9)

    def fail() -> simpy.events.ProcessGenerator:
        yield env.timeout(0.02)
        assert sim.fail_link("leaf0", "spine0") == 1

    env.process(fail())
    env.run()
    # 0.02 s at the full rate, then three uplinks of a quarter each carry the rest
    sent = 0.02 * CAPACITY
    assert _value(done).end_s == pytest.approx(0.02 + (1e9 - sent) / (0.75 * CAPACITY) + 4e-6, rel=1e-6)
    table = sim.usage.table()
    assert float(table["bytes"].max()) == pytest.approx(1e9, rel=1e-9)  # the access links carried it all


@st.composite
def _fabric_and_flows(draw: st.DrawFn) -> tuple[nx.Graph, list[tuple[int, int, float, float]]]:
    kind = draw(st.sampled_from(["leaf_spine", "fat_tree", "rail_optimized"]))
    if kind == "leaf_spine":
        params: dict[str, Any] = {
            "leaves": draw(st.integers(1, 3)),
            "spines": draw(st.integers(1, 3)),
            "hosts_per_leaf": draw(st.integers(1, 3)),
            "oversubscription": draw(st.sampled_from([1, 2, 4])),
        }
    elif kind == "fat_tree":
        params = {"k": 4}
    else:
        params = {
            "nodes": draw(st.integers(1, 4)),
            "nics_per_node": draw(st.integers(1, 3)),
            "nodes_per_group": draw(st.integers(1, 2)),
            "spines": draw(st.integers(1, 3)),
        }
    graph = build_topology(kind, params, GBPS, 1.0)
    n_hosts = sum(1 for _, role in graph.nodes(data="role") if role == "host")
    flow = st.tuples(st.integers(0, n_hosts - 1), st.integers(0, n_hosts - 1), st.floats(1e5, 1e8), st.floats(0, 1e-3))
    return graph, draw(st.lists(flow, min_size=1, max_size=12))


@settings(max_examples=40, deadline=None)
@given(_fabric_and_flows())
def test_sprayed_flows_never_exceed_a_link_and_all_arrive(case: tuple[nx.Graph, list]) -> None:
    """Random small fabrics, random sprayed flows at random times: every allocation matches a full
    weighted water-filling (``check=True``), no link ever runs above its capacity, and every flow's
    bytes arrive."""
    graph, flows = case
    names = [n for n, role in graph.nodes(data="role") if role == "host"]
    env, sim = _sim(graph)
    events = []

    def launch(src: int, dst: int, size: float, at: float) -> simpy.events.ProcessGenerator:
        yield env.timeout(at)
        events.append(sim.start_flow(names[src], names[dst], size))

    for src, dst, size, at in flows:
        env.process(launch(src, dst, size, at))
    env.run()
    assert len(events) == len(flows) and all(event.processed and event.ok for event in events)
    assert float(sim.usage.peak_utilization.max(initial=0.0)) <= 1 + 1e-9
    sent = sum(size for src, dst, size, _ in flows if src != dst)
    out_of_hosts = sim.usage.table()
    out_of_hosts = out_of_hosts[out_of_hosts["src"].isin(names)]
    assert float(out_of_hosts["bytes"].sum()) == pytest.approx(sent, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda links: st.tuples(
            st.lists(st.floats(1.0, 10.0), min_size=links, max_size=links),
            st.lists(
                st.lists(
                    st.tuples(st.integers(0, links - 1), st.sampled_from([0.25, 0.5, 1.0])), min_size=1, max_size=4
                ),
                min_size=1,
                max_size=6,
            ),
        )
    )
)
def test_weighted_filling_is_max_min_fair(case: tuple[list[float], list[list[tuple[int, float]]]]) -> None:
    """Each flow loads links with fractions of its rate. The filling never overloads a link, and every
    flow has a bottleneck: a saturated link on which no flow gets a higher rate (the max-min property)."""
    capacities, flows = case
    capacity = np.array(capacities)
    width = max(len(f) for f in flows)
    paths = np.full((len(flows), width), capacity.size, dtype=np.int64)
    weights = np.ones((len(flows), width))
    entries: list[dict[int, float]] = []
    for row, flow in enumerate(flows):
        merged: dict[int, float] = {}
        for link, fraction in flow:
            merged[link] = merged.get(link, 0.0) + fraction
        entries.append(merged)
        for column, (link, fraction) in enumerate(merged.items()):
            paths[row, column], weights[row, column] = link, fraction
    rates = max_min_rows(paths, capacity, weights)
    load = np.zeros(capacity.size)
    for rate, merged in zip(rates, entries, strict=True):
        for link, fraction in merged.items():
            load[link] += fraction * rate
    assert np.all(load <= capacity * (1 + 1e-9))
    saturated = load >= capacity * (1 - 1e-9)
    for rate, merged in zip(rates, entries, strict=True):
        assert any(
            saturated[link]
            and all(other <= rate * (1 + 1e-9) for other, e in zip(rates, entries, strict=True) if link in e)
            for link in merged
        )


def test_unit_weights_give_the_unweighted_filling() -> None:
    rng = np.random.default_rng(3)
    paths = rng.integers(0, 6, size=(20, 3))
    capacity = rng.uniform(1, 10, 6)
    # a link listed twice in a row counts twice in both forms
    assert np.allclose(max_min_rows(paths, capacity, np.ones(paths.shape)), max_min_rows(paths, capacity))


def test_least_loaded_keeps_its_registered_name_and_avoids_a_loaded_path() -> None:
    assert ROUTING_POLICIES["least_loaded"] is LeastLoadedRouting
    assert ROUTING_POLICIES["adaptive"] is Adaptive
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 2, "hosts_per_leaf": 2}, GBPS, 1.0)
    env, sim = _sim(graph, "least_loaded")
    sim.start_flow("host0", "host2", 1e9)
    env.run(until=1e-3)
    busy = {sim.controller.links.endpoints(int(lk)) for lk in np.flatnonzero(sim.controller.link_flows)}
    second = sim.controller.route("host1", "host3")
    spine = sim.controller.name(second.nodes[2])
    assert ("leaf0", spine) not in busy
