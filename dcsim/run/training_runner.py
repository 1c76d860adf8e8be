"""Runs a ``kind: training`` workload as one gang job on the shared cluster scheduler.

Two fidelity levels (``docs/training.md``): when the scheduler places the job, one iteration is priced in
detail on the accelerators it got (:func:`dcsim.parallel.evaluate_plan`: the pipeline simulated microbatch
by microbatch, collectives as flows on the datacenter network) and cached per placement; the cluster then
advances the whole run as one job phase of ``steps * step_time_s`` (plus checkpoints, failures and
restarts, as for any job). A restart on other accelerators re-prices the remaining steps there.
The step is priced with this job's own traffic; other jobs on shared links then slow it (and it them)
through the run's shared network (:mod:`dcsim.scheduler.contention`), from the bytes its steps send
(:func:`dcsim.parallel.step_traffic.step_transfers`); the summary's ``network_slowdown`` is the result.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import replace
from typing import Any

import pandas as pd

from dcsim.engine.simulation import Simulation
from dcsim.errors import UserInputError
from dcsim.parallel.comm import CommModel
from dcsim.parallel.evaluate import PlanEvaluation, evaluate_plan
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.step import TrainingSetup
from dcsim.parallel.step_traffic import step_transfers
from dcsim.run.context import RunContext
from dcsim.run.runner import Runner, RunServices
from dcsim.run.shared_network import shared_network
from dcsim.scenario.estimate import MAX_SIMULATED_S, SIMULATED_TIME_LIMIT, number
from dcsim.scenario.network import build_fabric, network_config
from dcsim.scenario.schema import Scenario
from dcsim.scenario.training_spec import TrainingWorkload
from dcsim.scheduler.checkpointing import Checkpointing
from dcsim.scheduler.cluster import Cluster
from dcsim.scheduler.contention import StepTraffic
from dcsim.scheduler.dispatcher import ClusterScheduler
from dcsim.scheduler.shared_network import SharedNetwork
from dcsim.workloads.jobs import Job


class TrainingRunner(Runner[TrainingWorkload]):
    """Submits the training job at ``arrival_s``; prices its steps where it is placed."""

    def __init__(
        self, spec: TrainingWorkload, sim: Simulation, scheduler: ClusterScheduler, scenario: Scenario
    ) -> None:
        self.spec = spec
        self.sim = sim
        self.scheduler = scheduler
        self.done = sim.env.event()
        pool = spec.pool(scenario)
        assert pool is not None, "validated by TrainingWorkload.check"
        self.accelerator = pool[0]
        self.setup: TrainingSetup = spec.setup(self.accelerator)
        self.plan: ParallelPlan = spec.parallelism.plan()
        fabric = build_fabric(scenario.datacenter, scenario.seed)
        self.comm = CommModel(fabric.graph, network_config(scenario.datacenter).routing, scenario.seed)
        self.server_of = {acc: server for server, accs in fabric.servers.items() for acc in accs}
        self.fabric_names = fabric_names(scheduler.cluster, fabric.servers)
        self.steps = spec.steps or math.ceil(float(spec.tokens or 0) / self.setup.tokens_per_step)
        self._by_placement: dict[tuple[str, ...], PlanEvaluation] = {}
        self.placements: list[tuple[float, PlanEvaluation]] = []
        # priced once on the first accelerators of the pool, for the scheduler's estimate and for plans
        # that cannot run (do not fit)
        first = pool_accelerators(scenario, self.accelerator)[: self.plan.world_size]
        self.nominal = self._evaluate(tuple(first))
        self.job: Job | None = None
        self.scenario = scenario
        self.checkpoint_bytes: float | None = None
        # the cost of a distillation run belongs to COST's compression term (moved out of compute)
        self.compression_usd = 0.0
        self.compression_from_compute_usd = 0.0
        self.network: SharedNetwork | None = shared_network(scheduler, scenario)
        self._traffic: dict[tuple[tuple[str, ...], int], StepTraffic] = {}
        if self.network is not None:
            self.network.sources[spec.name] = self.step_traffic

    @classmethod
    def build(cls, spec: TrainingWorkload, run: RunServices) -> TrainingRunner:
        """The runner, told of its job's completion by the run's scheduler."""
        runner = cls(spec, run.sim, run.scheduler, run.scenario)
        run.on_job_finished(spec.name, runner.job_finished)
        return runner

    def horizon_s(self) -> float:
        """The training's end at its nominal step time (s)."""
        return self.spec.arrival_s + self.steps * self.nominal.step_time_s

    def _evaluate(self, names: tuple[str, ...]) -> PlanEvaluation:
        evaluation = self._by_placement.get(names)
        if evaluation is None:
            layout = RankLayout(self.plan, names)
            evaluation = evaluate_plan(self.setup, self.plan, layout, self.comm, self.server_of, self.spec.fidelity)
            self._by_placement[names] = evaluation
        return evaluation

    def start(self) -> None:
        """Submit the job at ``arrival_s`` (not at all if the plan does not fit in memory)."""
        if not self.nominal.fits_in_memory:
            self.done.succeed()
            return
        spec = self.spec
        duration_s = self.steps * self.nominal.step_time_s
        self._check_length(duration_s)
        job = Job(
            self.sim.next_id("job"),
            spec.name,
            spec.arrival_s,
            self.plan.world_size,
            duration_s,
            spec.name,
            accelerator=self.accelerator,
            user=spec.team or "",
            model=spec.model if isinstance(spec.model, str) else "inline",
            priority=spec.priority,
        )
        job.checkpointing = self._checkpointing()
        job.node_selector = dict(spec.node_selector)
        job.tolerations = frozenset(spec.tolerations)
        self.job = job
        self.scheduler.on_start[spec.name] = self._placed
        self.sim.env.process(self._submit(job))

    def _check_length(self, duration_s: float) -> None:
        """Refuse a job longer than :data:`MAX_SIMULATED_S` (s) of work, naming its ``steps`` or ``tokens``:
        check cannot know its step time without pricing the plan."""
        if duration_s <= MAX_SIMULATED_S:
            return
        index = next(i for i, w in enumerate(self.scenario.workloads) if w is self.spec)
        field = "steps" if self.spec.steps is not None else "tokens"
        raise UserInputError.single(
            f"workloads[{index}].{field}",
            f"{number(self.steps)} steps of {self.nominal.step_time_s:.3g} s take {number(duration_s)} s of simulated "
            f"time; {SIMULATED_TIME_LIMIT})",
        )

    def _checkpointing(self) -> Checkpointing | None:
        """Checkpoints of this job's own model state (weights and optimizer state of every parameter, written
        at the storage's write bandwidth) whenever the scenario checkpoints and the storage's write bandwidth is
        known; the scenario's ``checkpoint_s``/``checkpoint_gb`` then apply to the other (trace) jobs."""
        failures = self.scenario.failures
        if failures is None:
            return None
        write = self.scenario.datacenter.storage.write_bytes_per_s
        if failures.checkpoint_interval_s is None or write is None:
            return None
        self.checkpoint_bytes = checkpoint_bytes(self.setup)
        from dcsim.run.world import checkpointing

        cluster = checkpointing(self.scenario)
        return replace(cluster, cost_s=self.checkpoint_bytes / write)

    def _submit(self, job: Job) -> Generator[Any, Any, None]:
        if job.submit_s > self.sim.env.now:
            yield self.sim.env.timeout(job.submit_s - self.sim.env.now)
        self.scheduler.submit(job)

    def _placed(self, job: Job) -> None:
        """Re-price the remaining steps on the accelerators the scheduler chose."""
        names = tuple(self.fabric_names[a] for a in sorted(job.accelerators))  # consecutive ranks share nodes
        old = self.placements[-1][1] if self.placements else self.nominal
        new = self._evaluate(names)
        self.placements.append((self.sim.env.now, new))
        scale = new.step_time_s / old.step_time_s
        job.remaining_s *= scale
        job.duration_s = job.duration_s * scale if len(self.placements) == 1 else job.duration_s

    def step_traffic(self, job: Job) -> StepTraffic | None:
        """Bytes one step sends on each link from the job's current accelerators, and its step time alone
        there (cached per placement and network state)."""
        assert self.network is not None
        names = tuple(self.fabric_names[a] for a in sorted(job.accelerators))
        key = (names, self.network.controller.version)
        traffic = self._traffic.get(key)
        if traffic is None:
            transfers = step_transfers(self.setup, self.plan, RankLayout(self.plan, names))
            traffic = self.network.loads.step_traffic(transfers, self._evaluate(names).step_time_s)
            self._traffic[key] = traffic
        return traffic

    def job_finished(self) -> None:
        """The job completed: ``done`` fires."""
        self.done.succeed()

    @property
    def evaluation(self) -> PlanEvaluation:
        """The pricing of the latest placement (the nominal one before the job starts)."""
        return self.placements[-1][1] if self.placements else self.nominal

    def summary(self, context: RunContext) -> dict[str, Any]:
        """The contract's training figures, the step and memory breakdowns, and where the job ran."""
        ev = self.evaluation
        job = self.job
        completed = job is not None and job.end_s == job.end_s
        started = job is not None and job.start_s == job.start_s
        accelerator_s = cost = energy_j = 0.0
        if started:
            assert job is not None
            used = context.usage.get(job.seq)
            if used is not None:
                accelerator_s = used.accelerator_s
                cost = accelerator_s * context.usd_per_accelerator_s[used.accelerator]
                energy_j = accelerator_s * context.busy_w[used.accelerator] * context.pue
        ideal_s = self.steps * ev.step_time_s
        if self.setup.teacher is not None:  # a distillation run produces a compressed model: COST's compression
            self.compression_usd = self.compression_from_compute_usd = cost
        out: dict[str, Any] = {
            "kind": "training",
            "model": self.spec.model if isinstance(self.spec.model, str) else ev.setup.model.name,
            "accelerator": self.accelerator,
            "accelerators": self.plan.world_size,
            "plan": _plan_dict(self.plan, ev.step.layers_per_chunk),
            "status": "completed"
            if completed
            else "running"
            if started
            else "does_not_fit"
            if not self.nominal.fits_in_memory
            else "waiting",
            "steps": self.steps,
            "tokens": self.steps * self.setup.tokens_per_step,
            **ev.summary(),
            "time_to_train_s": (job.end_s - job.start_s) if completed and job is not None else ideal_s,
            "compute_time_to_train_s": ideal_s,
            "wait_s": (job.start_s - job.submit_s) if started and job is not None else None,
            "end_s": job.end_s if completed and job is not None else None,
            "accelerator_hours": accelerator_s / 3600.0,
            "cost_usd": cost,
            "energy_kwh": energy_j / 3.6e6,
            "fidelity": self.spec.fidelity,
        }
        if job is not None and job.checkpointing is not None:
            out["checkpoint"] = {
                "size_gb": (self.checkpoint_bytes or 0.0) / 1e9,
                "cost_s": job.checkpointing.cost_s,
                "interval_s": job.checkpoint_interval_s,
            }
        if job is not None and self.network is not None:
            slowdown = self.scheduler.network_slowdown(job) or (1.0, 1.0)
            out["network_slowdown"] = slowdown[0]
            out["network_slowdown_max"] = slowdown[1]
            out["step_time_shared_s"] = ev.step_time_s * slowdown[0]
        if job is not None:
            out["failures"] = job.failures
            out["preemptions"] = job.preemptions
            out["lost_accelerator_hours"] = job.lost_s * job.gpus / 3600.0
        if self.spec.compression:
            out["compression"] = {
                "recipe": self.spec.compression.written,
                "trained_params": self.setup.model.param_count(),
                "teacher_params": self.setup.teacher.param_count() if self.setup.teacher is not None else None,
                "production_usd": self.compression_usd,
            }
        if self.spec.target_loss is not None:
            out["time_to_target_loss"] = self._target_loss(ev)
        return out

    def _target_loss(self, ev: PlanEvaluation) -> dict[str, Any]:
        """Tokens, steps and time to ``target_loss`` from the published scaling laws (a model estimate)."""
        from dcsim.parallel.flops import active_params
        from dcsim.parallel.scaling import estimate_tokens_to_loss

        try:
            est = estimate_tokens_to_loss(
                active_params(ev.setup.model), float(self.spec.target_loss or 0), self.setup.tokens_per_step
            )
        except ValueError as error:
            return {"reachable": False, "reason": str(error), "label": "model estimate"}
        return {
            "reachable": True,
            "tokens": est.tokens,
            "steps": est.steps,
            "critical_batch_tokens": est.critical_batch_tokens,
            "token_inflation": est.token_inflation,
            "time_s": est.steps * ev.step_time_s,
            "label": est.label,
        }

    def tables(self, context: RunContext) -> dict[str, pd.DataFrame]:
        """The ``training`` table: one row per placement."""
        return {"training": self._placements_table()}

    def _placements_table(self) -> pd.DataFrame:
        """One row per placement the job ran on: when, the step time there and its breakdown."""
        rows = []
        for when, ev in self.placements:
            rows.append(
                {
                    "workload": self.spec.name,
                    "placed_s": when,
                    "step_time_s": ev.step_time_s,
                    **ev.step.breakdown(),
                    "tokens_per_s": ev.tokens_per_s,
                    "mfu": ev.mfu,
                }
            )
        return pd.DataFrame(rows)


