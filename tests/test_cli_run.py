"""`dcsim run` and `dcsim check` end to end: summary text, --json, tables, plots, Chrome trace."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from dcsim.cli import main


def write(tmp_path, spec) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_run_writes_summary_tables_plots_and_trace(tmp_path, capsys, base):
    base["outputs"] = {"dir": str(tmp_path / "res"), "plots": True}
    trace = tmp_path / "trace.json"
    assert main(["run", write(tmp_path, base), "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "workload w [jobs]" in out and "jobs: 50 completed of 50 submitted" in out
    res = tmp_path / "res"
    summary = json.loads((res / "summary.json").read_text())
    assert summary["workloads"]["w"]["jobs_completed"] == 50
    jobs = pd.read_csv(res / "jobs.csv")
    assert len(jobs) == 50 and set(jobs["status"]) == {"completed"}
    accelerators = pd.read_csv(res / "accelerators.csv")
    assert len(accelerators) == 8
    assert accelerators["busy_s"].sum() == pytest.approx((jobs["duration_s"] * jobs["gpus"]).sum())
    for plot in ("utilization.png", "queue_length.png", "jct_cdf.png"):
        assert (res / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = json.loads(trace.read_text())["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == 50 and {e["name"] for e in spans} == set(jobs["job_id"])
    assert any(e["ph"] == "C" for e in events)


def test_run_json_matches_summary_file(tmp_path, capsys, base):
    out_dir = tmp_path / "o"
    assert main(["run", write(tmp_path, base), "--json", "--out", str(out_dir), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == json.loads((out_dir / "summary.json").read_text())
    assert not (out_dir / "plots").exists()


def test_check_does_not_run(tmp_path, capsys, base):
    base["outputs"] = {"dir": str(tmp_path / "never")}
    assert main(["check", write(tmp_path, base)]) == 0
    assert "ok (8 accelerators; workloads: w [jobs])" in capsys.readouterr().out
    assert not (tmp_path / "never").exists()


def test_unwritable_output_dir_is_a_clean_error(tmp_path, capsys, base):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base["outputs"] = {"dir": str(blocker / "sub")}
    assert main(["run", write(tmp_path, base), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: outputs.dir: cannot write results to") and "Traceback" not in err
