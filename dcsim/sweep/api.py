"""``dcsim.sweep``: evaluate a scenario over a design of parameter values and seeds, into a pandas DataFrame."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario
from dcsim.scenario.paths import set_path
from dcsim.scenario.schema import Scenario
from dcsim.scenario.yamlio import load_yaml
from dcsim.sweep.cache import ResultCache, default_cache_dir, scenario_key
from dcsim.sweep.design import make_design
from dcsim.sweep.evaluate import describe_error, flatten_summary
from dcsim.sweep.executors import EXECUTORS, run_dask, run_local
from dcsim.sweep.inputs import DigestMemo

_DEFAULT: Any = object()  # cache_dir not given: use default_cache_dir()


@dataclass
class Point:
    """One row of the result: a variant (its swept values) under one seed, and what became of it."""

    variant: int
    seed: int
    values: dict[str, Any]
    key: str | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    cached: bool = False
    followers: list[Point] = field(default_factory=list)  # later points with the same key


def read_base(base: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Path | None]:
    """The base scenario as a plain mapping, and the folder of its file (None for a mapping)."""
    if isinstance(base, Mapping):
        return copy.deepcopy(dict(base)), None
    if not isinstance(base, str | Path):
        raise ValueError(f"base: give a scenario file path or mapping (got {type(base).__name__})")
    path = Path(base)
    if not path.is_file():
        raise ValueError(f"base: scenario file not found: {path}")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"base: {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise ValueError(f"base: {path} is not a text file (UTF-8 expected)") from None
    except OSError as error:  # permission denied, an I/O error
        raise ValueError(f"base: cannot read {path}: {error.strerror or error}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"base: {path} must hold a mapping of sections")
    return raw, path.parent


def _absolute_files(tree: Any, folder: Path) -> Any:
    """Strings naming a file next to the base scenario (a trace) made absolute: ``dcsim run`` resolves them
    against the scenario's folder first, and a variant is validated as a mapping."""
    if isinstance(tree, dict):
        return {key: _absolute_files(value, folder) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_absolute_files(value, folder) for value in tree]
    if isinstance(tree, str) and tree and not Path(tree).is_absolute() and (folder / tree).is_file():
        return str((folder / tree).resolve())
    return tree


def seed_list(seeds: int | Sequence[int], base_seed: int) -> list[int]:
    """``seeds=N``: the base scenario's seed and the N-1 after it; a list: those seeds."""
    if isinstance(seeds, bool):
        raise ValueError(f"seeds: give a count >= 1 or a list of seeds (got {seeds!r})")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds: the count must be >= 1 (got {seeds})")
        return [base_seed + offset for offset in range(seeds)]
    chosen = list(seeds)
    if not chosen or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in chosen):
        raise ValueError(f"seeds: a list of seeds must hold whole numbers >= 0 (got {seeds!r})")
    return chosen


def _variant(raw: dict[str, Any], values: Mapping[str, Any], seed: int, folder: Path | None) -> dict[str, Any]:
    mapping = copy.deepcopy(raw)
    for path, value in values.items():
        set_path(mapping, path, copy.deepcopy(value))
    mapping["seed"] = seed
    return _absolute_files(mapping, folder) if folder is not None else mapping


def _check_paths(raw: dict[str, Any], values: Mapping[str, Any], folder: Path | None) -> None:
    """Fail fast, naming the path, when a swept path cannot exist in any variant."""
    if "seed" in values:
        raise ValueError("seed: sweep seeds with seeds=N or seeds=[...], not as a swept path")
    probe = _variant(raw, values, int(raw.get("seed", 0) or 0), folder)  # raises ValueError("PATH: why")
    try:
        load_scenario(probe)
    except UserInputError as error:
        for problem in error.problems:
            for path in values:
                inside = path == problem.path or path.startswith((problem.path + ".", problem.path + "["))
                if inside and problem.message.startswith("unknown field"):
                    raise ValueError(f"{path}: not a scenario field ({problem.message})") from None


def _column_value(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list | tuple) else value


class _NoBar:
    """Stands in for a tqdm bar when tqdm is not installed (it comes with the ``sweep`` extra)."""

    def update(self, count: int) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar with rate and ETA on stderr, shown only when ``enabled`` and stderr is a terminal."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not show, unit="point", desc="dcsim sweep", smoothing=0.1)


def prepare_points(
    raw: dict[str, Any], design: list[dict[str, Any]], seeds: list[int], folder: Path | None
) -> list[Point]:
    """Validate every (variant, seed) and key it; a variant that fails validation gets its error and is not run.

    The validated scenarios are not kept (a few kB each, too much for 10^5 points): :class:`Scenarios` rebuilds
    each when it is dispatched.
    """
    points = []
    memo = DigestMemo()  # each input file is read once per sweep
    for variant, values in enumerate(design):
        for seed in seeds:
            point = Point(variant, seed, values)
            try:
                point.key = scenario_key(load_scenario(_variant(raw, values, seed, folder)), memo=memo)
            except (UserInputError, ValueError) as error:
                point.error = describe_error(error)
            points.append(point)
    return points