def _plan_dict(plan: ParallelPlan, layers_per_chunk: tuple[int, ...] = ()) -> dict[str, Any]:
    """The plan's fields; ``layers_per_stage`` (per chunk, pipeline order) only where the layers are not split
    evenly."""
    out = {
        "dp": plan.dp,
        "tp": plan.tp,
        "pp": plan.pp,
        "ep": plan.ep,
        "cp": plan.cp,
        "microbatch_size": plan.microbatch_size,
        "schedule": plan.schedule,
        "virtual_stages": plan.virtual_stages,
        "zero_stage": plan.zero_stage,
        "recompute": plan.recompute,
        "sequence_parallel": plan.sequence_parallel,
    }
    if len(set(layers_per_chunk)) > 1:
        out["layers_per_stage"] = list(layers_per_chunk)
    return out


def checkpoint_bytes(setup: TrainingSetup) -> float:
    """Bytes of a full training checkpoint: every parameter's weights (the fp32 master copy in mixed
    precision) and optimizer state (ZeRO's K bytes per parameter; gradients are not saved)."""
    from dcsim.parallel.memory import MIXED_PRECISIONS, state_bytes_per_param
    from dcsim.parallel.step import ACTIVATION_PRECISION

    precision = ACTIVATION_PRECISION[setup.precision]
    weights, _gradients, optimizer = state_bytes_per_param(setup.optimizer, precision)
    params = float(setup.model.param_count())
    mixed = precision in MIXED_PRECISIONS  # the optimizer figure then includes the fp32 master weights
    return params * (optimizer if mixed else weights + optimizer)


def pool_accelerators(scenario: Scenario, accelerator: str) -> list[str]:
    """Fabric names of every accelerator of type ``accelerator``, node by node in scenario order (the order
    of the scheduler's accelerator indices)."""
    servers = build_fabric(scenario.datacenter, scenario.seed).servers
    return [
        name
        for node in scenario.datacenter.nodes
        if node.accelerator == accelerator
        for i in range(node.count)
        for name in servers[f"{node.name}-{i}"]
    ]


def fabric_names(cluster: Cluster, servers: dict[str, list[str]]) -> list[str]:
    """The network fabric's name of each scheduler accelerator index (cluster nodes are fabric servers)."""
    names = [""] * cluster.size
    for node in cluster.nodes:
        first = node.accelerators[0]
        for a in node.accelerators:
            names[a] = servers[node.name][a - first]
    return names
