"""The flow simulator: single-flow timing, fair sharing, batching, property tests, link failure."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.network import Controller, FlowSimulator, NoRouteError, build_topology, hosts
from dcsim.network.flowtable import BYTES_TOLERANCE, FlowBatch, FlowTable
from dcsim.network.graph import add_link, add_node
from dcsim.network.maxmin import max_min_rows


def _value(event: simpy.Event) -> Any:
    """An event's value (typed Any for attribute access in assertions)."""
    return event.value


def _star(n_hosts: int, gbps: float = 80.0, latency_us: float = 2.0) -> nx.Graph:
    return build_topology("leaf_spine", {"leaves": 1, "spines": 1, "hosts_per_leaf": n_hosts}, gbps, latency_us)


def _sim(
    graph: nx.Graph, policy: str = "ecmp", seed: int = 0, incremental: bool = True
) -> tuple[simpy.Environment, FlowSimulator]:
    env = simpy.Environment()
    return env, FlowSimulator(env, Controller(graph, policy, seed), incremental=incremental, check=True)


def test_one_flow_takes_latency_plus_bytes_over_capacity() -> None:
    env, sim = _sim(_star(2))
    done = sim.start_flow("host0", "host1", 1e9)
    env.run()
    capacity = 80e9 / 8
    assert _value(done).end_s == pytest.approx(2 * 2e-6 + 1e9 / capacity, rel=1e-12)
    assert _value(done).bytes == 1e9


def test_link_bytes_count_what_running_flows_have_sent() -> None:
    """A link's bytes are credited when a flow ends; in between they include what running flows have sent
    by the last re-rate (``usage.end_s``): two flows into host0, read mid-run and at the end."""
    env, sim = _sim(_star(3))
    first = sim.controller.route("host1", "host0")
    second = sim.controller.route("host2", "host0")
    sim.start_flow("host1", "host0", 1e9)
    sim.start_flow("host2", "host0", 3e9)

    def probe() -> simpy.events.ProcessGenerator:  # a flow on links the others do not cross: a re-rate at 0.1 s
        yield env.timeout(0.1)
        sim.start_flow("host0", "host1", 1.0)

    env.process(probe())
    env.run(until=0.1 + 1e-9)  # both share host0's downlink (10 GB/s) from 0: 0.5 GB each by 0.1 s
    downlink = first.links[-1]
    assert downlink == second.links[-1]
    until = sim.usage.end_s  # the last re-rate: the probe's end, 0.1 ns after it started
    assert until == pytest.approx(0.1 + 1.0 / 10e9, rel=1e-9)
    assert sim.usage.bytes[downlink] == pytest.approx(10e9 * until, rel=1e-12)
    assert sim.usage.bytes[first.links[0]] == pytest.approx(5e9 * until, rel=1e-12)
    env.run()
    assert sim.usage.bytes[downlink] == pytest.approx(4e9, rel=1e-12)  # (the probe's byte crossed other links)
    assert sim.usage.bytes[first.links[0]] == pytest.approx(1e9, rel=1e-12)
    assert sim.usage.bytes[second.links[0]] == pytest.approx(3e9, rel=1e-12)


def test_n_flows_on_one_bottleneck_share_it_equally() -> None:
    env, sim = _sim(_star(5))
    events = [sim.start_flow(f"host{i}", "host0", 1e9) for i in range(1, 5)]
    env.run()
    for event in events:  # each gets capacity / 4 on host0's downlink
        assert _value(event).end_s == pytest.approx(4e-6 + 1e9 / (10e9 / 4), rel=1e-12)
    # one water-filling for the four same-instant starts; their common end needs none (nobody is left)
    assert (sim.rerates, sim.incremental_updates) == (1, 1)


def test_rates_change_when_a_flow_ends() -> None:
    env, sim = _sim(_star(3))
    small = sim.start_flow("host1", "host0", 1e9)
    big = sim.start_flow("host2", "host0", 3e9)
    env.run()
    capacity = 10e9
    # both at capacity/2 until the small one drains at 2e9/capacity; then the big one alone.
    assert _value(small).end_s == pytest.approx(2e9 / capacity + 4e-6)
    assert _value(big).end_s == pytest.approx(2e9 / capacity + 2e9 / capacity + 4e-6)


def test_zero_byte_and_self_flows_finish_after_latency_only() -> None:
    env, sim = _sim(_star(2))
    empty = sim.start_flow("host0", "host1", 0)
    itself = sim.start_flow("host0", "host0", 1e6)
    env.run()
    assert _value(empty).end_s == pytest.approx(4e-6)
    assert _value(itself).end_s == 0


