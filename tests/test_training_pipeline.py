"""Pipeline schedules: the bubble formulas, and the detailed (SimPy) and fast (closed-form) levels agreeing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.parallel.pipeline import analytic_pipeline, bubble_fraction, device_order, simulate_pipeline


@pytest.mark.parametrize("schedule", ["1f1b", "gpipe"])
@pytest.mark.parametrize(("pp", "m"), [(2, 4), (4, 8), (4, 16), (8, 8), (8, 64)])
def test_balanced_pipeline_bubble_is_p_minus_1_over_m(schedule: str, pp: int, m: int) -> None:
    """Narayanan et al. 2021, Section 2.2.1: the bubble of 1F1B (and GPipe) is (p - 1)/m of the ideal time."""
    fwd, bwd = 1.0, 2.0
    timing = simulate_pipeline([fwd] * pp, [bwd] * pp, m, schedule, pp)
    ideal = m * (fwd + bwd)
    assert (timing.makespan_s - ideal) / ideal == pytest.approx(bubble_fraction(pp, m))
    assert analytic_pipeline([fwd] * pp, [bwd] * pp, m, pp).makespan_s == pytest.approx(timing.makespan_s)


@pytest.mark.parametrize(("pp", "v", "m"), [(4, 2, 8), (4, 4, 16), (8, 2, 32), (2, 3, 4)])
def test_interleaved_bubble_shrinks_by_the_virtual_stages(pp: int, v: int, m: int) -> None:
    """Ibid., Section 2.2.2: with v model chunks per device the bubble is (p - 1)/(v m)."""
    chunks = pp * v
    timing = simulate_pipeline([1.0 / v] * chunks, [2.0 / v] * chunks, m, "interleaved", pp)
    ideal = m * 3.0
    assert (timing.makespan_s - ideal) / ideal == pytest.approx(bubble_fraction(pp, m, v))


def test_every_microbatch_runs_forward_then_backward_once_per_chunk() -> None:
    for schedule, v in (("1f1b", 1), ("gpipe", 1), ("interleaved", 2)):
        for device in range(4):
            order = device_order(schedule, 4, v, 8, device)
            assert sorted(order) == sorted({(kind, c, k) for kind in "FB" for c in range(v) for k in range(8)})
            for c in range(v):
                for k in range(8):
                    assert order.index(("F", c, k)) < order.index(("B", c, k))


def test_1f1b_holds_at_most_p_minus_stage_microbatches_in_flight() -> None:
    """1F1B's point: stage i never has more than p - i forwards waiting for their backward."""
    pp, m = 4, 16
    for device in range(pp):
        open_ = peak = 0
        for kind, _c, _k in device_order("1f1b", pp, 1, m, device):
            open_ += 1 if kind == "F" else -1
            peak = max(peak, open_)
        assert peak == pp - device
    gpipe = device_order("gpipe", pp, 1, m, 0)
    assert [kind for kind, _, _ in gpipe[:m]] == ["F"] * m


@settings(max_examples=80, deadline=None)
@given(
    pp=st.integers(1, 8),
    v=st.integers(1, 3),
    gpipe=st.booleans(),
    extra=st.integers(0, 4),
    base=st.floats(0.05, 3.0),
    first=st.floats(0.0, 0.15),
    last=st.floats(0.0, 0.3),
    send=st.sampled_from([0.0, 0.001, 0.01]),
)
def test_detailed_and_fast_levels_agree(
    pp: int, v: int, gpipe: bool, extra: int, base: float, first: float, last: float, send: float
) -> None:
    """The closed form the plan search uses stays within 3% (interleaved: 4%) of the SimPy schedule for a plan's stages:
    alike, but for the embedding on the first (up to 15% of a stage's forward) and the head and loss on the
    last (up to 30%), with sends up to 1% of a stage's forward."""
    schedule = "interleaved" if v > 1 and pp > 1 else "gpipe" if gpipe else "1f1b"
    v = v if schedule == "interleaved" else 1
    m = pp * (1 + extra)
    chunks = pp * v
    fwd = [base / v] * chunks
    bwd = [2 * base / v] * chunks
    fwd[0] += first * base
    bwd[-1] += last * base
    detailed = simulate_pipeline(fwd, bwd, m, schedule, pp, send * base)
    fast = analytic_pipeline(fwd, bwd, m, pp, send * base, schedule)
    assert fast.makespan_s == pytest.approx(detailed.makespan_s, rel=0.04 if schedule == "interleaved" else 0.03)
    busiest = max(sum(fwd[c] + bwd[c] for c in range(d, chunks, pp)) for d in range(pp))
    assert detailed.makespan_s >= m * busiest - 1e-9  # no device works faster than its own compute
