"""Hostile scenario text: refused quickly, as one line per problem naming the field, never a traceback."""

from __future__ import annotations

import io
import math
import time
import tracemalloc
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcsim.cli import main
from dcsim.errors import Problem, UserInputError, short_repr
from dcsim.scenario import load_scenario
from dcsim.scenario.yamlio import MAX_DEPTH, MAX_VALUES, DuplicateKeyError, YamlLimitError, load_yaml

QUICKSTART = Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.yaml"

#: Ten lines whose aliases expand to 9**9 (387 million) strings.
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def check(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    """``dcsim check`` on ``text``: exit status and stderr lines."""
    path = tmp_path / "s.yaml"
    path.write_text(text)
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        status = main(["check", str(path)])
    return status, err.getvalue().splitlines()


def test_alias_bomb_is_refused_fast_in_bounded_memory(tmp_path):
    assert len(BILLION_LAUGHS.splitlines()) == 9
    check(tmp_path, "name: warm-up\n")  # imports every command module: not part of the measurement
    tracemalloc.start()
    start = time.perf_counter()
    status, lines = check(tmp_path, BILLION_LAUGHS + "name: bomb\n")
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert status == 2
    assert elapsed < 0.5
    assert peak < 20e6
    [line] = lines
    assert line.startswith(f"error: {tmp_path / 's.yaml'}: refused at line ")
    assert line.endswith(f"aliases expand to more than {MAX_VALUES:,} values; write the values out")


def test_small_alias_expansion_is_not_printed_in_full(tmp_path):
    """Aliases under the limit are fine, but an error about the value quotes a short prefix of it."""
    value = "[&x [[a, b, c, d, e, f, g, h], [a]], " + ", ".join(["*x"] * 500) + "]"
    text = QUICKSTART.read_text().replace("name: quickstart", f"name: {value}")
    status, lines = check(tmp_path, text)
    assert status == 2
    [line] = lines
    assert line.startswith("error: name: must be text (got [[[")
    assert len(line) < 120


def test_fifty_thousand_brackets_give_one_line(tmp_path):
    check(tmp_path, "name: warm-up\n")
    start = time.perf_counter()
    status, lines = check(tmp_path, "name: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert time.perf_counter() - start < 2
    assert status == 2
    [line] = lines
    assert line.endswith(f"refused at line 1, column {6 + MAX_DEPTH}: nested more than {MAX_DEPTH} levels deep")


def test_deep_mapping_and_alias_depth_are_refused():
    with pytest.raises(YamlLimitError, match="levels deep"):
        load_yaml("a: " + "{a: " * 1000 + "1" + "}" * 1000)
    # Each alias is shallow, but expanded they nest 40 * 3 levels.
    text = "a0: &a0 " + "[" * 40 + "1" + "]" * 40 + "\n"
    text += "".join(f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40 + "\n" for i in (1, 2))
    with pytest.raises(YamlLimitError, match="aliases nest values more than"):
        load_yaml(text)


def test_long_documents_are_refused_while_reading():
    start = time.perf_counter()
    with pytest.raises(YamlLimitError, match=f"more than {MAX_VALUES:,} values; long lists belong in a trace file"):
        load_yaml("a: [" + "1, " * 1_000_000 + "]")
    assert time.perf_counter() - start < 10


def test_documents_within_the_value_limit_are_read(monkeypatch):
    monkeypatch.setattr("dcsim.scenario.yamlio.MAX_VALUES", 1000)
    assert len(load_yaml("a: [" + "1, " * 997 + "]")["a"]) == 997  # with the mapping, the key and the list
    with pytest.raises(YamlLimitError, match="more than 1,000 values"):
        load_yaml("a: [" + "1, " * 998 + "]")


def test_recursive_alias_is_refused():
    with pytest.raises(YamlLimitError, match="an alias refers to the collection it is in"):
        load_yaml("a: &a [1, *a]\n")


def test_overlong_integer_is_refused(tmp_path):
    status, lines = check(tmp_path, "name: x\nseed: " + "9" * 5000 + "\n")
    assert status == 2
    assert lines == [
        f"error: {tmp_path / 's.yaml'}: refused at line 2, column 7: an integer of 5000 digits is too long to read"
    ]


def test_numbers_are_read_by_yaml_1_2_rules():
    """No octal ``010`` (8) or base-60 ``1:30`` (90) surprises; hex and octal need ``0x`` and ``0o``."""
    assert load_yaml("a: [010, 1:30, 0x10, 0o17, 1_000, 1e3, .5, -.inf, 0b1]") == {
        "a": [10, "1:30", 16, 15, 1000, 1000.0, 0.5, -math.inf, "0b1"]
    }
    with pytest.raises(YamlLimitError, match="not a number"):
        load_yaml("a: 0x_")


def test_duplicate_keys_are_errors_naming_the_key_path(tmp_path):
    text = QUICKSTART.read_text()
    text = text.replace("      count: 4\n", "      count: 4\n      count: 5\n")
    text = text.replace("seed: 42\n", "seed: 42\nseed: 43\n")
    status, lines = check(tmp_path, text)
    assert status == 2
    assert lines == [
        "error: seed: duplicate key (lines 4 and 5); give it once",
        "error: datacenter.nodes[0].count: duplicate key (lines 12 and 13); give it once",
    ]


def test_duplicate_keys_in_flow_mappings_and_merges():
    with pytest.raises(DuplicateKeyError) as info:
        load_yaml("a: [{x: 1, 'odd key': 2, 'odd key': 3}]\n")
    assert [d.path for d in info.value.duplicates] == ["a[0]['odd key']"]
    with pytest.raises(DuplicateKeyError) as info:
        load_yaml("a: {x: 1, x: 2}\nb: &m {y: 1, y: 2}\nc: [*m]\n")
    assert [d.path for d in info.value.duplicates] == ["a.x", "b.y"]  # in text order, named where written
    # A merge key's values may be overridden: that is what merges are for.
    assert load_yaml("base: &b {x: 1, y: 2}\nd: {<<: *b, x: 3}\n")["d"] == {"x": 3, "y": 2}


def test_yaml_errors_remain_yaml_errors():
    """Callers that handle bad YAML (sweeps, ``--set`` values) handle refusals the same way."""
    assert issubclass(YamlLimitError, yaml.YAMLError) and issubclass(DuplicateKeyError, yaml.YAMLError)


def test_messages_quote_values_briefly_and_on_one_line():
    assert "..." in short_repr("x" * 10_000) and len(short_repr("x" * 10_000)) < 80
    assert len(short_repr(10**300)) < 40
    assert short_repr([[[[1]]]] * 1000) == "[[[...]], [[...]], [[...]], [[...]], ...]"
    assert str(Problem("quotas.a\nb", "bad\u2028value " + "y" * 1000)).count("\n") == 0
    assert len(str(Problem("p", "y" * 10_000))) < 500


def errors_of(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(UserInputError) as info:
        load_scenario(spec)
    return [str(p) for p in info.value.problems]


FAILURES = {"accelerator_mtbf_h": 1000, "repair_s": 600, "checkpoint_s": 30}


@pytest.mark.parametrize("value", ["soon", [1], True])
def test_union_fields_say_what_they_accept(base, value):
    base["failures"] = {**FAILURES, "checkpoint_interval_s": value}
    assert errors_of(base) == [f"failures.checkpoint_interval_s: must be a number of seconds or 'auto' (got {value!r})"]


def test_union_tags_never_reach_a_message(base):
    base["workloads"].append({"kind": "training", "name": "t", "model": 5, "global_batch_size": 8})
    assert errors_of(base) == ["workloads[1].model: must be text or a mapping of fields (got 5)"]


def test_odd_keys_are_quoted_in_paths(base):
    base["scheduler"] = {"quotas": {"team\na": 1.5}}
    base["datacenter"]["nodes"][0]["labels"] = {7: "x"}
    assert errors_of(base) == [
        "datacenter.nodes[0].labels[7]: keys must be text",
        "scheduler.quotas['team\\na']: must be a whole number (got 1.5)",
    ]


def node(base: dict[str, Any]) -> dict[str, Any]:
    return base["datacenter"]["nodes"][0]


def synthetic(base: dict[str, Any]) -> dict[str, Any]:
    return base["workloads"][0]["synthetic"]


@pytest.mark.parametrize(
    ("where", "key", "value", "expected"),
    [
        (node, "count", True, "datacenter.nodes[0].count: must be a whole number (got True)"),
        (node, "count", 2.5, "datacenter.nodes[0].count: must be a whole number (got 2.5)"),
        (
            node,
            "accelerators_per_node",
            "4.5",
            "datacenter.nodes[0].accelerators_per_node: must be a whole number (got '4.5')",
        ),
        (node, "count", 1e400, "datacenter.nodes[0].count: must be a whole number (got inf)"),
        (synthetic, "count", False, "workloads[0].synthetic.count: must be a whole number (got False)"),
        (node, "usd_per_hour", True, "datacenter.nodes[0].usd_per_hour: must be a number (got True)"),
        (node, "usd_per_hour", float("inf"), "datacenter.nodes[0].usd_per_hour: must be a finite number (got inf)"),
        (node, "usd_per_hour", float("nan"), "datacenter.nodes[0].usd_per_hour: must be a finite number (got nan)"),
        (synthetic, "gpus", 2.5, "workloads[0].synthetic.gpus: must be a whole number (got 2.5)"),
        (
            synthetic,
            "gpus",
            {"choices": [1, 1.5]},
            "workloads[0].synthetic.gpus: choices must be whole numbers (got 1.5)",
        ),
    ],
)
def test_types_are_strict(base, where, key, value, expected):
    where(base)[key] = value
    assert errors_of(base) == [expected]


def test_integral_floats_are_whole_numbers(base):
    node(base)["count"] = 2.0
    synthetic(base)["count"] = "5e1"
    synthetic(base)["gpus"] = 4.0
    scenario = load_scenario(base)
    assert scenario.datacenter.nodes[0].count == 2 and isinstance(scenario.datacenter.nodes[0].count, int)
    assert scenario.workloads[0].synthetic.count == 50


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"choices": [1, 2], "weights": [{"a": 1}, 1]}, "weights[0] must be a number, got {'a': 1}"),
        ({"choices": [1, 2], "weights": 3}, "weights must be a list of numbers, got 3"),
        ({"choices": {"a": 1}}, "choices must be a list of numbers, got {'a': 1}"),
        ({"choices": [1, 2], "weights": [1e308, 1e308]}, "weights must sum to a finite number"),
        ({"dist": ["lognormal"], "mean": 3, "sigma": 1}, "dist must be one of constant, exponential, gamma"),
        ({"dist": {"a": 1}, "mean": 3}, "dist must be one of constant"),
        ({"dist": "exponential", "mean": True}, "mean must be a number, got True"),
        ({"dist": "exponential", "mean": [3]}, "mean must be a number, got [3]"),
        ({"dist": "exponential", "mean": "inf"}, "mean must be a finite number, got 'inf'"),
        ({"dist": "exponential", "mean": 3, "max": {"x": 1}}, "max must be a number, got {'x': 1}"),
        ({"dist": "exponential", "mean": 3, 5: 1}, "exponential distribution has unknown keys 5"),
    ],
)
def test_distribution_crashers_are_one_line_errors(base, value, expected):
    synthetic(base)["duration_s"] = value
    [line] = errors_of(base)
    assert line.startswith(f"workloads[0].synthetic.duration_s: {expected}")


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("scheduler", "preemption", 1, "scheduler.preemption: must be true or false (got 1)"),
        ("outputs", "plots", "yes", "outputs.plots: must be true or false (got 'yes')"),
    ],
)
def test_flags_are_true_or_false(base, section, key, value, expected):
    base.setdefault(section, {})[key] = value
    assert errors_of(base) == [expected]


def test_training_priority_is_a_whole_number(base):
    base["workloads"].append(
        {"kind": "training", "name": "t", "model": "gpt2-small", "global_batch_size": 8, "steps": 10, "priority": 1.5}
    )
    assert "workloads[1].priority: must be a whole number (got 1.5)" in errors_of(base)


@pytest.mark.parametrize("field", ["policy", "placement"])
def test_a_policy_module_that_cannot_load_is_a_one_line_error(base, field):
    base["scheduler"] = {field: "..:x"}
    [line] = errors_of(base)
    assert line.startswith(f"scheduler.{field}: cannot load '..:x': ")


def test_oversized_file_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr("dcsim.scenario.loader.MAX_FILE_BYTES", 2 * 2**20)
    status, lines = check(tmp_path, "name: x\n" + "#" * (3 * 2**20) + "\n")
    assert status == 2
    assert lines == [f"error: {tmp_path / 's.yaml'}: 3 MiB is too large for a scenario file (at most 2 MiB)"]
