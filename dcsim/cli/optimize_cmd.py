"""``dcsim optimize FILE --set ... --minimize METRIC --constraint 'METRIC>=X'``: the best feasible variant."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dcsim.cli.options import add_quiet
from dcsim.cli.sweep_cmd import EXIT_INTERRUPTED, INTERRUPTED, exists_error, parse_set, write_table
from dcsim.errors import UserInputError
from dcsim.run.output_folder import OutputExistsError


def register(subparsers: Any) -> None:
    """Add the ``optimize`` subcommand."""
    parser = subparsers.add_parser(
        "optimize",
        help="the cheapest or fastest variant of a sweep space that meets constraints",
        description="Evaluates the sweep space (--set, as in dcsim sweep; cached), averages each variant over its "
        "seeds and picks the best feasible one. Variants that fail validation are skipped with their reason.",
    )
    parser.add_argument("scenario", help="base scenario YAML file")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUES", help="swept field")
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--minimize", metavar="METRIC", help="summary figure to minimize, e.g. datacenter.cost_usd.total")
    goal.add_argument("--maximize", metavar="METRIC", help="summary figure to maximize")
    parser.add_argument(
        "--constraint", action="append", default=[], metavar="METRIC>=X", help="on the mean over seeds (repeatable)"
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds per point (default 1)")
    parser.add_argument("--design", choices=("grid", "random", "lhs"), default="grid", help="design (default grid)")
    parser.add_argument("--samples", type=int, help="points of a random or lhs design")
    parser.add_argument("--executor", choices=("local", "dask"), default="local", help="local processes or Dask")
    parser.add_argument("--workers", type=int, help="worker processes (default: every core)")
    parser.add_argument("--cluster", metavar="tcp://HOST:8786", help="address of a running Dask scheduler")
    parser.add_argument("--out", help="also write every variant's verdict to this .csv/.parquet table")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the --out table if it exists (default: refuse)"
    )
    add_quiet(parser, "--no-progress")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Search, print the best variant and the tally; exit 1 if no variant is feasible."""
    from dcsim.sweep import optimize

    if args.out and Path(args.out).suffix not in (".csv", ".parquet"):
        raise UserInputError.single("--out", f"must end in .csv or .parquet (got {args.out!r})")
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise exists_error(Path(args.out))
    grid = dict(parse_set(option) for option in args.sets)
    try:
        result = optimize(
            args.scenario,
            grid,
            minimize=args.minimize,
            maximize=args.maximize,
            constraints=args.constraint,
            seeds=args.seeds,
            design=args.design,
            samples=args.samples,
            executor=args.executor,
            workers=args.workers,
            cluster=args.cluster,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except ValueError as error:
        field, _, message = str(error).partition(": ")
        flag = f"--{field}" if field in ("minimize", "maximize", "constraint") else field
        raise UserInputError.single(flag, message) if message else UserInputError.single("", field) from None
    points = result.points
    failed = int(points["reason"].str.startswith("failed").sum())
    feasible = int(points["feasible"].sum())
    print(
        f"{len(points)} variants: {feasible} feasible, {len(points) - feasible - failed} violate a constraint, "
        f"{failed} skipped (invalid or failed)"
    )
    if args.out:
        try:
            written = write_table(points, Path(args.out), overwrite=args.overwrite)
        except OutputExistsError as error:
            raise exists_error(error.target) from None
        except OSError as error:
            raise UserInputError.single("--out", f"cannot write {args.out!r}: {error}") from None
        print(f"verdicts written to {written}")
    if result.best is None:
        print("no variant meets the constraints")
        return 1
    best = result.best
    print(
        f"best ({'lowest' if result.sense == 'min' else 'highest'} {result.objective}): {best[result.objective]:,.6g}"
    )
    for name in result.params:
        print(f"  {name} = {best[name]}")
    return 0
