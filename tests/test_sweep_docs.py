"""The examples in docs/sweeps.md run as written: Python blocks, then the `dcsim` lines of bash blocks, in order."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dcsim.cli import main

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "sweeps.md"


def test_sweeps_page_examples_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    (tmp_path / "scenarios").symlink_to(REPO / "scenarios")  # the examples name scenarios/...
    monkeypatch.chdir(tmp_path)  # ...and write under results/: a fresh folder each time, as on a first reading
    monkeypatch.setenv("DCSIM_CACHE_DIR", str(tmp_path / "cache"))  # points repeated across examples run once
    blocks = re.findall(r"```(python|bash)\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert sum(kind == "python" for kind, _ in blocks) >= 3
    commands = 0
    for kind, body in blocks:
        if kind == "python":
            exec(compile(body, f"{PAGE.name}:example", "exec"), {"__name__": "docs_example"})
            continue
        for line in body.splitlines():
            if line.startswith("dcsim "):
                assert main(shlex.split(line)[1:]) == 0, line
                commands += 1
    assert commands >= 6
    out = capsys.readouterr().out
    assert "{'params': ['workloads[0].synthetic.rate_per_h', 'scheduler.policy'], 'computed': 0, 'cached': 8" in out
    assert "8 points (4 variants x 2 seeds): 0 computed, 8 from the cache, 0 failed" in out  # the CLI's grid
    assert "4 points (4 variants x 1 seeds): 0 computed, 4 from the cache, 0 failed" in out  # the CLI's lhs
    assert (tmp_path / "results" / "quickstart-sweep.html").is_file() and (
        tmp_path / "results/quickstart/report.html"
    ).is_file()
