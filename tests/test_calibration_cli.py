"""`dcsim calibrate`: input errors exit 2 with one line, the report from a profile folder, and a tiny
smoke run of the harness (no timing assertions)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dcsim.cli import main
from dcsim.compute import Matmul, Pointwise, load_profile

FIXTURES = Path(__file__).parent / "data" / "compute"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "zero"], "error: --threads: must be a positive integer, not 'zero'"),
        (["--threads", "0"], "error: --threads: must be a positive integer, not '0'"),
        (["--device", "tpu"], "error: --device: must be cpu or cuda, not 'tpu'"),
        (["--budget-s", "-3"], "error: --budget-s: must be a positive number, not '-3'"),
        (["--report", "--profiles", "/nonexistent/dir"], "error: --profiles: no such folder: /nonexistent/dir"),
        (["--remeasure", "matmul_thin"], "error: --remeasure: unknown op class matmul_thin (known: add, attention,"),
        (["--remeasure", "matmul", "--out", "/nonexistent/p.json"], "error: --remeasure: needs an existing profile"),
        (["--precisions", "fp31"], "error: --precisions: unknown precision fp31 (known: fp64, fp32,"),
        (
            ["--precisions", "fp32", "--remeasure", "matmul_gemv"],
            "error: --precisions: with --remeasure, needs --merge",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, capsys):
    assert main(["calibrate", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_a_precision_the_device_does_not_measure_is_one_line_and_exit_2(tmp_path, capsys):
    """``int4`` is a precision dcsim prices but the CPU calibration has no kernel for: no profile is written."""
    pytest.importorskip("torch")
    out = tmp_path / "host-cpu.json"
    assert main(["calibrate", "--quick", "--precisions", "int4", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --precisions: int4 not measured on cpu (measured: fp32, bf16, int8)"]
    assert not out.exists()


def test_missing_torch_is_one_line_and_exit_2(monkeypatch, capsys):
    import dcsim.cli.calibrate_cmd as cmd

    monkeypatch.setattr(cmd.importlib.util, "find_spec", lambda name: None)
    assert main(["calibrate", "--quick"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: dcsim calibrate needs PyTorch: pip install -e ".[calibrate]"'
    ]


def test_report_from_a_profile_folder(tmp_path, capsys):
    out = tmp_path / "calibration.md"
    assert main(["calibrate", "--report", "--profiles", str(FIXTURES), "--out", str(out)]) == 0
    text = out.read_text()
    assert "## fixture-cpu" in text and "Held-out error per op type" in text
    assert "| a100-sxm-80gb | prior |" in text
    assert (tmp_path / "calibration_fixture-cpu.png").stat().st_size > 0


def test_harness_smoke_run(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import dcsim.calibrate.harness as harness

    grid = [(Matmul(32, 32, 8), True), (Pointwise("add", 1024), True)]
    monkeypatch.setattr(harness, "_grid_for", lambda device, precision, quick: grid)
    config = harness.RunConfig(
        quick=True, out=tmp_path / "p.json", end_to_end=False, precisions=("fp32",), log=lambda line: None
    )
    harness.run_calibration(config)
    profile = load_profile(tmp_path / "p.json")
    assert profile.threads == 1 and profile.device_id == "host-cpu"
    assert sorted(p.op.fit_key for p in profile.points) == [
        "add/bwd/fp32",
        "add/fwd/fp32",
        "matmul/bwd/fp32",
        "matmul/fwd/fp32",
    ]
    assert all(p.p10_s <= p.median_s <= p.p90_s and p.samples >= 1 for p in profile.points)
    assert "clock=thread_cpu_time" in profile.notes


def test_torch_reference_models_match_dcsim_parameter_counts():
    pytest.importorskip("torch")
    from dcsim.calibrate.torch_models import build_torch_model
    from dcsim.models import TransformerConfig, get_model

    configs = [
        get_model("resnet50"),
        TransformerConfig("d", 2, 64, 4, 256, 500, 32, tied_embeddings=True),
        TransformerConfig("e", 2, 64, 4, 256, 500, 32, family="encoder", token_types=2, tied_embeddings=True),
    ]
    for config in configs:
        module = build_torch_model(config)
        count = sum(p.numel() for p in module.parameters())
        assert count == config.param_count(), config.name


def test_remeasure_replaces_only_the_named_classes(tmp_path, monkeypatch, capsys):
    """``--remeasure matmul_skinny`` measures the grid's skinny GEMMs anew and replaces their points, even where
    the old point was faster (it was timed another way); every other point is kept as it was."""
    pytest.importorskip("torch")
    import dcsim.calibrate.harness as harness
    from dcsim.compute.profile import Measurement, save_profile

    skinny, wide = Matmul(4, 64, 32), Matmul(64, 64, 32)
    monkeypatch.setattr(harness, "_grid_for", lambda device, precision, quick: [(skinny, False), (wide, False)])
    out = tmp_path / "host-cpu.json"
    config = harness.RunConfig(quick=True, out=out, end_to_end=False, precisions=("fp32",), log=lambda line: None)
    old = harness.run_calibration(config)
    fake = [Measurement(p.op, 1e-12, 1e-12, 1e-12, 1) for p in old.points]  # impossibly fast old points
    save_profile(dataclasses.replace(old, points=tuple(fake)), out)
    assert main(["calibrate", "--quick", "--remeasure", "matmul_skinny", "--out", str(out)]) == 0
    points = {p.op: p.median_s for p in load_profile(out).points}
    assert points[wide] == 1e-12  # kept
    assert points[skinny] > 1e-9  # measured anew
    assert "re-measured matmul_skinny on" in " ".join(load_profile(out).notes)
    # with --merge the quieter of old and new is kept: the impossibly fast old point stays
    save_profile(dataclasses.replace(old, points=tuple(fake)), out)
    assert main(["calibrate", "--quick", "--remeasure", "matmul_skinny", "--merge", "--out", str(out)]) == 0
    merged = load_profile(out)
    assert {p.op: p.median_s for p in merged.points} == {wide: 1e-12, skinny: 1e-12}
    assert "re-measured matmul_skinny on 20" in " ".join(merged.notes) and "(quieter measurement kept)" in " ".join(
        merged.notes
    )


def test_streamed_operands_are_timed_cold():
    """A decode step reads each layer's weights and each sequence's KV cache once, from memory: with
    ``cold`` their cases rotate through copies of at least COLD_BYTES, each call on its own copy; wide
    GEMMs stay hot."""
    pytest.importorskip("torch")
    from dcsim.calibrate.cases import COLD_BYTES, build_case, cold_copies, cold_operand_bytes
    from dcsim.compute import Attention

    skinny, decode = Matmul(8, 3072, 768), Attention(8, 12, 1, 140, 64, False, None, "fp32")
    for op in (skinny, decode):
        assert cold_copies(op) * cold_operand_bytes(op) >= COLD_BYTES
    assert cold_copies(Matmul(512, 3072, 768)) == 1 and cold_copies(Attention(1, 12, 128, 128, 64)) == 1
    case = build_case(Matmul(1, 64, 64), torch_device(), cold=True)
    outputs = [case.forward() for _ in range(3)]
    assert not outputs[0].equal(outputs[1]) and not outputs[1].equal(outputs[2])  # other weights each call
    hot = build_case(Matmul(1, 64, 64), torch_device())  # the default: one operand, timed hot
    assert hot.forward().equal(hot.forward())


def torch_device():
    import torch

    return torch.device("cpu")
