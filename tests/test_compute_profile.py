"""Profile files: round trip, and malformed files named in the error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcsim.compute import ProfileError, load_profile, save_profile

FIXTURE = Path(__file__).parent / "data" / "compute" / "fixture-cpu.json"


def test_round_trip(tmp_path):
    profile = load_profile(FIXTURE)
    save_profile(profile, tmp_path / "copy.json")
    again = load_profile(tmp_path / "copy.json")
    assert again == profile


def test_malformed_profiles_are_reported(tmp_path):
    raw = json.loads(FIXTURE.read_text())
    raw["schema"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ProfileError, match="schema must be 1"):
        load_profile(tmp_path / "bad.json")
    del raw["schema"]
    raw = {**raw, "schema": 1}
    del raw["points"]
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ProfileError, match="KeyError"):
        load_profile(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ProfileError, match=r"broken\.json"):
        load_profile(tmp_path / "broken.json")


def test_page_fault_time_counts_only_allocations_above_the_threshold():
    from dataclasses import replace

    from dcsim.compute import Embedding, Matmul

    profile = replace(load_profile(FIXTURE), page_fault_s_per_byte=1e-9, mmap_threshold_bytes=32 << 20)
    small = Matmul(128, 768, 768)  # 393 kB output
    assert profile.fault_seconds(small) == 0.0
    table = Embedding(128, 50257, 768).backward()  # a fresh 154 MB gradient table
    assert profile.fault_seconds(table) == pytest.approx(50257 * 768 * 4 * 1e-9)
    assert replace(profile, page_fault_s_per_byte=0.0).fault_seconds(table) == 0.0
