"""Help texts say what is true: every script in ``benchmarks/`` answers ``--help`` with its usage (and runs
nothing), and ``dcsim sweep --help`` names the cache folder the sweep really uses.

Each benchmark script is run in this process (``runpy``, as ``__main__``, with ``--help`` as its only argument):
argparse prints the usage and raises ``SystemExit(0)`` before any timing starts. A script that parsed no
arguments would instead start its benchmark, which the patched ``time.perf_counter`` turns into a failure."""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

import pytest

from dcsim.cli import build_parser
from dcsim.sweep import default_cache_dir

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))


def test_there_are_benchmarks() -> None:
    assert len(BENCHMARKS) >= 7


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_help_prints_usage_and_runs_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_timing() -> float:
        raise AssertionError(f"{path.name} --help started a benchmark")

    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    monkeypatch.setattr(time, "perf_counter", no_timing)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(path), run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {path.name}")


def test_sweep_help_names_the_default_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DCSIM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = "~/" + default_cache_dir().relative_to(tmp_path).as_posix()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--help"])
    words = " ".join(capsys.readouterr().out.split())  # argparse wraps the help at any space
    cache_help = words[words.index("--cache-dir CACHE_DIR") :]
    assert folder in cache_help and "$DCSIM_CACHE_DIR" in cache_help and "$XDG_CACHE_HOME/dcsim/sweeps" in cache_help
