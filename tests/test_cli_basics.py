"""Command-line basics: scenario file paths, --set/--seed, --version, check --json, progress, Ctrl-C."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

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
