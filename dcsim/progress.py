"""Progress bars on stderr for long commands, shown only when the command line turns them on.

Library calls (:func:`dcsim.run_scenario`, ``compare_policies``, ``rank_plans``) show nothing by default;
``dcsim`` wraps a command in :func:`showing_progress` when stderr is a terminal and ``--quiet`` is absent.
Bars are tqdm's (a core dependency); without tqdm they are silent stand-ins.

A simulation reports progress at simulated-time milestones, never per event: :func:`run_simulation` runs
the SimPy environment in chunks of simulated time sized to take about a quarter of a second of wall time
each, and updates the bar between chunks. Chunk boundaries are SimPy ``until`` events of URGENT priority,
so they never reorder the simulation's own events: a run with progress is event for event the run without.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import simpy
from simpy.core import StopSimulation

_SHOWN: ContextVar[bool] = ContextVar("dcsim_progress_shown", default=False)
_OPEN: ContextVar[list[Stage] | None] = ContextVar("dcsim_progress_stages", default=None)  # stages not closed

# Wall-clock seconds one simulated chunk should take: long enough that the bookkeeping is negligible,
# short enough that a bar moves several times a second.
CHUNK_WALL_S = (0.05, 0.4)
STAGE_REDRAW_S = 0.5  # seconds between redraws of a stage indicator


class NoBar:
    """Stands in for a tqdm bar when progress is off or tqdm is missing; every method does nothing."""

    n: float = 0
    total: float | None = None

    def update(self, count: float = 1) -> None:
        """Nothing to show."""

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        """Nothing to show."""

    def refresh(self) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def showing_progress(enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`bar` returns real bars when ``enabled`` (the CLI passes
    ``not --quiet and stderr is a terminal``)."""
    token, stages = _SHOWN.set(enabled), _OPEN.set([])
    try:
        yield
    finally:
        for open_stage in list(_OPEN.get() or ()):
            open_stage.close()
        _OPEN.reset(stages)
        _SHOWN.reset(token)


def shown() -> bool:
    """Whether bars are on in this context."""
    return _SHOWN.get()


def terminal_progress(quiet: bool) -> bool:
    """The CLI's rule: bars unless ``quiet``, and only when stderr is a terminal (not a pipe, file or CI log)."""
    return not quiet and sys.stderr.isatty()


def bar(total: float | None, desc: str, unit: str = "it", **options: Any) -> Any:
    """A tqdm bar on stderr (``leave=False``: it disappears when done), or a :class:`NoBar` when progress is
    off in this context or tqdm is not installed."""
    if not shown():
        return NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return NoBar()
    settings: dict[str, Any] = {"file": sys.stderr, "leave": False, "dynamic_ncols": True, "smoothing": 0.1}
    settings.update(options)
    return tqdm(total=total, desc=desc, unit=unit, **settings)


class Stage:
    """A one-line ``desc [elapsed]`` indicator on stderr for a step with no natural count (building a run's
    jobs, assembling its tables), redrawn twice a second by a helper thread until :meth:`close`; nothing
    when progress is off. Stages still open when :func:`showing_progress` ends (an error, Ctrl-C) are closed
    then."""

    def __init__(self, desc: str) -> None:
        self._stop = threading.Event()
        self._indicator: Any = None
        if not shown():
            return
        self._indicator = bar(None, desc, bar_format="{desc} [{elapsed}]")
        self._thread = threading.Thread(target=self._redraw, name="dcsim-progress", daemon=True)
        self._thread.start()
        opened = _OPEN.get()
        if opened is not None:
            opened.append(self)

    def _redraw(self) -> None:
        while not self._stop.wait(STAGE_REDRAW_S):
            self._indicator.refresh()

    def close(self) -> None:
        """Stop redrawing and clear the line (again: nothing)."""
        if self._indicator is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self._indicator.close()
        opened = _OPEN.get()
        if opened is not None and self in opened:
            opened.remove(self)

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_simulation(
    env: simpy.Environment,
    until: float | None,
    done: simpy.Event,
    horizon_s: Callable[[], float | None] | None = None,
    status: Callable[[], str] | None = None,
) -> None:
    """``env.run(until=until)`` if ``until`` is set, else ``env.run(until=done)``, with a progress bar.

    ``horizon_s`` returns the expected simulated length in seconds (an estimate such as the last arrival;
    asked only when there is a bar and no ``until``) for the bar's percentage; ``status`` gives a short text
    shown beside it (e.g. jobs completed). Without progress shown this is exactly the plain ``env.run`` call.
    """
    if not shown():
        env.run(until=until if until is not None else done)
        return
    horizon = until if until is not None else horizon_s() if horizon_s is not None else None
    known = horizon is not None and math.isfinite(horizon) and horizon > 0
    total_h = horizon / 3600.0 if known and horizon is not None else None
    step_s = horizon / 100.0 if known and horizon is not None else 3600.0
    if total_h is not None:
        fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.4g}/{total:.4g} h simulated [{elapsed}<{remaining}{postfix}]"
    else:
        fmt = "{desc}: {n:.4g} h simulated [{elapsed}{postfix}]"
    with bar(total_h, "simulating", bar_format=fmt) as progress:
        if until is None:
            done.callbacks.append(StopSimulation.callback)
        while not done.triggered:
            next_event = env.peek()
            if not math.isfinite(next_event):
                break  # nothing scheduled: the final env.run below ends (or fails) as a plain run would
            stop = max(env.now, next_event) + step_s
            if not env.now < stop < (until if until is not None else math.inf):
                break  # the rest in one go (also where a step is lost in the precision of huge times)
            started = time.perf_counter()
            env.run(until=stop)
            elapsed = time.perf_counter() - started
            step_s = step_s * 2 if elapsed < CHUNK_WALL_S[0] else step_s / 2 if elapsed > CHUNK_WALL_S[1] else step_s
            _show(progress, env.now, status)
        if until is not None:
            env.run(until=until)
        else:
            env.run(until=done)
        _show(progress, env.now, status)


def _show(progress: Any, now_s: float, status: Callable[[], str] | None) -> None:
    now_h = now_s / 3600.0
    if progress.total is not None and now_h > progress.total:
        progress.total = now_h
    if status is not None:
        progress.set_postfix_str(status(), refresh=False)
    progress.update(now_h - progress.n)
