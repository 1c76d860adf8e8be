"""The same sweep on local processes and on Dask (a LocalCluster, an existing cluster, a scheduler address)."""

from __future__ import annotations

import pandas as pd
import pytest

import dcsim

distributed = pytest.importorskip("distributed")

GRID = {"workloads[0].synthetic.rate_per_h": [2, 6], "scheduler.policy": ["fifo", "sjf"]}


@pytest.fixture
def tiny(base):
    base["workloads"][0]["synthetic"]["count"] = 12
    return base


@pytest.fixture(scope="module")
def cluster():
    """Two in-process Dask workers behind a real TCP scheduler."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0", protocol="tcp"
    ) as local:
        yield local


def test_dask_gives_the_same_frame_as_local_processes(tiny, cluster):
    local = dcsim.sweep(tiny, grid=GRID, seeds=2, executor="local", workers=2, cache_dir=None)
    assert len(local) == 8 and local["error"].isna().all()
    on_cluster = dcsim.sweep(tiny, grid=GRID, seeds=2, executor="dask", cluster=cluster, cache_dir=None)
    pd.testing.assert_frame_equal(local, on_cluster)
    by_address = dcsim.sweep(
        tiny, grid=GRID, seeds=2, executor="dask", cluster=cluster.scheduler_address, cache_dir=None
    )
    assert cluster.scheduler_address.startswith("tcp://")
    pd.testing.assert_frame_equal(local, by_address)
    with distributed.Client(cluster) as client:
        via_client = dcsim.sweep(tiny, grid=GRID, seeds=2, executor="dask", cluster=client, cache_dir=None)
        assert client.status == "running"  # a Client the caller passed is left open
    pd.testing.assert_frame_equal(local, via_client)


def test_dask_starts_and_closes_its_own_local_cluster(tiny, tmp_path, monkeypatch):
    """executor='dask' without a cluster starts a LocalCluster of `workers` single-threaded workers and closes it.

    Its worker processes take ~10 s to start on this 2-core machine, so here they run in-process (the same
    LocalCluster with processes=False); benchmarks/bench_sweep.py runs the real multi-process one."""
    started = []

    class InProcess(distributed.LocalCluster):
        def __init__(self, **options):
            started.append(dict(options))
            super().__init__(**{**options, "processes": False})

    monkeypatch.setattr(distributed, "LocalCluster", InProcess)
    grid = {"workloads[0].synthetic.rate_per_h": [2, 6]}
    own = dcsim.sweep(tiny, grid=grid, executor="dask", workers=2, cache_dir=tmp_path / "cache")
    assert started == [{"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}]
    local = dcsim.sweep(tiny, grid=grid, executor="local", workers=1, cache_dir=None)
    pd.testing.assert_frame_equal(own, local)
    again = dcsim.sweep(tiny, grid=grid, executor="dask", workers=2, cache_dir=tmp_path / "cache")
    assert again.attrs["computed"] == 0 and len(started) == 1  # all cached: no cluster started at all
    pd.testing.assert_frame_equal(own, again)


def test_dask_records_failing_variants(tiny, cluster):
    frame = dcsim.sweep(
        tiny, grid={"datacenter.nodes[0].count": [0, 1]}, executor="dask", cluster=cluster, cache_dir=None
    )
    assert frame["error"].tolist()[0] == "datacenter.nodes[0].count: must be >= 1 (got 0)"
    assert frame["error"].isna().tolist() == [False, True]


def test_cluster_needs_the_dask_executor(tiny):
    with pytest.raises(ValueError, match=r"^cluster: only the dask executor"):
        dcsim.sweep(tiny, cluster="tcp://127.0.0.1:8786", cache_dir=None)
