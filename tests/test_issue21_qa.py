"""Issue 21 QA pass: hostile inputs found after the merge, each refused with one line naming the field
(exit 2), never a traceback or a memory blow-up. Minimal inputs, one test per case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dcsim.errors import UserInputError
from dcsim.run.world import run_scenario
from dcsim.scenario import load_scenario
from dcsim.sweep.api import read_base


def errors_of(spec) -> list[str]:
    with pytest.raises(UserInputError) as info:
        load_scenario(spec)
    return [str(p) for p in info.value.problems]


def test_a_fat_tree_k_written_as_a_float_is_sized_before_it_is_built(base):
    # YAML reads `k: 2000.0` as a float; the builder takes it as 2000, so the size check must too
    # (it used to build the 8e9-element graph and exhaust memory).
    base["datacenter"]["network"] = {"topology": "fat_tree", "params": {"k": 2000.0}}
    [line] = errors_of(base)
    assert line.startswith("datacenter.network.params.k: fat_tree k 2000.0: 2e+09 hosts")
    assert "dcsim handles up to ~" in line


def test_leaf_spine_counts_written_as_floats_are_sized_before_they_are_built(base):
    base["datacenter"]["network"] = {"topology": "leaf_spine", "params": {"leaves": 1e9, "spines": 1e9}}
    [line] = errors_of(base)
    assert line.startswith("datacenter.network.params: leaf_spine leaves 1000000000.0, spines 1000000000.0: ")
    assert "graph vertices and links; dcsim handles up to ~" in line


def jobs_from_trace(base, path) -> dict:
    base["workloads"][0].pop("synthetic")
    base["workloads"][0]["trace"] = str(path)
    return base


def test_a_binary_job_trace_is_named_not_a_traceback(base, tmp_path):
    trace = tmp_path / "jobs.csv"
    trace.write_bytes(bytes(range(256)) * 4)
    assert errors_of(jobs_from_trace(base, trace)) == ["workloads[0].trace (jobs.csv): not a UTF-8 text file"]


def test_a_job_trace_cell_past_the_csv_field_limit_is_named(base, tmp_path):
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,submit_s,gpus,duration_s\n" + "j" * 200_000 + ",0,1,10\n", encoding="utf-8")
    [line] = errors_of(jobs_from_trace(base, trace))
    assert line.startswith("workloads[0].trace (jobs.csv): not a readable CSV file (field larger than")


def requests_from_trace(base, path) -> dict:
    traffic = {"arrival": "trace", "trace": str(path)}
    base["workloads"] = [{"kind": "inference", "name": "chat", "model": "llama2-7b", "replicas": 1, "traffic": traffic}]
    return base


def test_a_binary_request_trace_is_named_not_a_traceback(base, tmp_path):
    trace = tmp_path / "requests.csv"
    trace.write_bytes(bytes(range(256)) * 4)
    assert errors_of(requests_from_trace(base, trace)) == [
        f"workloads[0].traffic.trace ({trace}): not a UTF-8 text file"
    ]


def test_a_request_trace_cell_past_the_csv_field_limit_is_named(base, tmp_path):
    trace = tmp_path / "requests.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + "1" * 200_000 + ",10,10\n", encoding="utf-8")
    [line] = errors_of(requests_from_trace(base, trace))
    assert line.startswith(f"workloads[0].traffic.trace ({trace}): not a readable CSV file (field larger than")


def test_a_binary_topology_file_is_named_with_its_path(base, tmp_path):
    edges = tmp_path / "net.edges"
    edges.write_bytes(bytes(range(256)) * 4)
    base["datacenter"]["network"] = {"topology": "file", "params": {"path": str(edges)}}
    assert errors_of(base) == [f"datacenter.network: file: {edges} is not a UTF-8 text file"]


def test_a_missing_topology_file_keeps_both_quotes_of_its_path(base, tmp_path):
    missing = tmp_path / "none.edges"
    base["datacenter"]["network"] = {"topology": "file", "params": {"path": str(missing)}}
    assert errors_of(base) == [f"datacenter.network: file: no such file '{missing}'"]


def inline_served(base, **model) -> dict:
    tokens = {"dist": "constant", "value": 10}
    traffic = {
        "arrival": "poisson",
        "rate_per_s": 1,
        "duration_s": 10,
        "prompt_tokens": tokens,
        "output_tokens": tokens,
    }
    base["workloads"] = [{"kind": "inference", "name": "chat", "model": model, "replicas": 1, "traffic": traffic}]
    return base


def test_an_inline_serving_model_missing_fields_names_them_not_a_constructor(base):
    [line] = errors_of(inline_served(base, layers=2, hidden=64))
    assert line == (
        "workloads[0].model: heads: required for an inline architecture (missing: heads, ffn_hidden, vocab, seq_len)"
    )


def test_an_inline_serving_model_with_an_unknown_field_names_it(base):
    model = {"layers": 2, "hidden": 64, "heads": 2, "ffn_hidden": 256, "vocab": 100, "seq_len": 128, "bogus": 1}
    [line] = errors_of(inline_served(base, **model))
    assert line.startswith("workloads[0].model: bogus: unknown field of an inline architecture (known: activation, ")
    assert "seq_len" in line and "max_seq_len" not in line and "__init__" not in line


def vit_training(base, **fields) -> dict:
    base["datacenter"]["nodes"][0]["count"] = 2
    parallelism = {"dp": 8, "microbatch_size": 32}
    workload = {"kind": "training", "name": "vit", "model": "vit-l16", "parallelism": parallelism}
    base["workloads"] = [workload | {"global_batch_size": 256, "steps": 10} | fields]
    return base


def test_a_training_batch_of_billions_of_microbatches_is_sized_before_the_pipeline_runs(base):
    # the detailed fidelity simulates every microbatch of a step: 1e12 sequences of 32 on 8 replicas used to
    # build ~8e9 SimPy events in run and exhaust memory after check said ok.
    [line] = errors_of(vit_training(base, global_batch_size=1_000_000_000_000))
    assert line.startswith(
        "workloads[0].global_batch_size: 3.91e+09 microbatches x 1 pipeline chunks x (forward, backward) is "
        "7.81e+09 pipeline passes per step; dcsim handles up to ~"
    )


def with_failures(base, **fields) -> dict:
    base["failures"] = {"accelerator_mtbf_h": 500, "repair_s": 3600, **fields}
    return base


@pytest.mark.parametrize("field", ["restart_s", "checkpoint_s"])
def test_a_failure_set_up_time_past_the_horizon_is_refused(base, field):
    # restart_s: 1e308 passed check, then every failed job waited ~forever and the run spun without end
    line = errors_of(with_failures(base, **{field: 1e308}))[0]  # (the failure rule may add its own line)
    assert line.startswith(f"failures.{field}: it reaches 1e+308 s of simulated time; dcsim handles up to 1e+10 s")


@pytest.mark.parametrize("field", ["restart_s", "checkpoint_s"])
def test_a_preemption_set_up_time_past_the_horizon_is_refused(base, field):
    base["scheduler"] = {field: 1e308}
    [line] = errors_of(base)
    assert line.startswith(f"scheduler.{field}: it reaches 1e+308 s of simulated time")


def test_a_checkpoint_size_that_takes_forever_to_write_is_refused_without_printing_inf(base):
    base["datacenter"]["storage"] = {"write_gbps": 100}
    lines = errors_of(with_failures(base, checkpoint_interval_s=3600, checkpoint_gb=1e308))
    assert lines[0].startswith("failures.checkpoint_gb: one checkpoint takes more than 1e+308 s of simulated time")
    assert not any(" inf " in line for line in lines)


def test_a_training_run_longer_than_the_horizon_is_refused_when_its_step_is_priced(base):
    # check cannot price a step; run used to simulate 1e12 steps (~1e11 s) until the failure cap, minutes later
    with pytest.raises(UserInputError) as info:
        run_scenario(vit_training(base, steps=1_000_000_000_000))
    [line] = [str(p) for p in info.value.problems]
    assert line.startswith("workloads[0].steps: 1e+12 steps of ")
    assert line.endswith(" s of simulated time; dcsim handles up to 1e+10 s (~317 years)")


@pytest.mark.parametrize(
    ("text", "got"),
    [("", "nothing: the file is empty"), ("# a comment only\n", "nothing: the file is empty"), ("42\n", "a number")],
)
def test_a_scenario_file_that_is_not_a_mapping_says_what_it_holds_without_type_names(tmp_path, text, got):
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    assert errors_of(str(path)) == [f"a scenario must be a mapping of sections (got {got})"]


def test_a_folder_given_as_the_scenario_is_named_a_folder(tmp_path):
    assert errors_of(str(tmp_path)) == [f"{tmp_path}: is a folder, not a scenario file"]


@pytest.fixture
def unreadable(tmp_path, monkeypatch):
    """A YAML file whose reading is denied (``Path.read_text`` raises PermissionError)."""
    path = tmp_path / "s.yaml"
    path.write_text("name: x\n", encoding="utf-8")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", denied)
    return path


def test_an_unreadable_scenario_file_is_one_line_not_a_traceback(unreadable):
    path = unreadable
    assert errors_of(str(path)) == [f"{path}: cannot read the scenario file: Permission denied"]


def test_a_pareto_duration_whose_draws_overflow_is_refused(base):
    # alpha 1e-300 has no mean (upper() reads 0), but its median 2**(1/alpha) overflows: every draw was inf
    # and the run exited 0 with a summary of nulls
    base["workloads"][0]["synthetic"]["duration_s"] = {"dist": "pareto", "alpha": 1e-300, "scale": 1}
    [line] = errors_of(base)
    assert line.startswith("workloads[0].synthetic.duration_s: it reaches more than 1e+308 s of simulated time")


def test_a_heavy_pareto_duration_with_a_modest_median_still_runs(base):
    base["workloads"][0]["synthetic"]["duration_s"] = {"dist": "pareto", "alpha": 0.5, "scale": 60}
    assert load_scenario(base).workloads[0].synthetic is not None


def test_a_binary_sweep_base_is_named_not_a_codec_message(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError) as info:
        read_base(path)
    assert str(info.value) == f"base: {path} is not a text file (UTF-8 expected)"


def test_an_unreadable_sweep_base_is_one_line_not_a_traceback(unreadable):
    path = unreadable
    with pytest.raises(ValueError) as info:
        read_base(path)
    assert str(info.value) == f"base: cannot read {path}: Permission denied"


def test_run_trace_into_a_folder_is_refused_before_the_run_naming_trace(base, tmp_path, capsys):
    # it used to run, write the results, then fail on the trace and blame outputs.dir
    from dcsim.cli import main

    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(base), encoding="utf-8")
    out = tmp_path / "results"
    assert main(["run", "-q", "--no-plots", "--out", str(out), "--trace", str(tmp_path), str(scenario)]) == 2
    assert capsys.readouterr().err == f"error: --trace: {tmp_path} is a folder; give the trace's file name\n"
    assert not out.exists()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("datacenter", "pue"), "datacenter.pue"),
        (("datacenter", "electricity_usd_per_kwh"), "datacenter.electricity_usd_per_kwh"),
        (("datacenter", "carbon_g_per_kwh"), "datacenter.carbon_g_per_kwh"),
        (("datacenter", "nodes", 0, "usd_per_hour"), "datacenter.nodes[0].usd_per_hour"),
        (("datacenter", "nodes", 0, "host_power_w"), "datacenter.nodes[0].host_power_w"),
    ],
)
def test_absurd_facility_and_price_figures_are_refused(tmp_path, capsys, path, field):
    """A price or facility figure of 1e308 overflowed the cost and energy sums to infinity (a summary of nulls,
    exit 0): it is refused, naming the field and its bound."""
    from dcsim.cli import main

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml").read_text())
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = 1e308
    scenario = tmp_path / "absurd.yaml"
    scenario.write_text(yaml.safe_dump(raw))
    assert main(["check", str(scenario)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: must be <= ")


def test_an_empty_request_trace_is_refused(tmp_path, capsys):
    """A request trace with a header and no rows ran and reported '0 of 0 requests' (exit 0): like an empty
    job trace, it is refused, naming the file."""
    from dcsim.cli import main

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "scenarios" / "llama2_7b_chat_a100.yaml").read_text())
    (tmp_path / "empty.csv").write_text("arrival_s,prompt_tokens,output_tokens\n")
    raw["workloads"][0]["traffic"] = {"arrival": "trace", "trace": "empty.csv"}
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(raw))
    assert main(["check", str(scenario)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "empty.csv" in lines[0] and "no requests" in lines[0]
