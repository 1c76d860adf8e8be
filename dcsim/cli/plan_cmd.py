"""``dcsim plan FILE``: list the valid parallel plans of a scenario's training workload, best first."""

from __future__ import annotations

import argparse
from typing import Any

from dcsim.cli.options import add_quiet
from dcsim.cost import busy_accelerator_usd_per_s
from dcsim.errors import UserInputError
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric, network_config
from dcsim.scenario.schema import Scenario

COLUMNS = (
    "dp",
    "tp",
    "pp",
    "cp",
    "microbatch_size",
    "schedule",
    "zero_stage",
    "recompute",
    "fits_in_memory",
    "memory_per_accelerator_gb",
    "step_time_s",
    "mfu",
    "time_to_train_s",
    "cost_usd",
)


def register(subparsers: Any) -> None:
    """Add the ``plan`` subcommand."""
    parser = subparsers.add_parser(
        "plan",
        help="rank the parallel plans (dp, tp, pp, cp, microbatch, zero, recompute) of a training workload",
        description="Enumerate every valid parallel plan for a scenario's training workload on its accelerators "
        "and rank them by time to train or by cost; plans that do not fit in memory are listed last, marked, "
        "with their memory and without a time (they are not priced).",
    )
    parser.add_argument("scenario", help="scenario YAML file with a kind: training workload")
    parser.add_argument("--workload", help="name of the training workload (default: the first one)")
    parser.add_argument("--by", choices=("time", "cost"), default="time", help="rank by time to train or by cost")
    parser.add_argument("--accelerators", type=int, help="plan for this many accelerators (default: all of the pool)")
    parser.add_argument("--top", type=int, default=20, help="rows to print (default 20; 0 prints all)")
    parser.add_argument("--out", help="write every plan to this CSV file")
    add_quiet(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Rank the plans and print the best ones."""
    scenario = load_scenario(args.scenario)
    with scenario.catalog_scope():  # the accelerators the scenario declares
        return _plan(args, scenario)


def _plan(args: argparse.Namespace, scenario: Scenario) -> int:
    """:func:`handle` for a validated scenario, its declared accelerators in the catalog."""
    from dcsim.parallel.comm import CommModel
    from dcsim.parallel.search import rank_plans
    from dcsim.run.training_runner import pool_accelerators
    from dcsim.scenario.training_spec import TrainingWorkload

    trainings = [w for w in scenario.workloads if isinstance(w, TrainingWorkload)]
    if args.workload is not None:
        trainings = [w for w in trainings if w.name == args.workload]
    if not trainings:
        what = f"named {args.workload!r}" if args.workload else "of kind training"
        raise UserInputError.single("--workload", f"the scenario has no workload {what}")
    spec = trainings[0]
    pool = spec.pool(scenario)
    assert pool is not None, "validated by TrainingWorkload.check"
    accelerator, available = pool
    count = args.accelerators or available
    if not 1 <= count <= available:
        raise UserInputError.single("--accelerators", f"must be between 1 and {available} (the {accelerator} pool)")
    node = next(n for n in scenario.datacenter.nodes if n.accelerator == accelerator)
    fabric = build_fabric(scenario.datacenter, scenario.seed)
    names = pool_accelerators(scenario, accelerator)[:count]
    server_of = {acc: server for server, accs in fabric.servers.items() for acc in accs}
    comm = CommModel(fabric.graph, network_config(scenario.datacenter).routing, scenario.seed)
    setup = spec.setup(accelerator)
    tokens = float(spec.tokens) if spec.tokens is not None else float(spec.steps or 0) * setup.tokens_per_step
    ranked = rank_plans(
        setup,
        names,
        comm,
        server_of,
        node.accelerators_per_node,
        tokens=tokens,
        usd_per_accelerator_s=busy_accelerator_usd_per_s(node, scenario.datacenter),
        by=args.by,
    )
    table = ranked.table
    if table.empty:
        print(f"no valid plan for {spec.name} on {count} x {accelerator}")
        return 0
    if args.out:
        try:
            table.to_csv(args.out, index=False)
        except OSError as error:
            raise UserInputError.single("--out", f"cannot write {args.out!r}: {error}") from None
    fitting = int(table["fits_in_memory"].sum())
    print(
        f"{spec.name}: {len(table)} valid plans on {count} x {accelerator} ({fitting} fit in memory and are "
        f"priced), ranked by {'time to train' if args.by == 'time' else 'cost'}"
    )
    shown = table if args.top == 0 else table.head(args.top)
    view = shown.loc[:, list(COLUMNS)].copy()
    view["time_to_train_s"] = (view["time_to_train_s"] / 86400).map(lambda d: f"{d:.3g} d" if d == d else "-")
    view = view.rename(columns={"time_to_train_s": "time_to_train", "memory_per_accelerator_gb": "memory_gb"})
    print(view.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        print(f"all {len(table)} plans written to {args.out}")
    return 0
