"""The files a scenario reads, by content: what the sweep cache key adds to the scenario's own text.

A scenario names files by path — a jobs ``trace``, an inference ``traffic.trace``, a topology ``file``
(``datacenter.network.params.path``) — and a run also reads the calibration profiles its accelerators are
costed from. An edited file must give a new key, so :func:`input_digests` hashes (SHA-256) the content of:

- every string value of the scenario that names an existing file, looked up as ``dcsim run`` looks up a
  trace: a shipped serving trace's name (:mod:`dcsim.serving.named_traces`), else beside the scenario file
  first, then from the working directory. Any field that names a file is
  covered this way, without a list of such fields to keep in step with the schema;
- every ``*.json`` profile in the calibration profile folders (:func:`dcsim.compute.predictor.default_profile_dirs`).

:class:`DigestMemo` remembers each file's digest, so a sweep of many points reads each file once; each sweep
uses a fresh memo, so an edit between two sweeps is always seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dcsim.compute.predictor import default_profile_dirs
from dcsim.scenario.files import scenario_file
from dcsim.serving.named_traces import NAMED_TRACES, named_trace_path

#: Longest string looked up as a file name (longer ones cannot be paths on common file systems).
_MAX_PATH_CHARS = 4096
_CHUNK_BYTES = 1 << 20


def _strings(tree: Any) -> Iterator[str]:
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _strings(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from _strings(value)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class DigestMemo:
    """SHA-256 digests of files and the files strings name, remembered for one sweep."""

    def __init__(self) -> None:
        self._named: dict[tuple[str, str], Path | None] = {}
        self._digests: dict[Path, str | None] = {}
        self._profiles: dict[str, Path] | None = None
        self._profile_digests: dict[str, str] | None = None

    def named_file(self, text: str, base_dir: str) -> Path | None:
        """The file ``text`` names (:func:`~dcsim.scenario.files.scenario_file`: beside ``base_dir``, then from the
        working directory), or None."""
        key = (text, base_dir)
        if key not in self._named:
            self._named[key] = self._find(text, base_dir)
        return self._named[key]

    @staticmethod
    def _find(text: str, base_dir: str) -> Path | None:
        if not text.strip() or len(text) > _MAX_PATH_CHARS or "\0" in text or "\n" in text:
            return None
        if text in NAMED_TRACES:  # a shipped serving trace by name (traffic.trace), read from scenarios/traces
            return named_trace_path(text).resolve()
        try:
            candidate = scenario_file(text, base_dir)  # the rule dcsim run reads files by
            return candidate.resolve() if candidate.is_file() else None
        except (OSError, ValueError):  # a name too long for the file system, and the like
            return None

    def digest(self, path: Path) -> str | None:
        """The SHA-256 of ``path``'s content (read once per memo), or None if it cannot be read."""
        if path not in self._digests:
            try:
                self._digests[path] = _file_digest(path)
            except OSError:
                self._digests[path] = None
        return self._digests[path]

    def profiles(self) -> dict[str, Path]:
        """The calibration profiles dcsim would use: the first ``<device>.json`` of each name in the profile
        folders (in search order), by file name."""
        if self._profiles is None:
            self._profiles = {}
            for folder in default_profile_dirs():
                for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
                    self._profiles.setdefault(path.name, path)
        return self._profiles

    def profile_digests(self) -> dict[str, str]:
        """``{'profile:<file name>': sha256}`` of :meth:`profiles` (computed once per memo)."""
        if self._profile_digests is None:
            pairs = ((name, self.digest(path)) for name, path in self.profiles().items())
            self._profile_digests = {f"profile:{name}": digest for name, digest in pairs if digest is not None}
        return self._profile_digests


def input_digests(dumped: Any, base_dir: str, memo: DigestMemo | None = None) -> dict[str, str]:
    """``{name: sha256}`` of the files a scenario reads: each string of ``dumped`` (the scenario as plain data)
    that names a file, under that string, and each calibration profile, under ``profile:<file name>``."""
    memo = memo or DigestMemo()
    found: dict[str, str] = {}
    for text in _strings(dumped):
        path = memo.named_file(text, base_dir)
        digest = None if path is None else memo.digest(path)
        if digest is not None:
            found[text] = digest
    found.update(memo.profile_digests())
    return found
