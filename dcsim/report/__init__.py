"""Self-contained HTML reports (plots embedded as base64 PNG, tables as HTML) of a run or a sweep.

``build_report(path)`` takes a ``dcsim run`` output folder (summary.json, tables, plots/*.png) or a
``dcsim sweep`` results table (.csv or .parquet) and returns the HTML; ``write_report`` writes it.
"""

from __future__ import annotations

from pathlib import Path

from dcsim.errors import UserInputError


def build_report(path: str | Path) -> str:
    """The HTML page of a run folder or a sweep results file."""
    target = Path(path)
    if target.is_dir():
        from dcsim.report.run_report import run_page

        return run_page(target).html()
    if target.is_file() and target.suffix in (".csv", ".parquet"):
        from dcsim.report.sweep_report import sweep_page

        return sweep_page(target).html()
    if not target.exists():
        raise UserInputError.single(str(target), "not found (give a dcsim run output folder or a sweep results file)")
    raise UserInputError.single(str(target), "expected a dcsim run output folder or a sweep .csv/.parquet file")


def default_report_path(path: str | Path) -> Path:
    """``FOLDER/report.html`` for a run, ``RESULTS.html`` beside a sweep results file."""
    target = Path(path)
    return target / "report.html" if target.is_dir() else target.with_suffix(".html")


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``path`` to ``out`` (default :func:`default_report_path`) and return where."""
    text = build_report(path)
    destination = Path(out) if out is not None else default_report_path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(text, encoding="utf-8")
    return destination


__all__ = ["build_report", "default_report_path", "write_report"]
