"""The hardware catalog: required ids, a source for every figure, the `dcsim catalog` listing."""

import json

import pytest

from dcsim.catalog import load_catalog
from dcsim.cli import main

ACCELERATORS = [
    "a100-sxm-80gb",
    "h100-sxm",
    "h200-sxm",
    "v100-sxm-32gb",
    "l4",
    "t4",
    "tpu-v4",
    "tpu-v5e",
    "cpu-generic",
]
INTERCONNECTS = ["nvswitch-a100", "nvswitch-h100", "nvlink-v100", "pcie4", "pcie5", "ici-tpu-v4"]


def test_contract_ids_exist():
    catalog = load_catalog()
    assert set(ACCELERATORS) <= set(catalog.accelerators)
    assert set(INTERCONNECTS) <= set(catalog.interconnects)


@pytest.mark.parametrize("accelerator_id", ACCELERATORS)
def test_every_figure_has_a_source(accelerator_id):
    acc = load_catalog().accelerator(accelerator_id)
    for field in ("peak_tflops", "memory_gib", "memory_bandwidth_gb_per_s", "interconnect", "idle_w", "max_w"):
        assert acc.source.get(field), f"{accelerator_id}.{field} has no source"
    assert acc.peak_tflops and all(v > 0 for v in acc.peak_tflops.values())
    assert acc.interconnect in load_catalog().interconnects


def test_datasheet_figures():
    """Spot checks against shared/reference/datasheets.md (NVIDIA and Google documents)."""
    catalog = load_catalog()
    assert catalog.accelerator("a100-sxm-80gb").peak_flops("bf16") == 312e12
    assert catalog.accelerator("h100-sxm").peak_tflops["fp8"] == 1979
    assert catalog.accelerator("h200-sxm").memory_bandwidth_gb_per_s == 4800
    assert catalog.accelerator("tpu-v4").max_w == 192
    assert catalog.interconnect("nvswitch-a100").bandwidth_gb_per_s * 2 == 600


def test_missing_precision_names_the_supported_ones():
    with pytest.raises(KeyError, match=r"v100-sxm-32gb has no bf16 units \(supported: fp16, fp32, fp64\)"):
        load_catalog().accelerator("v100-sxm-32gb").peak_flops("bf16")


def test_unknown_id_lists_known_ones():
    with pytest.raises(KeyError, match=r"unknown accelerator id 'a100' \(known: a100-sxm-40gb, a100-sxm-80gb"):
        load_catalog().accelerator("a100")


def test_catalog_command_lists_ids_and_sources(capsys):
    assert main(["catalog", "--sources"]) == 0
    out = capsys.readouterr().out
    for item in ACCELERATORS + INTERCONNECTS:
        assert item in out
    assert "NVIDIA A100 Tensor Core GPU datasheet" in out


def test_catalog_json(capsys):
    assert main(["catalog", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["accelerators"]["h100-sxm"]["max_w"] == 700
