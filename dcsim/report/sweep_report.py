"""The report of a sweep's results table (``dcsim sweep --out``): the design, failures, per-point means with
confidence intervals over seeds (clipped to each figure's physical bounds), and plots of the main figures
against the swept values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dcsim.errors import UserInputError
from dcsim.formatting import format_interval, label_of
from dcsim.report.bounds import clip_intervals
from dcsim.report.page import Page, figure_png
from dcsim.report.run_report import read_table
from dcsim.report.tables import column_unit
from dcsim.sweep.stats import mean_ci

# Figures plotted when present (suffixes of summary columns), in this order; else the first numeric ones.
PREFERRED_SUFFIXES = (
    "cost_usd.total",
    "jct_s.mean",
    "wait_s.mean",
    "accelerator_utilization",
    "time_s",
    "busbw_gbps",
    "tokens_per_s",
    "slo_attainment",
    "usd_per_million_tokens",
    "energy_kwh",
)
MAX_PLOTS = 6
MAX_LINES = 8


def plotted_metrics(metrics: list[str]) -> list[str]:
    """Up to :data:`MAX_PLOTS` figures to plot: preferred ones first."""
    preferred = [m for suffix in PREFERRED_SUFFIXES for m in metrics if m.endswith("." + suffix)]
    chosen = [m for m in preferred if m.startswith("datacenter.")] + preferred
    chosen += metrics
    return list(dict.fromkeys(chosen))[:MAX_PLOTS]


def _plot(points: pd.DataFrame, params: list[str], metric: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    numeric = [p for p in params if pd.api.types.is_numeric_dtype(points[p])]
    x_name = numeric[0] if numeric else (params[0] if params else "variant")
    others = [p for p in params if p != x_name]
    groups = list(points.groupby(others, sort=True)) if others else [((), points)]
    unit, factor = column_unit(metric, points[f"{metric}:mean"])
    for values, group in groups[:MAX_LINES]:
        group = group.sort_values(x_name)
        mean = group[f"{metric}:mean"] * factor
        low, high = mean - group[f"{metric}:ci_low"] * factor, group[f"{metric}:ci_high"] * factor - mean
        keys = values if isinstance(values, tuple) else (values,)
        label = ", ".join(f"{p}={v}" for p, v in zip(others, keys, strict=True))
        x = group[x_name] if x_name in numeric or x_name == "variant" else group[x_name].astype(str)
        ax.errorbar(x, mean, yerr=[low.fillna(0), high.fillna(0)], marker="o", capsize=3, label=label or None)
    ax.set_xlabel(x_name)
    ax.set_ylabel(f"{label_of(metric)} ({unit})" if unit else label_of(metric), fontsize=8)
    ax.set_title(f"{metric} (mean, 95% CI over seeds, within physical bounds)", fontsize=9)
    ax.grid(alpha=0.3)
    if others:
        ax.legend(fontsize=7)
    return figure_png(fig)


def sweep_page(path: Path) -> Page:
    """The report page of a sweep results file (.csv or .parquet)."""
    frame = read_table(path)
    for column in ("variant", "seed", "error"):
        if column not in frame.columns:
            raise UserInputError.single(str(path), f"no {column!r} column: not a dcsim sweep results table")
    columns = list(frame.columns)
    params = columns[columns.index("seed") + 1 : columns.index("error")]
    frame.attrs["params"] = params
    failed = frame[frame["error"].notna()]
    page = Page(f"dcsim sweep: {path.name}")
    page.paragraph(
        f"{len(frame):,} points: {frame['variant'].nunique():,} variants x {frame['seed'].nunique():,} seeds; "
        f"{len(failed):,} failed. Swept: {', '.join(params) or 'nothing (seeds only)'}."
    )
    metrics = [
        c
        for c in columns[columns.index("error") + 1 :]
        if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].nunique(dropna=True) > 1
    ]
    points = clip_intervals(mean_ci(frame, metrics), metrics)
    chosen = plotted_metrics(metrics)
    if chosen and len(points) > 0:
        page.heading("plots")
        for metric in chosen:
            page.image(_plot(points, params, metric), f"{metric} against {', '.join(params) or 'variant'}")
        page.heading("per point: mean and 95% confidence interval over seeds")
        page.table(interval_table(points, params, chosen), max_rows=200)
    if len(failed):
        page.heading(f"failed points ({len(failed):,})")
        page.table(failed[["variant", "seed", *params, "error"]], max_rows=100)
    page.heading("all results")
    page.table(frame, max_rows=100, title=f"every point and seed ({len(frame):,} rows)")
    return page


def interval_table(points: pd.DataFrame, params: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per point: ``variant``, the swept values, ``n`` (seeds), and per metric one cell "mean
    [low – high]" in human units (the interval as :func:`dcsim.report.bounds.clip_intervals` left it)."""
    table = points[["variant", *params, "n"]].copy()
    for metric in metrics:
        cells = []
        for mean, low, high in points[[f"{metric}:mean", f"{metric}:ci_low", f"{metric}:ci_high"]].itertuples(
            index=False
        ):
            cells.append(format_interval(metric, mean, low, high))
        table[f"{label_of(metric)}: mean [95% CI]"] = cells
    return table
