"""Sweep throughput: variants per second on 1 and 2 local workers and through Dask, and the 2-worker scaling.

The sweep is the quick-start scenario (scenarios/quickstart.yaml) cut to ``--jobs`` jobs per point, over a grid
of arrival rates x node counts (``--variants`` points, one seed each), with the cache off so every point is
simulated. Cases:

1. ``local, 1 worker``: in this process (no pool);
2. ``local, 2 workers``: a ProcessPoolExecutor of two processes (start-up included);
3. ``dask, 2 workers``: a new LocalCluster of two worker processes, start-up included, and again on an already
   running cluster (``cluster=`` the same LocalCluster), which is the steady-state Dask throughput.

Run: ``python benchmarks/bench_sweep.py [--variants 48] [--jobs 300]``. A warm-up point runs first so imports
and catalog loading are not counted. The 2-worker ratio is bounded by the free cores: 2 on an idle machine. To
tell a busy machine from a sweep that does not scale, the same ratio is printed first for a pure-Python busy
loop (no dcsim) on 1 and 2 processes: what this machine offers right now.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

import dcsim

QUICKSTART = Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.yaml"


def _base(jobs: int) -> dict[str, Any]:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["workloads"][0]["synthetic"]["count"] = jobs
    raw["outputs"] = {"plots": False}
    return raw


def _grid(variants: int) -> dict[str, list[Any]]:
    counts = [2, 3, 4, 6]
    rates = [round(2 + 10 * i / max(1, variants // len(counts) - 1), 3) for i in range(max(1, variants // len(counts)))]
    return {"workloads[0].synthetic.rate_per_h": rates, "datacenter.nodes[0].count": counts}


def _spin(count: int) -> int:
    total = 0
    for i in range(count):
        total += i
    return total


def machine_scaling(count: int = 5_000_000, tasks: int = 4) -> float:
    """Speed-up of ``tasks`` busy loops on 2 processes over 1: the parallelism the machine offers now."""
    start = time.perf_counter()
    for _ in range(tasks):
        _spin(count)
    one = time.perf_counter() - start
    with ProcessPoolExecutor(2) as pool:
        pool.submit(_spin, 1).result()
        start = time.perf_counter()
        list(pool.map(_spin, [count] * tasks))
        two = time.perf_counter() - start
    return one / two


def _timed(label: str, base: dict[str, Any], grid: dict[str, list[Any]], **options: Any) -> float:
    start = time.perf_counter()
    frame = dcsim.sweep(copy.deepcopy(base), grid=grid, cache_dir=None, progress=False, **options)
    elapsed = time.perf_counter() - start
    failed = int(frame["error"].notna().sum())
    rate = len(frame) / elapsed
    print(f"{label:<34} {len(frame):>5} variants  {elapsed:8.2f} s  {rate:8.2f} variants/s  ({failed} failed)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=48, help="grid points (a multiple of 4)")
    parser.add_argument("--jobs", type=int, default=300, help="jobs per point")
    args = parser.parse_args()
    base, grid = _base(args.jobs), _grid(args.variants)
    print(f"dcsim {dcsim.__version__}; {os.cpu_count()} cores; {args.jobs} jobs per point")
    reference = machine_scaling()
    print(f"reference: a pure-Python busy loop runs {reference:.2f}x faster on 2 processes than on 1 here, now")
    dcsim.sweep(copy.deepcopy(base), cache_dir=None, progress=False, workers=1)  # warm-up
    one = _timed("local, 1 worker (in process)", base, grid, workers=1)
    two = _timed("local, 2 worker processes", base, grid, workers=2)
    try:
        from distributed import LocalCluster
    except ImportError:
        print("dask: not installed (pip install 'dcsim[sweep]'); skipped")
        dask_steady = None
    else:
        _timed("dask, new LocalCluster of 2", base, grid, executor="dask", workers=2)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
            warm_up = {"datacenter.nodes[0].count": [2, 3, 4, 6]}  # every worker imports dcsim, loads the catalog
            _timed("dask, warm-up on a running cluster", base, warm_up, executor="dask", cluster=cluster)
            dask_steady = _timed("dask, running cluster of 2", base, grid, executor="dask", cluster=cluster)
    print(f"2-worker scaling, local processes: {two / one:.2f}x (busy-loop reference {reference:.2f}x)")
    if dask_steady is not None:
        print(f"2-worker scaling, running Dask cluster: {dask_steady / one:.2f}x")


if __name__ == "__main__":
    main()
