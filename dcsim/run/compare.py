"""Run one scenario under several scheduling policies and compare them (table and plots)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcsim import progress
from dcsim.errors import UserInputError
from dcsim.formatting import format_percent
from dcsim.run.plots import (
    bin_name,
    bin_width_s,
    draw_steps_with_means,
    finish_axes,
    pyplot,
    save_figure,
    time_axis,
)
from dcsim.run.result import Result
from dcsim.run.world import run_scenario
from dcsim.scenario import load_scenario
from dcsim.scheduler.policies import resolve_policy


def compare_policies(
    source: str | Path | Mapping[str, Any], policies: Sequence[str], **scheduler: Any
) -> tuple[pd.DataFrame, dict[str, Result]]:
    """Run the scenario once per policy (other scheduler settings from the file, or ``scheduler`` overrides).

    Returns one row per (policy, jobs workload): mean/p50/p90/p99 JCT and wait (s), makespan (s),
    accelerator utilization, goodput, preemptions; and each policy's :class:`Result`.
    """
    base = load_scenario(source)
    for policy in policies:
        try:
            resolve_policy(policy)
        except ValueError as error:
            raise UserInputError.single("policies", str(error)) from None
    rows, results = [], {}
    with progress.bar(len(policies), "policies", unit="policy") as shown:
        for policy in policies:
            shown.set_postfix_str(policy)
            settings = base.scheduler.model_copy(update={"policy": policy, **scheduler})
            scenario = base.model_copy(update={"scheduler": settings})
            results[policy] = run_scenario(scenario)
            shown.update(1)
    for policy, result in results.items():
        dc = result.summary["datacenter"]
        for name, work in result.summary["workloads"].items():
            if work["kind"] != "jobs":
                continue
            rows.append(
                {
                    "policy": policy,
                    "workload": name,
                    "jct_mean_s": work["jct_s"]["mean"],
                    "jct_p50_s": work["jct_s"]["p50"],
                    "jct_p90_s": work["jct_s"]["p90"],
                    "jct_p99_s": work["jct_s"]["p99"],
                    "wait_mean_s": work["wait_s"]["mean"],
                    "makespan_s": work["makespan_s"],
                    "utilization": dc["accelerator_utilization"],
                    "goodput": dc["goodput"],
                    "preemptions": work["preemptions"],
                }
            )
    return pd.DataFrame(rows), results


def plot_policies(results: Mapping[str, Result], folder: str | Path) -> list[Path]:
    """JCT CDF per policy and utilization over time per policy, as two PNGs in ``folder``."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for policy, result in results.items():
        jobs = result.tables.get("jobs")
        if jobs is None:
            continue
        jct = np.sort(jobs.loc[jobs["status"] == "completed", "jct_s"].to_numpy())
        if len(jct):
            ax.plot(jct / 3600.0, np.arange(1, len(jct) + 1) / len(jct), label=policy)
    ax.set_xscale("log")
    finish_axes(ax, "job completion time (h, log scale)", "fraction of jobs", "JCT CDF by scheduling policy", True)
    cdf = save_figure(fig, target / "policies_jct_cdf.png")
    return [cdf, save_figure(utilization_figure(results), target / "policies_utilization.png")]


def run_end_s(result: Result) -> float:
    """When a run ended (s): its simulated time, or its last timeline entry if later."""
    times = result.timeline["time_s"]
    return max(float(result.summary.get("simulated_time_s") or 0.0), float(times.iloc[-1]) if len(times) else 0.0)


def utilization_figure(results: Mapping[str, Result]) -> Any:
    """Small multiples: one panel per policy (shared time and utilization axes), each with the busy fraction
    over time thin, its time-weighted means over even bins (hourly for runs of days) bold, and its mean over
    the run dashed and written in the panel."""
    span = max((run_end_s(result) for result in results.values()), default=0.0)
    count = max(len(results), 1)
    fig, axes = pyplot().subplots(count, 1, figsize=(8, 0.9 + 1.3 * count), sharex=True, sharey=True, squeeze=False)
    for ax, (policy, result) in zip(axes[:, 0], results.items(), strict=False):
        timeline = result.timeline
        time_s, busy = timeline["time_s"].to_numpy(), timeline["utilization"].to_numpy()
        overall = draw_steps_with_means(ax, time_s, busy, run_end_s(result), span)
        ax.text(
            0.01,
            0.9,
            f"{policy}: mean {format_percent(overall)}",
            transform=ax.transAxes,
            va="top",
            fontweight="bold",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(f"simulated time ({time_axis(span)[0]})")
    fig.supylabel("busy accelerators (fraction)", fontsize=9)
    fig.suptitle(
        f"Utilization by scheduling policy ({bin_name(bin_width_s(span))} means bold; dashed: mean over the run)",
        fontsize=10,
    )
    return fig
