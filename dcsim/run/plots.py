"""PNG plots of a run (matplotlib, Agg backend): utilization and queue length over time, JCT CDF."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from dcsim.run.result import Result


def finish_axes(ax: Any, xlabel: str, ylabel: str, title: str, legend: bool = False) -> None:
    """Labels, title, a light grid and (if asked) a legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend()


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _step(path: Path, x: np.ndarray, y: np.ndarray, ylabel: str, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.step(x / 3600.0, y, where="post")
    finish_axes(ax, "simulated time (h)", ylabel, title)
    return save_figure(fig, path)


def write_plots(result: Result, folder: Path) -> list[Path]:
    """Write the run's plots into ``folder`` and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    timeline = result.timeline
    name = result.scenario.name
    time_s = timeline["time_s"].to_numpy()
    paths = [
        _step(
            folder / "utilization.png",
            time_s,
            timeline["utilization"].to_numpy(),
            "busy accelerators (fraction)",
            f"{name}: accelerator utilization",
        ),
        _step(
            folder / "queue_length.png",
            time_s,
            timeline["queued_jobs"].to_numpy(),
            "jobs waiting",
            f"{name}: queue length",
        ),
    ]
    if result.link_usage is not None:
        from dcsim.network.plot import plot_link_utilization

        paths.append(plot_link_utilization(result.link_usage, folder / "link_utilization.png", f"{name}: links"))
    if "jobs" not in result.tables:
        return paths
    fig, ax = plt.subplots(figsize=(6, 4))
    jobs = result.jobs
    for workload, group in jobs[jobs["status"] == "completed"].groupby("workload", sort=False):
        jct = np.sort(group["jct_s"].to_numpy())
        ax.plot(jct / 3600.0, np.arange(1, len(jct) + 1) / len(jct), label=str(workload))
    finish_axes(ax, "job completion time (h)", "fraction of jobs", f"{name}: JCT CDF", legend=True)
    paths.append(save_figure(fig, folder / "jct_cdf.png"))
    return paths
