"""`dcsim policies`: one scenario under several policies, a table and plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dcsim.cli import main

SCENARIO = str(Path(__file__).resolve().parent.parent / "scenarios" / "research_cluster.yaml")


def test_compares_policies_on_the_research_trace(tmp_path, capsys):
    assert main(["policies", SCENARIO, "--policies", "fifo,sjf,las", "--preemption", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "policies.csv").set_index("policy")
    assert list(table.index) == ["fifo", "sjf", "las"]
    # the classic ordering on this heavy-tailed trace at load ~0.9
    assert table.loc["sjf", "jct_mean_s"] < 0.5 * table.loc["fifo", "jct_mean_s"]
    assert table.loc["las", "jct_mean_s"] < 0.5 * table.loc["fifo", "jct_mean_s"]
    assert table.loc["las", "preemptions"] > 0 and table.loc["fifo", "preemptions"] == 0
    for plot in ("policies_jct_cdf.png", "policies_utilization.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 10_000
    assert "fifo" in capsys.readouterr().out


def test_unknown_policy_is_a_clean_error(capsys):
    assert main(["policies", SCENARIO, "--policies", "fifo,nope"]) == 2
    assert capsys.readouterr().err.startswith("error: policies: unknown scheduler policy 'nope'")
