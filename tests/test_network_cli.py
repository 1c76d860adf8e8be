"""``dcsim net FILE``: collective times and link utilization from a scenario; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcsim.cli import main

SCENARIO = """
name: net-test
seed: 3
datacenter:
  nodes:
    - {name: dgx, count: 2, accelerator: a100-sxm-80gb, accelerators_per_node: 8, intra_node: nvswitch-a100,
       nics: {count: 8, gbps: 200}}
  network: {topology: leaf_spine, params: {leaves: 2, spines: 2, hosts_per_leaf: 8}, link_gbps: 200,
            routing: least_loaded}
workloads:
  - {kind: collective, name: ar, op: all_reduce, bytes: 1e9, ranks: 16}
  - {kind: collective, name: node1, op: all_gather, bytes: 1e8, hosts: [dgx-1], arrival_s: 0.5}
outputs: {dir: OUT}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text.replace("OUT", str(tmp_path / "out")), encoding="utf-8")
    return path


def test_net_prints_collectives_links_and_writes_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["net", str(_write(tmp_path, SCENARIO))]) == 0
    out = capsys.readouterr().out
    assert "ar: all_reduce (ring) over 16 ranks" in out
    assert "node1: all_gather (ring) over 8 ranks" in out
    # NCCL's rail-aligned rings load NVLink, NICs and the fabric alike: the tiers tie, uplinks listed first
    assert "busiest 10 links" in out and "[uplink]" in out and "intra " in out
    assert (tmp_path / "out" / "plots" / "link_utilization.png").stat().st_size > 0


def test_net_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["net", str(_write(tmp_path, SCENARIO)), "--json", "--no-plot"]) == 0
    data = json.loads(capsys.readouterr().out)
    gather = data["collectives"]["node1"]
    # alone on one NVSwitch node: NCCL's Simple ring all-gather, 7/8 of 1e8 B per GPU at 240 GB/s of NVLink
    # plus 8.4 + 7 x 3.4 us of latency (NCCL 2.30 tuning.cc): busbw = 7/8 x 1e8 B / that time
    seconds = 7 / 8 * 1e8 / 240e9 + (8.4 + 7 * 3.4) * 1e-6
    assert (gather["algorithm"], gather["protocol"]) == ("ring", "simple")
    assert gather["busbw_gbps"] == pytest.approx(7 / 8 * 1e8 / seconds * 8 / 1e9, rel=1e-6)
    assert all(0 <= link["mean_utilization"] <= 1 for link in data["links"])
    assert data["plot"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("ranks: 16}", "ranks: 64}"), "error: workloads[0].ranks: 64 ranks asked for but the datacenter has 16"),
        (("op: all_reduce", "op: allreduce"), "error: workloads[0].op: must be one of 'all_reduce'"),
        (("hosts: [dgx-1]", "hosts: [dgx-9]"), "error: workloads[1].hosts: 'dgx-9' is neither a server"),
        (("routing: least_loaded", "routing: nope"), "error: datacenter.network.routing: unknown routing policy"),
        (("hosts_per_leaf: 8", "hosts_per_leaf: 4"), "error: datacenter.network: the leaf_spine network has 8 hosts"),
        (("count: 2,", "count: 0,"), "error: datacenter.nodes[0].count: must be >= 1"),
    ],
)
def test_net_errors_are_one_line_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    assert main(["net", str(_write(tmp_path, SCENARIO.replace(*change))), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert "Traceback" not in err
