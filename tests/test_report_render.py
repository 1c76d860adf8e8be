"""Plots and reports that read well: human units, idle links drawn idle, policies as small multiples,
intervals within physical bounds, and a run report that leads with its plots in a headless browser."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import dcsim
from dcsim.formatting import format_duration, format_figure, format_interval, format_number, label_of
from dcsim.network.plot import link_utilization_figure, utilization_steps
from dcsim.report import build_report
from dcsim.report.bounds import clip_intervals, physical_bounds
from dcsim.report.sweep_report import interval_table
from dcsim.report.tables import readable_table
from dcsim.run.compare import utilization_figure
from dcsim.run.plots import step_means
from dcsim.sweep.stats import mean_ci


def test_numbers_read_in_human_units():
    assert [format_number(v) for v in (9298.79, 318.6, 2.067, 0.6328, 0.0, -12.0, 4e-5, math.nan)] == [
        "9,299",
        "319",
        "2.07",
        "0.633",
        "0",
        "−12",
        "4.00e−05",
        "—",
    ]
    assert format_duration(0.0) == "0 s" and format_duration(0.0425) == "42.5 ms"
    assert format_duration(2450.8) == "40.8 min" and format_duration(258507.0) == "71.8 h"
    figures = {
        "jct_s.p50": (2450.8, "40.8 min"),
        "ttft_ms.p99": (1234.5, "1.23 s"),
        "cost_usd.total": (9298.79, "$9,299"),
        "datacenter.accelerator_utilization": (0.63277, "63.3%"),
        "energy_kwh": (1276.9, "1,277 kWh"),
        "it_energy_kwh": (0.00584, "5.84 Wh"),
        "host_memory_peak_gb": (1.5, "1.5 GB"),
        "throughput_tokens_per_s": (12345.6, "12,346/s"),
        "accelerator_hours": (1455.4, "1,455 h"),
        "jobs_completed": (500, "500"),
        "kind": ("jobs", "jobs"),
    }
    assert {name: format_figure(name, value) for name, (value, _) in figures.items()} == {
        name: text for name, (_, text) in figures.items()
    }
    assert label_of("jct_s.p50") == "JCT p50" and label_of("cost_usd.total") == "cost total"
    assert format_interval("jct_s.mean", 2562.0, 1668.0, 3456.0) == "42.7 [27.8 – 57.6] min"
    assert format_interval("energy_kwh", 9.47, 4.08, 14.9) == "9.47 [4.08 – 14.9] kWh"
    assert format_figure("workloads[0].synthetic.rate_per_h", 6) == "6/h"


def test_tables_put_status_first_with_one_unit_per_column():
    jobs = pd.DataFrame(
        {
            "submit_s": [0.0, 7200.0],
            "jct_s": [9000.0, 18000.0],
            "bytes": [2e9, 3e9],
            "utilization": [0.5, 0.25],
            "job_id": ["a-0", "a-1"],
            "workload": ["a", "a"],
            "status": ["completed", "failed"],
        }
    )
    table = readable_table(jobs)
    assert list(table.columns) == [
        *("workload", "job ID", "status"),
        *("submit (h)", "JCT (h)", "bytes (GB)", "utilization (%)"),
    ]
    assert table.iloc[1].tolist() == ["a", "a-1", "failed", "2", "5", "3", "25"]


def test_confidence_intervals_stay_within_physical_bounds():
    # three seeds whose t interval reaches a utilization of 1.43, and two whose JCT interval goes below 0
    frame = pd.DataFrame(
        {
            "variant": [0, 0, 0],
            "seed": [0, 1, 2],
            "rate": [1.0, 1.0, 1.0],
            "error": [None, None, None],
            "datacenter.accelerator_utilization": [0.95, 0.99, 0.5],
            "workloads.w.jct_s.mean": [10.0, 1000.0, math.nan],
            "workloads.w.jobs_completed": [1, 30, 2],
            "workloads.w.net_savings_usd": [-5.0, 40.0, 1.0],
        }
    )
    frame.attrs["params"] = ["rate"]
    metrics = [c for c in frame.columns if "." in c]
    raw = mean_ci(frame, metrics).iloc[0]
    assert raw["datacenter.accelerator_utilization:ci_high"] > 1.4
    assert raw["workloads.w.jct_s.mean:ci_low"] < -5000 and raw["workloads.w.jobs_completed:ci_low"] < 0
    clipped = clip_intervals(mean_ci(frame, metrics), metrics).iloc[0]
    assert clipped["datacenter.accelerator_utilization:ci_high"] == 1.0
    assert clipped["datacenter.accelerator_utilization:ci_low"] == raw["datacenter.accelerator_utilization:ci_low"]
    assert clipped["workloads.w.jct_s.mean:ci_low"] == 0.0 and clipped["workloads.w.jobs_completed:ci_low"] == 0.0
    assert clipped["workloads.w.net_savings_usd:ci_low"] == raw["workloads.w.net_savings_usd:ci_low"] < 0
    cells = interval_table(clip_intervals(mean_ci(frame, metrics), metrics), ["rate"], metrics).iloc[0]
    assert cells["datacenter accelerator utilization: mean [95% CI]"].endswith("– 100%]")
    assert re.fullmatch(r"8\.42 \[0 – [\d.]+\] min", cells["workloads w JCT mean: mean [95% CI]"])
    assert physical_bounds("workloads.w.ttft_ms.p99") == (0.0, math.inf)
    assert physical_bounds("datacenter.goodput") == (0.0, 1.0)


def test_link_utilization_is_zero_while_no_flow_runs(tmp_path: Path):
    # two 1 GB all-reduces 5 s apart on two hosts: each keeps the links busy for 0.08 s
    scenario = {
        "name": "gap",
        "seed": 1,
        "datacenter": {
            "nodes": [{"name": "h", "count": 2, "accelerator": "a100-sxm-80gb", "accelerators_per_node": 1}],
            "network": {"topology": "leaf_spine", "params": {"leaves": 2, "spines": 1, "hosts_per_leaf": 1}},
        },
        "workloads": [
            {"kind": "collective", "name": "a", "op": "all_reduce", "bytes": 1e9, "ranks": 2},
            {"kind": "collective", "name": "b", "op": "all_reduce", "bytes": 1e9, "ranks": 2, "arrival_s": 5},
        ],
        "outputs": {"plots": False},
    }
    result = dcsim.run_scenario(scenario)
    written = {path.name for path in result.write(tmp_path, plots=True)}
    assert "link_utilization.png" in written
    assert not {"utilization.png", "queue_length.png"} & written  # no job scheduled: no all-zero plots
    figure = link_utilization_figure(result.link_usage)
    over_time = figure.axes[0]
    assert over_time.get_xlabel().startswith("time (s")
    busiest, _mean = over_time.patches[:2]
    steps, edges, _ = busiest.get_data()

    def value_at(t):
        return steps[np.searchsorted(edges, t, side="right") - 1]

    assert value_at(0.02) == pytest.approx(1.0)  # the first all-reduce saturates its links
    assert [value_at(t) for t in (0.1, 1.0, 4.99)] == [0.0, 0.0, 0.0]  # idle in the gap
    assert value_at(5.02) == pytest.approx(1.0)
    assert sum(np.diff(edges)[steps > 0]) < 0.2  # busy 0.16 s of the 5.08 s drawn

    edges, steps = utilization_steps(np.array([1.0, 2.0, 4.0]), np.array([2.0, 3.0, 5.0]), np.ones(3), 0.0)
    assert edges.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and steps.tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]


def test_step_means_are_time_weighted():
    # busy 1.0 from 0.5 h to 1.5 h, then 0.25 until 3 h
    means = step_means(np.array([0.0, 1800.0, 5400.0]), np.array([0.0, 1.0, 0.25]), np.arange(4) * 3600.0)
    assert means.tolist() == pytest.approx([0.5, 0.5 + 0.125, 0.25])


def test_policies_utilization_is_one_panel_per_policy_on_shared_axes():
    def run(busy):  # busy for the first hour(s), idle after, over 4 h
        timeline = pd.DataFrame({"time_s": [0.0, busy * 3600.0], "utilization": [1.0, 0.0]})
        return SimpleNamespace(timeline=timeline, summary={"simulated_time_s": 4 * 3600.0})

    figure = utilization_figure({"fifo": run(1), "sjf": run(3)})
    axes = figure.axes
    assert len(axes) == 2 and axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[1])
    texts = [[t.get_text() for t in ax.texts] for ax in axes]
    assert texts == [["fifo: mean 25%"], ["sjf: mean 75%"]]
    hourly = [ax.patches[0].get_data()[0].tolist() for ax in axes]
    assert hourly == [[1.0] * 12 + [0.0] * 36, [1.0] * 36 + [0.0] * 12]  # 5-minute means of the 4 h runs
    assert "5 min means" in figure.get_suptitle()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_run_report_leads_with_plots_in_a_browser(tmp_path: Path, base):
    base["workloads"][0]["synthetic"]["count"] = 20
    out = tmp_path / "run"
    dcsim.run_scenario(base).write(out, plots=True)
    text = build_report(out)
    body = text[text.index("<body>") :]
    assert body.index("<img") < body.index("<table"), "the plots must come before every table"
    assert re.search(r'<div class="value">\$[\d,.]+</div><div class="label">cost total', body)
    assert "<details><summary>table jobs.csv (20 rows)</summary>" in body
    page = tmp_path / "report.html"
    page.write_text(text, encoding="utf-8")
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (CI installs it: .ci/run)")
    screenshot = tmp_path / "report.png"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={screenshot}",
        "--window-size=1366,900",
        page.as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    pixels = matplotlib.image.imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (900, 1366)
    assert pixels.std() > 0.05, "the screenshot is blank"
    # the first screen shows a plot: matplotlib's first colour (#1f77b4) drawn over many pixels
    blue = np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=2) < 0.08
    assert blue.sum() > 500
    # nothing is cut off at laptop width: the right quarter of the page is empty margin
    assert (pixels[:, 1245:1340] > 0.97).all(axis=2).mean() > 0.9
