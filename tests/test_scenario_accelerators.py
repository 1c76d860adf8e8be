"""Accelerators a scenario declares (``accelerators:``): ``based_on`` inherits the base's fields and calibrated
curves, bad sections give one line per problem, a declaration never reaches another scenario's run; and the
catalog entries added with them (A100 40GB, MI300X, B200, the NVLink 5 interconnects)."""

from __future__ import annotations

from typing import Any

import pytest

from dcsim.catalog import catalog_files, declared_accelerators, load_catalog
from dcsim.cli import main
from dcsim.compute import Attention, CostModel, Matmul, Pointwise
from dcsim.errors import UserInputError
from dcsim.run import run_scenario
from dcsim.scenario import load_scenario
from dcsim.scenario.accelerators import AcceleratorSpec, resolve

A100_40GB: dict[str, Any] = {
    "id": "a100-40gb",
    "based_on": "a100-sxm-80gb",
    "memory_gib": 40,
    "memory_bandwidth_gb_per_s": 1555,
    "source": {"memory_gib": "NVIDIA A100 datasheet, 40GB SXM"},
}
#: a large GEMM (compute-bound; the A100 fit adds a small memory phase to it), prefill attention (fitted on its
#: FLOPs alone on GPUs: compute-bound), an add (memory-bound: 6 bytes per FLOP)
GEMM = Matmul(8192, 8192, 8192, precision="fp16")
PREFILL = Attention(batch=8, heads=32, q_len=2048, kv_len=2048, head_dim=128, causal=True, precision="fp16")
ADD = Pointwise("add", 1 << 28, "fp16")


def _scenario(accelerators: Any, accelerator: str = "a100-40gb", workload: Any = None) -> dict[str, Any]:
    job = workload or {
        "kind": "jobs",
        "name": "jobs",
        "synthetic": {"count": 3, "arrival": "poisson", "rate_per_h": 60, "gpus": 1, "duration_s": 60},
    }
    return {
        "name": "declared",
        "accelerators": accelerators,
        "datacenter": {
            "nodes": [
                {"name": "n", "count": 1, "accelerator": accelerator, "accelerators_per_node": 2, "usd_per_hour": 2}
            ]
        },
        "workloads": [job],
    }


def _declared(**changes: Any) -> Any:
    return resolve(AcceleratorSpec.model_validate({**A100_40GB, **changes}))


# --- inheritance ------------------------------------------------------------------------------------------


def test_based_on_inherits_fields_and_keeps_its_own():
    scenario = load_scenario(_scenario([A100_40GB]))
    with scenario.catalog_scope():
        acc = load_catalog().accelerator("a100-40gb")
    base = catalog_files().accelerator("a100-sxm-80gb")
    assert acc.memory_gib == 40 and acc.memory_bytes == 40 * 2**30
    assert acc.memory_bandwidth_gb_per_s == 1555
    assert dict(acc.peak_tflops) == dict(base.peak_tflops)
    assert (acc.kind, acc.interconnect, acc.max_w, acc.based_on) == ("gpu", "nvswitch-a100", 400, "a100-sxm-80gb")
    assert acc.source["memory_gib"] == "NVIDIA A100 datasheet, 40GB SXM"
    assert acc.source["memory_bandwidth_gb_per_s"] == "declared in the scenario (no source given)"
    assert acc.source["peak_tflops"].startswith("inherited from a100-sxm-80gb: NVIDIA A100")


def test_declared_accelerator_gets_the_curves_of_its_based_on():
    model = CostModel()
    with declared_accelerators([_declared()]):
        assert model.prediction_basis("a100-40gb") == "inherited"
        compute_bound = model.predict(PREFILL, "a100-40gb")
        gemm = model.predict(GEMM, "a100-40gb")
        memory_bound = model.predict(ADD, "a100-40gb")
        fit = model.device("a100-40gb").fit_for(ADD)
    base_fit = model.device("a100-sxm-80gb").fit_for(ADD)
    assert compute_bound == model.predict(PREFILL, "a100-sxm-80gb")  # same peaks: the same time, to the bit
    assert 1.0 < gemm / model.predict(GEMM, "a100-sxm-80gb") < 1.01  # its fitted memory phase, 1% of it, at 1.31x
    assert fit.basis == "inherited" and fit.memory_factor == base_fit.memory_factor
    assert fit.bandwidth == pytest.approx(base_fit.bandwidth * 1555 / 2039, rel=1e-12)
    slower = memory_bound / model.predict(ADD, "a100-sxm-80gb")
    assert 1.25 < slower <= 2039 / 1555 + 1e-9  # 1.31x on its HBM term, less the per-call overhead's share


