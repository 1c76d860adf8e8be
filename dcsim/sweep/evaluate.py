"""One sweep point: run a validated scenario and return its summary or its error; flatten a summary into columns.

:func:`run_point` is what executors ship to worker processes (local or Dask), so it lives at module level and
takes and returns only picklable, JSON-ready data.
"""

from __future__ import annotations

from typing import Any

from dcsim.errors import UserInputError
from dcsim.run import run_scenario
from dcsim.scenario.schema import Scenario

# Summary entries that are not figures of the point (the sweep's own ``seed`` column already holds the seed).
SKIPPED_SUMMARY_KEYS = ("name", "seed")


def describe_error(error: BaseException) -> str:
    """One line for the ``error`` column: the problems of invalid input, else the exception type and message."""
    if isinstance(error, UserInputError):
        return "; ".join(str(problem) for problem in error.problems)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def run_point(scenario: Scenario) -> tuple[dict[str, Any] | None, str | None]:
    """Simulate one point: ``(summary, None)``, or ``(None, error)`` if the run raised an ``Exception``.

    ``KeyboardInterrupt`` and other non-``Exception`` errors propagate, so an interrupted sweep stops.
    """
    try:
        return run_scenario(scenario).summary, None
    except Exception as error:
        return None, describe_error(error)


def flatten_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """``{'workloads': {'research': {'jct_s': {'mean': 5}}}}`` -> ``{'workloads.research.jct_s.mean': 5}``.

    Lists become indexed keys (``key[0]``); the summary's ``name`` and ``seed`` are left out.
    """
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(f"{prefix}[{index}]", item)
        else:
            flat[prefix] = value

    for key, value in summary.items():
        if key not in SKIPPED_SUMMARY_KEYS:
            visit(key, value)
    return flat
