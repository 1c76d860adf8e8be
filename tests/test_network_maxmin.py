"""Max-min fair water-filling: exact small cases and hypothesis properties on random flow sets."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.network.maxmin import max_min_rates


def _entries(paths: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flows = np.array([f for f, path in enumerate(paths) for _ in path], dtype=np.int64)
    links = np.array([link for path in paths for link in path], dtype=np.int64)
    return flows, links


def _reference(paths: list[list[int]], capacity: list[float]) -> list[float]:
    """Textbook progressive filling, one bottleneck link at a time, in plain Python."""
    rates = [0.0] * len(paths)
    frozen = [not p for p in paths]
    remaining = list(capacity)
    while not all(frozen):
        share = {}
        for link in range(len(capacity)):
            users = [f for f, p in enumerate(paths) if not frozen[f] and link in p]
            if users:
                share[link] = remaining[link] / len(users)
        link = min(share, key=lambda lk: share[lk])
        level = share[link]
        for f, p in enumerate(paths):
            if not frozen[f] and link in p:
                frozen[f] = True
                rates[f] = level
                for other in set(p):
                    remaining[other] -= level
    return rates


def test_n_flows_on_one_bottleneck_get_capacity_over_n() -> None:
    flows, links = _entries([[0], [0], [0], [0, 1]])
    rates = max_min_rates(flows, links, 4, np.array([8.0, 100.0]))
    assert np.allclose(rates, 2.0)


def test_classic_parking_lot() -> None:
    # links 0 and 1 of capacity 1; flow 0 crosses both, flows 1 and 2 one each: all get 1/2.
    # with link 1 at capacity 2, flow 2 takes the 1.5 that flow 0 leaves.
    flows, links = _entries([[0, 1], [0], [1]])
    assert np.allclose(max_min_rates(flows, links, 3, np.array([1.0, 1.0])), [0.5, 0.5, 0.5])
    assert np.allclose(max_min_rates(flows, links, 3, np.array([1.0, 2.0])), [0.5, 0.5, 1.5])


def test_flow_without_links_is_unconstrained_and_unsorted_entries_work() -> None:
    flows = np.array([2, 0, 2], dtype=np.int64)
    links = np.array([0, 0, 1], dtype=np.int64)
    rates = max_min_rates(flows, links, 3, np.array([4.0, 1.0]))
    assert rates[1] == np.inf
    assert np.allclose(rates[[0, 2]], [3.0, 1.0])


flow_sets = st.integers(2, 8).flatmap(
    lambda n_links: st.tuples(
        st.lists(st.floats(0.5, 100.0), min_size=n_links, max_size=n_links),
        st.lists(st.lists(st.integers(0, n_links - 1), min_size=1, max_size=4, unique=True), min_size=1, max_size=25),
    )
)


@settings(max_examples=150, deadline=None)
@given(flow_sets)
def test_allocation_is_feasible_max_min_fair_and_matches_reference(case: tuple[list[float], list[list[int]]]) -> None:
    capacity, paths = case
    cap = np.array(capacity)
    flows, links = _entries(paths)
    rates = max_min_rates(flows, links, len(paths), cap)
    load = np.bincount(links, weights=rates[flows], minlength=cap.size)
    assert np.all(load <= cap * (1 + 1e-9)), "a link carries more than its capacity"
    # max-min fairness: every flow has a saturated link on which no other flow gets more
    # (so raising it would lower a flow that is not larger).
    for f, path in enumerate(paths):
        assert any(
            load[link] >= cap[link] * (1 - 1e-9)
            and all(rates[g] <= rates[f] * (1 + 1e-9) for g, p in enumerate(paths) if link in p)
            for link in path
        ), f"flow {f} could be raised"
    assert np.allclose(rates, _reference(paths, capacity), rtol=1e-9)