def test_flow_ids_belong_to_the_simulator_so_runs_repeat() -> None:
    graph = build_topology("fat_tree", {"k": 4})

    def run() -> list[float]:
        env, sim = _sim(graph, "ecmp", seed=7)
        events = [sim.start_flow(f"host{i}", f"host{15 - i}", 1e8 * (i + 1)) for i in range(8)]
        env.run()
        return [_value(e).end_s for e in events]

    assert run() == run()


def test_link_failure_reroutes_active_flows() -> None:
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 2, "hosts_per_leaf": 1, "uplink_gbps": 100}, 100, 1)
    env, sim = _sim(graph, "shortest_path")
    done = sim.start_flow("host0", "host1", 1e9)
    first = sim.controller.route("host0", "host1")
    spine = sim.controller.name(first.nodes[2])

    def breaker() -> simpy.events.ProcessGenerator:
        yield env.timeout(0.01)
        assert sim.fail_link("leaf0", spine) == 1

    env.process(breaker())
    env.run()
    rerouted = sim.controller.route("host0", "host1")
    assert sim.controller.name(rerouted.nodes[2]) != spine
    assert _value(done).end_s == pytest.approx(1e9 / 12.5e9 + 4e-6)  # same speed on the other spine
    assert sim.usage.bytes[first.links[1]] == pytest.approx(0.01 * 12.5e9)


def test_flow_with_no_route_left_fails_its_event() -> None:
    graph = build_topology("leaf_spine", {"leaves": 2, "spines": 1, "hosts_per_leaf": 1}, 100, 1)
    env, sim = _sim(graph)
    done = sim.start_flow("host0", "host1", 1e9)
    caught: list[Exception] = []

    def waiter() -> simpy.events.ProcessGenerator:
        try:
            yield done
        except NoRouteError as error:
            caught.append(error)

    env.process(waiter())
    env.run(until=0.01)
    sim.fail_link("leaf0", "spine0")
    env.run()
    assert len(caught) == 1 and "no route from host0 to host1" in str(caught[0])
    assert sim.active_flows == 0


@st.composite
def networks_and_flows(draw: st.DrawFn) -> tuple[nx.Graph, list[tuple[int, int, float, float]]]:
    n = draw(st.integers(3, 9))
    seed = draw(st.integers(0, 10_000))
    wiring = nx.gnp_random_graph(n, 0.5, seed=seed)
    wiring.add_edges_from((i, i + 1) for i in range(n - 1))  # connected
    graph = nx.Graph()
    for node in wiring.nodes:
        add_node(graph, node, "host")
    rng = np.random.default_rng(seed)
    for u, v in wiring.edges:
        add_link(graph, u, v, float(rng.uniform(1e8, 1e10)), float(rng.uniform(0, 1e-5)), "link")
    flows = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.floats(1e3, 1e9), st.floats(0, 0.2)),
            min_size=1,
            max_size=30,
        )
    )
    return graph, flows


@settings(max_examples=40, deadline=None)
@given(networks_and_flows(), st.sampled_from(["shortest_path", "ecmp", "least_loaded"]), st.booleans())
def test_every_flow_finishes_delivers_its_bytes_and_no_link_is_overloaded(
    case: tuple[nx.Graph, list[tuple[int, int, float, float]]], policy: str, incremental: bool
) -> None:
    """Random topologies and flow sets (random start times); every allocation, incremental or not, is
    checked against a full max-min water-filling by the simulator's ``check`` mode."""
    graph, flows = case
    env, sim = _sim(graph, policy, incremental=incremental)
    events: list[simpy.Event] = []
    expected = np.zeros(sim.controller.links.count)

    def starter(src: int, dst: int, nbytes: float, at: float) -> simpy.events.ProcessGenerator:
        yield env.timeout(at)
        event = sim.start_flow(src, dst, nbytes)
        if src != dst:
            expected[sim.flows.staged[-1].links] += nbytes  # the path the controller installed
        events.append(event)
        result = yield event
        assert result.bytes == nbytes and result.end_s >= at

    for src, dst, nbytes, at in flows:
        env.process(starter(src, dst, nbytes, at))
    env.run()
    assert len(events) == len(flows) and all(e.processed and e.ok for e in events)
    assert sim.active_flows == 0 and np.all(sim.controller.link_flows == 0)
    assert np.all(sim.usage.peak_utilization <= 1 + 1e-9), "a link carried more than its capacity"
    assert np.allclose(sim.usage.bytes, expected, rtol=1e-6, atol=1e-3), "bytes delivered differ from bytes sent"


