"""Runs that could never finish: failure storms, checkpoint loops, and jobs a quota never lets start.

The rules, each refused by ``check`` with a line naming the field:

- **Failure storm.** The cluster fails at ``accelerators / accelerator_mtbf + nodes / node_mtbf`` per
  second; over the shortest the run can last (its ``duration_s``, else the longest of a synthetic stream's
  arrivals and its mean job, or an inference workload's traffic) that is the number of failures the run
  simulates, each one a job killed and requeued. More than :data:`MAX_EXPECTED_FAILURES` is refused.
- **No progress.** A job of ``g`` accelerators fails at ``lambda = g / accelerator_mtbf + nodes /
  node_mtbf``; to keep its work it must run a whole checkpoint interval ``tau`` plus the checkpoint ``c``
  and its restart ``r`` without failing, which takes ``exp(lambda (tau + c + r)) - 1`` failures on average
  (``tau`` is the whole job without checkpoints). Over ``L / tau`` intervals of an ``L``-second job, more
  than :data:`MAX_FAILURES_PER_JOB` is refused: such a job restarts forever.
- **Checkpoint loop.** A checkpoint interval shorter than the time to write one checkpoint spends more
  time checkpointing than working (an interval of 1e-6 s with 10 s checkpoints makes every job 1e7 times
  longer); it is refused.
- **Quota.** A team's quota smaller than one of its jobs leaves that job waiting forever.
- **Autoscaler ticks.** An autoscaler wakes every ``interval_s`` for as long as its traffic lasts; more
  than :data:`MAX_AUTOSCALE_TICKS` wake-ups (~4 us each) is refused.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dcsim.errors import Problem, UserInputError
from dcsim.scenario.bounds import upper
from dcsim.scenario.estimate import as_float
from dcsim.scheduler.failures import MAX_FAILURE_EVENTS

#: Failures a run may be expected to simulate: half of what stops a run, so that a run near the limit
#: does not stop by chance.
MAX_EXPECTED_FAILURES = MAX_FAILURE_EVENTS // 2

if TYPE_CHECKING:
    from dcsim.scenario.schema import Scenario

#: Expected failures before one job finishes: past this it spends its life restarting.
MAX_FAILURES_PER_JOB = 1_000
#: Autoscaler wake-ups in a run (~4 us each: ~40 s).
MAX_AUTOSCALE_TICKS = 10_000_000


def feasibility_problems(scenario: Scenario) -> list[Problem]:
    """Every rule of the module that the scenario breaks, one problem each."""
    checkpoints = _checkpoint_problems(scenario)  # the root cause where they apply: no failure rule on top
    return (checkpoints or _failure_problems(scenario)) + _quota_problems(scenario) + _tick_problems(scenario)


def checkpoint_cost_s(scenario: Scenario) -> float | None:
    """Seconds to write one checkpoint, when the scenario gives it (``checkpoint_s`` or ``checkpoint_gb`` at
    the storage's write bandwidth); None when training workloads size their own from the model."""
    failures = scenario.failures
    if failures is None:
        return None
    if failures.checkpoint_s is not None:
        return failures.checkpoint_s
    write = scenario.datacenter.storage.write_bytes_per_s
    if failures.checkpoint_gb is not None and write:
        return failures.checkpoint_gb * 1e9 / write
    return None


def _checkpoint_problems(scenario: Scenario) -> list[Problem]:
    failures = scenario.failures
    cost = checkpoint_cost_s(scenario)
    if failures is None or cost is None or not isinstance(failures.checkpoint_interval_s, float):
        return []
    if not math.isfinite(cost):  # a checkpoint_gb past float range: the time check names it
        return []
    interval = failures.checkpoint_interval_s
    if interval >= cost:
        return []
    return [
        Problem(
            "failures.checkpoint_interval_s",
            f"{interval:.3g} s of work between checkpoints that take {cost:.3g} s each: jobs would spend "
            f"{cost / interval:.3g} times as long writing checkpoints as working; give at least {cost:.3g} s "
            "(the checkpoint time), or auto",
        )
    ]


def _rates(scenario: Scenario) -> tuple[float, float]:
    """Failure rates (1/s) of one accelerator and of one node."""
    failures = scenario.failures
    assert failures is not None
    per_accelerator = 1.0 / (failures.accelerator_mtbf_h * 3600.0) if failures.accelerator_mtbf_h else 0.0
    per_node = 1.0 / (failures.node_mtbf_h * 3600.0) if failures.node_mtbf_h else 0.0
    return per_accelerator, per_node


def shortest_run_s(scenario: Scenario) -> float:
    """A lower bound on the simulated time of the run (s): ``duration_s``, else what its workloads need."""
    if scenario.duration_s is not None:
        return scenario.duration_s
    shortest = 0.0
    for workload in scenario.workloads:
        synthetic = getattr(workload, "synthetic", None)
        if synthetic is not None:
            arrivals = 0.5 * (as_float(synthetic.count) - 1) / synthetic.rate_per_second
            mean = synthetic.duration_s.mean
            shortest = max(shortest, arrivals, mean if math.isfinite(mean) else 0.0)
        traffic = getattr(workload, "traffic", None)
        if traffic is not None and traffic.duration_s is not None:
            shortest = max(shortest, traffic.duration_s)
    return shortest


def _failure_problems(scenario: Scenario) -> list[Problem]:
    if scenario.failures is None:
        return []
    per_accelerator, per_node = _rates(scenario)
    nodes = scenario.datacenter.nodes
    accelerator_rate = per_accelerator * sum(as_float(n.accelerators) for n in nodes)
    node_rate = per_node * sum(as_float(n.count) for n in nodes)
    field = "failures.accelerator_mtbf_h" if accelerator_rate >= node_rate else "failures.node_mtbf_h"
    run_s = shortest_run_s(scenario)
    events = (accelerator_rate + node_rate) * run_s
    if events > MAX_EXPECTED_FAILURES:
        return [
            Problem(
                field,
                f"the cluster fails {accelerator_rate + node_rate:.3g} times per second; a run of at least "
                f"{run_s:.3g} s would simulate ~{events:.3g} failures; "
                f"dcsim handles up to ~{MAX_EXPECTED_FAILURES:.0e}",
            )
        ]
    most = max(n.accelerators_per_node for n in nodes)
    problems = []
    for index, workload in enumerate(scenario.workloads):
        synthetic = getattr(workload, "synthetic", None)
        if synthetic is None or not math.isfinite(synthetic.duration_s.mean):
            continue
        gpus = max(1.0, upper(synthetic.gpus))
        rate = gpus * per_accelerator + math.ceil(gpus / most) * per_node
        expected, needed_s = _failures_per_job(scenario, rate, gpus, synthetic.duration_s.mean, per_accelerator)
        if expected > MAX_FAILURES_PER_JOB:
            where = "failures.checkpoint_interval_s" if scenario.failures.checkpoint_interval_s else field
            problems.append(
                Problem(
                    where,
                    f"a job of workloads[{index}] ({gpus:g} accelerators, {synthetic.duration_s.mean:.3g} s) fails "
                    f"every {1 / rate:.3g} s on average but must run {needed_s:.3g} s without failing to keep "
                    f"its work: it would fail ~{expected:.3g} times before it finishes "
                    f"(dcsim refuses more than {MAX_FAILURES_PER_JOB:,})",
                )
            )
    return problems


def _failures_per_job(
    scenario: Scenario, rate: float, gpus: float, length_s: float, per_accelerator: float
) -> tuple[float, float]:
    """(expected failures before a job of ``length_s`` finishes, failure-free time each step needs)."""
    failures = scenario.failures
    assert failures is not None
    cost = checkpoint_cost_s(scenario) or 0.0
    interval: float | None = None
    if isinstance(failures.checkpoint_interval_s, float):
        interval = failures.checkpoint_interval_s
    elif failures.checkpoint_interval_s == "auto" and cost > 0 and per_accelerator > 0:
        from dcsim.scheduler.checkpointing import young_daly_interval_s

        job_mtbf_s = 1.0 / (per_accelerator * gpus)
        interval = young_daly_interval_s(cost, job_mtbf_s) if job_mtbf_s > 0 else None
    if interval is None or interval >= length_s:
        interval, cost = length_s, 0.0
    needed_s = interval + cost + failures.restart_s
    return length_s / interval * math.expm1(min(rate * needed_s, 700.0)), needed_s


def _team_jobs(workload: Any, base_dir: str) -> list[tuple[str, int]]:
    """(team, accelerators) of the largest job of each team in a workload (traces are read)."""
    if workload.kind == "training":
        return [(workload.team or "", workload.parallelism.plan().world_size)]
    if workload.kind != "jobs":
        return []
    if workload.synthetic is not None:
        return [(workload.team or "", math.ceil(upper(workload.synthetic.gpus)))]
    try:
        jobs = workload.read_trace(base_dir)
    except UserInputError:
        return []  # reported by the workload's own check
    largest: dict[str, int] = {}
    for job in jobs:
        team = job.user or workload.team or ""
        largest[team] = max(largest.get(team, 0), job.gpus)
    return list(largest.items())


def _quota_problems(scenario: Scenario) -> list[Problem]:
    quotas = scenario.scheduler.quotas
    if not quotas:
        return []
    problems = []
    for workload in scenario.workloads:
        for team, gpus in _team_jobs(workload, scenario.base_dir):
            quota = quotas.get(team)
            if quota is not None and gpus > quota:
                problems.append(
                    Problem(
                        f"scheduler.quotas.{team}",
                        f"{quota} accelerators, but workload {workload.name!r} has jobs of up to {gpus} "
                        f"accelerators for team {team}: they could never start",
                    )
                )
    return problems


def _tick_problems(scenario: Scenario) -> list[Problem]:
    problems = []
    for index, workload in enumerate(scenario.workloads):
        autoscale = getattr(workload, "autoscale", None)
        if autoscale is None or workload.traffic.duration_s is None:
            continue
        run_s = workload.traffic.duration_s
        if scenario.duration_s is not None:
            run_s = min(run_s, scenario.duration_s)
        ticks = run_s / autoscale.interval_s
        if ticks > MAX_AUTOSCALE_TICKS:
            problems.append(
                Problem(
                    f"workloads[{index}].autoscale.interval_s",
                    f"every {autoscale.interval_s:.3g} s over {run_s:.3g} s of traffic is {ticks:.3g} autoscaler "
                    f"wake-ups; dcsim handles up to ~{MAX_AUTOSCALE_TICKS:.0e}",
                )
            )
    return problems
