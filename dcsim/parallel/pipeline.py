"""Pipeline schedules: GPipe, 1F1B (PipeDream-Flush) and Megatron's interleaved 1F1B.

Two levels that tests hold to each other:

- :func:`simulate_pipeline` (detailed) runs every forward and backward of every microbatch on every device
  as SimPy work with its dependencies (a chunk's forward needs the previous chunk's forward of that
  microbatch, plus the activation send; a backward needs the next chunk's backward, plus the gradient send),
  in the order each schedule prescribes (Narayanan et al. 2021, Megatron-LM, Section 2.2).
- :func:`analytic_pipeline` (fast) is the closed form: ``m * T_max + (sum_c t_c - T_max) / v`` plus the
  sends on the critical path, where ``T_max`` is the slowest device's forward+backward per microbatch and
  ``t_c`` each chunk's; with ``v`` virtual stages the fill and drain shrink ``v``-fold, so for balanced
  stages the bubble fraction is ``(p - 1) / (v * m)`` (ibid., Section 2.2.2).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import simpy

from dcsim.parallel.plan import SCHEDULES


@dataclass(frozen=True)
class PipelineTiming:
    """When each device finishes its last backward (s from the step start) and the whole pipeline's span."""

    makespan_s: float
    device_end_s: tuple[float, ...]


def bubble_fraction(pp: int, microbatches: int, virtual_stages: int = 1) -> float:
    """Idle fraction of an ideal pipeline, relative to its useful time: ``(p - 1) / (v * m)``."""
    return (pp - 1) / (virtual_stages * microbatches)


def device_order(schedule: str, pp: int, v: int, m: int, device: int) -> list[tuple[str, int, int]]:
    """(``F``/``B``, chunk, microbatch) in the order ``device`` runs them."""
    if schedule == "gpipe":
        return [("F", 0, k) for k in range(m)] + [("B", 0, k) for k in range(m)]
    if schedule == "1f1b":
        warm = min(pp - device - 1, m)
        order = [("F", 0, k) for k in range(warm)]
        f = warm
        for b in range(m):
            if f < m:
                order.append(("F", 0, f))
                f += 1
            order.append(("B", 0, b))
        return order
    if schedule != "interleaved":
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} (got {schedule!r})")
    if m % pp:
        raise ValueError(f"the interleaved schedule needs microbatches ({m}) to be a multiple of pp ({pp})")
    total = m * v

    def forward(k: int) -> tuple[str, int, int]:
        return ("F", (k // pp) % v, (k // (pp * v)) * pp + k % pp)

    def backward(k: int) -> tuple[str, int, int]:
        return ("B", v - 1 - (k // pp) % v, (k // (pp * v)) * pp + k % pp)

    warm = min((pp - device - 1) * 2 + (v - 1) * pp, total)
    order = [forward(k) for k in range(warm)]
    f = warm
    for b in range(total):
        if f < total:
            order.append(forward(f))
            f += 1
        order.append(backward(b))
    return order


def simulate_pipeline(
    fwd_s: Sequence[float],
    bwd_s: Sequence[float],
    microbatches: int,
    schedule: str,
    pp: int,
    send_s: float = 0.0,
) -> PipelineTiming:
    """Run one step's pipeline in SimPy. ``fwd_s``/``bwd_s`` give per-microbatch seconds of each of the
    ``pp * v`` chunks in pipeline order (chunk ``c`` lives on device ``c % pp``); ``send_s`` is the time to
    pass one microbatch's activations (or their gradients) between consecutive chunks on different devices."""
    chunks = len(fwd_s)
    if chunks % pp or len(bwd_s) != chunks:
        raise ValueError("fwd_s and bwd_s need one entry per chunk, pp * virtual_stages of them")
    v = chunks // pp
    m = microbatches
    env = simpy.Environment()
    done: dict[tuple[str, int, int], simpy.Event] = {}
    for kind in ("F", "B"):
        for c in range(chunks):
            for k in range(m):
                done[(kind, c, k)] = env.event()
    ends = [0.0] * pp

    def arrive(event: simpy.Event, delay: float) -> None:
        if delay > 0:
            env.timeout(delay).callbacks.append(lambda _e: _succeed(event))
        else:
            event.succeed()

    def run(device: int) -> Generator[simpy.Event, Any, None]:
        for kind, chunk, k in device_order(schedule, pp, v, m, device):
            c = chunk * pp + device
            if kind == "F":
                needs = done[("F", c - 1, k)] if c > 0 else None
                seconds = fwd_s[c]
            else:
                needs = done[("B", c + 1, k)] if c < chunks - 1 else None
                seconds = bwd_s[c]
            if needs is not None and not needs.processed:
                yield needs
            yield env.timeout(seconds)
            nxt = c + 1 if kind == "F" else c - 1
            if 0 <= nxt < chunks:
                arrive(done[(kind, c, k)], send_s if nxt % pp != device else 0.0)
            else:
                done[(kind, c, k)].succeed()
        ends[device] = float(env.now)

    for device in range(pp):
        env.process(run(device))
    env.run()
    return PipelineTiming(max(ends), tuple(ends))


def _succeed(event: simpy.Event) -> None:
    event.succeed()


def analytic_pipeline(
    fwd_s: Sequence[float],
    bwd_s: Sequence[float],
    microbatches: int,
    pp: int,
    send_s: float = 0.0,
    schedule: str = "1f1b",
) -> PipelineTiming:
    """Closed-form span of a 1F1B, interleaved or GPipe pipeline whose stages are alike apart from extra work
    on the first and last (the embedding, the head and loss): what a plan's stages are.

    1F1B and interleaved: the steady state runs at the slowest device, ``T_max`` per microbatch; fill and
    drain pass once through every chunk and ``2 * (p - 1)`` sends (interleaved: ``(2 - 1/v)`` times that).
    GPipe: all forwards, then all backwards, each phase paced by its slowest device. Device ``d`` finishes
    its last backward when the drain leaves it: ``d`` chunk backwards and sends before the end."""
    chunks = len(fwd_s)
    m = microbatches
    v = chunks // pp
    per_device = [0.0] * pp
    fwd_device = [0.0] * pp
    bwd_device = [0.0] * pp
    for c in range(chunks):
        per_device[c % pp] += fwd_s[c] + bwd_s[c]
        fwd_device[c % pp] += fwd_s[c]
        bwd_device[c % pp] += bwd_s[c]
    if pp == 1:
        span = m * per_device[0]
        return PipelineTiming(span, (span,))
    sends = 2 * (pp - 1) * send_s * (2 - 1 / v)
    if schedule == "gpipe":
        span = (m - 1) * (max(fwd_device) + max(bwd_device)) + sum(fwd_s) + sum(bwd_s) + sends
    else:
        t_max = max(per_device)
        span = m * t_max + (sum(fwd_s) + sum(bwd_s) - t_max) / v + sends
    ends = []
    for d in range(pp):
        tail = sum(bwd_s[c] for c in range(d)) / v + d * send_s  # the drain still has to pass devices < d
        ends.append(span - tail)
    return PipelineTiming(span, tuple(ends))
