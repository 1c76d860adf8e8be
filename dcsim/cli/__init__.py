"""The ``dcsim`` command line: one module per subcommand, each with ``register(subparsers)``.

A subcommand's handler returns an exit status. User mistakes raise
:class:`dcsim.errors.UserInputError`, printed here as one line per problem with exit status 2. Ctrl-C
prints ``interrupted`` and exits with status 130. Progress bars go to stderr while the handler runs, when
stderr is a terminal and the subcommand's ``--quiet`` is absent.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dcsim._version import __version__
from dcsim.errors import UserInputError
from dcsim.progress import showing_progress, terminal_progress

# Subcommand modules under dcsim.cli; each defines register(subparsers) -> None and sets `handler`.
COMMAND_MODULES = (
    "run_cmd",
    "check_cmd",
    "catalog_cmd",
    "policies_cmd",
    "calibrate_cmd",
    "net_cmd",
    "trace_cmd",
    "plan_cmd",
    "sweep_cmd",
    "report_cmd",
    "optimize_cmd",
)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = _Parser(
        prog="dcsim",
        description="Discrete-event datacenter simulator for ML workloads",
        epilog="Exit status: 0 done, 2 invalid input (one line per problem), 130 interrupted (Ctrl-C). Long "
        "commands draw a progress bar on stderr when it is a terminal; their -q/--quiet turns it off.",
    )
    parser.add_argument("--version", action="version", version=f"dcsim {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"dcsim.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dcsim`` console script."""
    try:
        args = build_parser().parse_args(argv)
        with showing_progress(terminal_progress(bool(getattr(args, "quiet", False)))):
            return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except UserInputError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
