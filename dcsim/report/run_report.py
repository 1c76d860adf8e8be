"""The report of one run's output folder (what ``dcsim run`` writes): summary, tables, every plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dcsim.errors import UserInputError
from dcsim.formatting import format_duration, format_figure, format_number, label_of
from dcsim.report.page import Page

TABLE_SUFFIXES = (".csv", ".parquet")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary entries as dotted keys (``jct_s.p50``)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else value
    return flat


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table; ``UserInputError`` naming the file if it cannot be read."""
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except ImportError:
        raise UserInputError.single(str(path), "reading Parquet needs pyarrow (pip install 'dcsim[sweep]')") from None
    except (OSError, ValueError) as error:
        raise UserInputError.single(str(path), f"cannot read the table: {error}") from None


#: Plots shown first, in this order (file names); the others follow sorted by path.
LEADING_PLOTS = ("utilization.png", "link_utilization.png", "latency_cdf.png", "jct_cdf.png", "queue_length.png")


def plots_of(folder: Path) -> list[Path]:
    """Every PNG under ``folder`` (``plots/*.png`` of the run, and of ``dcsim policies`` if present): the
    :data:`LEADING_PLOTS` first, then the others sorted by path."""

    def rank(path: Path) -> tuple[int, str]:
        order = LEADING_PLOTS.index(path.name) if path.name in LEADING_PLOTS else len(LEADING_PLOTS)
        return order, str(path.relative_to(folder))

    return sorted(folder.rglob("*.png"), key=rank)


#: Headline figures of a workload (summary keys, in this order when present), at most HEADLINE_PER_WORKLOAD.
HEADLINE_KEYS = (
    "jct_s.p50",
    "jct_s.p90",
    "wait_s.mean",
    "makespan_s",
    "time_to_train_s",
    "step_time_s",
    "mfu",
    "throughput_tokens_per_s",
    "ttft_ms.p50",
    "ttft_ms.p99",
    "tpot_ms.p50",
    "slo_attainment",
    "time_s",
    "busbw_gbps",
    "cost_usd",
)
HEADLINE_PER_WORKLOAD = 5
#: Headline figures of the datacenter.
DATACENTER_HEADLINES = ("accelerator_utilization", "cost_usd.total", "energy_kwh", "carbon_kg")


def headline_figures(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, formatted value) of the figures a reader looks at first: the simulated time, the datacenter's
    utilization, cost, energy and carbon, and a few of each workload's (its completed count included)."""
    figures = [("simulated time", format_duration(summary.get("simulated_time_s")))]
    datacenter = flatten(summary["datacenter"]) if isinstance(summary.get("datacenter"), dict) else {}
    figures += [
        (label_of(k), format_figure(k, datacenter[k])) for k in DATACENTER_HEADLINES if datacenter.get(k) is not None
    ]
    workloads = summary.get("workloads") or {}
    for name, tree in workloads.items() if isinstance(workloads, dict) else ():
        flat = flatten(tree) if isinstance(tree, dict) else {}
        prefix = f"{name}: "
        done = [(k, k.replace("_submitted", "_completed")) for k in flat if k.endswith("_submitted")]
        done += [("requests", "requests_completed")] if "requests" in flat else []
        for total, completed in done[:1]:
            if completed in flat:
                share = f"{format_number(flat[completed])} of {format_number(flat[total])}"
                figures.append((f"{prefix}{label_of(completed)}", share))
        keys = [key for key in HEADLINE_KEYS if flat.get(key) is not None][:HEADLINE_PER_WORKLOAD]
        figures += [(f"{prefix}{label_of(key)}", format_figure(key, flat[key])) for key in keys]
    return figures


def run_page(folder: Path) -> Page:
    """The report page of a run's output folder (must hold summary.json): a line on the run, headline
    figures, every plot, every summary figure (one block per workload and the datacenter), then each table
    folded."""
    summary_path = folder / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except OSError:
        raise UserInputError.single(str(folder), "no summary.json here: not the output folder of dcsim run") from None
    except ValueError as error:
        raise UserInputError.single(str(summary_path), f"not valid JSON: {error}") from None
    if not isinstance(summary, dict):
        raise UserInputError.single(str(summary_path), "must hold a JSON object (the run summary)")
    page = Page(f"dcsim run: {summary.get('name', folder.name)}")
    page.paragraph(
        f"seed {summary.get('seed')} · dcsim {summary.get('dcsim_version', '?')} · "
        f"{format_duration(summary.get('simulated_time_s'))} simulated · folder {folder}",
        note=True,
    )
    page.cards(headline_figures(summary))
    plots = plots_of(folder)
    if plots:
        page.heading("plots")
    for path in plots:
        page.image(path.read_bytes(), str(path.relative_to(folder)))
    blocks = [
        page.key_values(flatten(figures), title=f"workload {name}")
        for name, figures in (summary.get("workloads") or {}).items()
        if isinstance(figures, dict)
    ]
    if isinstance(summary.get("datacenter"), dict):
        blocks.append(page.key_values(flatten(summary["datacenter"]), title="datacenter"))
    if blocks:
        page.heading("figures")
        page.grid(blocks)
    tables = sorted(p for p in folder.iterdir() if p.suffix in TABLE_SUFFIXES)
    if tables:
        page.heading("tables")
    for path in tables:
        frame = read_table(path)
        page.table(frame, title=f"table {path.name} ({len(frame):,} rows)")
    return page
