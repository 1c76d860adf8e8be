"""Timing of one callable: warm-up, repeats until the median is stable, median and spread.

On CUDA devices CUDA events bracket each sample and the stream is synchronised before reading them.
On CPUs with one torch thread the calling thread's CPU time is used (see :func:`cpu_clock`: on a
machine shared with other processes it leaves out the time the OS gave to them), else wall-clock
time. A sample runs the callable ``inner`` times (enough for ``sample_s`` seconds) so that timer
resolution and Python overhead between samples do not bias short ops; the per-call time is the sample
time divided by ``inner``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TimingSettings:
    """How hard to try: seconds per sample, sample counts, stability tolerance and time budget per op."""

    sample_s: float = 0.004
    warmup_s: float = 0.02
    min_samples: int = 5
    max_samples: int = 25
    rel_tol: float = 0.02
    budget_s: float = 1.5


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median, 10th and 90th percentile over ``samples`` samples of ``inner`` calls."""

    median_s: float
    p10_s: float
    p90_s: float
    samples: int
    inner: int


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _wall_sample(fn: Callable[[], object], inner: int, device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / inner
    clock = cpu_clock()
    begin = clock()
    for _ in range(inner):
        fn()
    return (clock() - begin) / inner


def cpu_clock() -> Callable[[], float]:
    """The clock for CPU samples: with one torch thread the op runs on the calling thread, so its CPU
    time (``time.thread_time``) is the op's time without the slices the OS gives to other processes on
    a shared machine; with more threads, wall-clock time (``time.perf_counter``)."""
    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


def clock_name(device: torch.device) -> str:
    """What timed the samples: ``cuda_events``, ``thread_cpu_time`` or ``wall_clock``."""
    if device.type == "cuda":
        return "cuda_events"
    return "thread_cpu_time" if cpu_clock() is time.thread_time else "wall_clock"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def first_call_s(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one synchronised call (includes first-call costs: use it to skip too-slow ops)."""
    _sync(device)
    begin = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - begin


def measure(fn: Callable[[], object], device: torch.device, settings: TimingSettings) -> Timing:
    """Time ``fn``: warm up, then take samples until the median moves less than ``rel_tol`` between
    the last two samples (after ``min_samples``), ``max_samples`` are taken or ``budget_s`` is spent."""
    started = time.perf_counter()
    once = first_call_s(fn, device)
    warm_until = time.perf_counter() + max(settings.warmup_s, 2 * once)
    calls = 0
    while time.perf_counter() < warm_until or calls < 2:
        once = min(once, first_call_s(fn, device))  # the fastest call: a preempted one says nothing
        calls += 1
    inner = max(1, min(10_000, int(settings.sample_s / max(once, 1e-7))))
    samples: list[float] = []
    previous = None
    while len(samples) < settings.max_samples:
        samples.append(_wall_sample(fn, inner, device))
        median = statistics.median(samples)
        if len(samples) >= settings.min_samples:
            stable = previous is not None and abs(median - previous) <= settings.rel_tol * median
            if stable or time.perf_counter() - started > settings.budget_s:
                break
        previous = median
    return Timing(
        median_s=statistics.median(samples),
        p10_s=_quantile(samples, 0.1),
        p90_s=_quantile(samples, 0.9),
        samples=len(samples),
        inner=inner,
    )
