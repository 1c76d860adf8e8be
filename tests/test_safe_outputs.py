"""Safe outputs: whole result folders, --overwrite, safe names, sweep workers that die with the sweep, and
cache keys that see edited input files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import dcsim
import dcsim.run.plots
from dcsim.cli import main
from dcsim.run.output_folder import OutputExistsError
from dcsim.scenario.filenames import MAX_NAME_BYTES, safe_file_name
from dcsim.sweep import ResultCache, scenario_key
from dcsim.sweep.inputs import input_digests

REPO = Path(__file__).resolve().parent.parent
RATE = "workloads[0].synthetic.rate_per_h"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # subprocesses import this checkout's dcsim


def write_scenario(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    """Hidden staging or set-aside folders left beside the results."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --- names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("quickstart", "quickstart"),
        ("llama2-7b chat (v2)", "llama2-7b chat (v2)"),
        ("../../../tmp/x", "_.._.._tmp_x"),
        ("/etc/passwd", "_etc_passwd"),
        ("C:\\temp\\x", "C__temp_x"),
        ("a\0b\nc", "a_b_c"),
        ("..", "scenario"),
        (".hidden", "hidden"),
        ("NUL", "_NUL"),
    ],
)
def test_names_become_one_safe_file_name(name, expected):
    assert safe_file_name(name) == expected


def test_long_names_are_cut_with_a_hash_that_keeps_them_apart():
    first, second = safe_file_name("é" * 300 + "a"), safe_file_name("é" * 300 + "b")
    assert first != second
    for cut in (first, second):
        assert len(cut.encode("utf-8")) <= MAX_NAME_BYTES and cut.startswith("ééé")


def test_a_path_like_name_writes_inside_results(tmp_path, monkeypatch, base, capsys):
    monkeypatch.chdir(tmp_path)
    base["name"] = "../../../escaped"
    scenario = write_scenario(tmp_path / "s.yaml", base)
    assert main(["run", str(scenario)]) == 0
    assert "results written to results/_.._.._escaped/" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["_.._.._escaped"]
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert dcsim.load_scenario({**base, "name": "/abs/x"}).output_dir == "results/_abs_x"
    assert dcsim.load_scenario({**base, "outputs": {"dir": str(tmp_path / "mine")}}).output_dir == str(
        tmp_path / "mine"
    )  # a folder the user chose is used as written


# --- existing folders, --overwrite ---------------------------------------------------------------------------


