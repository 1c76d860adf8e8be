"""``dcsim calibrate``: measure this machine with real PyTorch layers, or regenerate the report.

``dcsim calibrate [--quick] [--device cpu|cuda] [--threads N] [--out PATH]`` writes a profile
(default ``calibration/profiles/<device-id>.json``); ``dcsim calibrate --report`` rewrites
``docs/calibration.md`` (held-out errors, end-to-end errors, a predicted-vs-measured plot) from the
profiles, without torch. ``dcsim calibrate --import-vidur DIR`` imports Vidur's published A100 and H100 layer
timings into those devices' profiles (:mod:`dcsim.calibrate.vidur`), without torch either.
"""

from __future__ import annotations

import argparse
import datetime
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
    parser.add_argument(
        "--report",
        action="store_true",
        help="regenerate docs/calibration.md from profiles (with Vidur's files, from --import-vidur or"
        " ../shared/data/vidur-profiles, whole layers on rows not imported are compared too)",
    )
    parser.add_argument("--out", default=None, help="profile path or folder (with --report: the report path)")
    parser.add_argument("--device-id", default=None, help="profile id (default host-cpu or the GPU's id)")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end model timings")
    parser.add_argument(
        "--e2e-only",
        action="store_true",
        help="time only the end-to-end models and add them to the existing profile (its points and fits unchanged;"
        " a case it has keeps the quieter of the two measurements)",
    )
    parser.add_argument(
        "--models",
        default=None,
        metavar="LIST",
        help="end-to-end cases of these models only (comma-separated, e.g. llama-h512-l8,gpt2-small)",
    )
    parser.add_argument("--budget-s", default=None, help="stop measuring ops after this many seconds")
    parser.add_argument("--profiles", default=None, help="profile folder for --report")
    parser.add_argument(
        "--import-vidur",
        default=None,
        metavar="DIR",
        help="import Vidur's published A100/H100 layer timings from DIR (e.g. ../shared/data/vidur-profiles) into"
        " the a100-sxm-80gb and h100-sxm profiles (merged with the points dcsim measured there); no torch needed",
    )
    parser.add_argument(
        "--merge", action="store_true", help="keep the quieter measurement of this run and the existing profile"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="time GEMMs of at most 16 rows and decode attention with their weights / KV cache cold (out of cache)",
    )
    parser.add_argument(
        "--precisions",
        default=None,
        metavar="LIST",
        help="measure only these precisions (comma-separated, e.g. fp32,bf16; default: all the device runs)",
    )
    parser.add_argument(
        "--remeasure",
        default=None,
        metavar="CLASSES",
        help="measure only these op classes (comma-separated, e.g. matmul_skinny,attention_decode) and replace"
        " their points in the existing profile (with --merge: keep the quieter of the old and new measurement of"
        " each point); the rest of it is kept",
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


def _op_classes(value: str) -> tuple[str, ...]:
    """The op classes named by ``--remeasure``: fit classes some op of the calibration grids has."""
    from dcsim.calibrate.grid import known_op_classes

    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    known = known_op_classes()
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise UserInputError.single(
            "--remeasure", f"unknown op class {', '.join(unknown) or repr(value)} (known: {', '.join(sorted(known))})"
        )
    return names


def _e2e_model_list(value: str, device: str) -> tuple[str, ...]:
    """The models named by ``--models``: each one an end-to-end case of the device."""
    from dcsim.calibrate.e2e_models import E2E_CPU, E2E_CUDA

    known = [case[0] for case in (E2E_CUDA if device == "cuda" else E2E_CPU)]
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        shown = ", ".join(unknown) or repr(value)
        raise UserInputError.single(
            "--models", f"no end-to-end case for {shown} on {device} (cases: {', '.join(known)})"
        )
    return names


def _report(args: argparse.Namespace) -> int:
    from dcsim.calibrate.report import write_report

    profiles = Path(args.profiles) if args.profiles else REPO_ROOT / "calibration" / "profiles"
    if not profiles.is_dir():
        raise UserInputError.single("--profiles", f"no such folder: {profiles}")
    out = Path(args.out) if args.out else REPO_ROOT / "docs" / "calibration.md"
    vidur = Path(args.import_vidur) if args.import_vidur else REPO_ROOT.parent / "shared" / "data" / "vidur-profiles"
    written = write_report(profiles, out, vidur if vidur.is_dir() else None)
    print("\n".join(f"wrote {path}" for path in written))
    return 0


def _import_vidur(args: argparse.Namespace) -> int:
    """``--import-vidur DIR``: write the imported profiles into ``--out`` (a folder) or calibration/profiles."""
    from dcsim.calibrate.vidur import DEVICES, import_vidur

    root = Path(args.import_vidur)
    gpus = [gpu for gpu in DEVICES if (root / "compute" / gpu).is_dir()]
    if not gpus:
        known = ", ".join(f"compute/{gpu}/" for gpu in DEVICES)
        raise UserInputError.single("--import-vidur", f"{root} holds none of {known}")
    folder = Path(args.out) if args.out else REPO_ROOT / "calibration" / "profiles"
    if folder.exists() and not folder.is_dir():
        raise UserInputError.single("--out", f"with --import-vidur, must be a folder: {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        written = import_vidur(root, folder, gpus)
    except (OSError, ValueError, KeyError) as error:
        raise UserInputError.single("--import-vidur", f"{type(error).__name__}: {error}") from None
    print("\n".join(f"wrote {path}" for path in written))
    return 0


def _precision_list(value: str) -> tuple[str, ...]:
    """The precisions named by ``--precisions`` (each one the calibration knows)."""
    from dcsim.compute.ops import BYTES_PER_ELEMENT

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in BYTES_PER_ELEMENT]
    if not names or unknown:
        known = ", ".join(BYTES_PER_ELEMENT)
        raise UserInputError.single(
            "--precisions", f"unknown precision {', '.join(unknown) or repr(value)} (known: {known})"
        )
    return names


def handle(args: argparse.Namespace) -> int:
    """Run the calibration (or the report); exit 2 with one line if torch is missing."""
    if args.device not in ("cpu", "cuda"):
        raise UserInputError.single("--device", f"must be cpu or cuda, not {args.device!r}")
    threads = _positive_int(args.threads, "--threads")
    budget = _positive_float(args.budget_s, "--budget-s") if args.budget_s is not None else 3600.0
    if args.report:
        return _report(args)
    if args.import_vidur is not None:
        return _import_vidur(args)
    if importlib.util.find_spec("torch") is None:
        print('error: dcsim calibrate needs PyTorch: pip install -e ".[calibrate]"', file=sys.stderr)
        return EXIT_NO_TORCH
    from dcsim.calibrate.harness import PrecisionError, RunConfig, run_calibration, run_end_to_end_only

    device_id = args.device_id
    if device_id is not None and (not device_id or os.sep in device_id or device_id.startswith(".")):
        raise UserInputError.single("--device-id", f"not a usable file name: {device_id!r}")
    classes = _op_classes(args.remeasure) if args.remeasure is not None else ()
    models = _e2e_model_list(args.models, args.device) if args.models is not None else ()
    if args.e2e_only and (classes or args.no_e2e):
        raise UserInputError.single(
            "--e2e-only", "measures the end-to-end models only: not with --remeasure or --no-e2e"
        )
    precisions = _precision_list(args.precisions) if args.precisions is not None else ()
    if precisions and classes and not args.merge:
        raise UserInputError.single(
            "--precisions",
            "with --remeasure, needs --merge (--remeasure alone drops those classes' points of every precision)",
        )
    config = RunConfig(
        device=args.device,
        quick=args.quick,
        threads=threads,
        device_id=device_id,
        end_to_end=not (args.no_e2e or args.quick or classes),
        budget_s=budget,
        classes=classes,
        cold=args.cold,
        precisions=precisions,
        e2e_models=models,
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
    if classes and not config.out.is_file():
        raise UserInputError.single("--remeasure", f"needs an existing profile to update: no {config.out}")
    if args.e2e_only and not config.out.is_file():
        raise UserInputError.single("--e2e-only", f"needs an existing profile to add to: no {config.out}")
    if (args.merge or classes or args.e2e_only) and config.out.is_file():
        from dcsim.compute import ProfileError, load_profile
        from dcsim.compute.profile import without_classes

        option = "--remeasure" if classes else "--e2e-only" if args.e2e_only else "--merge"
        try:
            config.merge_with = load_profile(config.out)
        except ProfileError as error:
            raise UserInputError.single(option, str(error)) from None
        if classes:
            if not args.merge:
                config.merge_with = without_classes(config.merge_with, classes)
            how = " with cold operands" if args.cold else ""
            kept = " (quieter measurement kept)" if args.merge else ""
            config.notes.append(f"re-measured {', '.join(classes)}{how} on {datetime.date.today().isoformat()}{kept}")
    try:
        if args.e2e_only:
            run_end_to_end_only(config)
        else:
            run_calibration(config)
    except PrecisionError as error:
        raise UserInputError.single("--precisions", str(error)) from None
    except RuntimeError as error:
        raise UserInputError.single("--device", str(error)) from None
    except ValueError as error:
        if not args.e2e_only:
            raise
        # a profile of another device or thread count
        raise UserInputError.single("--e2e-only", str(error)) from None
    print(f"wrote {config.out}")
    return 0
