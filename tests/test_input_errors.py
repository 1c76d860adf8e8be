"""Bad input: one line per problem naming the field path, exit status 2, never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dcsim.cli import main
from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario


def errors_of(spec) -> list[str]:
    with pytest.raises(UserInputError) as info:
        load_scenario(spec)
    return [str(p) for p in info.value.problems]


def test_wrong_type(base):
    base["datacenter"]["nodes"][0]["count"] = "many"
    assert errors_of(base) == ["datacenter.nodes[0].count: must be a whole number (got 'many')"]


def test_unknown_field_with_suggestion(base):
    base["seeed"] = 1
    assert errors_of(base) == ["seeed: unknown field; did you mean 'seed'?"]


def test_unknown_catalog_id(base):
    base["datacenter"]["nodes"][0]["accelerator"] = "a100"
    [line] = errors_of(base)
    assert line.startswith("datacenter.nodes[0].accelerator: unknown accelerator 'a100' (see `dcsim catalog`")


def test_negative_count(base):
    base["datacenter"]["nodes"][0]["count"] = -2
    assert errors_of(base) == ["datacenter.nodes[0].count: must be >= 1 (got -2)"]


def test_every_problem_reported_at_once(base):
    base["datacenter"]["pue"] = 0.5
    base["workloads"][0]["synthetic"]["count"] = 0
    base["scheduler"] = {"policy": "fifoo"}
    lines = errors_of(base)
    assert "datacenter.pue: must be >= 1.0 (got 0.5)" in lines
    assert "workloads[0].synthetic.count: must be >= 1 (got 0)" in lines


def test_unknown_policy(base):
    base["scheduler"] = {"policy": "fifoo"}
    assert errors_of(base) == [
        "scheduler.policy: unknown scheduler policy 'fifoo' "
        "(available: fifo, sjf, priority, las, backfill, drf, or 'module:Class')"
    ]


def test_job_larger_than_cluster(base):
    base["workloads"][0]["synthetic"]["gpus"] = 16
    assert errors_of(base) == [
        "workloads[0].synthetic.gpus: jobs of 16 accelerators cannot fit: the largest pool has 8"
    ]


def test_unknown_kind_and_missing_training_fields_are_named(base):
    base["workloads"].append({"kind": "training", "name": "gpt"})
    base["workloads"].append({"kind": "nonsense", "name": "x"})
    assert errors_of(base) == [
        "workloads[1].model: required field is missing",
        "workloads[1].global_batch_size: required field is missing",
        "workloads[2].kind: must be one of collective, inference, jobs, training (got 'nonsense')",
    ]


def test_bad_distribution(base):
    base["workloads"][0]["synthetic"]["duration_s"] = {"dist": "weibull", "mean": 3}
    [line] = errors_of(base)
    assert line.startswith("workloads[0].synthetic.duration_s: dist must be one of constant, exponential")


def test_missing_power_figure(base):
    base["datacenter"]["nodes"][0]["accelerator"] = "tpu-v5e"
    assert errors_of(base) == [
        "datacenter.nodes[0].accelerator_max_w: the catalog has no published max power for tpu-v5e; "
        "give accelerator_max_w (W)",
    ]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [x\n", "not valid YAML at line 2, column 1"),
        ("- just\n- a list\n", "a scenario must be a mapping of sections (got list)"),
    ],
)
def test_cli_unparsable(tmp_path, capsys, text, expected):
    assert main(["check", write(tmp_path, text)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_cli_missing_file(capsys):
    assert main(["run", "no/such/file.yaml"]) == 2
    assert capsys.readouterr().err == "error: no/such/file.yaml: scenario file not found\n"


def test_cli_one_line_per_problem(tmp_path, capsys, base):
    bad = copy.deepcopy(base)
    bad["datacenter"]["nodes"][0]["count"] = -1
    bad["datacenter"]["nodes"][0]["accelerator"] = "a999"
    assert main(["check", write(tmp_path, yaml.safe_dump(bad))]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0] == "error: datacenter.nodes[0].count: must be >= 1 (got -1)"
    assert lines[1].startswith("error: datacenter.nodes[0].accelerator: unknown accelerator 'a999'")


def test_cli_bad_trace_line(tmp_path, capsys, base):
    (tmp_path / "jobs.csv").write_text("job_id,submit_s,gpus,duration_s\na,0,1,10\nb,5,two,10\n")
    spec = copy.deepcopy(base)
    spec["workloads"][0] = {"kind": "jobs", "name": "w", "trace": "jobs.csv"}
    assert main(["check", write(tmp_path, yaml.safe_dump(spec))]) == 2
    assert capsys.readouterr().err == "error: workloads[0].trace (jobs.csv line 3.gpus): must be a number (got 'two')\n"


def test_cli_trace_missing_columns(tmp_path, capsys, base):
    (tmp_path / "jobs.csv").write_text("id,submit,gpus\n1,0,1\n")
    spec = copy.deepcopy(base)
    spec["workloads"][0] = {"kind": "jobs", "name": "w", "trace": "jobs.csv"}
    assert main(["check", write(tmp_path, yaml.safe_dump(spec))]) == 2
    assert "trace header lacks columns job_id, submit_s, duration_s" in capsys.readouterr().err


def test_cli_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_exponent_floats_without_a_dot_read_as_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads ``1e9`` as a string; a scenario file reads it as the number (YAML 1.2)."""
    from dcsim.scenario.yamlio import load_yaml

    assert load_yaml("a: 1e9\nb: 3.3e9\nc: -2E3\nd: 1.0e+9\ne: '1e9'\nf: 12") == {
        "a": 1e9,
        "b": 3.3e9,
        "c": -2e3,
        "d": 1e9,
        "e": "1e9",
        "f": 12,
    }
    quickstart = Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.yaml"
    text = quickstart.read_text().replace("rate_per_h: 7 ", "rate_per_h: 7e0").replace("mean: 3600", "mean: 3.6e3")
    path = tmp_path / "quickstart.yaml"
    path.write_text(text)
    synthetic = load_scenario(path).workloads[0].synthetic
    assert synthetic.rate_per_h == 7.0 and synthetic.duration_s.mean == 3600.0
