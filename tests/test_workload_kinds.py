"""Workload kinds are plugins: a kind registered from one file (tests/toy_kind.py) runs end to end."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from dcsim.errors import UserInputError
from dcsim.run import run_scenario
from dcsim.run.jobs_runner import JobsRunner
from dcsim.run.runner import runner_class
from dcsim.scenario import load_scenario
from dcsim.scenario.loader import KIND_MODULES
from dcsim.scenario.workloads import WORKLOAD_KINDS, JobsWorkload, register_workload_kind


@pytest.fixture
def toy() -> Iterator[ModuleType]:
    """tests/toy_kind.py freshly imported (registering ``kind: metronome``), unregistered afterwards. The
    built-in kinds are registered first, outside the scope, so that they stay."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    with WORKLOAD_KINDS.scope():
        sys.modules.pop("toy_kind", None)
        yield importlib.import_module("toy_kind")
        sys.modules.pop("toy_kind", None)


def scenario(*workloads: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "toy-kind",
        "seed": 1,
        "datacenter": {
            "nodes": [{"name": "n", "count": 1, "accelerator": "a100-sxm-80gb", "accelerators_per_node": 8}]
        },
        "workloads": list(workloads),
    }


def test_a_kind_from_one_file_runs_end_to_end(toy: ModuleType, tmp_path: Path) -> None:
    result = run_scenario(
        scenario(
            {"kind": "metronome", "name": "slow", "ticks": 3, "interval_s": 2.5},
            {"kind": "metronome", "name": "fast", "ticks": 2, "interval_s": 1.0, "arrival_s": 4.0},
        )
    )
    assert result.summary["workloads"] == {
        "slow": {"kind": "metronome", "ticks": 3, "last_tick_s": 7.5},
        "fast": {"kind": "metronome", "ticks": 2, "last_tick_s": 6.0},
    }
    assert result.summary["simulated_time_s"] == 7.5  # the run ends when every runner's done has fired
    files = result.write(tmp_path / "out", plots=False)
    assert {f.name for f in files} >= {"summary.json", "metronome_ticks.csv", "accelerators.csv"}
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["workloads"]["fast"]["last_tick_s"] == 6.0
    ticks = pd.read_csv(tmp_path / "out" / "metronome_ticks.csv")
    assert ticks["workload"].tolist() == ["slow"] * 3 + ["fast"] * 2  # one table, in workload order
    assert ticks["time_s"].tolist() == [2.5, 5.0, 7.5, 5.0, 6.0]


def test_a_plugin_kind_is_validated_with_field_paths(toy: ModuleType) -> None:
    with pytest.raises(UserInputError) as caught:
        load_scenario(scenario({"kind": "metronome", "name": "m", "ticks": 0, "interval_s": 1.0}))
    assert [p.path for p in caught.value.problems] == ["workloads[0].ticks"]


def test_kinds_registry_refuses_duplicates_and_resolves_module_class(toy: ModuleType) -> None:
    with pytest.raises(ValueError, match="workload kind 'jobs' is already registered"):
        register_workload_kind("jobs", runner=toy.MetronomeRunner)(toy.MetronomeWorkload)
    assert WORKLOAD_KINDS.resolve("metronome") is toy.MetronomeWorkload
    assert WORKLOAD_KINDS.resolve("toy_kind:MetronomeWorkload") is toy.MetronomeWorkload
    assert {"jobs", "collective", "training", "inference", "metronome"} <= set(WORKLOAD_KINDS)


def test_runner_classes_resolve_from_references_and_classes(toy: ModuleType) -> None:
    jobs = JobsWorkload(name="j", synthetic={"count": 1, "rate_per_s": 1, "duration_s": 1})
    assert runner_class(jobs) is JobsRunner  # built-in kinds name their runner as module:Class
    assert runner_class(toy.MetronomeWorkload(name="m", ticks=1, interval_s=1)) is toy.MetronomeRunner


def test_the_toy_kind_is_gone_after_its_tests() -> None:
    assert "metronome" not in WORKLOAD_KINDS  # registrations in WORKLOAD_KINDS.scope() are undone
