"""PNG plot of link utilization (matplotlib's Agg canvas, no global backend change)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dcsim.network.usage import LinkUsage

MAX_LINKS_SHOWN = 200


def plot_link_utilization(usage: LinkUsage, path: str | Path, title: str = "Link utilization") -> Path:
    """Write a two-panel PNG: busiest-link and mean utilization over time, and each link's mean
    utilization (busiest first, coloured by tier). Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(10, 7))
    FigureCanvasAgg(figure)
    over_time, per_link = figure.subplots(2, 1)
    timeline = usage.timeline_frame()
    if len(timeline):
        edges = np.append(timeline["from_s"].to_numpy(), timeline["to_s"].to_numpy()[-1])
        for column, label in (("max_utilization", "busiest link"), ("mean_utilization", "mean over links")):
            over_time.stairs(timeline[column].to_numpy(), edges, label=label)
        over_time.legend(loc="upper right")
    over_time.set(xlabel="time (s)", ylabel="utilization", title=title, ylim=(0, 1.05))
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
    figure.savefig(path, dpi=100)
    return path
