"""``dcsim calibrate``: measure this machine with real PyTorch layers, or regenerate the report.

``dcsim calibrate [--quick] [--device cpu|cuda] [--threads N] [--out PATH]`` writes a profile
(default ``calibration/profiles/<device-id>.json``); ``dcsim calibrate --report`` rewrites
``docs/calibration.md`` (held-out errors, end-to-end errors, a predicted-vs-measured plot) from the
profiles, without torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from dcsim.errors import UserInputError

EXIT_NO_TORCH = 2
REPO_ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The calibrate options (shared with ``python -m dcsim.calibrate``)."""
    parser.add_argument("--quick", action="store_true", help="a small grid, no end-to-end models: under two minutes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", default="1", help="torch CPU threads, fixed for the run (default 1)")
    parser.add_argument("--report", action="store_true", help="regenerate docs/calibration.md from profiles")
    parser.add_argument("--out", default=None, help="profile path or folder (with --report: the report path)")
    parser.add_argument("--device-id", default=None, help="profile id (default host-cpu or the GPU's id)")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end model timings")
    parser.add_argument("--budget-s", default=None, help="stop measuring ops after this many seconds")
    parser.add_argument("--profiles", default=None, help="profile folder for --report")
    parser.add_argument(
        "--merge", action="store_true", help="keep the quieter measurement of this run and the existing profile"
    )


def register(subparsers: Any) -> None:
    """Add the ``calibrate`` subcommand."""
    parser = subparsers.add_parser("calibrate", help="time PyTorch layers on this machine; write a profile")
    add_arguments(parser)
    parser.set_defaults(handler=handle)


def _positive_int(value: str, option: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UserInputError.single(option, f"must be a positive integer, not {value!r}") from None
    if number < 1:
        raise UserInputError.single(option, f"must be a positive integer, not {value!r}")
    return number


def _positive_float(value: str, option: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise UserInputError.single(option, f"must be a positive number, not {value!r}") from None
    if not number > 0:
        raise UserInputError.single(option, f"must be a positive number, not {value!r}")
    return number


def _report(args: argparse.Namespace) -> int:
    from dcsim.calibrate.report import write_report

    profiles = Path(args.profiles) if args.profiles else REPO_ROOT / "calibration" / "profiles"
    if not profiles.is_dir():
        raise UserInputError.single("--profiles", f"no such folder: {profiles}")
    out = Path(args.out) if args.out else REPO_ROOT / "docs" / "calibration.md"
    written = write_report(profiles, out)
    print("\n".join(f"wrote {path}" for path in written))
    return 0


def handle(args: argparse.Namespace) -> int:
    """Run the calibration (or the report); exit 2 with one line if torch is missing."""
    if args.device not in ("cpu", "cuda"):
        raise UserInputError.single("--device", f"must be cpu or cuda, not {args.device!r}")
    threads = _positive_int(args.threads, "--threads")
    budget = _positive_float(args.budget_s, "--budget-s") if args.budget_s is not None else 3600.0
    if args.report:
        return _report(args)
    if importlib.util.find_spec("torch") is None:
        print('error: dcsim calibrate needs PyTorch: pip install -e ".[calibrate]"', file=sys.stderr)
        return EXIT_NO_TORCH
    from dcsim.calibrate.harness import RunConfig, run_calibration

    device_id = args.device_id
    if device_id is not None and (not device_id or os.sep in device_id or device_id.startswith(".")):
        raise UserInputError.single("--device-id", f"not a usable file name: {device_id!r}")
    config = RunConfig(
        device=args.device,
        quick=args.quick,
        threads=threads,
        device_id=device_id,
        end_to_end=not (args.no_e2e or args.quick),
        budget_s=budget,
    )
    folder = REPO_ROOT / "calibration" / "profiles"
    if args.out and not Path(args.out).is_dir():
        config.out = Path(args.out)
    else:
        from dcsim.calibrate.harness import cuda_device_id

        if device_id is None and args.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise UserInputError.single("--device", "cuda: torch sees no CUDA device")
            device_id = cuda_device_id(torch.cuda.get_device_name())
        config.out = (Path(args.out) if args.out else folder) / f"{device_id or 'host-cpu'}.json"
    assert config.out is not None
    if args.merge and config.out.is_file():
        from dcsim.compute import ProfileError, load_profile

        try:
            config.merge_with = load_profile(config.out)
        except ProfileError as error:
            raise UserInputError.single("--merge", str(error)) from None
    try:
        run_calibration(config)
    except RuntimeError as error:
        raise UserInputError.single("--device", str(error)) from None
    print(f"wrote {config.out}")
    return 0
