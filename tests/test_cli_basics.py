"""Command-line basics: scenario file paths, --set/--seed, --version, check --json, progress, Ctrl-C."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from dcsim import progress
from dcsim._version import __version__
from dcsim.cli import build_parser, main
from dcsim.errors import UserInputError
from dcsim.progress import showing_progress
from dcsim.run import run_scenario
from dcsim.run.compare import compare_policies
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

ROOT = Path(__file__).resolve().parents[1]

# Two one-accelerator servers behind one switch, as a custom topology file (an edge list).
TOPOLOGY_SCENARIO: dict[str, Any] = {
    "name": "topo",
    "seed": 0,
    "datacenter": {
        "nodes": [
            {
                "name": "n",
                "count": 2,
                "accelerator": "a100-sxm-80gb",
                "accelerators_per_node": 1,
                "nics": {"count": 1, "gbps": 100},
            }
        ],
        "network": {"topology": "file", "params": {"path": "links.txt"}, "link_gbps": 100},
    },
    "workloads": [{"kind": "collective", "name": "ar", "op": "all_reduce", "bytes": 1e6, "ranks": 2}],
}


def topology_scenario(folder: Path, path: str = "links.txt") -> Path:
    """A scenario file in ``folder`` whose topology file is ``path``; the links file is written beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "links.txt").write_text("h0 s0\nh1 s0\n")
    spec = copy.deepcopy(TOPOLOGY_SCENARIO)
    spec["datacenter"]["network"]["params"]["path"] = path
    scenario = folder / "s.yaml"
    scenario.write_text(yaml.safe_dump(spec))
    return scenario


def test_topology_file_resolves_against_the_scenario_folder(tmp_path, monkeypatch):
    scenario_file = topology_scenario(tmp_path / "scenarios")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scenario = load_scenario(Path("..") / "scenarios" / "s.yaml")
    fabric = build_fabric(scenario.datacenter, scenario.seed)
    assert "s0" in fabric.graph.nodes and len(fabric.servers) == 2  # the file's switch, the scenario's servers
    assert Path(scenario.datacenter.network.params["path"]).resolve() == (tmp_path / "scenarios" / "links.txt")
    assert scenario_file.exists()


def test_absolute_topology_path_is_kept(tmp_path, monkeypatch):
    links = tmp_path / "shared" / "links.txt"
    links.parent.mkdir()
    links.write_text("a b\nb c\n")
    topology_scenario(tmp_path / "scenarios", path=str(links))
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario("scenarios/s.yaml")
    assert scenario.datacenter.network.params["path"] == str(links)


def test_topology_path_relative_to_the_working_directory_still_works(tmp_path, monkeypatch):
    """Older scenarios named topology files from the working directory; a file found only there is used."""
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "mine.txt").write_text("h0 s0\nh1 s0\n")
    topology_scenario(tmp_path / "scenarios", path="topologies/mine.txt")
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario("scenarios/s.yaml")
    assert scenario.datacenter.network.params["path"] == "topologies/mine.txt"


def test_missing_topology_file_is_named_beside_the_scenario(tmp_path, monkeypatch):
    topology_scenario(tmp_path / "scenarios", path="missing.txt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserInputError) as caught:
        load_scenario("scenarios/s.yaml")
    [problem] = caught.value.problems
    assert problem.path == "datacenter.network"
    assert str(Path("scenarios") / "missing.txt") in problem.message


def test_trace_resolves_against_the_scenario_folder(tmp_path, monkeypatch, base):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "jobs.csv").write_text("job_id,submit_s,gpus,duration_s\nj0,0,1,60\nj1,10,2,30\n")
    del base["workloads"][0]["synthetic"]
    base["workloads"][0]["trace"] = "jobs.csv"
    (folder / "s.yaml").write_text(yaml.safe_dump(base))
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario("scenarios/s.yaml")
    assert [job.job_id for job in scenario.workloads[0].read_trace(scenario.base_dir)] == ["j0", "j1"]


def write(folder: Path, spec: dict[str, Any]) -> str:
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def exit_status(argv: list[str]) -> int:
    """``main``'s exit status, also where argparse exits (bad option values)."""
    try:
        return main(argv)
    except SystemExit as exited:
        return int(exited.code or 0)