def test_unchanged_figures_predict_exactly_as_the_base():
    """A declaration that changes nothing but the id prices every op as its base does."""
    model = CostModel()
    same = _declared(memory_gib=80, memory_bandwidth_gb_per_s=2039)
    ops = [GEMM, ADD, Matmul(7, 4096, 4096, precision="bf16"), Matmul(512, 4096, 11008, precision="fp32").backward()]
    with declared_accelerators([same]):
        ours = [model.predict(op, "a100-40gb") for op in ops]
    assert ours == [model.predict(op, "a100-sxm-80gb") for op in ops]


def test_catalog_a100_40gb_matches_the_declared_one():
    model = CostModel()
    with declared_accelerators([_declared()]):
        declared = [model.predict(op, "a100-40gb") for op in (GEMM, PREFILL, ADD)]
    assert declared == [model.predict(op, "a100-sxm-40gb") for op in (GEMM, PREFILL, ADD)]
    assert model.prediction_basis("a100-sxm-40gb") == "inherited"


def test_a_changed_peak_scales_the_compute_term():
    model = CostModel()
    faster = _declared(peak_tflops={"fp16": 624, "bf16": 624, "fp32": 39, "tf32": 312})
    with declared_accelerators([faster]):
        fit = model.device("a100-40gb").fit_for(GEMM)
        assert model.predict(GEMM, "a100-40gb") < model.predict(GEMM, "a100-sxm-80gb")
    assert fit.peak_flops == pytest.approx(model.device("a100-sxm-80gb").fit_for(GEMM).peak_flops * 2, rel=1e-12)


def test_without_based_on_a_declaration_is_costed_from_priors():
    spec = {
        "id": "my-gpu",
        "kind": "gpu",
        "peak_tflops": {"bf16": 500, "fp32": 50},
        "memory_gib": 96,
        "memory_bandwidth_gb_per_s": 4000,
        "interconnect": "nvswitch-h100",
        "max_w": 700,
        "idle_w": 70,
    }
    scenario = load_scenario(_scenario([spec], accelerator="my-gpu"))
    with scenario.catalog_scope():
        acc = load_catalog().accelerator("my-gpu")
        assert CostModel().prediction_basis("my-gpu") == "prior"
    assert acc.name == "my-gpu" and acc.sparse_2_4 is False and acc.usd_per_hour is None and acc.max_w == 700


# --- usable where catalog ids are -------------------------------------------------------------------------


def test_declared_ids_work_in_node_types_workloads_and_runs():
    scenario = _scenario([A100_40GB], workload=_training("a100-40gb"))
    summary = run_scenario(scenario).summary
    assert summary["datacenter"]["compute_basis"] == {"a100-40gb": "inherited"}
    assert summary["workloads"]["train"]["step_time_s"] > 0


def _training(accelerator: str) -> dict[str, Any]:
    return {
        "kind": "training",
        "name": "train",
        "model": "gpt2-small",
        "accelerator": accelerator,
        "parallelism": {"dp": 2},
        "global_batch_size": 16,
        "seq_len": 512,
        "steps": 3,
    }


def test_check_and_plan_accept_a_declared_accelerator(tmp_path, capsys):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_scenario([A100_40GB], workload=_training("a100-40gb"))))
    assert main(["check", str(path)]) == 0
    assert main(["plan", str(path), "--top", "3"]) == 0
    assert "on 2 x a100-40gb" in capsys.readouterr().out


def test_set_overrides_a_declared_figure():
    base = _scenario([A100_40GB])
    scenario = load_scenario(base, overrides={"accelerators[0].memory_gib": 24})
    with scenario.catalog_scope():
        assert load_catalog().accelerator("a100-40gb").memory_gib == 24
    with pytest.raises(UserInputError) as error:
        load_scenario(base, overrides={"accelerators[0].memory_gib": -1})
    assert [str(p) for p in error.value.problems] == ["--set accelerators[0].memory_gib: must be > 0 (got -1)"]


# --- bad sections -----------------------------------------------------------------------------------------