class Scenarios(Sequence[Scenario]):
    """The validated scenarios of ``points``, built one at a time as an executor asks for them."""

    def __init__(self, raw: dict[str, Any], points: list[Point], folder: Path | None) -> None:
        self.raw, self.points, self.folder = raw, points, folder

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        point = self.points[index]
        return load_scenario(_variant(self.raw, point.values, point.seed, self.folder))


def sweep(
    base: str | Path | Mapping[str, Any],
    grid: Mapping[str, Any] | None = None,
    samples: int | None = None,
    design: str = "grid",
    seeds: int | Sequence[int] = 1,
    executor: str = "local",
    workers: int | None = None,
    cluster: Any = None,
    cache_dir: str | Path | None = _DEFAULT,
    progress: bool = True,
    design_seed: int = 0,
) -> pd.DataFrame:
    """Evaluate ``base`` (a scenario file or mapping) at every point of a design, under each seed.

    ``grid`` maps field paths (``workloads[0].synthetic.rate_per_h``) to lists of values, or, for
    ``design='random'``/``'lhs'``, to lists or ``{low, high}`` ranges drawn ``samples`` times with
    ``design_seed``. ``seeds``: a count (the base seed and the ones after it) or a list. ``executor``:
    ``'local'`` (processes; ``workers`` defaults to every core; one worker runs in this process) or ``'dask'``
    (a new ``LocalCluster`` of ``workers``, or ``cluster``: a ``tcp://HOST:8786`` address, a ``Client`` or a
    cluster object). Finished points are cached in ``cache_dir`` (default :func:`default_cache_dir`; None:
    no cache), so a re-run or a resumed sweep computes only new points.

    Returns one row per (variant, seed): ``variant``, ``seed``, the swept values (one column per path), ``error``
    (None, or why the point failed: a failing variant never stops the others) and the summary's figures as
    dotted columns (``datacenter.cost_usd.total``). ``attrs`` holds ``params`` (the swept paths) and the counts
    ``computed``, ``cached`` and ``failed``. Bad arguments raise ``ValueError("FIELD: why")``.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: must be one of {', '.join(EXECUTORS)} (got {executor!r})")
    if cluster is not None and executor != "dask":
        raise ValueError("cluster: only the dask executor connects to a cluster (use executor='dask')")
    raw, folder = read_base(base)
    base_seed = raw.get("seed", 0)
    seeds_used = seed_list(seeds, base_seed if isinstance(base_seed, int) and not isinstance(base_seed, bool) else 0)
    variants = make_design(grid, design, samples, design_seed)
    if variants:
        _check_paths(raw, variants[0], folder)
    points = prepare_points(raw, variants, seeds_used, folder)
    cache = None if cache_dir is None else ResultCache(default_cache_dir() if cache_dir is _DEFAULT else cache_dir)

    todo: list[Point] = []
    first: dict[str, Point] = {}
    for point in points:
        if point.key is None:
            continue
        if point.key in first:
            first[point.key].followers.append(point)
            continue
        first[point.key] = point
        point.summary = cache.get(point.key) if cache is not None else None
        point.cached = point.summary is not None
        if not point.cached:
            todo.append(point)

    bar = _progress_bar(len(points), len(points) - len(todo) - sum(len(p.followers) for p in todo), progress)

    def done(index: int, summary: dict[str, Any] | None, error: str | None) -> None:
        point = todo[index]
        point.summary, point.error = summary, error
        if summary is not None and cache is not None and point.key is not None:
            cache.put(point.key, summary)
        bar.update(1 + len(point.followers))

    try:
        scenarios = Scenarios(raw, todo, folder)
        if executor == "dask" and todo:
            run_dask(scenarios, workers, cluster, done)
        elif todo:
            run_local(scenarios, workers, done)
    finally:
        bar.close()
    for point in first.values():
        for follower in point.followers:
            follower.summary, follower.error, follower.cached = point.summary, point.error, point.cached
    return results_frame(points, list(grid or {}), computed=len(todo))


def results_frame(points: list[Point], params: list[str], computed: int) -> pd.DataFrame:
    """The DataFrame of a sweep: ``variant, seed, <params>, error, <figures>`` in that column order."""
    rows = []
    for point in points:
        row: dict[str, Any] = {"variant": point.variant, "seed": point.seed}
        row.update({path: _column_value(point.values.get(path)) for path in params})
        row["error"] = point.error
        for name, value in flatten_summary(point.summary or {}).items():
            row.setdefault(name, value)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=_columns(rows, params))
    frame.attrs.update(
        params=params,
        computed=computed,
        cached=sum(1 for p in points if p.cached),
        failed=sum(1 for p in points if p.error is not None),
    )
    return frame


def _columns(rows: list[dict[str, Any]], params: list[str]) -> list[str]:
    columns = ["variant", "seed", *params, "error"]
    seen = set(columns)
    for row in rows:
        for name in row:
            if name not in seen:
                seen.add(name)
                columns.append(name)
    return columns
