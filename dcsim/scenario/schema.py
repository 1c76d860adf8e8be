"""Typed sections of a scenario file (contract v1). Unknown fields are errors; units are in field names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dcsim.scenario.fields import AcceleratorId, Count, InterconnectId, Number


class Section(BaseModel):
    """Base of every section: unknown fields are rejected, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Nics(Section):
    """Network interfaces of one node: ``count`` NICs of ``gbps`` gigabits per second each."""

    count: Count = Field(ge=0)
    gbps: Number = Field(gt=0)


class NodeType(Section):
    """``count`` identical nodes, each with ``accelerators_per_node`` accelerators of one catalog id.

    Price: ``usd_per_hour`` per node (cloud-style, power included), or ``capex_usd`` per node amortized over
    ``amortization_years`` plus electricity; without either, the catalog's per-accelerator reference price.
    ``accelerator_idle_w``/``accelerator_max_w`` override the catalog's power figures; ``host_power_w`` is the
    constant draw of the rest of the node (CPUs, fans, NICs), 0 unless given.
    """

    name: str = Field(min_length=1)
    count: Count = Field(ge=1)
    accelerator: AcceleratorId
    accelerators_per_node: Count = Field(default=8, ge=1)
    intra_node: InterconnectId | None = None
    nics: Nics | None = None
    cpu_cores: Count | None = Field(default=None, ge=0)
    memory_gb: Number | None = Field(default=None, ge=0)
    usd_per_hour: Number | None = Field(default=None, ge=0)
    capex_usd: Number | None = Field(default=None, ge=0)
    amortization_years: Number | None = Field(default=None, gt=0)
    accelerator_idle_w: Number | None = Field(default=None, ge=0)
    accelerator_max_w: Number | None = Field(default=None, ge=0)
    host_power_w: Number = Field(default=0.0, ge=0)
    nodes_per_rack: Count | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _capex_needs_years(self) -> NodeType:
        if self.capex_usd is not None and self.amortization_years is None:
            raise ValueError("capex_usd needs amortization_years (the period over which it is written off)")
        if self.capex_usd is not None and self.usd_per_hour is not None:
            raise ValueError("give either usd_per_hour or capex_usd, not both")
        return self

    @property
    def accelerators(self) -> int:
        """Accelerators of this type in the datacenter."""
        return self.count * self.accelerators_per_node


class NetworkSpec(Section):
    """The datacenter network: topology builder, its parameters, link speed (Gb/s) and routing policy."""

    topology: Literal["fat_tree", "leaf_spine", "torus", "dragonfly", "file"] = "fat_tree"
    params: dict[str, Any] = Field(default_factory=dict)
    link_gbps: Number = Field(default=100.0, gt=0)
    link_latency_us: Number = Field(default=1.0, ge=0)
    routing: str = "ecmp"


class Storage(Section):
    """Shared storage: capacity (TB), price per TB-month (USD), aggregate read bandwidth (Gb/s)."""

    capacity_tb: Number = Field(default=0.0, ge=0)
    usd_per_tb_month: Number = Field(default=0.0, ge=0)
    read_gbps: Number | None = Field(default=None, gt=0)


class Datacenter(Section):
    """Facility figures and node types. ``pue`` >= 1 scales IT energy to facility energy."""

    pue: Number = Field(default=1.0, ge=1.0)
    electricity_usd_per_kwh: Number = Field(default=0.0, ge=0)
    carbon_g_per_kwh: Number | None = Field(default=None, ge=0)
    nodes: list[NodeType] = Field(min_length=1)
    network: NetworkSpec | None = None
    storage: Storage = Field(default_factory=Storage)

    @model_validator(mode="after")
    def _unique_names(self) -> Datacenter:
        names = [node.name for node in self.nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"node type names must be unique, repeated: {', '.join(duplicates)}")
        return self


class SchedulerSpec(Section):
    """Cluster scheduler: a policy (registered name or ``module:Class``), a placement, preemption.

    A preempted job is checkpointed and later resumes after ``checkpoint_s + restart_s`` seconds of set-up.
    """

    policy: str = "fifo"
    placement: str = "pack"
    preemption: bool = False
    checkpoint_s: Number = Field(default=0.0, ge=0)
    restart_s: Number = Field(default=0.0, ge=0)


class FailuresSpec(Section):
    """Failure model (accelerator MTBF, checkpointing); parsed so that it can be rejected precisely."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Outputs(Section):
    """Where results go: ``dir`` (relative to the working directory), tables as csv or parquet, plots."""

    dir: str | None = None
    plots: bool = True
    tables: Literal["csv", "parquet"] = "csv"


class ScenarioFile(Section):
    """The top level of a scenario file; ``workloads`` are validated per kind by the loader."""

    name: str = Field(min_length=1)
    seed: Count = Field(default=0, ge=0)
    duration_s: Number | None = Field(default=None, gt=0)
    datacenter: Datacenter
    workloads: list[dict[str, Any]] = Field(min_length=1)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    failures: FailuresSpec | None = None
    outputs: Outputs = Field(default_factory=Outputs)


class Scenario(Section):
    """A validated scenario: the file's sections with each workload as its typed kind."""

    name: str
    seed: int
    duration_s: float | None
    datacenter: Datacenter
    workloads: list[Any]
    scheduler: SchedulerSpec
    outputs: Outputs
    base_dir: str = "."

    @property
    def output_dir(self) -> str:
        """``outputs.dir`` or ``results/<name>``."""
        return self.outputs.dir or f"results/{self.name}"
