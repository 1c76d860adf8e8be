"""Run one scenario under several scheduling policies and compare them (table and plots)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcsim import progress
from dcsim.errors import UserInputError
from dcsim.run.plots import finish_axes, plt, save_figure
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
    fig, ax = plt.subplots(figsize=(7, 4.5))
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
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for policy, result in results.items():
        timeline = result.timeline
        ax.step(timeline["time_s"] / 3600.0, timeline["utilization"], where="post", label=policy, alpha=0.8)
    finish_axes(ax, "simulated time (h)", "busy accelerators (fraction)", "Utilization by scheduling policy", True)
    return [cdf, save_figure(fig, target / "policies_utilization.png")]
