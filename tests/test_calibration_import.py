"""``dcsim calibrate --import-vidur``: Vidur's published GPU layer timings as profile points (a slice of the
files in tests/data/vidur-slice)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dcsim.calibrate.vidur import (
    DATASET,
    SOURCE_PREFIX,
    hot_decode_gemm,
    import_vidur,
    imported_profile,
    kept_tokens,
    read_device,
)
from dcsim.cli import main
from dcsim.compute import CostModel, load_profile
from dcsim.compute.ops import Attention, Matmul, Normalization
from dcsim.compute.profile import Measurement, Profile

SLICE = Path(__file__).parent / "data" / "vidur-slice"
REPO = Path(__file__).resolve().parents[1]


def test_mlp_rows_become_the_gemms_of_one_tp_shard_with_their_source() -> None:
    rows = {(r.op, r.source.split(":")[-1]) for r in read_device(SLICE, "a100") if isinstance(r.op, Matmul)}
    # Llama-2-70B: hidden 8192, 64 heads of 128, 8 KV heads, MLP 28672 (gated); TP 2, 512 tokens
    assert (Matmul(512, (64 + 16) * 128 // 2, 8192, precision="fp16"), "attn_pre_proj") in rows
    assert (Matmul(512, 8192, 64 * 128 // 2, precision="fp16"), "attn_post_proj") in rows
    assert (Matmul(512, 2 * 28672 // 2, 8192, precision="fp16"), "mlp_up_proj") in rows
    assert (Matmul(512, 8192, 28672 // 2, precision="fp16"), "mlp_down_proj") in rows
    first = read_device(SLICE, "a100")[0]
    assert first.source.startswith(f"{SOURCE_PREFIX}compute/a100/meta-llama/Llama-2-70b-hf/mlp.csv:")
    assert first.median_s > 0 and first.min_s <= first.median_s <= first.max_s


def test_milliseconds_are_read_as_seconds() -> None:
    # line 2 of the slice: 70B at TP 2, its QKV product at 1 token took 0.0565 ms (median)
    rows = read_device(SLICE, "a100")
    by_source = {r.source: r for r in rows}
    path = SLICE / "compute/a100/meta-llama/Llama-2-70b-hf/mlp.csv"
    header, line = path.read_text().splitlines()[:2]
    values = dict(zip(header.split(","), line.split(","), strict=True))
    row = by_source[f"{SOURCE_PREFIX}compute/a100/meta-llama/Llama-2-70b-hf/mlp.csv:2:attn_pre_proj"]
    assert row.median_s == pytest.approx(float(values["time_stats.attn_pre_proj.median"]) * 1e-3)


def test_attention_rows_become_decode_and_prefill_ops() -> None:
    ops = {r.op for r in read_device(SLICE, "a100") if isinstance(r.op, Attention)}
    # decode: 8 sequences of 1,024 cached tokens plus the new one; 32 query and 4 KV heads per GPU (TP 2)
    assert Attention(8, 32, 1, 1025, 128, False, 4, "fp16") in ops
    # prefill: a 512-token chunk after 1,024 cached tokens, causal
    assert Attention(1, 32, 512, 1536, 128, True, 4, "fp16") in ops
    # batch 5 and 1,056 cached tokens are off the imported grid
    assert not any(op.batch == 5 or op.kv_len == 1057 for op in ops)


def test_token_grid() -> None:
    assert [t for t in range(1, 600) if kept_tokens(t)] == [*range(1, 17), 32, 64, 128, 200, 256, 512, 520]
    assert all(kept_tokens(t) for t in (1, 7, 16, 32, 256, 512, 712, 768, 4096, 8192))
    assert not any(kept_tokens(t) for t in (24, 40, 600, 1000, 4095, 4352))


def test_decode_gemms_whose_weights_fit_in_l2_are_left_out() -> None:
    # A100 L2: 40 MiB. 8192 x 8192 fp16 = 128 MiB streams from HBM; 1024 x 1024 fp16 = 2 MiB stays hot
    assert not hot_decode_gemm(Matmul(8, 8192, 8192, precision="fp16"), "a100-sxm-80gb")
    assert hot_decode_gemm(Matmul(8, 1024, 1024, precision="fp16"), "a100-sxm-80gb")
    assert not hot_decode_gemm(Matmul(17, 1024, 1024, precision="fp16"), "a100-sxm-80gb")  # not a decode GEMM
    assert not hot_decode_gemm(Matmul(8, 1024, 1024, precision="fp16", phase="bwd"), "a100-sxm-80gb")


def test_a100_profile_from_the_slice(tmp_path: Path) -> None:
    written = import_vidur(SLICE, tmp_path, ("a100",), date="2026-01-01")
    assert written == [tmp_path / "a100-sxm-80gb.json"]
    profile = load_profile(written[0])
    assert profile.device_id == "a100-sxm-80gb" and profile.backend == "cuda"
    assert profile.imported_from == (DATASET,)
    assert profile.basis_note.startswith("measured (imported: Vidur")
    assert profile.peak_tflops["fp16"] == 312 and profile.memory_bandwidth_gb_per_s == 2039
    assert all(p.source.startswith(SOURCE_PREFIX) for p in profile.points)
    # norms are the same op at every TP degree: one point, the median of their medians
    norms = [p for p in profile.points if isinstance(p.op, Normalization) and p.op.rows == 512]
    assert len(norms) == 1 and norms[0].samples == 4  # two norms a row, TP 2 and 8
    assert profile.fits and "matmul/fwd/fp16" in profile.fits
    raw = json.loads(written[0].read_text())
    assert "source" in raw["points"][0]
    # the cost model now prices the A100 from the profile
    model = CostModel([tmp_path])
    assert model.prediction_basis("a100-sxm-80gb") == "measured"


def _own_point(op: Matmul | Normalization, seconds: float) -> Measurement:
    return Measurement(op, seconds, seconds, seconds, 5)


def test_h100_import_merges_with_the_own_measurements(tmp_path: Path) -> None:
    own = load_profile(REPO / "calibration" / "profiles" / "h100-sxm.json")
    own_only = [p for p in own.points if not p.source]
    assert own_only, "the shipped H100 profile keeps points dcsim calibrate measured"
    base = Profile(**{**own.__dict__, "points": tuple(own_only), "imported_from": (), "fits": {}, "fit_version": 0})
    profile, _ = imported_profile(SLICE, "h100", base, date="2026-01-01")
    imported = [p for p in profile.points if p.source]
    kept = [p for p in profile.points if not p.source]
    covered = {p.op.fit_key for p in imported}
    assert imported and kept
    assert not any(p.op.fit_key in covered for p in kept)  # imported points supersede in their classes
    assert {p.op.fit_key for p in own_only} - covered <= {p.op.fit_key for p in kept} | {
        p.op.fit_key for p in own_only if hot_decode_gemm(p.op, "h100-sxm")
    }
    assert profile.basis_note.startswith("measured (dcsim calibrate + imported")
    # importing again replaces the earlier import rather than adding to it
    again, _ = imported_profile(SLICE, "h100", profile, date="2026-01-01")
    assert sorted(map(repr, again.points)) == sorted(map(repr, profile.points))
    assert sum(n.startswith("imported ") for n in again.notes) == 1


def test_cli_imports_into_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(REPO / "calibration" / "profiles" / "h100-sxm.json", tmp_path / "h100-sxm.json")
    assert main(["calibrate", "--import-vidur", str(SLICE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "a100-sxm-80gb.json" in out and "h100-sxm.json" in out


def test_cli_refuses_a_folder_without_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--import-vidur", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--import-vidur" in err[0] and "compute/a100/" in err[0]


def test_tile_flops_round_rows_up_to_whole_tiles() -> None:
    op = Matmul(520, 8192, 8192, precision="fp16")
    assert op.tile_flops(1) == op.flops
    assert op.tile_flops(128) == pytest.approx(op.flops * 640 / 520)
    assert Matmul(512, 64, 64).tile_flops(128) == Matmul(512, 64, 64).flops
    assert op.backward().tile_flops(128) == pytest.approx(op.backward().flops * 640 / 520)
    norm = Normalization("rmsnorm", 520, 8192, "fp16")
    assert norm.tile_flops(128) == norm.flops


def test_gpu_gemm_fits_see_whole_tiles() -> None:
    """The A100's imported GEMMs fit a 128-row tile: a product of 520 rows is priced like one of 640 rows,
    not like one of 512 (measured: 2.13 ms at 512 rows, 2.73 ms at 520, 2.76 ms at 640)."""
    model = CostModel()
    fit = model.device("a100-sxm-80gb").fit_for(Matmul(520, 57344, 8192, precision="fp16"))
    assert fit.tile_rows > 1
    t = {m: model.predict(Matmul(m, 57344, 8192, precision="fp16"), "a100-sxm-80gb") for m in (512, 520, 640)}
    assert t[520] == pytest.approx(t[640], rel=0.02)
    assert t[520] > 1.15 * t[512]


def test_layer_check_on_rows_not_imported() -> None:
    from dcsim.calibrate.layer_check import layer_rows

    rows = layer_rows(SLICE, CostModel().predict)
    # the slice's Llama-2-70B rows at 24 tokens (TP 2 and 8) on the A100 are not imported
    decode = [r for r in rows if r.device_id == "a100-sxm-80gb" and r.tokens == 24]
    assert {r.tp for r in decode} == {2, 8} and all(r.phase == "decode" for r in decode)
    for row in decode:
        assert row.measured_s > 0
        assert abs(row.error_pct) <= 10.0, row
