"""The sweep result cache: keys, re-runs computing only new points, resuming an interrupted or killed sweep."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import dcsim
import dcsim.sweep.evaluate as evaluate
from dcsim.sweep import ResultCache, scenario_key

RATE = "workloads[0].synthetic.rate_per_h"
NODES = "datacenter.nodes[0].count"
GRID = {RATE: [2, 4, 8], NODES: [1, 2]}


@pytest.fixture
def tiny(base):
    base["workloads"][0]["synthetic"]["count"] = 12
    return base


@pytest.fixture
def calls(monkeypatch):
    """Counts the simulations a sweep runs in this process; ``calls.stop_at = n`` interrupts the n-th one."""

    class Counter:
        count = 0
        stop_at: int | None = None

    real = evaluate.run_scenario

    def counting(scenario):
        Counter.count += 1
        if Counter.count == Counter.stop_at:
            raise KeyboardInterrupt
        return real(scenario)

    monkeypatch.setattr(evaluate, "run_scenario", counting)
    return Counter


def test_key_is_the_resolved_scenario_and_the_version(tiny):
    plain = dcsim.load_scenario(tiny)
    spelled_out = dcsim.load_scenario({**tiny, "scheduler": {"policy": "fifo", "placement": "pack"}})
    assert scenario_key(plain) == scenario_key(spelled_out)  # defaults written out: the same point
    assert scenario_key(plain) != scenario_key(dcsim.load_scenario({**tiny, "seed": 4}))
    assert scenario_key(plain) != scenario_key(plain, version="0.0.0-other")
    assert len(scenario_key(plain)) == 64


def test_rerun_computes_only_new_points_and_gives_the_same_frame(tiny, tmp_path, calls):
    cache = tmp_path / "cache"
    first = dcsim.sweep(tiny, grid=GRID, seeds=2, workers=1, cache_dir=cache)
    assert calls.count == 12 and len(ResultCache(cache)) == 12 and first.attrs["computed"] == 12
    again = dcsim.sweep(tiny, grid=GRID, seeds=2, workers=1, cache_dir=cache)
    assert calls.count == 12 and again.attrs["cached"] == 12 and again.attrs["computed"] == 0
    pd.testing.assert_frame_equal(first, again)  # a cached point reads back exactly
    wider = dcsim.sweep(tiny, grid={RATE: [2, 4, 8, 16], NODES: [1, 2]}, seeds=2, workers=1, cache_dir=cache)
    assert calls.count == 12 + 4 and wider.attrs["computed"] == 4 and len(wider) == 16


def test_points_with_the_same_resolved_scenario_run_once(tiny, tmp_path, calls):
    frame = dcsim.sweep(tiny, grid={"scheduler.policy": ["fifo", "fifo"]}, workers=1, cache_dir=tmp_path / "c")
    assert calls.count == 1 and len(frame) == 2
    assert frame.loc[0, "workloads.w.jct_s.mean"] == frame.loc[1, "workloads.w.jct_s.mean"]


def test_an_interrupted_sweep_resumes_with_only_the_missing_points(tiny, tmp_path, calls):
    cache = tmp_path / "cache"
    calls.stop_at = 5
    with pytest.raises(KeyboardInterrupt):
        dcsim.sweep(tiny, grid=GRID, seeds=2, workers=1, cache_dir=cache)
    assert len(ResultCache(cache)) == 4  # every point finished before the interrupt was kept
    calls.count, calls.stop_at = 0, None
    resumed = dcsim.sweep(tiny, grid=GRID, seeds=2, workers=1, cache_dir=cache)
    assert calls.count == 8 and resumed.attrs["cached"] == 4 and resumed["error"].isna().all()
    fresh = dcsim.sweep(tiny, grid=GRID, seeds=2, workers=1, cache_dir=None)
    pd.testing.assert_frame_equal(resumed, fresh)


def test_failed_points_are_not_cached(tiny, tmp_path, calls):
    cache = tmp_path / "cache"
    dcsim.sweep(tiny, grid={NODES: [0, 1]}, workers=1, cache_dir=cache)
    assert len(ResultCache(cache)) == 1


def test_a_killed_sweep_process_resumes(tiny, tmp_path, calls):
    """A sweep process killed with SIGKILL during its 4th point leaves 3 cache entries, and no torn ones."""
    cache, scenario = tmp_path / "cache", tmp_path / "base.json"
    scenario.write_text(json.dumps(tiny))
    script = textwrap.dedent(
        f"""
        import json, os, signal
        import dcsim, dcsim.sweep.evaluate as evaluate
        real, done = evaluate.run_scenario, []
        def run(scenario):
            if len(done) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            done.append(1)
            return real(scenario)
        evaluate.run_scenario = run
        dcsim.sweep(json.load(open({str(scenario)!r})), grid={GRID!r}, seeds=2, workers=1, cache_dir={str(cache)!r})
        """
    )
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert len(ResultCache(cache)) == 3 and not list(cache.rglob("*.tmp"))
    resumed = dcsim.sweep(tiny, grid=GRID, seeds=2, workers=1, cache_dir=cache)
    assert calls.count == 12 - 3 and resumed.attrs["cached"] == 3 and len(resumed) == 12


def test_a_torn_or_foreign_cache_file_counts_as_missing(tiny, tmp_path, calls):
    cache = ResultCache(tmp_path / "cache")
    key = scenario_key(dcsim.load_scenario(tiny))
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text('{"key": "')
    assert cache.get(key) is None
    frame = dcsim.sweep(tiny, workers=1, cache_dir=cache.root)
    assert calls.count == 1 and cache.get(key) == dcsim.run_scenario(tiny).summary
    assert frame.attrs["computed"] == 1
