"""dcsim.sweep: paths, designs, the DataFrame it returns, error rows, determinism, mean/CI, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import dcsim
from dcsim.cli import main
from dcsim.sweep import make_design, mean_ci, parse_path, set_path, student_t_quantile

REPO = Path(__file__).resolve().parent.parent
RATE = "workloads[0].synthetic.rate_per_h"
NODES = "datacenter.nodes[0].count"


@pytest.fixture
def tiny(base):
    """The shared small scenario cut to 12 jobs, so every point runs in a few milliseconds."""
    base["workloads"][0]["synthetic"]["count"] = 12
    return base


# --- paths -----------------------------------------------------------------------------------------------------


def test_parse_path_contract_syntax():
    assert parse_path("workloads[0].parallelism.tp") == ("workloads", 0, "parallelism", "tp")
    assert parse_path("datacenter.nodes[1].count") == ("datacenter", "nodes", 1, "count")
    for bad in ("", "workloads[x].tp", "a..b", "workloads[0"):
        with pytest.raises(ValueError, match=r"path|segment"):
            parse_path(bad)


def test_set_path_creates_sections_and_names_the_path_on_error(base):
    set_path(base, "scheduler.policy", "sjf")
    set_path(base, NODES, 3)
    assert base["scheduler"] == {"policy": "sjf"} and base["datacenter"]["nodes"][0]["count"] == 3
    with pytest.raises(ValueError, match=r"^workloads\[5\]\.name: index 5 is out of range"):
        set_path(base, "workloads[5].name", "x")
    with pytest.raises(ValueError, match=r"^name\[0\]: name is not a list"):
        set_path(base, "name[0]", "x")


# --- designs ---------------------------------------------------------------------------------------------------


def test_grid_is_the_full_product_last_parameter_fastest():
    design = make_design({"a": [1, 2], "b": ["x", "y", "z"]})
    assert design == [{"a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")]
    assert make_design(None) == [{}]
    with pytest.raises(ValueError, match=r"^a: a grid needs a list of values"):
        make_design({"a": {"low": 0, "high": 1}})


def test_latin_hypercube_uses_every_stratum_once():
    design = make_design(
        {"x": {"low": 0.0, "high": 1.0}, "n": {"low": 1, "high": 10}, "c": ["p", "q"]}, "lhs", samples=10
    )
    strata = sorted(math.floor(point["x"] * 10) for point in design)
    assert strata == list(range(10))
    assert sorted(point["n"] for point in design) == list(range(1, 11))  # integer range, inclusive, once each
    assert [point["c"] for point in design].count("p") == 5
    assert all(isinstance(point["n"], int) for point in design)


def test_random_design_is_reproducible_from_its_seed_and_stays_in_range():
    space = {"x": {"low": 10.0, "high": 1000.0, "log": True}, "c": [1, 2, 3]}
    first = make_design(space, "random", samples=50, design_seed=7)
    assert first == make_design(space, "random", samples=50, design_seed=7)
    assert first != make_design(space, "random", samples=50, design_seed=8)
    assert all(10.0 <= p["x"] <= 1000.0 and p["c"] in (1, 2, 3) for p in first)
    with pytest.raises(ValueError, match=r"^samples: "):
        make_design(space, "random")
    with pytest.raises(ValueError, match=r"^x: a log range needs low > 0"):
        make_design({"x": {"low": 0, "high": 1, "log": True}}, "lhs", samples=2)


# --- statistics ------------------------------------------------------------------------------------------------


def test_student_t_quantiles_match_the_published_table():
    # Two-sided 95% critical values, NIST/SEMATECH e-Handbook of Statistical Methods, table 1.3.6.7.2.
    for dof, value in ((1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042), (100, 1.984)):
        assert student_t_quantile(0.975, dof) == pytest.approx(value, abs=5e-4)
    assert student_t_quantile(0.025, 4) == pytest.approx(-student_t_quantile(0.975, 4))


def test_student_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 3, 7, 20, 250):
        for p in (0.6, 0.9, 0.975, 0.995):
            assert student_t_quantile(p, dof) == pytest.approx(stats.t.ppf(p, dof), rel=1e-9)


def test_mean_ci_per_point_over_seeds():
    frame = pd.DataFrame(
        {
            "variant": [0, 0, 0, 1, 1],
            "seed": [1, 2, 3, 1, 2],
            "p": [5, 5, 5, 6, 6],
            "error": [None, None, None, None, "boom"],
            "m": [1.0, 2.0, 3.0, 10.0, np.nan],
        }
    )
    points = mean_ci(frame, ["m"])
    first = points.iloc[0]
    half = student_t_quantile(0.975, 2) * 1.0 / math.sqrt(3)  # sample sd of 1,2,3 is 1
    assert (first["variant"], first["p"], first["n"]) == (0, 5, 3)
    assert first["m:mean"] == pytest.approx(2.0)
    assert (first["m:ci_low"], first["m:ci_high"]) == pytest.approx((2.0 - half, 2.0 + half))
    second = points.iloc[1]
    assert second["n"] == 1 and second["m:mean"] == 10.0 and math.isnan(second["m:ci_low"])
    with pytest.raises(ValueError, match=r"^metrics: no column 'nope'"):
        mean_ci(frame, ["nope"])


# --- the sweep -------------------------------------------------------------------------------------------------


def test_sweep_rows_columns_and_seeds(tiny):
    frame = dcsim.sweep(tiny, grid={RATE: [2, 8], NODES: [1, 2]}, seeds=2, workers=1, cache_dir=None)
    assert list(frame.columns[:5]) == ["variant", "seed", RATE, NODES, "error"]
    assert len(frame) == 8 and frame["error"].isna().all()
    assert list(frame["seed"]) == [3, 4] * 4  # the base seed and the next
    assert list(frame[RATE]) == [2, 2, 2, 2, 8, 8, 8, 8] and list(frame[NODES]) == [1, 1, 2, 2] * 2
    assert (frame["datacenter.accelerators"] == frame[NODES] * 4).all()
    assert (frame["workloads.w.jobs_completed"] == 12).all()
    assert {"workloads.w.jct_s.mean", "datacenter.cost_usd.total"} <= set(frame.columns)
    assert frame.attrs["params"] == [RATE, NODES] and frame.attrs["computed"] == 8
    # A point is the same whether run directly or in the sweep.
    set_path(tiny, RATE, 2)
    set_path(tiny, NODES, 2)
    direct = dcsim.run_scenario({**tiny, "seed": 4})
    row = frame[(frame[RATE] == 2) & (frame[NODES] == 2) & (frame["seed"] == 4)].iloc[0]
    assert row["datacenter.cost_usd.total"] == direct.summary["datacenter"]["cost_usd"]["total"]
    points = mean_ci(frame, ["workloads.w.jct_s.mean"])
    assert len(points) == 4 and (points["n"] == 2).all()


def test_explicit_seed_list_and_determinism(tiny):
    grid = {RATE: [4, 6]}
    first = dcsim.sweep(tiny, grid=grid, seeds=[11, 5], workers=1, cache_dir=None)
    second = dcsim.sweep(tiny, grid=grid, seeds=[11, 5], workers=1, cache_dir=None)
    assert list(first["seed"]) == [11, 5, 11, 5]
    pd.testing.assert_frame_equal(first, second)
    assert first["workloads.w.jct_s.mean"].nunique() == 4


def test_a_failing_variant_is_an_error_row_and_the_others_run(tiny):
    frame = dcsim.sweep(tiny, grid={NODES: [1, 0, 2]}, workers=1, cache_dir=None)
    assert frame["error"].isna().tolist() == [True, False, True]
    assert frame.loc[1, "error"] == "datacenter.nodes[0].count: must be >= 1 (got 0)"
    assert frame.loc[[0, 2], "workloads.w.jobs_completed"].tolist() == [12, 12]
    assert math.isnan(frame.loc[1, "workloads.w.jobs_completed"]) and frame.attrs["failed"] == 1


def test_a_run_that_raises_is_an_error_row(tiny, monkeypatch):
    import dcsim.sweep.evaluate as evaluate

    real = evaluate.run_scenario

    def flaky(scenario):
        if scenario.datacenter.nodes[0].count == 2:
            raise RuntimeError("injected failure\nsecond line")
        return real(scenario)

    monkeypatch.setattr(evaluate, "run_scenario", flaky)
    frame = dcsim.sweep(tiny, grid={NODES: [1, 2, 3]}, workers=1, cache_dir=None)
    assert frame["error"].tolist()[1] == "RuntimeError: injected failure"
    assert frame["error"].isna().tolist() == [True, False, True]


def test_bad_paths_and_arguments_are_one_line_errors_naming_them(tiny):
    with pytest.raises(ValueError, match=r"^scheduler\.polcy: not a scenario field \(unknown field; did you mean"):
        dcsim.sweep(tiny, grid={"scheduler.polcy": ["fifo"]}, cache_dir=None)
    with pytest.raises(ValueError, match=r"^workloads\[0\]\.synthetic\.rate_per_hour: not a scenario field"):
        dcsim.sweep(tiny, grid={"workloads[0].synthetic.rate_per_hour": [1]}, cache_dir=None)
    with pytest.raises(ValueError, match=r"^datacenter\.nodes\[3\]\.count: index 3 is out of range"):
        dcsim.sweep(tiny, grid={"datacenter.nodes[3].count": [1]}, cache_dir=None)
    with pytest.raises(ValueError, match=r"^seed: sweep seeds with seeds="):
        dcsim.sweep(tiny, grid={"seed": [1, 2]}, cache_dir=None)
    with pytest.raises(ValueError, match=r"^executor: must be one of local, dask"):
        dcsim.sweep(tiny, executor="ray", cache_dir=None)
    with pytest.raises(ValueError, match=r"^seeds: the count must be >= 1"):
        dcsim.sweep(tiny, seeds=0, cache_dir=None)
    with pytest.raises(ValueError, match=r"^workers: must be a whole number"):
        dcsim.sweep(tiny, workers=0, cache_dir=None)


def test_random_design_sweep_and_a_base_file_with_a_relative_trace(tmp_path, monkeypatch):
    scenario = REPO / "scenarios" / "trace_replay.yaml"
    monkeypatch.chdir(tmp_path)  # the trace is found next to the scenario file, as dcsim run does
    frame = dcsim.sweep(
        scenario, grid={"scheduler.policy": ["fifo", "sjf"]}, design="random", samples=2, workers=1, cache_dir=None
    )
    assert frame["error"].isna().all(), frame["error"].tolist()
    assert set(frame["scheduler.policy"]) <= {"fifo", "sjf"}


def test_cli_sweep_writes_a_table_and_reports_bad_input(tmp_path, tiny, capsys):
    base_file = tmp_path / "base.yaml"
    base_file.write_text(yaml.safe_dump(tiny))
    out = tmp_path / "res.csv"
    args = ["sweep", str(base_file), "--set", f"{RATE}=2,4", "--set", f"{NODES}=1,2", "--seeds", "2"]
    common = ["--workers", "1", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main([*args, *common, "--out", str(out)]) == 0
    assert "8 points (4 variants x 2 seeds): 8 computed, 0 from the cache, 0 failed" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert list(table.columns[:5]) == ["variant", "seed", RATE, NODES, "error"] and len(table) == 8
    assert main([*args, *common, "--out", str(out)]) == 2  # the table exists: refused, before any work
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out: {out} already exists (rerun with --overwrite to replace it, or choose another file with --out)"
    ]
    assert main([*args, *common, "--out", str(out), "--overwrite"]) == 0
    assert "0 computed, 8 from the cache" in capsys.readouterr().out

    polcy = ["sweep", str(base_file), "--set", "scheduler.polcy=fifo", *common, "--out", str(out), "--overwrite"]
    assert main(polcy) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: scheduler.polcy: not a scenario field (unknown field; did you mean 'policy'?)"
    ]
    assert main(["sweep", str(base_file), "--set", "nothing", *common]) == 2
    assert capsys.readouterr().err.startswith("error: --set: expected PATH=VALUES")
    assert main(["sweep", str(base_file), *common, "--out", str(tmp_path / "x.txt")]) == 2
    assert "error: --out: must end in .csv or .parquet" in capsys.readouterr().err


def test_cli_set_values_ranges_and_lists():
    from dcsim.cli.sweep_cmd import parse_set

    assert parse_set("a.b=1,2.5,x,true") == ("a.b", [1, 2.5, "x", True])
    assert parse_set("a[0].c=2..8") == ("a[0].c", {"low": 2, "high": 8})
    assert parse_set("g={choices: [1, 2]},[3,4]") == ("g", [{"choices": [1, 2]}, [3, 4]])


def test_cli_parquet_output(tmp_path, tiny, capsys):
    pytest.importorskip("pyarrow")
    base_file = tmp_path / "base.yaml"
    base_file.write_text(yaml.safe_dump(tiny))
    out = tmp_path / "res.parquet"
    assert (
        main(["sweep", str(base_file), "--set", f"{RATE}=2,4", "--workers", "1", "--no-cache", "--out", str(out)]) == 0
    )
    table = pd.read_parquet(out)
    assert len(table) == 2 and table["error"].isna().all()
    assert json.loads(json.dumps(table[RATE].tolist())) == [2, 4]
