"""PNG plots of a run (matplotlib, Agg backend): utilization and queue length over time, JCT CDF.

Step series over time are drawn thin, with their time-weighted means over even bins (hourly for a run of
a few days) drawn bold on top, so that a busy series reads at a glance; the time axis is in the unit that
suits the run's length (ms to h)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcsim.formatting import duration_unit, format_duration, format_number

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure

    from dcsim.run.result import Result


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend, imported on first use: a run with plots off (and every
    command that only imports this module) does not pay matplotlib's import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


#: Bin widths (s) for means over time: the smallest giving at most MAX_BINS bins over the run is used.
BIN_WIDTHS_S = (1e-3, 1e-2, 0.1, 1.0, 10.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0, 7 * 86400.0)
MAX_BINS = 100
BIN_NAMES = {3600.0: "hourly", 86400.0: "daily", 7 * 86400.0: "weekly"}


def finish_axes(ax: Any, xlabel: str, ylabel: str, title: str, legend: bool = False) -> None:
    """Labels, title, a light grid and (if asked) a legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend()


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def bin_width_s(span_s: float) -> float:
    """The bin width (s) for means over ``span_s`` seconds: the smallest of :data:`BIN_WIDTHS_S` that makes
    at most :data:`MAX_BINS` bins."""
    for width in BIN_WIDTHS_S:
        if span_s / width <= MAX_BINS:
            return width
    return span_s / MAX_BINS


def bin_name(width_s: float) -> str:
    """ "hourly", "daily"... or "10 min" for a bin width."""
    return BIN_NAMES.get(width_s, format_duration(width_s))


def step_means(time_s: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-weighted means over the bins ``edges[i]``..``edges[i+1]`` (s) of a step series holding
    ``values[i]`` from ``time_s[i]`` until the next time (the last one until the last edge; 0 before the
    first time). Exact: the integral of a step series is piecewise linear between its times."""
    time_s, values, edges = (np.asarray(a, dtype=float) for a in (time_s, values, edges))
    if time_s.size == 0:
        return np.zeros(max(edges.size - 1, 0))
    knots = np.r_[time_s, max(edges[-1], time_s[-1])]
    integral = np.r_[0.0, np.cumsum(values * np.diff(knots))]
    at_edges = np.interp(edges, knots, integral, left=0.0)
    widths = np.diff(edges)
    return np.divide(np.diff(at_edges), widths, out=np.zeros_like(widths), where=widths > 0)


def time_axis(end_s: float) -> tuple[str, float]:
    """(unit, seconds per unit) for a time axis from 0 to ``end_s``."""
    return duration_unit(end_s)


def draw_steps_with_means(
    ax: Any, time_s: np.ndarray, values: np.ndarray, end_s: float, span_s: float | None = None
) -> float:
    """Draw a step series (until ``end_s``) thin and its time-weighted means over even bins bold on ``ax``,
    and its mean over the run as a dashed line; return that mean. The bin width and the time unit (see
    :func:`time_axis`) follow ``span_s`` (default ``end_s``: give the longest of several runs drawn alike)."""
    span = end_s if span_s is None else span_s
    per = time_axis(span)[1]
    width = bin_width_s(span) if span > 0 else 1.0
    edges = np.arange(max(int(np.ceil(end_s / width)), 1) + 1) * width
    if end_s > edges[-2]:
        edges[-1] = end_s  # the last bin ends with the run
    means = step_means(time_s, values, edges)
    ax.step(np.r_[time_s, end_s] / per, np.r_[values, values[-1:]], where="post", lw=0.6, alpha=0.35, color="C0")
    ax.stairs(means, edges / per, lw=1.8, color="C0", label=f"{bin_name(width)} mean")
    overall = float(step_means(time_s, values, np.array([0.0, max(end_s, 1e-12)]))[0])
    ax.axhline(overall, color="0.3", ls="--", lw=0.8, label=f"mean over the run: {format_number(overall)}")
    return overall


def _step(path: Path, x: np.ndarray, y: np.ndarray, end_s: float, ylabel: str, title: str) -> Path:
    fig, ax = pyplot().subplots(figsize=(8, 3.5))
    draw_steps_with_means(ax, x, y, end_s)
    finish_axes(ax, f"simulated time ({time_axis(end_s)[0]})", ylabel, title, legend=True)
    return save_figure(fig, path)


def write_plots(result: Result, folder: Path) -> list[Path]:
    """Write the run's plots into ``folder`` and return their paths. Utilization and queue length over time
    come from the scheduler's timeline: they are left out of a run in which no job was ever scheduled
    (serving or collectives only), whose timeline is all zeros."""
    folder.mkdir(parents=True, exist_ok=True)
    timeline = result.timeline
    name = result.scenario.name
    time_s = timeline["time_s"].to_numpy()
    end_s = max(float(result.summary.get("simulated_time_s") or 0.0), float(time_s[-1]) if len(time_s) else 0.0)
    paths = []
    if timeline["busy_accelerators"].any() or timeline["queued_jobs"].any():  # else no job was scheduled
        paths += [
            _step(
                folder / "utilization.png",
                time_s,
                timeline["utilization"].to_numpy(),
                end_s,
                "busy accelerators (fraction)",
                f"{name}: accelerator utilization",
            ),
            _step(
                folder / "queue_length.png",
                time_s,
                timeline["queued_jobs"].to_numpy(),
                end_s,
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
    fig, ax = pyplot().subplots(figsize=(6, 4))
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
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.8))
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
    fig, (top, bottom) = pyplot().subplots(2, 1, figsize=(9, 6), sharex=True)
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
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
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
