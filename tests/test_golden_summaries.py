"""Every shipped scenario's summary.json, byte for byte: a restructuring that should change no result shows it.

``tests/golden_summaries.json`` holds the sha256 of each ``scenarios/*.yaml`` run's ``summary.json``
(:meth:`dcsim.run.Result.summary_json`, the text ``dcsim run`` writes) with every float written to 10
significant digits: the same seed gives byte-identical summaries on one machine, and a CI machine whose CPU
has other vector units may differ in a float's last bits, which is not a change of result. The test runs
every scenario (plots and tables are not written, they do not enter the summary) and compares.

A change meant to move results (a new mechanism, a corrected constant, a new scenario) regenerates the
hashes, and its commit says which scenarios changed and why::

    DCSIM_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_summaries.py

"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import dcsim

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
GOLDEN = Path(__file__).resolve().parent / "golden_summaries.json"
REGENERATE = "DCSIM_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_summaries.py"


def _canonical(value: Any) -> Any:
    """``value`` (parsed JSON) with every float rounded to 10 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def summary_sha256(path: Path) -> str:
    """The sha256 (hex) of the summary.json that running the scenario file ``path`` writes, floats to 10
    significant digits."""
    summary = _canonical(json.loads(dcsim.run_scenario(path).summary_json()))
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode("utf-8")).hexdigest()


def current_hashes() -> dict[str, str]:
    """``{file name: summary sha256}`` for every scenario in scenarios/, in name order."""
    return {path.name: summary_sha256(path) for path in sorted(SCENARIOS.glob("*.yaml"))}


def test_every_scenario_summary_matches_its_golden_hash():
    now = current_hashes()
    if os.environ.get("DCSIM_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return
    golden: dict[str, str] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    problems = [
        f"{name}: summary.json changed (golden {golden[name][:12]}, now {now[name][:12]})"
        for name in sorted(set(golden) & set(now))
        if golden[name] != now[name]
    ]
    problems += [f"{name}: a new scenario with no golden hash" for name in sorted(set(now) - set(golden))]
    problems += [f"{name}: in {GOLDEN.name} but not in scenarios/" for name in sorted(set(golden) - set(now))]
    assert not problems, (
        "scenario summaries differ from tests/golden_summaries.json:\n"
        + "\n".join(problems)
        + f"\nIf the change is meant to move these results, regenerate with `{REGENERATE}`,"
        " and say which scenarios changed and why in the commit body."
    )
