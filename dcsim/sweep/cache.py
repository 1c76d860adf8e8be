"""The sweep result cache: one small JSON file per finished point, keyed by what determines its result.

The key is the SHA-256 of the canonical JSON of the validated scenario (defaults filled in, seed included)
together with the dcsim version and the content of every file the scenario reads (traces, a topology file,
the calibration profiles: :mod:`dcsim.sweep.inputs`), so an edited scenario, another seed, a trace edited in
place or another dcsim release is a new point, while the same point spelled differently (a default written
out or left implicit) is the same one. A file is written to a temporary name and renamed into place, so a
sweep killed mid-write leaves no torn entry and a restart recomputes exactly the points without a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dcsim._version import __version__
from dcsim.scenario.schema import Scenario
from dcsim.sweep.inputs import DigestMemo, input_digests


def default_cache_dir() -> Path:
    """``$DCSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/dcsim/sweeps`` (``~/.cache/dcsim/sweeps``)."""
    if os.environ.get("DCSIM_CACHE_DIR"):
        return Path(os.environ["DCSIM_CACHE_DIR"])
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "dcsim" / "sweeps"


def canonical_json(scenario: Scenario) -> str:
    """The validated scenario as canonical JSON (sorted keys, no whitespace)."""
    return _canonical(scenario.model_dump(mode="json"))


def _canonical(dumped: dict[str, Any]) -> str:
    """A dumped scenario as canonical JSON (see :func:`canonical_json`)."""
    return json.dumps(dumped, sort_keys=True, separators=(",", ":"), allow_nan=False)


def scenario_key(scenario: Scenario, version: str = __version__, memo: DigestMemo | None = None) -> str:
    """The cache key of a point: hex SHA-256 of the dcsim version, the canonical scenario and the content of
    every file it reads (:func:`dcsim.sweep.inputs.input_digests`; ``memo`` reuses digests across points)."""
    dumped = scenario.model_dump(mode="json")
    canonical = _canonical(dumped)
    inputs = input_digests(dumped, scenario.base_dir, memo)
    payload = json.dumps({"dcsim_version": version, "scenario": canonical, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResultCache:
    """Summaries of finished points under ``root/<key[:2]>/<key>.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached summary of ``key``, or None (an unreadable entry counts as missing)."""
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("summary"), dict):
            return None
        return entry["summary"]

    def put(self, key: str, summary: dict[str, Any]) -> Path:
        """Store ``summary`` for ``key`` atomically (temporary file, then rename)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"key": key, "dcsim_version": __version__, "summary": summary}, allow_nan=False)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.json")) if self.root.is_dir() else 0
