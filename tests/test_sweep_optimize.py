"""dcsim optimize: the best variant meeting constraints, invalid variants skipped with their reason."""

from __future__ import annotations

import pytest
import yaml

import dcsim
from dcsim.cli import main
from dcsim.sweep import mean_ci, optimize, parse_constraint

NODES = "datacenter.nodes[0].count"
COST = "datacenter.cost_usd.total"
WAIT = "workloads.w.wait_s.mean"


@pytest.fixture
def tiny(base):
    base["workloads"][0]["synthetic"]["count"] = 12
    base["workloads"][0]["synthetic"]["rate_per_h"] = 12
    return base


def test_parse_constraint():
    rule = parse_constraint("workloads.chat.slo_attainment >= 0.99")
    assert (rule.metric, rule.op, rule.bound) == ("workloads.chat.slo_attainment", ">=", 0.99)
    assert parse_constraint("workloads.t.fits_in_memory==true").bound == 1.0
    assert rule.holds(0.995) and not rule.holds(0.98) and not rule.holds(float("nan"))
    with pytest.raises(ValueError, match=r"^constraint: expected METRIC>=NUMBER"):
        parse_constraint("cost is low")


def test_optimum_is_the_cheapest_feasible_mean_over_seeds(tiny, tmp_path):
    grid = {NODES: [0, 1, 2, 3]}
    frame = dcsim.sweep(tiny, grid=grid, seeds=2, workers=1, cache_dir=tmp_path)
    means = mean_ci(frame, [COST, WAIT])
    bound = float(means[f"{WAIT}:mean"].median())  # some sizes meet it, some do not
    result = optimize(
        tiny, grid, minimize=COST, constraints=[f"{WAIT}<={bound}"], seeds=2, workers=1, cache_dir=tmp_path
    )
    feasible = means[means[f"{WAIT}:mean"] <= bound]
    expected = feasible.loc[feasible[f"{COST}:mean"].idxmin()]
    assert result.best is not None and result.best["variant"] == expected["variant"]
    assert result.best[COST] == pytest.approx(expected[f"{COST}:mean"])
    assert len(result.feasible) == len(feasible) and 0 < len(feasible) < 3
    skipped = result.points[result.points[NODES] == 0].iloc[0]
    assert not skipped["feasible"] and skipped["reason"] == "failed: datacenter.nodes[0].count: must be >= 1 (got 0)"
    violating = result.points[~result.points["feasible"] & (result.points[NODES] > 0)]
    assert all(reason.startswith(f"violates {WAIT}<=") for reason in violating["reason"])
    fastest = optimize(tiny, grid, minimize=WAIT, seeds=2, workers=1, cache_dir=tmp_path)
    assert fastest.best is not None and fastest.best[WAIT] == pytest.approx(means[f"{WAIT}:mean"].min())


def test_optimize_cli(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DCSIM_CACHE_DIR", str(tmp_path / "cache"))
    base_file = tmp_path / "base.yaml"
    base_file.write_text(yaml.safe_dump(tiny))
    args = ["optimize", str(base_file), "--set", f"{NODES}=1,2", "--workers", "1", "--no-progress"]
    assert main([*args, "--minimize", COST, "--out", str(tmp_path / "v.csv")]) == 0
    out = capsys.readouterr().out
    assert "2 variants: 2 feasible" in out and f"best (lowest {COST})" in out and f"{NODES} = 1" in out
    # an existing table is refused before the search, unless --overwrite replaces it
    assert main([*args, "--minimize", COST, "--out", str(tmp_path / "v.csv")]) == 2
    refusal = capsys.readouterr().err.strip().splitlines()
    assert len(refusal) == 1 and refusal[0].startswith("error: --out:") and "--overwrite" in refusal[0]
    assert main([*args, "--minimize", COST, "--out", str(tmp_path / "v.csv"), "--overwrite"]) == 0
    assert "verdicts written to" in capsys.readouterr().out
    assert main([*args, "--minimize", COST, "--constraint", f"{WAIT}<-1"]) == 1
    assert "no variant meets the constraints" in capsys.readouterr().out
    assert main([*args, "--maximize", "datacenter.cost_usd.totl"]) == 2
    assert (
        "error: --maximize: no figure 'datacenter.cost_usd.totl' in the results; did you mean"
        in capsys.readouterr().err
    )
