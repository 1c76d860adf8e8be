"""Compare the benchmarks between two checkouts of dcsim: medians of CPU time and AFTER/BEFORE ratios.

    python benchmarks/compare_commits.py BEFORE_ROOT AFTER_ROOT [--pairs 2] [--only compute,jobs] [--log DIR]

BEFORE_ROOT and AFTER_ROOT are repository roots (e.g. git worktrees of the two commits). Each benchmark runs
``--pairs`` times from each root, alternating B, A, B, A so that a change in the machine's load hits both
sides alike. Every run is a fresh process started in its root with ``PYTHONPATH=<root>``, so that root's
``dcsim`` is imported (checked before the runs). The figure compared is the run's CPU time (user + system,
of the process and its waited-for children, from ``getrusage``): on a shared machine it moves far less
than wall time. Imports, catalog loading and each benchmark's set-up are included, since they are part of
what a user waits for.

The table gives, per benchmark, the median CPU seconds BEFORE and AFTER, their ratio, and the noise: the
spread (max / min - 1) of the BEFORE runs and of the AFTER runs. A ratio above 1.05 that exceeds the noise
is a slow-down worth profiling. Each run's own printout is kept in ``--log`` for its figures.

The sizes in ``BENCHMARKS`` make each run take roughly 5-30 s of CPU on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# name -> arguments of benchmarks/bench_<name>.py (sizes chosen for 5-30 s of CPU per run).
BENCHMARKS: dict[str, list[str]] = {
    "compute": ["--ops", "200000"],
    "contention": ["--small"],
    "inference": ["--requests", "300000"],
    "jobs": ["--jobs", "100000", "--repeats", "1"],
    "network": [],
    "plan": ["--nodes", "128"],
    "scheduler": ["--jobs", "100000"],
    "sweep": ["--variants", "96", "--jobs", "300"],
    "training": [],
}


def imported_dcsim(root: Path) -> Path:
    """The ``dcsim`` package file that a run from ``root`` imports."""
    out = subprocess.run(
        [sys.executable, "-c", "import dcsim; print(dcsim.__file__)"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()).resolve()


def run_once(root: Path, name: str, log: Path, label: str) -> tuple[float, float]:
    """Run one benchmark from ``root``: (CPU seconds of the process and its children, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log / f"{name}-{label}.txt", "w") as out:
        done = subprocess.run(
            [sys.executable, f"benchmarks/bench_{name}.py", *BENCHMARKS[name]],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"bench_{name}.py failed in {root} (exit {done.returncode}): see {out.name}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def spread(values: list[float]) -> float:
    """max / min - 1 of repeated runs: the noise between them."""
    return max(values) / min(values) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--pairs", type=int, default=2, help="B, A pairs per benchmark (default 2)")
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--log", type=Path, default=Path("/tmp/compare_commits"), help="where runs' output goes")
    args = parser.parse_args()
    roots = {"B": args.before.resolve(), "A": args.after.resolve()}
    for label, root in roots.items():
        package = imported_dcsim(root)
        if not package.is_relative_to(root):
            raise SystemExit(f"{label}: {root} imports dcsim from {package}")
        print(f"{label}: {root} (dcsim from {package})", flush=True)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    args.log.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        cpu: dict[str, list[float]] = {"B": [], "A": []}
        for pair in range(args.pairs):
            for label in ("B", "A"):
                seconds, wall = run_once(roots[label], name, args.log, f"{label}{pair}")
                cpu[label].append(seconds)
                print(f"  {name:<11} {label}{pair}: CPU {seconds:7.2f} s, wall {wall:7.2f} s", flush=True)
        b, a = statistics.median(cpu["B"]), statistics.median(cpu["A"])
        rows.append((name, b, a, a / b, spread(cpu["B"]), spread(cpu["A"])))
    print(f"\n{'benchmark':<11} {'BEFORE s':>9} {'AFTER s':>9} {'A/B':>6} {'noise B':>8} {'noise A':>8}")
    for name, b, a, ratio, noise_b, noise_a in rows:
        print(f"{name:<11} {b:9.2f} {a:9.2f} {ratio:6.3f} {noise_b:8.1%} {noise_a:8.1%}")


if __name__ == "__main__":
    main()
