"""Engine behaviour: same-instant ordering, distributions, the Result object."""

from __future__ import annotations

import numpy as np
import pytest

import dcsim
from dcsim.engine import make_distribution


def test_completion_and_arrival_at_the_same_instant(tmp_path):
    """A job arriving exactly when another finishes starts at that instant (completions apply first)."""
    (tmp_path / "t.csv").write_text("job_id,submit_s,gpus,duration_s\na,0,4,100\nb,100,4,10\nc,100,4,10\n")
    spec = {
        "name": "same-instant",
        "seed": 0,
        "datacenter": {"nodes": [{"name": "n", "count": 1, "accelerator": "l4", "accelerators_per_node": 4}]},
        "workloads": [{"kind": "jobs", "name": "w", "trace": str(tmp_path / "t.csv")}],
    }
    jobs = dcsim.run_scenario(spec).jobs.set_index("job_id")
    assert jobs.loc["b", "start_s"] == 100.0
    assert jobs.loc["c", "start_s"] == 110.0  # FIFO: the tie goes to the earlier row
    assert jobs.loc["c", "wait_s"] == 10.0


@pytest.mark.parametrize(
    ("spec", "mean", "variance"),
    [
        ({"dist": "exponential", "mean": 3.0}, 3.0, 9.0),
        ({"dist": "lognormal", "mean": 512, "sigma": 0.8}, 512.0, (np.exp(0.64) - 1) * 512**2),
        ({"dist": "uniform", "low": 2, "high": 4}, 3.0, 4 / 12),
        ({"dist": "gamma", "mean": 2.0, "cv": 1.5}, 2.0, 9.0),
        ({"dist": "pareto", "alpha": 3.0, "scale": 2.0}, 3.0, 3.0),
        ({"choices": [1, 2, 4], "weights": [2, 1, 1]}, 2.0, 1.5),
    ],
)
def test_distribution_moments(spec, mean, variance):
    dist = make_distribution(spec)
    assert dist.mean == pytest.approx(mean)
    assert dist.variance == pytest.approx(variance)
    samples = dist.sample(np.random.default_rng(0), 400_000)
    assert samples.mean() == pytest.approx(mean, rel=0.02)


def test_distribution_bounds_and_errors():
    dist = make_distribution({"dist": "lognormal", "mean": 100, "sigma": 2, "max": 150, "min": 5})
    samples = dist.sample(np.random.default_rng(1), 10_000)
    assert samples.max() <= 150 and samples.min() >= 5
    with pytest.raises(ValueError, match="lognormal distribution needs sigma"):
        make_distribution({"dist": "lognormal", "mean": 3})
    with pytest.raises(ValueError, match=r"mean must be > 0, got -1\.0"):
        make_distribution({"dist": "exponential", "mean": -1})
    with pytest.raises(ValueError, match=r"min \(5.0\) must be <= max \(1.0\)"):
        make_distribution({"dist": "constant", "value": 3, "min": 5, "max": 1})


def test_result_object_in_python(base):
    result = dcsim.run_scenario(base)
    assert list(result.jobs.columns)[:3] == ["workload", "job_id", "submit_s"]
    assert len(result.accelerators) == 8
    assert result.timeline["busy_accelerators"].max() <= 8
    assert result.summary["workloads"]["w"]["jobs_completed"] == 50
    with pytest.raises(ValueError, match="this run recorded no event log"):
        result.write_chrome_trace("x.json")
