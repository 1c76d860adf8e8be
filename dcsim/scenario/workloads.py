"""Workload sections by ``kind``: a registry (:data:`WORKLOAD_KINDS`) from kind to its spec class.

A workload kind is a spec class (a :class:`WorkloadSpec`: the YAML section, validated by pydantic) and a runner
class (a :class:`dcsim.run.runner.Runner`: builds, runs and summarises it), registered once with
:func:`register_workload_kind`. Each spec class may define ``check(scenario) -> list[Problem]`` for checks that
need the whole scenario (the cluster's size, files next to the scenario). Paths in problems are relative to the
workload.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from dcsim.errors import Problem, UserInputError
from dcsim.registry import Registry
from dcsim.scenario.fields import AcceleratorId, Count, DistributionField, Number, WholeDistributionField
from dcsim.scenario.files import scenario_file
from dcsim.scenario.schema import Section
from dcsim.workloads.jobs import Job, read_job_trace

if TYPE_CHECKING:
    from dcsim.scenario.schema import NodeType, Scenario

# Kinds named in the contract that a later dcsim version will run; named precisely in errors meanwhile.
PLANNED_KINDS: tuple[str, ...] = ()


def register_workload_kind(kind: str, *, runner: str | type) -> Callable[[type[WorkloadSpec]], type[WorkloadSpec]]:
    """Class decorator: the spec class of workloads of ``kind`` and the ``runner`` class that runs them (a
    :class:`dcsim.run.runner.Runner` subclass, or a ``module:Class`` reference to one when it lives in a
    package above :mod:`dcsim.scenario`, imported when a run needs it). A duplicate kind is an error."""

    def add(cls: type[WorkloadSpec]) -> type[WorkloadSpec]:
        WORKLOAD_KINDS.add(kind, cls)
        cls.runner = runner
        return cls

    return add


def admitting_nodes(scenario: Scenario, node_selector: dict[str, str], tolerations: list[str]) -> list[NodeType]:
    """The node types a workload may use: labels matching its ``node_selector``, every taint tolerated."""
    tolerated = set(tolerations)
    return [
        node
        for node in scenario.datacenter.nodes
        if all(node.labels.get(k) == v for k, v in node_selector.items()) and set(node.taints) <= tolerated
    ]


def accelerators_by_type(nodes: list[NodeType]) -> dict[str, int]:
    """Accelerators per accelerator type over ``nodes``."""
    pools: dict[str, int] = {}
    for node in nodes:
        pools[node.accelerator] = pools.get(node.accelerator, 0) + node.accelerators
    return pools


class WorkloadSpec(Section):
    """Fields every workload has: ``kind`` and a ``name`` unique in the scenario."""

    kind: str
    name: str = Field(min_length=1)
    #: The class that runs this kind (set by :func:`register_workload_kind`): a Runner subclass or a
    #: ``module:Class`` reference to one.
    runner: ClassVar[str | type | None] = None

    def check(self, scenario: Scenario) -> list[Problem]:
        """Checks that need the whole scenario; none by default."""
        return []


WORKLOAD_KINDS: Registry[WorkloadSpec] = Registry("workload kind", WorkloadSpec)


class SyntheticJobs(Section):
    """A generated job stream: ``count`` jobs, Poisson (or constant, or gamma with ``cv``) arrivals at
    ``rate_per_h`` (or ``rate_per_s``), sizes from ``gpus`` and durations from ``duration_s``."""

    count: Count = Field(ge=1)
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    rate_per_h: Number | None = Field(default=None, gt=0)
    rate_per_s: Number | None = Field(default=None, gt=0)
    cv: Number | None = Field(default=None, gt=0)
    gpus: WholeDistributionField = Field(default=1, validate_default=True)
    duration_s: DistributionField

    @model_validator(mode="after")
    def _one_rate(self) -> SyntheticJobs:
        if (self.rate_per_h is None) == (self.rate_per_s is None):
            raise ValueError("give exactly one of rate_per_h and rate_per_s")
        if self.arrival == "gamma" and self.cv is None:
            raise ValueError("gamma arrivals need cv (coefficient of variation of inter-arrival times)")
        return self

    @property
    def rate_per_second(self) -> float:
        """Mean arrival rate in jobs per second."""
        return self.rate_per_s if self.rate_per_s is not None else float(self.rate_per_h or 0) / 3600.0


class JobTraffic(Section):
    """What each job of a ``jobs`` workload sends over the network, for cross-job contention: every
    ``step_s`` seconds (its step time alone) it all-reduces ``allreduce_gb`` GB (nccl-tests size, 1e9 bytes
    per GB) over all its accelerators as a ring (a data-parallel training job's gradient exchange)."""

    step_s: Number = Field(gt=0)
    allreduce_gb: Number = Field(ge=0)


@register_workload_kind("jobs", runner="dcsim.run.jobs_runner:JobsRunner")
class JobsWorkload(WorkloadSpec):
    """A stream of opaque gang jobs: from a CSV ``trace`` or a ``synthetic`` generator.

    ``trace`` is resolved against the scenario file's folder (then the working directory).
    ``accelerator`` pins every job of a synthetic stream to one catalog type; trace rows may name their own.
    ``team`` sets the team (``user``) of synthetic jobs. ``node_selector`` and ``tolerations`` apply to every
    job of the workload (Kubernetes style; see the node types' ``labels`` and ``taints``).
    ``cpus_per_accelerator`` and ``memory_gb_per_accelerator`` are host requests that come with each of a
    job's accelerators, taken on its node (whose ``cpu_cores`` and ``memory_gb`` bound them); trace rows may
    give ``cpus`` and ``memory_gb`` per job instead. ``network_traffic`` (a :class:`JobTraffic`) makes the
    jobs send traffic that slows, and is slowed by, other jobs on shared links (``duration_s`` is then the
    run time alone).
    """

    kind: Literal["jobs"] = "jobs"
    trace: str | None = None
    synthetic: SyntheticJobs | None = None
    accelerator: AcceleratorId | None = None
    arrival_s: Number = Field(default=0.0, ge=0)
    team: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[str] = Field(default_factory=list)
    cpus_per_accelerator: Number | None = Field(default=None, ge=0)
    memory_gb_per_accelerator: Number | None = Field(default=None, ge=0)
    network_traffic: JobTraffic | None = None

    @model_validator(mode="after")
    def _one_source(self) -> JobsWorkload:
        if (self.trace is None) == (self.synthetic is None):
            raise ValueError("give exactly one of trace and synthetic")
        return self

    def trace_path(self, base_dir: str) -> Path:
        """The trace file, relative to the scenario's folder ``base_dir`` (see :func:`scenario_file`)."""
        assert self.trace is not None
        return scenario_file(self.trace, base_dir)

    def read_trace(self, base_dir: str) -> list[Job]:
        """The trace's jobs (raises UserInputError naming the line and column)."""
        jobs = read_job_trace(self.trace_path(base_dir), self.name)
        for job in jobs:
            job.submit_s += self.arrival_s
        return jobs

    def check(self, scenario: Scenario) -> list[Problem]:
        pools = accelerators_by_type(admitting_nodes(scenario, self.node_selector, self.tolerations))
        if not pools:
            return [Problem("node_selector", "no node type matches this workload's node_selector and tolerations")]
        largest = max(pools.values())
        host = self._host_problems(scenario)
        if host:
            return host
        if self.synthetic is not None:
            return self._check_synthetic(pools, largest)
        try:
            jobs = self.read_trace(scenario.base_dir)
        except UserInputError as error:
            return [Problem(f"trace ({p.path})", p.message) for p in error.problems]
        for job in jobs:
            capacity = pools.get(job.accelerator, 0) if job.accelerator else largest
            if job.accelerator and job.accelerator not in pools:
                return [
                    Problem(
                        "trace",
                        f"job {job.job_id!r} asks for accelerator {job.accelerator!r}, "
                        f"which no node type has ({', '.join(pools)})",
                    )
                ]
            if job.gpus > capacity:
                return [
                    Problem(
                        "trace",
                        f"job {job.job_id!r} needs {job.gpus} accelerators but the largest pool has {capacity}",
                    )
                ]
        return []

    def _host_problems(self, scenario: Scenario) -> list[Problem]:
        """Per-accelerator host requests no matching node could ever grant."""
        problems = []
        nodes = [
            n
            for n in scenario.datacenter.nodes
            if all(n.labels.get(k) == v for k, v in self.node_selector.items())
            and set(n.taints) <= set(self.tolerations)
        ]
        for name, capacity in (("cpus_per_accelerator", "cpu_cores"), ("memory_gb_per_accelerator", "memory_gb")):
            request = getattr(self, name)
            if not request:
                continue
            sizes = [getattr(n, capacity) for n in nodes]
            if all(size is not None and size < request for size in sizes):
                biggest = max(size for size in sizes if size is not None)
                problems.append(
                    Problem(name, f"{request:g} per accelerator is more than any node's {capacity} ({biggest:g})")
                )
        return problems

    def _check_synthetic(self, pools: dict[str, int], largest: int) -> list[Problem]:
        assert self.synthetic is not None
        if self.accelerator is not None and self.accelerator not in pools:
            return [Problem("accelerator", f"no node type has {self.accelerator!r} ({', '.join(pools)})")]
        capacity = pools[self.accelerator] if self.accelerator else largest
        gpus = self.synthetic.gpus
        values = getattr(gpus, "values", None)
        biggest = float(max(values)) if values is not None else gpus.high if gpus.high is not None else gpus.mean
        problems = []
        if biggest > capacity:
            problems.append(
                Problem(
                    "synthetic.gpus",
                    f"jobs of {biggest:g} accelerators cannot fit: the largest pool has {capacity}",
                )
            )
        smallest = float(min(values)) if values is not None else gpus.low if gpus.low is not None else gpus.mean
        if smallest < 1:
            problems.append(Problem("synthetic.gpus", f"every job needs at least 1 accelerator (got {smallest:g})"))
        return problems


@register_workload_kind("collective", runner="dcsim.run.collective_runner:CollectiveRunner")
class CollectiveWorkload(WorkloadSpec):
    """One collective on the datacenter's fabric, nccl-tests style: ``op`` of ``bytes`` per rank over
    ``ranks`` accelerators (the first ones, packed) or the accelerators of ``hosts`` (server or accelerator
    names such as ``dgx-0`` or ``dgx-0/gpu3``), started at ``arrival_s``."""

    kind: Literal["collective"] = "collective"
    op: Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv"]
    bytes: Number = Field(ge=0)
    ranks: Count | None = Field(default=None, ge=2)
    hosts: list[str] | None = None
    algorithm: str = "auto"
    protocol: Literal["auto", "ll", "ll128", "simple"] = "auto"
    arrival_s: Number = Field(default=0.0, ge=0)

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, algorithm: str, info: ValidationInfo) -> str:
        from dcsim.network.collectives import ALGORITHMS

        op = info.data.get("op")
        if op is not None and algorithm != "auto" and algorithm not in ALGORITHMS[op]:
            raise ValueError(f"{op} takes auto, {', '.join(ALGORITHMS[op])} (got {algorithm!r})")
        return algorithm

    @model_validator(mode="after")
    def _ranks_or_hosts(self) -> CollectiveWorkload:
        if self.ranks is None and self.hosts is None:
            raise ValueError("give ranks (a count) or hosts (server or accelerator names)")
        return self

    def rank_names(self, fabric: Any) -> list[str]:
        """The accelerators taking part, by name (ValueError naming the problem)."""
        if self.hosts is not None:
            names = list(fabric.expand(self.hosts))
            if self.ranks is not None and self.ranks != len(names):
                raise ValueError(f"hosts name {len(names)} accelerators but ranks is {self.ranks}")
        else:
            names = list(fabric.ranks(int(self.ranks or 0)))
        if len(names) < 2:
            raise ValueError("a collective needs at least 2 ranks")
        return names

    def check(self, scenario: Scenario) -> list[Problem]:
        from dcsim.scenario.network import build_fabric

        try:
            fabric = build_fabric(scenario.datacenter, scenario.seed)
        except UserInputError:
            return []  # reported once, at datacenter.network, by the loader
        try:
            names = self.rank_names(fabric)
        except (ValueError, KeyError) as error:
            return [Problem("hosts" if self.hosts is not None else "ranks", str(error.args[0]))]
        return self._nccl_problems(fabric, names)

    def _nccl_problems(self, fabric: Any, names: list[str]) -> list[Problem]:
        """The named algorithm and protocol must exist on these ranks' hardware (NVLS needs an NVSwitch
        that has it, CollNet several nodes, NVLS and CollNet the Simple protocol)."""
        from dcsim.network.collectives import ALIASES
        from dcsim.network.collectives.channels import layout_of
        from dcsim.network.collectives.nccl_model import NCCL_OPS, candidates

        if self.op not in NCCL_OPS:
            if self.protocol != "auto":
                return [Problem("protocol", f"{self.op} is not tuned by NCCL's model: protocol must be auto")]
            return []
        algorithm = ALIASES.get(self.algorithm, self.algorithm)
        try:
            candidates(self.op, layout_of(fabric.graph, names).topology, algorithm, self.protocol)
        except ValueError as error:
            field = "algorithm" if self.protocol == "auto" else "protocol"
            return [Problem(field, str(error.args[0]))]
        return []