def run_json(args: list[str], capsys) -> dict[str, Any]:
    assert main(["run", *args, "--json", "--no-plots"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_set_and_seed_change_the_run(tmp_path, capsys, base):
    scenario = write(tmp_path, base)
    out = ["--out", str(tmp_path / "res"), "--overwrite"]  # every run replaces the last one's results
    plain = run_json([scenario, *out], capsys)
    changed = run_json(
        [scenario, *out, "--set", "workloads[0].synthetic.count=7", "--set", "datacenter.nodes[0].count=3"], capsys
    )
    assert plain["workloads"]["w"]["jobs_submitted"] == 50
    assert changed["workloads"]["w"]["jobs_submitted"] == 7
    assert changed["datacenter"]["accelerators"] == 12
    seeded = run_json([scenario, *out, "--seed", "11"], capsys)
    assert seeded["seed"] == 11 and seeded != plain
    assert run_json([scenario, *out, "--set", "seed=11"], capsys) == seeded
    # values are read as YAML: a list, and the file is left as it was
    listed = run_json([scenario, *out, "--set", "workloads[0].synthetic.gpus.choices=[8]"], capsys)
    assert listed["workloads"]["w"]["accelerator_hours"] > plain["workloads"]["w"]["accelerator_hours"]
    assert yaml.safe_load(Path(scenario).read_text()) == base


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--set", "workloads[0].synthetic.count=-3"], "error: --set workloads[0].synthetic.count: must be >= 1"),
        (["--set", "workloads[0].synthetic.bogus=1"], "error: --set workloads[0].synthetic.bogus: unknown field"),
        (["--set", "datacenter.nodes[4].count=2"], "error: --set datacenter.nodes[4].count: index 4 is out of range"),
        (["--set", "workloads[0].synthetic.count=[1"], "error: --set workloads[0].synthetic.count: cannot read"),
        (["--set", "no-equals-sign"], "error: --set: expected PATH=VALUE"),
        (["--set", "workloads[x]=1"], "error: --set workloads[x]: bad path segment"),
        (["--seed", "-1"], "argument --seed: must be a whole number >= 0"),
        (["--seed", "two"], "argument --seed: must be a whole number >= 0"),
    ],
)
def test_run_set_and_seed_errors_name_the_option(tmp_path, capsys, base, options, expected):
    assert exit_status(["run", write(tmp_path, base), "--out", str(tmp_path / "res"), *options]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "res").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"dcsim {__version__}"


