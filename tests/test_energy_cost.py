"""Energy and cost against hand calculations on tiny cases."""

from __future__ import annotations

import pytest

import dcsim


def one_job(tmp_path, **node) -> dict:
    (tmp_path / "t.csv").write_text("job_id,submit_s,gpus,duration_s\na,0,2,3600\n")
    spec = {
        "name": "tiny",
        "seed": 0,
        "duration_s": 7200,
        "datacenter": {
            "pue": 1.25,
            "electricity_usd_per_kwh": 0.2,
            "carbon_g_per_kwh": 500,
            "nodes": [{"name": "n", "count": 1, "accelerator": "a100-sxm-80gb", "accelerators_per_node": 4, **node}],
            "storage": {"capacity_tb": 10, "usd_per_tb_month": 30},
        },
        "workloads": [{"kind": "jobs", "name": "w", "trace": str(tmp_path / "t.csv")}],
    }
    return dcsim.run_scenario(spec).summary


def test_energy_two_power_states_and_pue(tmp_path):
    summary = one_job(tmp_path, usd_per_hour=10.0, host_power_w=500)
    dc = summary["datacenter"]
    # a100: idle 60 W, max 400 W. 2 accelerators busy 1 h of 2 h, 4 accelerators idle the rest; host 500 W x 2 h.
    it_wh = 2 * 400 * 1 + (2 * 60 * 1 + 2 * 60 * 2) + 500 * 2
    assert dc["it_energy_kwh"] == pytest.approx(it_wh / 1000)
    assert dc["energy_kwh"] == pytest.approx(1.25 * it_wh / 1000)
    assert dc["carbon_kg"] == pytest.approx(1.25 * it_wh / 1000 * 0.5)
    assert dc["accelerator_utilization"] == pytest.approx(2 * 1 / (4 * 2))
    job = summary["workloads"]["w"]
    assert job["accelerator_hours"] == pytest.approx(2.0)
    assert job["energy_kwh"] == pytest.approx(2 * 400 * 1.25 / 1000)


def test_hourly_price(tmp_path):
    dc = one_job(tmp_path, usd_per_hour=10.0)["datacenter"]
    assert dc["cost_usd"]["compute"] == pytest.approx(20.0)  # 1 node x 2 h x $10; power included
    month_s = 365.25 * 24 * 3600 / 12
    assert dc["cost_usd"]["storage"] == pytest.approx(10 * 30 * 7200 / month_s)
    assert dc["cost_usd"]["total"] == pytest.approx(dc["cost_usd"]["compute"] + dc["cost_usd"]["storage"])
    assert set(dc["cost_usd"]) == {"compute", "storage", "network", "compression", "inference_optimization", "total"}


def test_capex_amortization_plus_electricity(tmp_path):
    dc = one_job(tmp_path, capex_usd=87660.0, amortization_years=1)["datacenter"]
    hours_per_year = 365.25 * 24
    expected = 87660.0 / hours_per_year * 2 + dc["energy_kwh"] * 0.2
    assert dc["cost_usd"]["compute"] == pytest.approx(expected)


def test_catalog_reference_price(tmp_path):
    summary = one_job(tmp_path)
    assert summary["datacenter"]["cost_usd"]["compute"] == pytest.approx(1.79 * 4 * 2)
    assert summary["datacenter"]["price_basis"]["n"].startswith("catalog: Lambda GPU Cloud")
    assert summary["workloads"]["w"]["cost_usd"] == pytest.approx(1.79 * 2 * 1)


def test_duration_cuts_running_jobs(tmp_path):
    (tmp_path / "t.csv").write_text("job_id,submit_s,gpus,duration_s\na,0,4,10000\nb,10,4,50\n")
    spec = {
        "name": "cut",
        "seed": 0,
        "duration_s": 1000,
        "datacenter": {
            "nodes": [
                {"name": "n", "count": 1, "accelerator": "h100-sxm", "accelerators_per_node": 4, "usd_per_hour": 1}
            ]
        },
        "workloads": [{"kind": "jobs", "name": "w", "trace": str(tmp_path / "t.csv")}],
    }
    result = dcsim.run_scenario(spec)
    w = result.summary["workloads"]["w"]
    assert (w["jobs_completed"], w["jobs_running"], w["jobs_waiting"]) == (0, 1, 1)
    assert result.summary["datacenter"]["accelerator_utilization"] == pytest.approx(1.0)
    assert list(result.jobs["status"]) == ["running", "waiting"]


def test_summary_says_which_devices_are_costed_from_measurements(tmp_path):
    summary = one_job(tmp_path, usd_per_hour=10.0)
    assert summary["datacenter"]["compute_basis"] == {"a100-sxm-80gb": "measured"}  # imported Vidur timings
