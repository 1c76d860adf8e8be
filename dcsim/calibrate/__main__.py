"""``python -m dcsim.calibrate``: the same as ``dcsim calibrate`` without the other subcommands (for
machines where only torch, numpy and PyYAML are installed, like the GPU run of calibration/run_gpu.sh)."""

from __future__ import annotations

import argparse
import sys

from dcsim.cli.calibrate_cmd import add_arguments, handle
from dcsim.errors import UserInputError


def main() -> int:
    """Parse the calibrate options and run."""
    parser = argparse.ArgumentParser(prog="python -m dcsim.calibrate")
    add_arguments(parser)
    try:
        return handle(parser.parse_args())
    except UserInputError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
