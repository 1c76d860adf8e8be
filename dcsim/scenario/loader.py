"""Read a scenario from a YAML path or a mapping; collect every problem, then raise them together."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dcsim.catalog import declared_accelerators
from dcsim.cost import node_price
from dcsim.energy import node_power
from dcsim.errors import Problem, UserInputError, short_repr
from dcsim.scenario.accelerators import declared_section, resolve_all
from dcsim.scenario.limits import check_limits
from dcsim.scenario.link_failures import link_problems
from dcsim.scenario.network import build_fabric, with_topology_file
from dcsim.scenario.problems import problems_from, unique
from dcsim.scenario.schema import Datacenter, NodeType, Scenario, ScenarioFile
from dcsim.scenario.workloads import PLANNED_KINDS, WORKLOAD_KINDS
from dcsim.scenario.yamlio import DuplicateKeyError, YamlLimitError, load_yaml
from dcsim.scheduler.placement import resolve_placement
from dcsim.scheduler.policies import resolve_policy

# Modules that register further workload kinds (each calls register_workload_kind on import).
KIND_MODULES: tuple[str, ...] = ("dcsim.scenario.training_spec", "dcsim.scenario.inference_spec")


#: Largest scenario file (bytes) read; a scenario is a few kilobytes, its traces are separate files.
MAX_FILE_BYTES = 8 * 1024 * 1024


def _lines(first: int, again: int) -> str:
    return f"line {first}" if first == again else f"lines {first} and {again}"


def _read_yaml(path: Path) -> Any:
    """The YAML in ``path``; every way it can be unreadable or refused is a :class:`UserInputError`."""
    if path.is_dir():
        raise UserInputError.single(str(path), "is a folder, not a scenario file")
    if not path.is_file():
        raise UserInputError.single(str(path), "scenario file not found")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // 2**20
        raise UserInputError.single(
            str(path), f"{size / 2**20:.0f} MiB is too large for a scenario file (at most {limit} MiB)"
        )
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as error:
        raise UserInputError(
            [
                Problem(d.path, f"duplicate key ({_lines(d.first.line + 1, d.again.line + 1)}); give it once")
                for d in error.duplicates
            ]
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        if isinstance(error, YamlLimitError):
            raise UserInputError.single(str(path), f"refused at {where}: {problem}") from None
        raise UserInputError.single(str(path), f"not valid YAML at {where}: {problem}") from None
    except UnicodeDecodeError:
        raise UserInputError.single(str(path), "not a text file (UTF-8 expected)") from None
    except OSError as error:  # permission denied, an I/O error
        raise UserInputError.single(str(path), f"cannot read the scenario file: {error.strerror or error}") from None


def _workload(raw: Any, index: int) -> tuple[Any, list[Problem]]:
    for module in KIND_MODULES:
        importlib.import_module(module)
    path = f"workloads[{index}]"
    if not isinstance(raw, Mapping):
        return None, [Problem(path, f"must be a mapping with a kind (got {short_repr(raw)})")]
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in WORKLOAD_KINDS:
        available = ", ".join(sorted(WORKLOAD_KINDS))
        if kind in PLANNED_KINDS:
            return None, [
                Problem(
                    f"{path}.kind",
                    f"{kind!r} workloads are not available in this version of dcsim yet (available: {available})",
                )
            ]
        return None, [Problem(f"{path}.kind", f"must be one of {available} (got {short_repr(kind)})")]
    schema = WORKLOAD_KINDS.resolve(kind)
    try:
        return schema.model_validate(dict(raw)), []
    except ValidationError as error:
        return None, problems_from(error, path, schema)


def _scheduler_problems(scenario: ScenarioFile) -> list[Problem]:
    problems = []
    for field, resolve in (("policy", resolve_policy), ("placement", resolve_placement)):
        value = getattr(scenario.scheduler, field)
        try:
            resolve(value)
        except ValueError as error:
            problems.append(Problem(f"scheduler.{field}", str(error)))
        except Exception as error:  # a 'module:Class' runs the module's code, which may raise anything
            problems.append(Problem(f"scheduler.{field}", f"cannot load {short_repr(value)}: {error}"))
    failures = scenario.failures
    storage = scenario.datacenter.storage
    if failures is not None and failures.checkpoint_gb is not None and storage.write_bytes_per_s is None:
        problems.append(
            Problem(
                "failures.checkpoint_gb",
                "needs datacenter.storage.write_gbps (or read_gbps) to turn checkpoint size into time",
            )
        )
    return problems


def _node_problems(datacenter: Datacenter, figures: Callable[[NodeType], object]) -> list[Problem]:
    """One problem per node type for which ``figures`` (power or price) raises ``ValueError("field: why")``."""
    problems = []
    for index, node in enumerate(datacenter.nodes):
        try:
            figures(node)
        except ValueError as error:
            field, _, message = str(error).partition(": ")
            problems.append(Problem(f"datacenter.nodes[{index}].{field}", message))
    return problems


def load_scenario(source: str | Path | Mapping[str, Any], *, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Validate a scenario file (path) or mapping; raise :class:`UserInputError` with every problem.

    ``overrides`` (field path -> value, as ``dcsim run --set``) are written into a copy of the scenario first;
    problems they cause are named ``--set PATH`` (see :mod:`dcsim.scenario.overrides`).
    """
    if isinstance(source, Mapping):
        raw: Any = source
        base_dir = "."
    else:
        path = Path(source)
        raw = _read_yaml(path)
        base_dir = str(path.parent)
    if not overrides or not isinstance(raw, Mapping):
        return validate_scenario(raw, base_dir)
    from dcsim.scenario.overrides import apply_overrides, blame_overrides

    changed = copy.deepcopy(dict(raw))
    apply_overrides(changed, overrides)
    try:
        return validate_scenario(changed, base_dir)
    except UserInputError as error:
        raise blame_overrides(error, overrides) from None


