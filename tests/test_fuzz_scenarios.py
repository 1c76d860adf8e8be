"""Fuzz ``dcsim check`` with random mutations of the shipped scenarios.

The contract: every input ends in exit 0, or in exit 2 with one line ``error: <field path>: <message>`` per
problem; no traceback, no other exception, and quickly. Mutations drop keys and list items, replace values
by random scalars, lists and mappings (NaN, infinities, negatives, text, booleans), rename and add keys,
repeat a section (a duplicate YAML key) or a list item. Numbers stay at moderate magnitudes (|x| <= 1e6,
plus the non-finite ones): refusing absurd sizes (1e12 accelerators) is the size limits' job.
"""

from __future__ import annotations

import copy
import io
import math
import re
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcsim.cli import main
from dcsim.scenario.yamlio import load_yaml

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
SCENARIOS = {path.name: load_yaml(path.read_text()) for path in sorted(SCENARIO_DIR.glob("*.yaml"))}

#: Slowest acceptable ``check`` of one mutated scenario (s): generous, the machine may be shared.
TIME_BOUND_S = 5.0

_PART = r"""\[(?:[\w.+-]+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]"""
_FIELD = rf"(?:[A-Za-z_][\w-]*|{_PART})(?:\.[A-Za-z_][\w-]*|{_PART})*(?: \([^)]*\))?"

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6),
    st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 0.5, 1e6]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(["auto", "fifo", "lognormal", "", "1e9", "-1", "a100-sxm-80gb", "nvswitch-a100", "1_000"]),
)
_LISTS = st.lists(_SCALARS, max_size=3)
_VALUES = st.one_of(
    _SCALARS,
    _LISTS,
    st.dictionaries(st.text(max_size=8), _SCALARS, max_size=3),
    st.fixed_dictionaries({"dist": st.sampled_from(["lognormal", "constant", "uniform"]), "mean": _SCALARS}),
    st.fixed_dictionaries({"choices": _LISTS, "weights": st.one_of(_SCALARS, _LISTS)}),
)


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in ``tree`` (keys of mappings, indices of lists), parents before children."""
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            out += _paths(value, (*prefix, index))
    return out


def _parent(tree: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        tree = tree[part]
    return tree


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    """(scenario name, YAML text of one to three mutations of it)."""
    name = draw(st.sampled_from(sorted(SCENARIOS)))
    tree = copy.deepcopy(SCENARIOS[name])
    extra = ""
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(tree)
        path = draw(st.sampled_from(paths))
        parent = _parent(tree, path)
        kind = draw(st.sampled_from(["drop", "replace", "replace", "replace", "rename", "add", "repeat"]))
        if kind == "drop":
            del parent[path[-1]]
        elif kind == "replace":
            parent[path[-1]] = draw(_VALUES)
        elif kind == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from([f"{path[-1]}s", str(path[-1])[:-1], "x"]))] = parent.pop(path[-1])
        elif kind == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(_VALUES)
        elif kind == "repeat" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        elif kind == "repeat" and len(path) == 1:
            extra = yaml.safe_dump({path[0]: parent[path[0]]}, sort_keys=False)
    return name, yaml.safe_dump(tree, sort_keys=False, allow_unicode=True) + extra


def run_check(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(["check", str(path)])
    return status, out.getvalue(), err.getvalue()


def test_unmutated_scenarios_pass(tmp_path: Path) -> None:
    """The mutations start from valid scenarios (written out again, as the fuzz test writes them)."""
    (tmp_path / "traces").symlink_to(SCENARIO_DIR / "traces")
    for name, tree in SCENARIOS.items():
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tree, sort_keys=False))
        assert run_check(path)[0] == 0, name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_check_contract_holds_for_mutated_scenarios(tmp_path: Path, case: tuple[str, str]) -> None:
    name, text = case
    if not (tmp_path / "traces").exists():
        (tmp_path / "traces").symlink_to(SCENARIO_DIR / "traces")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    start = time.perf_counter()
    status, out, err = run_check(path)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_BOUND_S, f"check took {elapsed:.1f} s"
    assert "Traceback" not in err
    if status == 0:
        assert err == "" and out.startswith(f"{path}: ok (")
        return
    assert status == 2
    lines = err.splitlines()
    assert lines
    line_format = re.compile(rf"error: (?:{re.escape(str(path))}|{_FIELD}): \S.*")
    for line in lines:
        assert line_format.fullmatch(line), line
