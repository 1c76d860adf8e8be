"""PNG plot of link utilization (matplotlib's Agg canvas, no global backend change).

Utilization over time is drawn as steps that drop to 0 whenever nothing moves: the usage timeline holds
only the intervals in which some link carried traffic, so every gap between them is idle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dcsim.formatting import duration_unit
from dcsim.network.usage import LinkUsage

MAX_LINKS_SHOWN = 200


def utilization_steps(
    from_s: np.ndarray, to_s: np.ndarray, values: np.ndarray, start_s: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Step edges (s) and values of busy intervals ``from_s[i]``..``to_s[i]`` (sorted, not overlapping)
    holding ``values[i]``, with a step of 0 in every gap between them (and from ``start_s``, if earlier,
    to the first). ``len(edges) == len(steps) + 1``, as :meth:`matplotlib.axes.Axes.stairs` takes them."""
    from_s, to_s, values = (np.asarray(a, dtype=float) for a in (from_s, to_s, values))
    if from_s.size == 0:
        return np.array([] if start_s is None else [start_s]), np.array([])
    if start_s is not None and start_s < from_s[0]:
        from_s, to_s, values = np.r_[start_s, from_s], np.r_[from_s[0], to_s], np.r_[0.0, values]
    gap = from_s[1:] > to_s[:-1]
    shift = np.r_[0, np.cumsum(gap)]  # steps inserted before each interval
    positions = np.arange(from_s.size) + shift
    steps = np.zeros(from_s.size + int(gap.sum()))
    lefts = np.empty_like(steps)
    steps[positions], lefts[positions] = values, from_s
    lefts[positions[:-1][gap] + 1] = to_s[:-1][gap]  # an idle step starts where a busy interval ends
    return np.r_[lefts, to_s[-1]], steps


def link_utilization_figure(usage: LinkUsage, title: str = "Link utilization") -> Figure:
    """The two-panel figure of :func:`plot_link_utilization`."""
    figure = Figure(figsize=(10, 7))
    FigureCanvasAgg(figure)
    over_time, per_link = figure.subplots(2, 1)
    timeline = usage.timeline_frame()
    unit, per = duration_unit(max(usage.end_s - usage.start_s, 0.0))
    if len(timeline):
        start, end = timeline["from_s"].to_numpy(), timeline["to_s"].to_numpy()
        for column, label in (("max_utilization", "busiest link"), ("mean_utilization", "mean over links")):
            edges, steps = utilization_steps(start, end, timeline[column].to_numpy(), usage.start_s)
            over_time.stairs(steps, edges / per, label=label)
        over_time.legend(loc="upper right")
    over_time.set(xlabel=f"time ({unit}; 0 while no link carries traffic)", ylabel="utilization", title=title)
    over_time.set_ylim(0, 1.05)
    table = usage.table().sort_values("mean_utilization", ascending=False).head(MAX_LINKS_SHOWN)
    table = table[table["bytes"] > 0]
    for tier, rows in table.groupby("tier", sort=True):
        positions = np.flatnonzero(table["tier"].to_numpy() == tier)
        per_link.bar(positions, rows["mean_utilization"].to_numpy(), label=str(tier), width=1.0)
    per_link.set(
        xlabel=f"directed links carrying traffic, busiest first (at most {MAX_LINKS_SHOWN})",
        ylabel="mean utilization",
        ylim=(0, 1.05),
    )
    if len(table):
        per_link.legend(loc="upper right", ncols=2)
    figure.tight_layout()
    return figure


def plot_link_utilization(usage: LinkUsage, path: str | Path, title: str = "Link utilization") -> Path:
    """Write a two-panel PNG: busiest-link and mean utilization over time (0 while idle), and each link's
    mean utilization (busiest first, coloured by tier). Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    link_utilization_figure(usage, title).savefig(path, dpi=100)
    return path


def plot_busbw_sweep(sweeps: dict[str, list[tuple[float, float]]], path: Path) -> Path:
    """busbw (GB/s) against message size (bytes, log scale), one line per collective, as nccl-tests users
    plot them. ``sweeps`` maps a label to (bytes, busbw GB/s) points."""
    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, points in sweeps.items():
        sizes, busbw = zip(*points, strict=True) if points else ((), ())
        axes.plot(sizes, busbw, marker="o", markersize=3, label=label)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("message size (bytes, nccl-tests size)")
    axes.set_ylabel("busbw (GB/s)")
    axes.set_title("Bus bandwidth by message size")
    axes.grid(True, which="both", alpha=0.3)
    if sweeps:
        axes.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