#: What a YAML document that is not a mapping holds, in the words of the file (not Python's type names).
_TOP_LEVEL_KINDS: dict[type, str] = {
    type(None): "nothing: the file is empty",
    list: "list",
    str: "text",
    int: "a number",
    float: "a number",
    bool: "true or false",
}


def validate_scenario(raw: Any, base_dir: str) -> Scenario:
    """Validate a raw scenario mapping whose relative file paths are relative to ``base_dir``.

    The ``accelerators`` it declares are validated first; the rest is validated with them in the catalog
    (:func:`dcsim.catalog.declared_accelerators`)."""
    if not isinstance(raw, Mapping):
        got = _TOP_LEVEL_KINDS.get(type(raw), "another kind of value")
        raise UserInputError.single("", f"a scenario must be a mapping of sections (got {got})")
    specs, problems, broken = declared_section(raw.get("accelerators"))
    with declared_accelerators(resolve_all(specs)):
        try:
            return _validate(raw, base_dir, specs, problems)
        except UserInputError as error:
            # a node type or workload naming a declared accelerator whose entry is wrong: that entry's lines say why
            refs = tuple(f"unknown accelerator {short_repr(acc_id)}" for acc_id in broken)
            kept = [p for p in error.problems if not (refs and p.message.startswith(refs))]
            raise UserInputError(kept or error.problems) from None


def _validate(raw: Mapping[str, Any], base_dir: str, specs: list[Any], declared: list[Problem]) -> Scenario:
    """:func:`validate_scenario` with the declared accelerators in the catalog; ``declared``: the problems of the
    ``accelerators`` section, reported with the others."""
    try:
        top = ScenarioFile.model_validate(dict(raw))
    except ValidationError as error:
        problems = declared + problems_from(error, "", ScenarioFile)
        workloads = raw.get("workloads")
        if isinstance(workloads, list):
            for index, item in enumerate(workloads):
                problems += _workload(item, index)[1]
        raise UserInputError(unique(problems)) from None
    top = top.model_copy(update={"datacenter": with_topology_file(top.datacenter, base_dir)})
    problems = declared + _scheduler_problems(top)
    workloads = []
    for index, item in enumerate(top.workloads):
        workload, found = _workload(item, index)
        problems += found
        workloads.append(workload)
    failures = top.failures
    sized = failures is None or failures.checkpoint_s is not None or failures.checkpoint_gb is not None
    if failures is not None and failures.checkpoint_interval_s is not None and not sized:
        if any(w is not None and w.kind != "training" for w in workloads):
            problems.append(
                Problem(
                    "failures.checkpoint_interval_s",
                    "needs the cost of a checkpoint: checkpoint_s or checkpoint_gb "
                    "(only training workloads size their own, from their model)",
                )
            )
        elif top.datacenter.storage.write_bytes_per_s is None:
            problems.append(
                Problem(
                    "failures.checkpoint_interval_s",
                    "needs datacenter.storage.write_gbps (or read_gbps) to time the training checkpoints",
                )
            )
    names = [w.name for w in workloads if w is not None]
    for index, workload in enumerate(workloads):
        if workload is not None and names.count(workload.name) > 1:
            problems.append(Problem(f"workloads[{index}].name", f"workload names must be unique ({workload.name!r})"))
    if problems:
        raise UserInputError(unique(problems))
    scenario = Scenario(
        name=top.name,
        seed=top.seed,
        duration_s=top.duration_s,
        datacenter=top.datacenter,
        workloads=workloads,
        scheduler=top.scheduler,
        outputs=top.outputs,
        failures=top.failures,
        base_dir=base_dir,
        accelerators=specs,
    )
    check_limits(scenario)  # before anything sized by the scenario (a network graph, a trace) is built
    problems += _node_problems(top.datacenter, node_power) + _node_problems(top.datacenter, node_price)
    if top.datacenter.network is not None or any(w.kind == "collective" for w in workloads):
        try:
            build_fabric(top.datacenter, top.seed)
        except UserInputError as error:
            problems += error.problems
    if not problems:
        problems += [Problem(field, message) for field, message in link_problems(scenario)]
    for index, workload in enumerate(workloads):
        problems += [Problem(f"workloads[{index}].{p.path}", p.message) for p in workload.check(scenario)]
    if problems:
        raise UserInputError(unique(problems))
    return scenario