def test_link_bytes_equal_bytes_of_flows_routed_over_them() -> None:
    graph = build_topology("fat_tree", {"k": 4}, 100, 1)
    env, sim = _sim(graph, "ecmp", seed=3)
    rng = np.random.default_rng(5)
    expected = np.zeros(sim.controller.links.count)
    names = hosts(graph)
    for i in range(40):
        src, dst = rng.choice(len(names), 2, replace=False)
        nbytes = float(rng.uniform(1e6, 1e8))
        route = sim.controller.route(names[src], names[dst], key=i)
        expected[route.links] += nbytes
        sim.start_flow(names[src], names[dst], nbytes, key=i)
    env.run()
    assert np.allclose(sim.usage.bytes, expected, rtol=1e-6, atol=1.0)
    assert np.all(sim.usage.peak_utilization <= 1 + 1e-9)


def test_incremental_updates_agree_with_full_water_filling_on_a_busy_fat_tree() -> None:
    graph = build_topology("fat_tree", {"k": 4}, 100, 1)
    names = hosts(graph)
    ends: dict[bool, tuple[float, np.ndarray]] = {}
    for incremental in (True, False):
        env, sim = _sim(graph, "ecmp", seed=2, incremental=incremental)

        def source(sim: FlowSimulator = sim, env: simpy.Environment = env) -> simpy.events.ProcessGenerator:
            local = np.random.default_rng(11)
            for i in range(300):
                yield env.timeout(float(local.exponential(2e-5)))
                src, dst = local.choice(len(names), 2, replace=False)
                sim.start_flow(names[src], names[dst], float(local.lognormal(12, 1)), key=i)

        env.process(source())
        env.run()
        ends[incremental] = (env.now, sim.usage.bytes.copy())
        if incremental:
            assert sim.incremental_updates > 100 and sim.rerates > 10
    assert ends[True][0] == pytest.approx(ends[False][0], rel=1e-9)
    assert np.allclose(ends[True][1], ends[False][1], rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 120))
