"""The outcome of a run: the summary dict of the contract and pandas tables, with writers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dcsim.engine.eventlog import EventLog
from dcsim.run.csv_table import write_csv
from dcsim.run.jsonsafe import finite_or_null
from dcsim.run.output_folder import staged_folder
from dcsim.scenario.schema import Scenario


@dataclass
class Result:
    """A run's ``summary`` (JSON-ready dict) and ``tables``: ``accelerators`` and ``timeline`` always,
    ``jobs`` with jobs workloads, ``collectives`` and ``links`` (per-link traffic) with collectives."""

    scenario: Scenario
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    event_log: EventLog | None = None
    link_usage: Any = None  # dcsim.network.usage.LinkUsage when the run used the network

    @property
    def jobs(self) -> pd.DataFrame:
        """One row per job."""
        return self.tables["jobs"]

    @property
    def accelerators(self) -> pd.DataFrame:
        """One row per accelerator: busy time, utilization, energy."""
        return self.tables["accelerators"]

    @property
    def timeline(self) -> pd.DataFrame:
        """Busy accelerators and queued jobs after every scheduling pass."""
        return self.tables["timeline"]

    def summary_json(self) -> str:
        """The summary as JSON text (stable: same scenario and seed give the same bytes)."""
        return json.dumps(finite_or_null(self.summary), indent=2, allow_nan=False) + "\n"

    def write(
        self, out_dir: str | Path, *, plots: bool = True, tables: str = "csv", overwrite: bool = False
    ) -> list[Path]:
        """Write summary.json, the tables and (optionally) plots into the folder ``out_dir``; return the files.

        The files are written into a temporary folder beside ``out_dir`` that is renamed onto it when all are
        written (:mod:`dcsim.run.output_folder`): a failed or killed write leaves ``out_dir`` as it was, and two
        writers at once leave one complete set. A folder that already holds files raises
        :class:`~dcsim.run.output_folder.OutputExistsError` unless ``overwrite``, which replaces it whole (only
        a previous run's folder, one with a ``summary.json``, is ever replaced).
        """
        from dcsim.run.plots import write_plots

        target = Path(out_dir)
        with staged_folder(target, overwrite=overwrite) as staged:
            written = [Path("summary.json")]
            (staged / written[0]).write_text(self.summary_json(), encoding="utf-8")
            for name, frame in self.tables.items():
                path = staged / f"{name}.{tables}"
                if tables == "parquet":
                    frame.to_parquet(path, index=False)
                else:
                    write_csv(frame, path)
                written.append(path.relative_to(staged))
            if plots:
                written += [path.relative_to(staged) for path in write_plots(self, staged / "plots")]
        return [target / path for path in written]

    def write_chrome_trace(self, path: str | Path) -> Path:
        """Write the run's event log as a Chrome trace (the run must have been made with ``trace=True``)."""
        if self.event_log is None or not self.event_log.enabled:
            raise ValueError("this run recorded no event log: run it with trace=True (dcsim run --trace FILE)")
        return self.event_log.write_chrome_trace(path)