def test_an_existing_folder_is_refused_before_the_run(tmp_path, base, capsys):
    out = tmp_path / "out"
    scenario = write_scenario(tmp_path / "s.yaml", base)
    assert main(["run", str(scenario), "--out", str(out)]) == 0
    capsys.readouterr()
    before = folder_bytes(out)
    assert main(["run", str(scenario), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before running: no summary printed
    assert captured.err.splitlines() == [
        f"error: outputs.dir: {out} already exists "
        "(rerun with --overwrite to replace it, or choose another folder with --out)"
    ]
    assert folder_bytes(out) == before
    (tmp_path / "empty").mkdir()
    assert main(["run", str(scenario), "--out", str(tmp_path / "empty")]) == 0  # an empty folder holds nothing


def test_overwrite_replaces_the_folder_whole_and_report_shows_only_the_new_run(tmp_path, base, capsys):
    out = tmp_path / "out"
    base["outputs"] = {"dir": str(out), "plots": False}
    first = write_scenario(tmp_path / "first.yaml", base)
    assert main(["run", str(first)]) == 0
    (out / "requests.csv").write_text("stale,table\n1,2\n")  # files the new run does not write
    (out / "plots").mkdir()
    (out / "plots" / "old.png").write_bytes(b"\x89PNG\r\n\x1a\nold")
    second = write_scenario(tmp_path / "second.yaml", {**base, "seed": 11})
    assert main(["run", str(second), "--overwrite"]) == 0
    assert sorted(folder_bytes(out)) == ["accelerators.csv", "jobs.csv", "summary.json", "timeline.csv"]
    assert json.loads((out / "summary.json").read_text())["seed"] == 11
    assert leftovers(tmp_path) == []
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "seed 11" in page and "table jobs.csv" in page
    assert "requests.csv" not in page and "old.png" not in page


def test_overwrite_never_replaces_a_folder_that_is_not_a_runs_results(tmp_path, base, capsys, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    scenario = write_scenario(tmp_path / "s.yaml", base)
    assert main(["run", str(scenario), "--out", str(project), "--overwrite"]) == 2
    assert "holds files but no summary.json" in capsys.readouterr().err
    assert (project / "notes.txt").read_text() == "mine"
    (project / "summary.json").write_text("{}")  # even one that looks like results, when it is the working folder
    monkeypatch.chdir(project)
    assert main(["run", str(scenario), "--out", ".", "--overwrite"]) == 2
    assert "is the working folder or holds it" in capsys.readouterr().err
    assert (project / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    assert main(["run", str(scenario), "--out", str(tmp_path / "file"), "--overwrite"]) == 2
    assert "exists and is a file, not a folder" in capsys.readouterr().err


def test_an_unusable_output_dir_is_one_line_naming_it(tmp_path, base, capsys):
    for folder, message in [
        (str(tmp_path / "a\0b"), "error: outputs.dir: a folder name cannot contain a NUL character"),
        (str(tmp_path / ("x" * 300)), "error: outputs.dir: cannot write results to"),
    ]:
        base["outputs"] = {"dir": folder, "plots": False}
        assert main(["run", str(write_scenario(tmp_path / "s.yaml", base))]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.splitlines()) == 1 and "Traceback" not in err


# --- staging: failures and concurrent writers ----------------------------------------------------------------


def test_a_failed_write_leaves_the_target_as_it_was(tmp_path, base, monkeypatch):
    result = dcsim.run_scenario(base)
    target = tmp_path / "out"

    def broken(result, folder):
        raise OSError("disk full")

    monkeypatch.setattr(dcsim.run.plots, "write_plots", broken)  # fails after the summary and tables are written
    with pytest.raises(OSError, match="disk full"):
        result.write(target, plots=True)
    assert not target.exists() and leftovers(tmp_path) == []
    monkeypatch.undo()
    result.write(target, plots=False)
    before = folder_bytes(target)
    monkeypatch.setattr(dcsim.run.plots, "write_plots", broken)
    with pytest.raises(OSError, match="disk full"):
        dcsim.run_scenario({**base, "seed": 9}).write(target, plots=True, overwrite=True)
    assert folder_bytes(target) == before and leftovers(tmp_path) == []


def test_a_writer_that_finishes_during_another_leaves_one_whole_set(tmp_path, base, monkeypatch):
    """B writes and publishes while A is half-way (between its tables and its plots): the folder ends as A's
    complete set under --overwrite, as B's without it — never A's summary next to B's tables."""
    a, b = dcsim.run_scenario(base), dcsim.run_scenario({**base, "seed": 8})
    a_ref, b_ref = tmp_path / "a", tmp_path / "b"
    a.write(a_ref, plots=False)
    b.write(b_ref, plots=False)
    target = tmp_path / "out"

    def b_meanwhile(result, folder):
        b.write(target, plots=False, overwrite=True)
        return []

    monkeypatch.setattr(dcsim.run.plots, "write_plots", b_meanwhile)
    a.write(target, plots=True, overwrite=True)
    assert folder_bytes(target) == folder_bytes(a_ref)
    target = tmp_path / "fresh"
    with pytest.raises(OutputExistsError):
        a.write(target, plots=True)
    assert folder_bytes(target) == folder_bytes(b_ref)
    assert leftovers(tmp_path) == []


def test_two_run_processes_into_one_folder_leave_one_complete_run(tmp_path, base):
    """Two `dcsim run --overwrite` processes started together: the folder is byte for byte one run's output.
    (How far their writes overlap is up to the OS; the test above forces the overlap.)"""
    base["workloads"][0]["synthetic"]["count"] = 400  # tables of some size, so the two writes can overlap
    out = tmp_path / "out"
    references, commands = [], []
    for seed in (3, 4):
        spec = {**base, "seed": seed}
        reference = tmp_path / f"ref{seed}"
        dcsim.run_scenario(spec).write(reference, plots=False)
        references.append(folder_bytes(reference))
        scenario = write_scenario(tmp_path / f"s{seed}.yaml", spec)
        commands.append([sys.executable, "-m", "dcsim", "run", str(scenario), "--out", str(out), "--overwrite"])
    runs = [subprocess.Popen(c, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands]
    for run in runs:
        assert run.wait(timeout=120) == 0, run.stderr.read() if run.stderr else ""
    assert folder_bytes(out) in references  # one run's summary with that same run's tables, nothing else
    assert leftovers(tmp_path) == []


# --- sweeps: workers die with the sweep; the cache sees edited inputs ----------------------------------------


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_a_sigkilled_sweep_leaves_no_worker_and_resumes_from_its_cache(tmp_path, base, capsys):
    base["workloads"][0]["synthetic"]["count"] = 12
    scenario = write_scenario(tmp_path / "base.yaml", base)
    cache, out = tmp_path / "cache", tmp_path / "table.csv"
    args = ["sweep", str(scenario), "--set", f"{RATE}=2,4", "--seeds", "3", "--cache-dir", str(cache)]
    args += ["--no-progress", "--out", str(out)]
    # The sweep's points with the third seed hang in their workers, so the kill lands while workers are busy.
    script = textwrap.dedent(
        f"""
        import multiprocessing, sys, time
        import dcsim.sweep.evaluate as evaluate
        from dcsim.cli import main
        real = evaluate.run_scenario
        def run(scenario):
            if scenario.seed == {base["seed"] + 2}:
                time.sleep(600)
            return real(scenario)
        evaluate.run_scenario = run
        multiprocessing.set_start_method("fork", force=True)  # the workers inherit the patch
        sys.exit(main({[*args, "--workers", "2"]!r}))
        """
    )
    log = (tmp_path / "sweep.log").open("w")
    sweep = subprocess.Popen([sys.executable, "-c", script], env=ENV, stdout=log, stderr=log)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(ResultCache(cache)) < 4 or len(workers) < 2):
            assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()
            workers = _children(sweep.pid)
            time.sleep(0.05)
        assert len(ResultCache(cache)) == 4 and len(workers) >= 2, (tmp_path / "sweep.log").read_text()
        sweep.send_signal(signal.SIGKILL)
        assert sweep.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in workers if _running(pid)] == []
    finally:
        log.close()
        for pid in workers:  # only if the test failed: leave nothing behind
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    assert not out.exists()
    assert main([*args, "--workers", "1"]) == 0
    assert "6 points (2 variants x 3 seeds): 2 computed, 4 from the cache, 0 failed" in capsys.readouterr().out


def test_a_trace_edited_in_place_is_not_served_from_the_cache(tmp_path, base):
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,submit_s,gpus,duration_s\nj1,0,4,3600\nj2,60,8,1800\n")
    base["workloads"][0] = {"kind": "jobs", "name": "w", "trace": "jobs.csv"}
    scenario = write_scenario(tmp_path / "s.yaml", base)
    cache = tmp_path / "cache"
    sweep = {"grid": {"scheduler.policy": ["fifo"]}, "workers": 1, "cache_dir": cache}
    first = dcsim.sweep(scenario, **sweep)
    assert first.attrs["computed"] == 1 and dcsim.sweep(scenario, **sweep).attrs["cached"] == 1
    trace.write_text("job_id,submit_s,gpus,duration_s\nj1,0,4,7200\nj2,60,8,1800\n")  # same name, new content
    edited = dcsim.sweep(scenario, **sweep)
    assert edited.attrs["computed"] == 1 and edited.attrs["cached"] == 0
    jct = "workloads.w.jct_s.mean"
    assert edited.loc[0, jct] != first.loc[0, jct]


def test_input_digests_cover_named_files_and_calibration_profiles(tmp_path, monkeypatch, base):
    topology = tmp_path / "topo.txt"
    topology.write_text("a b\n")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "my-gpu.json").write_text("{}")
    monkeypatch.setenv("DCSIM_PROFILE_DIRS", str(profiles))
    dumped = {"datacenter": {"network": {"topology": "file", "params": {"path": "topo.txt"}}}, "name": "topo"}
    digests = input_digests(dumped, str(tmp_path))
    assert set(digests) >= {"topo.txt", "profile:my-gpu.json"} and "topo" not in digests
    topology.write_text("a c\n")
    assert input_digests(dumped, str(tmp_path))["topo.txt"] != digests["topo.txt"]
    key = scenario_key(dcsim.load_scenario(base))
    (profiles / "my-gpu.json").write_text('{"recalibrated": true}')
    assert scenario_key(dcsim.load_scenario(base)) != key
