"""The report of one run's output folder (what ``dcsim run`` writes): summary, tables, every plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dcsim.errors import UserInputError
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


def plots_of(folder: Path) -> list[Path]:
    """Every PNG under ``folder`` (``plots/*.png`` of the run, and of ``dcsim policies`` if present), sorted."""
    return sorted(folder.rglob("*.png"))


def run_page(folder: Path) -> Page:
    """The report page of a run's output folder (must hold summary.json)."""
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
        f"seed {summary.get('seed')}, dcsim {summary.get('dcsim_version', '?')}, "
        f"{summary.get('simulated_time_s', 0) / 3600:,.4g} h simulated; folder {folder}"
    )
    for name, figures in (summary.get("workloads") or {}).items():
        page.heading(f"workload {name}")
        page.key_values(flatten(figures))
    if isinstance(summary.get("datacenter"), dict):
        page.heading("datacenter")
        page.key_values(flatten(summary["datacenter"]))
    for path in sorted(p for p in folder.iterdir() if p.suffix in TABLE_SUFFIXES):
        frame = read_table(path)
        page.heading(f"table {path.name} ({len(frame):,} rows)")
        page.table(frame)
    plots = plots_of(folder)
    if plots:
        page.heading("plots")
    for path in plots:
        page.image(path.read_bytes(), str(path.relative_to(folder)))
    return page
