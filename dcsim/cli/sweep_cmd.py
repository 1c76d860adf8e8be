"""``dcsim sweep FILE --set PATH=V1,V2 ...``: run a scenario over a design of values and seeds, write a table."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dcsim.cli.options import add_quiet
from dcsim.errors import UserInputError
from dcsim.run.output_folder import OutputExistsError, staged_file
from dcsim.scenario.yamlio import load_yaml

_RANGE = re.compile(r"^\s*([-+]?[0-9.]+(?:e[-+]?\d+)?)\s*\.\.\s*([-+]?[0-9.]+(?:e[-+]?\d+)?)\s*$", re.IGNORECASE)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
INTERRUPTED = "interrupted: finished points are in the cache; run the same command again to resume"
_OPEN = "[{("
_CLOSE = "]})"


def register(subparsers: Any) -> None:
    """Add the ``sweep`` subcommand."""
    parser = subparsers.add_parser(
        "sweep",
        help="run a scenario over a grid, random or Latin-hypercube design of parameter values",
        description="Each --set PATH=VALUES sweeps one field (contract path syntax, e.g. "
        "workloads[0].synthetic.rate_per_h=2,4,8). VALUES is a comma-separated list (each item read as YAML), "
        "or a range LOW..HIGH for --design random/lhs.",
    )
    parser.add_argument("scenario", help="base scenario YAML file")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUES", help="swept field")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per point: the base seed and the next N-1")
    parser.add_argument("--design", choices=("grid", "random", "lhs"), default="grid", help="design (default grid)")
    parser.add_argument("--samples", type=int, help="points of a random or lhs design")
    parser.add_argument("--design-seed", type=int, default=0, help="seed of the random/lhs draws (default 0)")
    parser.add_argument("--executor", choices=("local", "dask"), default="local", help="local processes or Dask")
    parser.add_argument("--workers", type=int, help="worker processes (default: every core)")
    parser.add_argument("--cluster", metavar="tcp://HOST:8786", help="address of a running Dask scheduler")
    parser.add_argument("--out", help="results table, .csv or .parquet (default: results/<scenario>-sweep.csv)")
    parser.add_argument(
        "--cache-dir",
        help="result cache folder (default: $DCSIM_CACHE_DIR, else $XDG_CACHE_HOME/dcsim/sweeps, "
        "else ~/.cache/dcsim/sweeps)",
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    add_quiet(parser, "--no-progress")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the --out table if it exists (default: refuse)"
    )
    parser.set_defaults(handler=handle)


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets, so ``[1,2],[3,4]`` is two items."""
    items, depth, start = [], 0, 0
    for position, char in enumerate(text):
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:position])
            start = position + 1
    items.append(text[start:])
    return items


def parse_set(option: str) -> tuple[str, Any]:
    """``'PATH=2,4,8'`` -> ``(PATH, [2, 4, 8])``; ``'PATH=2..8'`` -> ``(PATH, {'low': 2, 'high': 8})``."""
    path, equals, values = option.partition("=")
    path = path.strip()
    if not equals or not path or not values.strip():
        raise UserInputError.single(
            "--set", f"expected PATH=VALUES, e.g. workloads[0].parallelism.tp=1,2,4 (got {option!r})"
        )
    match = _RANGE.match(values)
    if match:
        low, high = (load_yaml(group) for group in match.groups())
        return path, {"low": low, "high": high}
    parsed = []
    for item in _split_top_level(values):
        try:
            parsed.append(load_yaml(item.strip()))
        except yaml.YAMLError:
            raise UserInputError.single(f"--set {path}", f"cannot read value {item.strip()!r}") from None
    return path, parsed


def write_table(frame: pd.DataFrame, out: Path, *, overwrite: bool = True) -> Path:
    """Write ``frame`` as CSV or Parquet by suffix, whole or not at all (a temporary file moved into place);
    without pyarrow, CSV beside the asked-for path (said on stderr). An existing file is replaced, or, without
    ``overwrite``, refused with :class:`~dcsim.run.output_folder.OutputExistsError`."""
    if out.suffix == ".parquet":
        try:
            with staged_file(out, overwrite=overwrite) as staged:
                frame.to_parquet(staged, index=False)
            return out
        except ImportError:
            fallback = out.with_suffix(".csv")
            print(
                f"note: Parquet needs pyarrow (pip install 'dcsim[sweep]'); wrote CSV to {fallback} instead",
                file=sys.stderr,
            )
            out = fallback
    with staged_file(out, overwrite=overwrite) as staged:
        frame.to_csv(staged, index=False)
    return out


def exists_error(out: Path) -> UserInputError:
    """The one-line refusal of an ``--out`` table that exists (sweep and optimize)."""
    why = "rerun with --overwrite to replace it, or choose another file with --out"
    return UserInputError.single("--out", f"{out} already exists ({why})")


def handle(args: argparse.Namespace) -> int:
    """Run the sweep, write the table, print what happened."""
    from dcsim.sweep import sweep

    grid = dict(parse_set(option) for option in args.sets)
    out = Path(args.out or f"results/{Path(args.scenario).stem}-sweep.csv")
    if "\0" in str(out):
        raise UserInputError.single("--out", "a file name cannot contain a NUL character")
    if out.suffix not in (".csv", ".parquet"):
        raise UserInputError.single("--out", f"must end in .csv or .parquet (got {str(out)!r})")
    if out.exists() and not args.overwrite:
        raise exists_error(out)
    if args.cache_dir and args.no_cache:
        raise UserInputError.single("--cache-dir", "cannot be combined with --no-cache")
    options: dict[str, Any] = {} if not (args.cache_dir or args.no_cache) else {"cache_dir": args.cache_dir}
    try:
        frame = sweep(
            args.scenario,
            grid=grid,
            samples=args.samples,
            design=args.design,
            seeds=args.seeds,
            executor=args.executor,
            workers=args.workers,
            cluster=args.cluster,
            progress=not args.quiet,
            design_seed=args.design_seed,
            **options,
        )
    except ValueError as error:
        field, _, message = str(error).partition(": ")
        raise UserInputError.single(field if message else "", message or field) from None
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        written = write_table(frame, out, overwrite=args.overwrite)
    except OutputExistsError as error:
        raise exists_error(error.target) from None
    except OSError as error:
        raise UserInputError.single("--out", f"cannot write {str(out)!r}: {error}") from None
    attrs = frame.attrs
    print(
        f"{len(frame)} points ({frame['variant'].nunique()} variants x {frame['seed'].nunique()} seeds): "
        f"{attrs['computed']} computed, {attrs['cached']} from the cache, {attrs['failed']} failed"
    )
    for message in frame["error"].dropna().unique()[:5]:
        print(f"  failed: {message}")
    print(f"results written to {written}")
    return 0