def test_bad_sections_give_one_line_per_problem():
    bad = [
        {"id": "x1", "based_on": "a100"},  # unknown base
        {"id": "h100-sxm", "based_on": "h100-sxm"},  # a catalog id
        {"id": "x3", "kind": "gpu", "memory_gib": 0, "peak_tflops": {"bf16": -1, "fp4": 9}},  # several at once
        {**A100_40GB, "id": "x4", "memory_gb": 40, "kind": "cpu"},  # unknown field, kind against its base
        {**A100_40GB, "id": "x4"},  # declared twice
    ]
    with pytest.raises(UserInputError) as error:
        load_scenario(_scenario(bad, accelerator="x3"))
    lines = {str(p) for p in error.value.problems}
    assert lines == {
        "accelerators[0].based_on: unknown accelerator 'a100': based_on names a catalog id (see `dcsim catalog`: "
        + ", ".join(catalog_files().accelerators)
        + "), not one declared in the scenario",
        "accelerators[1].id: 'h100-sxm' is a catalog id: give the declared accelerator its own id "
        "(based_on: h100-sxm inherits its figures)",
        "accelerators[2].memory_gib: must be > 0 (got 0)",
        "accelerators[2].peak_tflops.bf16: must be > 0 (got -1)",
        "accelerators[2].peak_tflops['fp4']: unknown precision (known: fp64, fp32, tf32, bf16, fp16, fp8, int8, int4)",
        "accelerators[2].memory_bandwidth_gb_per_s: required field is missing "
        "(or give based_on: a catalog id to inherit it from)",
        "accelerators[2].interconnect: required field is missing (or give based_on: a catalog id to inherit it from)",
        "accelerators[3].memory_gb: unknown field; did you mean 'memory_gib'?",
        "accelerators[3].kind: must be 'gpu', the kind of its based_on a100-sxm-80gb",
        "accelerators[4].id: 'x4' is declared twice (accelerators[3])",
    }


def test_missing_required_fields_each_named():
    with pytest.raises(UserInputError) as error:
        load_scenario(_scenario([{"id": "bare"}], accelerator="a100-sxm-80gb"))
    assert [p.path for p in error.value.problems] == [
        f"accelerators[0].{name}"
        for name in ("kind", "peak_tflops", "memory_gib", "memory_bandwidth_gb_per_s", "interconnect")
    ]


def test_cli_check_exits_2_with_one_line_per_problem(tmp_path, capsys):
    import yaml

    path = tmp_path / "bad.yaml"
    bad = [{**A100_40GB, "memory_gib": -40, "memory_bandwidth_gb_per_s": 0}]
    path.write_text(yaml.safe_dump(_scenario(bad)))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the node type naming the broken declaration adds no line of its own
    assert err == [
        "error: accelerators[0].memory_gib: must be > 0 (got -40)",
        "error: accelerators[0].memory_bandwidth_gb_per_s: must be > 0 (got 0)",
    ]


def test_section_of_the_wrong_type():
    with pytest.raises(UserInputError) as error:
        load_scenario(_scenario({"id": "x"}, accelerator="a100-sxm-80gb"))
    assert [p.path for p in error.value.problems] == ["accelerators"]


# --- isolation --------------------------------------------------------------------------------------------


def test_declarations_do_not_leak_into_other_scenarios():
    run_scenario(_scenario([A100_40GB]))
    assert "a100-40gb" not in load_catalog().accelerators
    with pytest.raises(UserInputError) as error:
        load_scenario(_scenario([]))  # names a100-40gb without declaring it
    assert error.value.problems[0].path == "datacenter.nodes[0].accelerator"
    assert error.value.problems[0].message.startswith("unknown accelerator 'a100-40gb'")


def test_redeclared_figures_are_not_served_from_caches():
    """One process, one id, three declarations (a sweep over its bandwidth): every run prices the figures it
    declares; the first and the last agree to the bit, and the catalog's A100 80GB is what the id at the
    80GB's figures gives."""

    def step_s(bandwidth: float) -> float:
        declared = {**A100_40GB, "memory_gib": 80, "memory_bandwidth_gb_per_s": bandwidth}
        summary = run_scenario(_scenario([declared], workload=_training("a100-40gb"))).summary
        return float(summary["workloads"]["train"]["step_time_s"])

    first, slow, again = step_s(2039), step_s(200), step_s(2039)
    assert slow > 1.2 * first
    assert again == first
    catalog = run_scenario(_scenario([], accelerator="a100-sxm-80gb", workload=_training("a100-sxm-80gb"))).summary
    assert catalog["workloads"]["train"]["step_time_s"] == first