def test_local_rerates_match_a_full_water_filling_on_a_fat_tree(seed: int, n_flows: int) -> None:
    """Poisson arrivals on a k=4 fat-tree: the local re-rate (checked against a full water-filling at
    every change by ``check=True``) is used, and the run ends as one with full water-fillings only."""
    graph = build_topology("fat_tree", {"k": 4}, 100, 1)
    names = hosts(graph)
    ends = []
    for incremental in (True, False):
        env, sim = _sim(graph, "ecmp", seed=seed, incremental=incremental)

        def source(sim: FlowSimulator = sim, env: simpy.Environment = env) -> simpy.events.ProcessGenerator:
            local = np.random.default_rng(seed)
            for i in range(n_flows):
                yield env.timeout(float(local.exponential(1e-5)))
                src, dst = local.choice(len(names), 2, replace=False)
                sim.start_flow(names[src], names[dst], float(local.lognormal(12, 1)), key=i)

        env.process(source())
        env.run()
        ends.append((env.now, sim.usage.bytes.copy()))
        if incremental:
            assert sim.local_rerates > 0
    assert ends[0][0] == pytest.approx(ends[1][0], rel=1e-9)
    assert np.allclose(ends[0][1], ends[1][1], rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_local_rerates_are_exact_on_random_graphs_with_mixed_capacities(seed: int) -> None:
    """Poisson arrivals on a random graph whose links have capacities 1-100 Gb/s: with links of unequal
    capacity a flow is often held back by a link it does not share, so local re-rates stop early, add the
    faster flows and place lone arrivals; ``check=True`` compares every allocation with a full
    water-filling, and link bytes must add up to the bytes routed over each link."""
    rng = np.random.default_rng(seed)
    n = 10
    wiring = nx.gnp_random_graph(n, 0.35, seed=seed)
    wiring.add_edges_from((i, i + 1) for i in range(n - 1))
    graph = nx.Graph()
    for node in wiring.nodes:
        add_node(graph, node, "host")
    for u, v in wiring.edges:
        add_link(graph, u, v, float(rng.choice([1e9, 1e10, 2.5e10, 1e11])), 1e-6, "link")
    env, sim = _sim(graph, "ecmp", seed=seed)
    expected = np.zeros(sim.controller.links.count)

    def source() -> simpy.events.ProcessGenerator:
        for i in range(150):
            yield env.timeout(float(rng.exponential(5e-5)))
            src, dst = rng.choice(n, 2, replace=False)
            size = float(rng.lognormal(14, 1))
            sim.start_flow(int(src), int(dst), size, key=i)
            expected[sim.flows.staged[-1].links] += size

    env.process(source())
    env.run()
    assert sim.local_rerates > 0 and sim.active_flows == 0
    assert np.allclose(sim.usage.bytes, expected, rtol=1e-6, atol=1e-3)


def test_flow_table_brings_bytes_left_up_to_date_when_a_rate_changes() -> None:
    """The lazy finish-time bookkeeping: bytes left, finish and drain times follow each rate change."""
    table = FlowTable(4)
    ids = np.array([0])  # flow, group, source and key 0, destination 1; 100 bytes over links 0 and 1
    table.staged.append(
        FlowBatch(ids, ids, ids, ids + 1, ids, np.array([100.0]), np.array([0.0]), np.array([0, 2]), np.array([0, 1]))
    )
    (slot,) = table.merge_staged().tolist()
    assert table.next_finish() == np.inf and table.drained(1e9).size == 0  # not rated: does not move
    table.set_rate(slot, 10.0, 0.0)  # 100 bytes at 10 B/s: done at 10 s
    assert table.next_finish() == pytest.approx(10.0, rel=1e-15)
    table.set_rate(slot, 20.0, 4.0)  # 60 bytes left at 4 s, at 20 B/s: done at 7 s
    assert table.remaining_at(5.0)[slot] == pytest.approx(40.0, rel=1e-15)
    assert table.next_finish() == pytest.approx(7.0, rel=1e-15)
    early = 7.0 - 100 * BYTES_TOLERANCE / 20.0  # within BYTES_TOLERANCE of the bytes: drained
    assert table.drained(early - 1e-9).size == 0 and table.drained(early + 1e-12).tolist() == [slot]
    table.set_rate(slot, 0.0, 5.0)  # stopped at 5 s with 40 bytes left
    assert table.next_finish() == np.inf and table.remaining_at(6.0)[slot] == pytest.approx(40.0, rel=1e-15)
    table.set_rates(np.array([slot]), np.array([8.0]), 6.0)  # 40 bytes at 8 B/s from 6 s: done at 11 s
    assert table.next_finish() == pytest.approx(11.0, rel=1e-15)
    table.remove(np.array([slot]))
    assert table.next_finish() == np.inf and table.drained(1e9).size == 0


def _reference_end_times(
    paths: list[np.ndarray], latency_s: list[float], starts: np.ndarray, sizes: np.ndarray, capacity: np.ndarray
) -> np.ndarray:
    """Delivery times (s) by a plain event loop: at every start and end, every active flow's bytes left are
    brought up to date and all rates are water-filled from scratch (:func:`max_min_rows`)."""
    n = len(paths)
    rows = np.full((n, max(p.size for p in paths)), capacity.size, dtype=np.int64)
    for i, path in enumerate(paths):
        rows[i, : path.size] = path
    remaining, rate = sizes.astype(float), np.zeros(n)
    active, started = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    end = np.full(n, np.nan)
    now = 0.0
    while not started.all() or active.any():
        next_start = starts[~started].min() if not started.all() else np.inf
        with np.errstate(divide="ignore"):
            next_end = now + (remaining[active] / rate[active]).min() if active.any() else np.inf
        step = min(next_start, next_end)
        remaining[active] -= rate[active] * (step - now)
        now = step
        done = active & (remaining <= sizes * BYTES_TOLERANCE)
        end[done] = now + np.asarray(latency_s)[done]
        active &= ~done
        arriving = ~started & (starts <= now)
        started |= arriving
        active |= arriving
        rate[:] = 0.0
        if active.any():
            rate[active] = max_min_rows(rows[active], capacity)
    return end


@pytest.mark.parametrize("incremental", [True, False])
def test_delivery_times_match_an_event_loop_that_updates_every_flow_at_every_event(incremental: bool) -> None:
    """Poisson arrivals on a k=4 fat-tree: the simulator brings bytes left up to date only for flows whose
    rate changes and finds the next end from kept finish times; a loop that updates every flow at every event
    and water-fills from scratch gives the same delivery times."""
    graph = build_topology("fat_tree", {"k": 4}, 100, 1)
    names = hosts(graph)
    env, sim = _sim(graph, "ecmp", seed=4, incremental=incremental)
    rng = np.random.default_rng(8)
    n = 150
    starts = np.cumsum(rng.exponential(1e-5, n))
    sizes = rng.lognormal(12, 1, n)
    pairs = [rng.choice(len(names), 2, replace=False) for _ in range(n)]
    routes = [sim.controller.route(names[s], names[d], key=i) for i, (s, d) in enumerate(pairs)]
    events: list[simpy.Event] = []

    def source() -> simpy.events.ProcessGenerator:
        for i, ((s, d), at, size) in enumerate(zip(pairs, starts, sizes, strict=True)):
            yield env.timeout(at - env.now)
            events.append(sim.start_flow(names[s], names[d], float(size), key=i))

    env.process(source())
    env.run()
    ends = np.array([_value(e).end_s for e in events])
    capacity = sim.controller.links.capacity_bytes_per_s
    expected = _reference_end_times([r.links for r in routes], [r.latency_s for r in routes], starts, sizes, capacity)
    assert np.allclose(ends, expected, rtol=1e-9, atol=0.0)
    assert sim.rerates > 10  # flows did share links
