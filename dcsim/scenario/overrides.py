"""Command-line overrides of scenario fields: ``--set PATH=VALUE`` and ``--seed N`` of ``dcsim run``.

A PATH uses the contract's syntax (``workloads[0].traffic.rate_per_s``, ``datacenter.nodes[0].count``); a
VALUE is read as YAML (``8``, ``1e-3``, ``[1, 2]``, ``fifo``). Overrides are written into the scenario's raw
mapping before validation, so an overridden value is checked like one written in the file; problems are
reported with the path prefixed by ``--set`` (or ``--seed``).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import yaml

from dcsim.errors import Problem, UserInputError
from dcsim.scenario.paths import set_path
from dcsim.scenario.yamlio import load_yaml


def parse_set_options(options: Sequence[str]) -> dict[str, Any]:
    """``['workloads[0].traffic.rate_per_s=4']`` -> ``{'workloads[0].traffic.rate_per_s': 4}`` (later wins).

    Raises :class:`UserInputError` naming ``--set`` (and the path) for a malformed option or value.
    """
    overrides: dict[str, Any] = {}
    for option in options:
        path, equals, text = option.partition("=")
        path = path.strip()
        if not equals or not path:
            raise UserInputError.single(
                "--set", f"expected PATH=VALUE, e.g. workloads[0].traffic.rate_per_s=4 (got {option!r})"
            )
        try:
            overrides[path] = load_yaml(text.strip()) if text.strip() else None
        except yaml.YAMLError:
            raise UserInputError.single(f"--set {path}", f"cannot read value {text.strip()!r} as YAML") from None
    return overrides


def apply_overrides(raw: MutableMapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Write ``overrides`` (path -> value) into the raw scenario mapping ``raw`` in place.

    Raises :class:`UserInputError` naming ``--set PATH`` when a path is malformed or cannot exist (an index
    past the end of a list, a key under a value that is not a mapping).
    """
    problems = []
    for path, value in overrides.items():
        try:
            set_path(raw, path, value)
        except ValueError as error:
            _, _, message = str(error).partition(": ")
            problems.append(Problem(option_path(path), message or str(error)))
    if problems:
        raise UserInputError(problems)


def option_path(path: str) -> str:
    """How a problem with an overridden field is named: ``--seed`` or ``--set PATH``."""
    return "--seed" if path == "seed" else f"--set {path}"


def blame_overrides(error: UserInputError, overrides: Mapping[str, Any]) -> UserInputError:
    """``error`` with each problem at, inside or above an overridden path renamed ``--set PATH`` (the problem's
    own path), so a user sees which option caused it."""
    problems = []
    for problem in error.problems:
        caused = any(_related(problem.path, path) for path in overrides)
        problems.append(Problem(option_path(problem.path), problem.message) if caused else problem)
    return UserInputError(problems)


def _related(problem_path: str, override: str) -> bool:
    if not problem_path:
        return False
    return any(
        a == b or a.startswith((b + ".", b + "[")) for a, b in ((problem_path, override), (override, problem_path))
    )
