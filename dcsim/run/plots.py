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
    if "requests" in result.tables:
        paths += write_inference_plots(result, folder)
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


def write_inference_plots(result: Result, folder: Path) -> list[Path]:
    """Serving plots: TTFT, TPOT and end-to-end latency CDFs per workload (up to the 99.5th percentile);
    batch size and KV-cache occupancy of each replica over time."""
    name = result.scenario.name
    requests = result.tables["requests"]
    done = requests[requests["status"] == "completed"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, column, label in zip(axes, ("ttft_ms", "tpot_ms", "e2e_ms"), ("TTFT", "TPOT", "end-to-end"), strict=True):
        right = 0.0
        for workload, group in done.groupby("workload", sort=False, observed=True):
            values = np.sort(group[column].dropna().to_numpy())
            if len(values):
                ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=str(workload))
                right = max(right, float(np.percentile(values, 99.5)))
        if right > 0:
            ax.set_xlim(0, right * 1.05)  # the last half percent would squeeze the rest into a corner
        finish_axes(ax, f"{label} (ms)", "fraction of requests", f"{name}: {label}", legend=True)
    paths = [save_figure(fig, folder / "latency_cdf.png")]
    timeline = result.tables["replica_timeline"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for key, group in timeline.groupby(["workload", "replica"], sort=False):
        label = "/".join(str(part) for part in key)
        top.step(group["time_s"], group["batch_size"], where="post", label=label, lw=0.8)
        bottom.step(group["time_s"], group["kv_occupancy"], where="post", label=label, lw=0.8)
    finish_axes(top, "", "sequences in batch", f"{name}: batch size per replica")
    finish_axes(bottom, "simulated time (s)", "KV cache occupancy", f"{name}: KV cache per replica")
    if timeline["replica"].nunique() <= 16:
        top.legend(fontsize=7, ncol=4)
    paths.append(save_figure(fig, folder / "kv_batch_timeline.png"))
    pareto = plot_compression_pareto(result, folder / "compression_pareto.png")
    if pareto is not None:
        paths.append(pareto)
    return paths


def plot_compression_pareto(result: Result, path: Path) -> Path | None:
    """Accuracy estimate against $ per million tokens (over each pool's traffic window; generated tokens, or
    input tokens for an encoder) for the inference workloads of a run that compare compression recipes: each
    recipe at its published compressed value, joined to that publication's uncompressed baseline at the cost
    of the uncompressed workload serving the same requests (else the first uncompressed one). Recipes with no
    published point are named in the title, not plotted. None unless a workload has a recipe."""
    served = {name: w for name, w in result.summary["workloads"].items() if w.get("kind") == "inference"}
    if not any(w.get("compression") for w in served.values()):
        return None
    plain = [w for w in served.values() if not w.get("compression")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    unknown, metrics = [], set()
    for name, w in served.items():
        comp = w.get("compression")
        if not comp:
            continue
        accuracy = comp["accuracy"]
        if accuracy.get("status") != "estimate":
            unknown.append(name)
            continue
        metrics.add(f"{accuracy['task']} {accuracy['metric']}")
        versus = comp.get("versus_uncompressed")
        base = served[versus["workload"]] if versus else (plain[0] if plain else None)
        base_x = base["usd_per_million_tokens_serving"] if base else None
        x = w["usd_per_million_tokens_serving"]
        (point,) = ax.plot([x], [accuracy["compressed"]], "o", label=f"{name} ({accuracy['point']})")
        if base_x is not None:
            ax.plot([base_x, x], [accuracy["baseline"], accuracy["compressed"]], "--", color=point.get_color())
            ax.plot([base_x], [accuracy["baseline"]], "o", mfc="none", color=point.get_color())
    title = f"{result.scenario.name}: accuracy estimate vs cost"
    if unknown:
        title += f"\n(no published accuracy: {', '.join(unknown)})"
    inputs = {w.get("tokens_counted") == "input" for w in served.values()}
    tokens = "input tokens" if inputs == {True} else "generated tokens" if inputs == {False} else "tokens"
    metric = "; ".join(sorted(metrics))
    finish_axes(ax, f"$ per million {tokens} (serving window)", f"{metric} (published)", title, legend=True)
    return save_figure(fig, path)
