"""``dcsim net FILE --sizes``: nccl-tests-shaped sweeps (time, algbw, busbw, algorithm, protocol per size),
the busbw plot, and one-line errors for bad sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcsim.cli import main
from dcsim.network.collectives.sweep import parse_sizes

SCENARIO = """
name: sweep-test
seed: 1
datacenter:
  nodes:
    - {name: dgx, count: 2, accelerator: a100-sxm-80gb, accelerators_per_node: 8, intra_node: nvswitch-a100,
       nics: {count: 8, gbps: 200}}
  network: {topology: leaf_spine, params: {leaves: 1, spines: 1, hosts_per_leaf: 16}, link_gbps: 200}
workloads:
  - {kind: collective, name: one-node, op: all_reduce, bytes: 1e9, hosts: [dgx-0]}
  - {kind: collective, name: two-nodes, op: all_reduce, bytes: 1e9, ranks: 16}
  - {kind: collective, name: a2a, op: all_to_all, bytes: 1e6, hosts: [dgx-1]}
outputs: {dir: OUT}
"""


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO.replace("OUT", str(tmp_path / "out")), encoding="utf-8")
    return path


def test_sizes_follow_nccl_tests() -> None:
    sizes = parse_sizes("8:8G")
    assert sizes[0] == 8 and sizes[-1] == 8 * 2**30 and len(sizes) == 31
    assert all(b == 2 * a for a, b in zip(sizes, sizes[1:], strict=False))
    assert parse_sizes("1K:1M:4") == [1024, 4096, 16384, 65536, 262144, 1048576]


def test_sweep_prints_a_line_per_size_and_plots_busbw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["net", str(_write(tmp_path)), "--sizes", "8:8G"]) == 0
    out = capsys.readouterr().out
    assert "one-node: all_reduce over 8 ranks" in out and "two-nodes: all_reduce over 16 ranks" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 3 * 31
    assert {row[4] for row in rows[:62]} <= {"ring", "tree"} and {row[5] for row in rows[:62]} >= {"ll", "simple"}
    assert (tmp_path / "out" / "plots" / "busbw_vs_size.png").stat().st_size > 0


def test_sweep_json_is_bounded_and_monotone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["net", str(_write(tmp_path)), "--sizes", "1K:1G", "--json", "--no-plot"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plot"] is None
    for name, bound in (("one-node", 240), ("two-nodes", 200)):  # NVLink; 8 rails of 200 Gb/s
        rows = data["sweeps"][name]
        assert len(rows) == 21
        assert all(r["busbw_gb_per_s"] <= bound * (1 + 1e-9) for r in rows)
        times = [r["time_us"] for r in rows]
        assert times == sorted(times)
        assert rows[-1]["busbw_gb_per_s"] > 0.9 * bound and rows[-1]["protocol"] == "simple"


@pytest.mark.parametrize("sizes", ["8", "8:", "x:8G", "8G:8", "8:8G:1", "8:8G:two", "0:8"])
def test_bad_sizes_are_one_line_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sizes: str
) -> None:
    assert main(["net", str(_write(tmp_path)), "--sizes", sizes, "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sizes: ") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("op: all_reduce, bytes: 1e9, hosts: [dgx-0]}", "error: workloads[0].algorithm: all_reduce: no nvls algorithm"),
        ("op: all_to_all, bytes: 1e6, hosts: [dgx-1]}", "error: workloads[2].protocol: all_to_all is not tuned"),
    ],
)
def test_algorithms_and_protocols_the_hardware_lacks_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, message: str
) -> None:
    extra = ", algorithm: nvls}" if "all_reduce" in change else ", protocol: ll}"
    path = _write(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace(change, change[:-1] + extra), encoding="utf-8")
    assert main(["net", str(path), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