def test_check_json_valid(tmp_path, capsys, base):
    scenario = write(tmp_path, base)
    assert main(["check", scenario, "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict == {
        "scenario": scenario,
        "ok": True,
        "problems": [],
        "accelerators": 8,
        "workloads": [{"name": "w", "kind": "jobs"}],
    }


def test_check_json_invalid(tmp_path, capsys, base):
    base["seed"] = -1
    base["workloads"][0]["synthetic"]["count"] = 0
    assert main(["check", write(tmp_path, base), "--json"]) == 2
    captured = capsys.readouterr()
    verdict = json.loads(captured.out)
    assert verdict["ok"] is False and captured.err == ""
    assert {p["path"] for p in verdict["problems"]} == {"seed", "workloads[0].synthetic.count"}
    assert all(p["message"] for p in verdict["problems"])
    assert main(["check", str(tmp_path / "missing.yaml"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["problems"][0]["message"] == "scenario file not found"


class FakeTerminal(io.StringIO):
    """A stderr that says it is a terminal, to see what a user at one would see."""

    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal_and_not_with_quiet(tmp_path, capsys, monkeypatch, base):
    scenario = write(tmp_path, base)
    out = ["--out", str(tmp_path / "res"), "--overwrite"]  # every run replaces the last one's results
    assert main(["run", scenario, *out]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest: no bar
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", scenario, *out]) == 0
    shown = terminal.getvalue()
    assert "simulating" in shown and "h simulated" in shown  # tqdm throttles redraws: the first one at least
    assert "preparing the run" in shown and "writing results" in shown
    quiet = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(["run", scenario, *out, "--quiet"]) == 0
    assert quiet.getvalue() == ""


@pytest.mark.parametrize(
    "command",
    [
        ["run", "s.yaml"],
        ["plan", "s.yaml"],
        ["policies", "s.yaml"],
        ["sweep", "s.yaml"],
        ["optimize", "s.yaml"],
        ["trace", "convert", "--format", "philly", "in.json", "-o", "out.csv"],
    ],
)
def test_long_commands_take_quiet(command):
    extra = ["--minimize", "x"] if command[0] == "optimize" else []
    assert build_parser().parse_args([*command, *extra, "-q"]).quiet is True
    assert build_parser().parse_args([*command, *extra]).quiet is False


class Recorder(progress.NoBar):
    """A bar that keeps what it was told: its description, total, every position and postfix."""

    made: ClassVar[list[Recorder]] = []

    def __init__(self, total: float | None, desc: str, unit: str = "it", **options: Any) -> None:
        self.total, self.desc, self.n = total, desc, 0.0
        self.positions: list[float] = []
        self.postfixes: list[str] = []
        Recorder.made.append(self)

    def update(self, count: float = 1) -> None:
        self.n += count
        self.positions.append(self.n)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfixes.append(text)


@pytest.fixture
def recorded(monkeypatch) -> dict[str, Recorder]:
    """Bars on, recorded instead of drawn: description -> the last bar of that name."""
    Recorder.made = []
    monkeypatch.setattr(progress, "bar", lambda *a, **k: Recorder(*a, **k) if progress.shown() else progress.NoBar())
    with showing_progress():
        yield _ByDesc()


class _ByDesc(dict):
    def __missing__(self, desc: str) -> Recorder:
        return next(bar for bar in reversed(Recorder.made) if bar.desc == desc)


@pytest.mark.parametrize("duration_s", [None, 36000.0])
def test_a_run_with_progress_is_the_run_without(monkeypatch, base, duration_s, recorded):
    """Chunk ends fall on arrival times (every 900 s; chunks of 1% of the horizon), and never reorder events."""
    base["workloads"][0]["synthetic"] |= {"arrival": "constant", "count": 40}
    base["duration_s"] = duration_s
    monkeypatch.setattr(progress, "CHUNK_WALL_S", (0.0, math.inf))  # chunks stay 1% of the horizon
    with showing_progress(False):
        plain = run_scenario(base).summary_json()
    assert run_scenario(base).summary_json() == plain
    simulating = recorded["simulating"]
    assert len(simulating.positions) >= 100  # one update per chunk of 1%
    assert simulating.positions == sorted(simulating.positions)
    assert simulating.n == pytest.approx(json.loads(plain)["simulated_time_s"] / 3600)
    completed = json.loads(plain)["workloads"]["w"]["jobs_completed"]
    assert simulating.postfixes[-1] == f"{completed}/40 jobs"


def test_policies_and_plan_show_progress(base, recorded, monkeypatch):
    compare_policies(base, ["fifo", "sjf"])
    policies = recorded["policies"]
    assert policies.total == 2 and policies.positions == [1, 2] and policies.postfixes == ["fifo", "sjf"]
    monkeypatch.setattr(sys, "stderr", FakeTerminal())  # dcsim plan turns bars on at a terminal
    assert main(["plan", str(ROOT / "scenarios" / "bert_finetune.yaml"), "--accelerators", "2"]) == 0
    plans = recorded["evaluating plans"]
    assert plans.total is not None and plans.total > 1 and plans.n == plans.total


def test_keyboard_interrupt_exits_130(monkeypatch, capsys, base, tmp_path):
    def interrupted(_args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("dcsim.cli.check_cmd.handle", interrupted)
    assert main(["check", write(tmp_path, base)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_ctrl_c_on_a_long_run(tmp_path, base):
    """SIGINT to a run in progress: one line on stderr, exit status 130, no traceback."""
    base["workloads"][0]["synthetic"] |= {"count": 200_000, "rate_per_h": 400}  # tens of seconds uninterrupted
    scenario = write(tmp_path, base)
    code = "import sys; from dcsim.cli import main; print('ready', flush=True); sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", code, "run", scenario, "--out", str(tmp_path / "res")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as child:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert err == "interrupted\n" and out == ""
