"""``dcsim run FILE``: simulate a scenario, print its summary, write results into ``outputs.dir``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from dcsim.cli.options import add_quiet
from dcsim.errors import UserInputError
from dcsim.progress import Stage
from dcsim.run import run_scenario
from dcsim.run.output_folder import OutputExistsError, OutputFolderError, check_target
from dcsim.scenario import load_scenario
from dcsim.scenario.overrides import parse_set_options


def register(subparsers: Any) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="simulate a scenario file",
        description="Simulate a scenario, print its summary and write its results. --set and --seed change the "
        "scenario for this run only; the changed values are validated like values in the file.",
    )
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="set one field for this run, e.g. workloads[0].traffic.rate_per_s=4 or datacenter.nodes[0].count=8 "
        "(VALUE read as YAML: a number, word or [list]; repeatable)",
    )
    parser.add_argument("--seed", type=_seed, help="the run's seed (instead of the scenario's seed)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    parser.add_argument("--out", help="results folder (default: the scenario's outputs.dir or results/NAME)")
    parser.add_argument("--trace", metavar="FILE", help="also write the event log as a Chrome trace JSON")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_quiet(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results folder if it exists (default: refuse)"
    )
    parser.set_defaults(handler=handle)


def _seed(text: str) -> int:
    """``--seed`` values: whole numbers >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 (got {text!r})") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 (got {text!r})")
    return value


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run's ``--set`` values by path, then ``--seed``."""
    changes = parse_set_options(args.sets)
    if args.seed is not None:
        changes["seed"] = args.seed
    return changes


def _fmt(value: Any, unit: str = "", scale: float = 1.0) -> str:
    if value is None:
        return "n/a"
    return f"{value / scale:,.4g}{unit}"


def _dist(stats: dict[str, Any], unit: str, scale: float) -> str:
    return ", ".join(f"{key} {_fmt(stats[key], unit, scale)}" for key in ("p50", "p90", "p99", "mean"))


def _inference_lines(w: dict[str, Any]) -> list[str]:
    served = [
        f"    {w['model']}: {w['requests_completed']:,} of {w['requests']:,} requests served "
        f"({w['requests_dropped']:,} dropped, {w['requests_in_flight']:,} in flight) on up to "
        f"{w['max_live_replicas']} replicas; SLO attainment "
        + ("n/a" if w["slo_attainment"] is None else f"{w['slo_attainment']:.1%}")
    ]
    if w["requests_dropped"]:
        capacity = "; ".join(f"{tokens:,} tokens on {name}" for name, tokens in w.get("kv_capacity_tokens", {}).items())
        served.append(
            f"    warning: {w['requests_dropped']:,} requests dropped: prompt and output longer than a replica's "
            f"KV cache holds ({capacity or 'n/a'})"
        )
    cost = f"${_fmt(w['cost_usd'])} = ${_fmt(w['usd_per_million_tokens'])}"
    if w.get("tokens_counted") == "input":  # an encoder: one forward pass per request, nothing generated
        return [
            *served,
            f"    latency: {_dist(w['ttft_ms'], ' ms', 1.0)}",
            f"    {w['input_tokens_per_s']:,.0f} input tokens/s; {cost} per million input tokens, "
            f"{_fmt(w['energy_kwh'], ' kWh')}",
        ]
    return [
        *served,
        f"    TTFT: {_dist(w['ttft_ms'], ' ms', 1.0)}",
        f"    TPOT: {_dist(w['tpot_ms'], ' ms', 1.0)}",
        f"    {w['throughput_tokens_per_s']:,.0f} generated tokens/s ({w['input_tokens_per_s']:,.0f} input); "
        f"{cost} per million tokens, {_fmt(w['energy_kwh'], ' kWh')}",
    ]


