"""Where sweep points run: local processes (the default) or a Dask cluster, behind one interface.

Each executor calls ``done(index, summary, error)`` in the calling process as each point finishes (in
completion order), so the caller can cache it and advance the progress bar at once. Local worker processes
end when the sweep process ends, even by ``kill -9`` (:mod:`dcsim.sweep.lifeline`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dcsim.scenario.schema import Scenario
from dcsim.sweep.evaluate import describe_error, run_point
from dcsim.sweep.lifeline import die_with_parent

Done = Callable[[int, "dict[str, Any] | None", "str | None"], None]
EXECUTORS = ("local", "dask")

# Points in flight per local worker: enough to keep every worker busy, few enough to bound memory on huge sweeps.
_IN_FLIGHT_PER_WORKER = 4


def worker_count(workers: int | None, points: int) -> int:
    """``workers`` (default: every core), at most one per point and at least one."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers: must be a whole number >= 1 (got {workers!r})")
    return max(1, min(workers or os.cpu_count() or 1, points))


def run_local(scenarios: Sequence[Scenario], workers: int | None, done: Done) -> None:
    """Run on a pool of local processes; with one worker, in this process (no pool to start)."""
    count = worker_count(workers, len(scenarios))
    if count == 1:
        for index, scenario in enumerate(scenarios):
            done(index, *run_point(scenario))
        return
    todo: Iterator[tuple[int, Scenario]] = iter(enumerate(scenarios))
    pending: dict[Future[tuple[dict[str, Any] | None, str | None]], int] = {}
    pool = ProcessPoolExecutor(max_workers=count, initializer=die_with_parent)  # workers die with this process
    try:

        def fill() -> None:
            while len(pending) < count * _IN_FLIGHT_PER_WORKER:
                item = next(todo, None)
                if item is None:
                    return
                pending[pool.submit(run_point, item[1])] = item[0]

        fill()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                try:
                    summary, error = future.result()
                except BrokenProcessPool as broken:
                    summary, error = None, f"worker process died: {describe_error(broken)}"
                done(index, summary, error)
            fill()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask_client(workers: int | None, cluster: Any, points: int) -> tuple[Any, list[Any]]:
    """A distributed Client and the objects to close afterwards (none when the caller passed a Client)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError(
            "executor: 'dask' needs dask[distributed] (pip install 'dcsim[sweep]' or 'dask[distributed]')"
        ) from None
    if isinstance(cluster, Client):
        return cluster, []
    if cluster is None:
        local = LocalCluster(
            n_workers=worker_count(workers, points), threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(local)
        return client, [client, local]
    if isinstance(cluster, str):
        try:
            client = Client(cluster, timeout=20)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"cluster: cannot connect to the Dask scheduler at {cluster!r}: {error}") from None
        return client, [client]
    client = Client(cluster)  # a distributed Cluster object (LocalCluster, SSHCluster, ...)
    return client, [client]


def run_dask(scenarios: Sequence[Scenario], workers: int | None, cluster: Any, done: Done) -> None:
    """Run on Dask: a new ``LocalCluster`` (``cluster=None``), a scheduler address (``tcp://HOST:8786``),
    a ``distributed.Client`` or a cluster object. Workers need dcsim importable (the same version).

    Points are submitted as earlier ones finish, a few per worker thread in flight, so a sweep of any size
    holds only a window of scenarios in memory (here and on the scheduler).
    """
    from distributed import as_completed

    client, owned = _dask_client(workers, cluster, len(scenarios))
    try:
        threads = sum(client.nthreads().values()) or 1
        window = max(_IN_FLIGHT_PER_WORKER * threads, 16)
        todo: Iterator[tuple[int, Scenario]] = iter(enumerate(scenarios))
        index: dict[str, int] = {}
        running = as_completed()

        def submit_next() -> None:
            item = next(todo, None)
            if item is not None:
                future = client.submit(run_point, item[1], pure=False)
                index[future.key] = item[0]
                running.add(future)

        for _ in range(window):
            submit_next()
        try:
            for future in running:
                try:
                    summary, error = future.result()
                except Exception as failure:  # a worker killed mid-task (KilledWorker) and the like
                    summary, error = None, f"dask task failed: {describe_error(failure)}"
                done(index.pop(future.key), summary, error)
                future.release()
                submit_next()
        finally:
            running.clear()
    finally:
        for item in owned:
            item.close()