def test_sweep_over_a_declared_figure():
    import dcsim

    table = dcsim.sweep(
        _scenario([A100_40GB], workload=_training("a100-40gb")),
        grid={"accelerators[0].memory_bandwidth_gb_per_s": [1555, 400]},
        workers=1,
        cache_dir=None,
        progress=False,
    )
    assert table["error"].isna().all()
    fast, slow = table.sort_values("accelerators[0].memory_bandwidth_gb_per_s", ascending=False)[
        "workloads.train.step_time_s"
    ]
    assert slow > fast


# --- catalog entries --------------------------------------------------------------------------------------

NEW_ACCELERATORS = ["a100-sxm-40gb", "mi300x", "b200"]
NEW_INTERCONNECTS = ["xgmi-mi300x", "nvswitch-b200", "nvlink5-nvl72"]


@pytest.mark.parametrize("accelerator_id", NEW_ACCELERATORS)
def test_new_entries_load_with_sources(accelerator_id):
    acc = catalog_files().accelerator(accelerator_id)
    for field in ("peak_tflops", "sparse_2_4", "memory_gib", "memory_bandwidth_gb_per_s", "interconnect", "max_w"):
        assert acc.source.get(field), f"{accelerator_id}.{field} has no source"
    assert acc.interconnect in catalog_files().interconnects
    assert all(v > 0 for v in acc.peak_tflops.values())
    assert CostModel().predict(GEMM, accelerator_id) > GEMM.flops / acc.peak_flops("fp16")


@pytest.mark.parametrize("interconnect_id", NEW_INTERCONNECTS)
def test_new_interconnects_load_with_sources(interconnect_id):
    link = catalog_files().interconnect(interconnect_id)
    assert link.source["bandwidth_gb_per_s"] and link.source["links_per_accelerator"]


def test_new_entry_figures():
    """Spot checks against the vendor documents each source names."""
    catalog = catalog_files()
    a100 = catalog.accelerator("a100-sxm-40gb")
    assert (a100.memory_gib, a100.memory_bandwidth_gb_per_s, a100.peak_tflops["bf16"]) == (40, 1555, 312)
    assert a100.based_on == "a100-sxm-80gb"
    assert catalog.accelerator("mi300x").peak_tflops["bf16"] == 1307.4
    assert catalog.accelerator("mi300x").memory_bandwidth_gb_per_s == 5300
    assert catalog.accelerator("b200").peak_tflops["fp8"] == 4500  # 72 PFLOPS sparse / 8 GPUs / 2
    nvl72 = catalog.interconnect("nvlink5-nvl72")
    assert nvl72.bandwidth_gb_per_s * 2 == 1800 and "72 GPUs" in nvl72.name
    assert CostModel().prediction_basis("mi300x") == CostModel().prediction_basis("b200") == "prior"


def test_kept_caches_exist():
    """The caches kept on a redeclaration are named by module and function: a rename must update the list."""
    import importlib

    from dcsim.catalog.declared import KEPT_CACHES

    for name in KEPT_CACHES:
        module, _, function = name.rpartition(".")
        assert hasattr(getattr(importlib.import_module(module), function), "cache_clear"), name


def test_an_nvl72_rack_is_one_node_of_72_on_nvlink5():
    """A GB200 NVL72 rack: a declared accelerator on one node type of 72 in the nvlink5-nvl72 domain. A ring
    all-reduce over the 72 reaches the NVLink 5 figure: 900 GB/s per direction times the link efficiency of
    link_efficiency.yaml (7,200 Gb/s x 0.8, as nccl-tests' busbw counts it), less NCCL's latencies."""
    rack = {"id": "gb200-declared", "based_on": "b200", "memory_gib": 186}
    scenario = _scenario(
        [rack],
        accelerator="gb200-declared",
        workload={"kind": "collective", "name": "ar", "op": "all_reduce", "bytes": 8e9, "hosts": ["n-0"]},
    )
    node = scenario["datacenter"]["nodes"][0]
    node.update(accelerators_per_node=72, intra_node="nvlink5-nvl72", accelerator_idle_w=100)
    result = run_scenario(scenario).summary["workloads"]["ar"]
    bound = 900 * 8 * 0.8  # NCCL's per-step latencies over 71 ring steps take a few percent of 8 GB's time
    assert 0.95 * bound <= result["busbw_gbps"] <= bound