def _training_lines(w: dict[str, Any]) -> list[str]:
    plan = w["plan"]
    keys = ("dp", "tp", "pp", *(("cp",) if plan.get("cp", 1) > 1 else ()), "microbatch_size", "zero_stage", "recompute")
    shape = ", ".join(f"{key} {plan[key]}" for key in keys)
    memory = f"{w['memory_per_accelerator_gb']:.4g} GB per accelerator"
    lines = [f"    {w['model']} on {w['accelerators']} x {w['accelerator']} ({shape}): {w['status']}"]
    if not w["fits_in_memory"]:
        parts = ", ".join(f"{k} {v:.3g}" for k, v in w["memory_breakdown_gb"].items())
        lines.append(f"    does not fit: {memory} ({parts} GB)")
        return lines
    parts = ", ".join(f"{k.removesuffix('_s')} {v:.3g}" for k, v in w["step_breakdown_s"].items())
    lines += [
        f"    step {w['step_time_s']:.4g} s ({parts}); {w['tokens_per_s']:,.0f} tokens/s, "
        f"{w['tflops_per_accelerator']:.4g} TFLOP/s per accelerator, MFU {w['mfu']:.1%}; {memory}",
        f"    {w['steps']:,} steps: time to train {_fmt(w['time_to_train_s'], ' days', 86400)}, "
        f"${_fmt(w['cost_usd'])}, {_fmt(w['energy_kwh'], ' kWh')}",
    ]
    if w.get("network_slowdown", 1.0) > 1.0:
        lines.append(
            f"    slowed {w['network_slowdown']:.4g}x by other jobs on shared links "
            f"(step {w['step_time_shared_s']:.4g} s shared, at worst {w['network_slowdown_max']:.4g}x)"
        )
    return lines


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable rendering of the summary."""
    dc = summary["datacenter"]
    lines = [f"{summary['name']} (seed {summary['seed']}): {_fmt(summary['simulated_time_s'] / 3600, ' h')} simulated"]
    for name, w in summary["workloads"].items():
        lines.append(f"  workload {name} [{w['kind']}]")
        if w["kind"] == "jobs":
            lines.append(
                f"    jobs: {w['jobs_completed']} completed of {w['jobs_submitted']} submitted "
                f"({w['jobs_running']} running, {w['jobs_waiting']} waiting at the end)"
            )
            lines.append(f"    JCT:  {_dist(w['jct_s'], ' h', 3600)}")
            lines.append(f"    wait: {_dist(w['wait_s'], ' h', 3600)}")
            lines.append(
                f"    makespan {_fmt(w['makespan_s'], ' h', 3600)}; {_fmt(w['accelerator_hours'])} accelerator-hours, "
                f"${_fmt(w['cost_usd'])}, {_fmt(w['energy_kwh'], ' kWh')}"
            )
            if "network_slowdown" in w:
                lines.append(f"    network slowdown (shared / alone): {_dist(w['network_slowdown'], 'x', 1.0)}")
        elif w["kind"] == "collective" and w["completed"]:
            lines.append(
                f"    {w['op']} ({w['algorithm']}) over {w['ranks']} ranks, {w['bytes']:.4g} bytes: "
                f"{w['time_s'] * 1e3:.4g} ms, algbw {w['algbw_gbps']:.4g} Gb/s, busbw {w['busbw_gbps']:.4g} Gb/s"
            )
        elif w["kind"] == "collective":
            lines.append("    did not complete before the end of the run")
        elif w["kind"] == "training":
            lines += _training_lines(w)
        elif w["kind"] == "inference":
            lines += _inference_lines(w)
    cost = dc["cost_usd"]
    lines += [
        f"  datacenter: {dc['accelerators']} accelerators, utilization {dc['accelerator_utilization']:.1%}",
        f"    energy {_fmt(dc['energy_kwh'], ' kWh')} (IT {_fmt(dc['it_energy_kwh'], ' kWh')}), "
        f"carbon {_fmt(dc['carbon_kg'], ' kg')}",
        "    cost $" + _fmt(cost["total"]) + " = " + " + ".join(f"{k} {_fmt(cost[k])}" for k in cost if k != "total"),
    ]
    return "\n".join(lines)


def output_error(out_dir: str, error: Exception) -> UserInputError:
    """The one-line ``outputs.dir`` error for a results folder that cannot be written."""
    if isinstance(error, OutputExistsError):
        why = "rerun with --overwrite to replace it, or choose another folder with --out"
        return UserInputError.single("outputs.dir", f"{error} ({why})")
    if isinstance(error, OutputFolderError | ValueError):
        return UserInputError.single("outputs.dir", str(error))
    return UserInputError.single("outputs.dir", f"cannot write results to {out_dir!r}: {error}")


def handle(args: argparse.Namespace) -> int:
    """Run the scenario and write its results (refusing, before the run, a results folder that exists)."""
    with Stage("reading the scenario"):
        scenario = load_scenario(args.scenario, overrides=overrides(args))
    out_dir = args.out or scenario.output_dir
    try:
        check_target(out_dir, args.overwrite)
    except (OSError, ValueError) as error:
        raise output_error(out_dir, error) from None
    if args.trace and os.path.isdir(args.trace):
        raise UserInputError.single("--trace", f"{args.trace} is a folder; give the trace's file name")
    result = run_scenario(scenario, trace=bool(args.trace))
    print(result.summary_json() if args.json else format_summary(result.summary), end="\n" if not args.json else "")
    try:
        with Stage("writing results"):
            result.write(
                out_dir,
                plots=scenario.outputs.plots and not args.no_plots,
                tables=scenario.outputs.tables,
                overwrite=args.overwrite,
            )
    except OSError as error:
        raise output_error(out_dir, error) from None
    if args.trace:
        try:
            result.write_chrome_trace(args.trace)
        except OSError as error:
            raise UserInputError.single("--trace", f"cannot write {args.trace!r}: {error.strerror or error}") from None
    if not args.json:
        print(f"results written to {out_dir}/" + (f"; trace in {args.trace}" if args.trace else ""))
    sys.stdout.flush()
    return 0
