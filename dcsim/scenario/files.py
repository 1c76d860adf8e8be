"""Where the files a scenario names (traces, a ``topology: file`` graph) are looked up."""

from __future__ import annotations

from pathlib import Path


def scenario_file(name: str, base_dir: str) -> Path:
    """The file ``name`` of a scenario whose folder is ``base_dir``.

    An absolute path is kept as is; a relative one is relative to the scenario's folder. For scenarios
    written before that rule, a relative path that is missing there but exists relative to the working
    directory is taken from the working directory. A file found in neither place is reported beside the
    scenario.
    """
    path = Path(name)
    if path.is_absolute():
        return path
    beside = Path(base_dir) / path
    return path if not beside.exists() and path.exists() else beside
