"""Typed sections of a scenario file (contract v1). Unknown fields are errors; units are in field names."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dcsim.scenario.fields import AcceleratorId, Count, DistributionField, Flag, InterconnectId, Number
from dcsim.scenario.filenames import safe_file_name

if TYPE_CHECKING:
    from dcsim.catalog import Catalog

# Upper bounds of facility and price figures: an order of magnitude or more beyond any real value, so that a
# unit mistake (W for kW, cents for dollars) or an absurd number is refused instead of overflowing the cost
# and energy sums to infinity (a summary then holds null).
#: Power usage effectiveness: surveyed datacenters average 1.5-1.6 (Uptime Institute), legacy sites about 2.5.
MAX_PUE = 10.0
#: Electricity: retail prices are below $1 per kWh.
MAX_USD_PER_KWH = 100.0
#: Grid carbon intensity: coal is about 1,000 g CO2 per kWh.
MAX_CARBON_G_PER_KWH = 10_000.0
#: A node's rent: the largest 8-GPU cloud nodes list below $200 an hour.
MAX_NODE_USD_PER_HOUR = 1e6
#: A node's purchase price: an 8-GPU node costs a few hundred thousand dollars; a rack-scale system a few million.
MAX_NODE_CAPEX_USD = 1e10
MAX_AMORTIZATION_YEARS = 100.0
#: Power of one accelerator or host: the largest are about 1-2 kW.
MAX_POWER_W = 1e6


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
    constant draw of the rest of the node (CPUs, fans, NICs), 0 unless given. ``labels`` and ``taints`` work
    as in Kubernetes: a job runs here only if its ``node_selector`` matches the labels and it tolerates every
    taint. ``nodes_per_rack`` groups the nodes into racks (one top-of-rack switch each).
    """

    name: str = Field(min_length=1)
    count: Count = Field(ge=1)
    accelerator: AcceleratorId
    accelerators_per_node: Count = Field(default=8, ge=1)
    intra_node: InterconnectId | None = None
    nics: Nics | None = None
    cpu_cores: Count | None = Field(default=None, ge=0)
    memory_gb: Number | None = Field(default=None, ge=0)
    usd_per_hour: Number | None = Field(default=None, ge=0, le=MAX_NODE_USD_PER_HOUR)
    capex_usd: Number | None = Field(default=None, ge=0, le=MAX_NODE_CAPEX_USD)
    amortization_years: Number | None = Field(default=None, gt=0, le=MAX_AMORTIZATION_YEARS)
    accelerator_idle_w: Number | None = Field(default=None, ge=0, le=MAX_POWER_W)
    accelerator_max_w: Number | None = Field(default=None, ge=0, le=MAX_POWER_W)
    host_power_w: Number = Field(default=0.0, ge=0, le=MAX_POWER_W)
    nodes_per_rack: Count | None = Field(default=None, ge=1)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[str] = Field(default_factory=list)

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

    topology: Literal["fat_tree", "leaf_spine", "rail_optimized", "torus", "dragonfly", "file"] = "fat_tree"
    params: dict[str, Any] = Field(default_factory=dict)
    link_gbps: Number = Field(default=100.0, gt=0)
    link_latency_us: Number = Field(default=1.0, ge=0)
    routing: str = "ecmp"


class Storage(Section):
    """Shared storage: capacity (TB), price per TB-month (USD), aggregate read/write bandwidth (Gb/s)."""

    capacity_tb: Number = Field(default=0.0, ge=0)
    usd_per_tb_month: Number = Field(default=0.0, ge=0)
    read_gbps: Number | None = Field(default=None, gt=0)
    write_gbps: Number | None = Field(default=None, gt=0)

    @property
    def write_bytes_per_s(self) -> float | None:
        """Write bandwidth in bytes/s (``write_gbps``, else ``read_gbps``), if known."""
        gbps = self.write_gbps if self.write_gbps is not None else self.read_gbps
        return None if gbps is None else gbps * 1e9 / 8


class Datacenter(Section):
    """Facility figures and node types. ``pue`` >= 1 scales IT energy to facility energy."""

    pue: Number = Field(default=1.0, ge=1.0, le=MAX_PUE)
    electricity_usd_per_kwh: Number = Field(default=0.0, ge=0, le=MAX_USD_PER_KWH)
    carbon_g_per_kwh: Number | None = Field(default=None, ge=0, le=MAX_CARBON_G_PER_KWH)
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
    ``quotas`` caps the accelerators each team (the jobs' ``user``) may hold at once.
    ``network_contention``: running jobs that share network links slow each other (training jobs, and jobs
    workloads with ``network_traffic``; see :mod:`dcsim.scheduler.contention`); false prices every job with
    its own traffic only.
    """

    policy: str = "fifo"
    placement: str = "pack"
    preemption: Flag = False
    checkpoint_s: Number = Field(default=0.0, ge=0)
    restart_s: Number = Field(default=0.0, ge=0)
    quotas: dict[str, Count] = Field(default_factory=dict)
    network_contention: Flag = True


class LinkFailureEvent(Section):
    """One scheduled failure of a network link: the cable between fabric nodes ``link`` (two names, e.g.
    ``[spine0, leaf1]``) goes down at ``at_s`` (s of simulated time) for ``down_s`` seconds."""

    at_s: Number = Field(ge=0)
    link: list[str] = Field(min_length=2, max_length=2)
    down_s: Number = Field(gt=0)


class LinkFailuresSpec(Section):
    """Network link failures: each switch-to-switch link fails at rate 1/``mtbf_h`` (hours, mean time
    between failures of one link) and is repaired after ``repair_s`` (a number or a distribution; default
    the section's ``repair_s``), and/or the scheduled ``events``. Routes move around a failed link and the
    running jobs' steps are re-priced (cross-job contention)."""

    mtbf_h: Number | None = Field(default=None, gt=0)
    repair_s: DistributionField | None = None
    events: list[LinkFailureEvent] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> LinkFailuresSpec:
        if self.mtbf_h is None and not self.events:
            raise ValueError("give mtbf_h or events (or leave links out)")
        return self


class FailuresSpec(Section):
    """Failures and checkpointing.

    Accelerators fail with ``accelerator_mtbf_h`` and whole nodes with ``node_mtbf_h`` (hours, mean time
    between failures of one accelerator / node); a failed one is repaired after ``repair_s`` (a number or a
    distribution). Jobs checkpoint every ``checkpoint_interval_s`` of work (``auto``: Young/Daly per job),
    each checkpoint costing ``checkpoint_s``, or ``checkpoint_gb`` written at the storage's ``write_gbps``
    (training workloads without either write their model state: weights and optimizer state);
    a killed job restarts from its last checkpoint after ``restart_s``. ``links``: network link failures
    (:class:`LinkFailuresSpec`).
    """

    accelerator_mtbf_h: Number | None = Field(default=None, gt=0)
    node_mtbf_h: Number | None = Field(default=None, gt=0)
    repair_s: DistributionField | None = None
    checkpoint_interval_s: Number | Literal["auto"] | None = None
    checkpoint_s: Number | None = Field(default=None, ge=0)
    checkpoint_gb: Number | None = Field(default=None, gt=0)
    restart_s: Number = Field(default=0.0, ge=0)
    links: LinkFailuresSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FailuresSpec:
        if self.accelerator_mtbf_h is None and self.node_mtbf_h is None and self.links is None:
            raise ValueError("give accelerator_mtbf_h, node_mtbf_h or links (or leave failures out)")
        drawn = self.accelerator_mtbf_h is not None or self.node_mtbf_h is not None
        if self.repair_s is None and (drawn or (self.links is not None and self.links.mtbf_h is not None)):
            if self.links is None or self.links.repair_s is None or drawn:
                raise ValueError("repair_s: give the repair time of failed accelerators, nodes or links")
        if self.checkpoint_s is not None and self.checkpoint_gb is not None:
            raise ValueError("give either checkpoint_s or checkpoint_gb, not both")
        if self.checkpoint_interval_s == "auto" and self.accelerator_mtbf_h is None:
            raise ValueError("checkpoint_interval_s: auto (Young/Daly) needs accelerator_mtbf_h")
        if isinstance(self.checkpoint_interval_s, float) and self.checkpoint_interval_s <= 0:
            raise ValueError("checkpoint_interval_s must be > 0 or auto")
        return self


class Outputs(Section):
    """Where results go: ``dir`` (relative to the working directory), tables as csv or parquet, plots."""

    dir: str | None = None
    plots: Flag = True
    tables: Literal["csv", "parquet"] = "csv"


class ScenarioFile(Section):
    """The top level of a scenario file; ``workloads`` are validated per kind by the loader, and so are the
    ``accelerators`` it declares (:mod:`dcsim.scenario.accelerators`)."""

    name: str = Field(min_length=1)
    seed: Count = Field(default=0, ge=0)
    duration_s: Number | None = Field(default=None, gt=0)
    accelerators: list[dict[str, Any]] = Field(default_factory=list)
    datacenter: Datacenter
    workloads: list[dict[str, Any]] = Field(min_length=1)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    failures: FailuresSpec | None = None
    outputs: Outputs = Field(default_factory=Outputs)


class Scenario(Section):
    """A validated scenario: the file's sections with each workload as its typed kind, and the accelerators it
    declares (:class:`dcsim.scenario.accelerators.AcceleratorSpec`), in the catalog within :meth:`catalog_scope`."""

    name: str
    seed: int
    duration_s: float | None
    datacenter: Datacenter
    workloads: list[Any]
    scheduler: SchedulerSpec
    outputs: Outputs
    failures: FailuresSpec | None = None
    base_dir: str = "."
    accelerators: list[Any] = Field(default_factory=list)

    def catalog_scope(self) -> AbstractContextManager[Catalog]:
        """A context in which :func:`dcsim.catalog.load_catalog` holds this scenario's declared accelerators (and
        no other scenario's): everything that reads the scenario's accelerator ids runs within it."""
        from dcsim.catalog import declared_accelerators
        from dcsim.scenario.accelerators import resolve_all

        return declared_accelerators(resolve_all(self.accelerators))

    @property
    def output_dir(self) -> str:
        """``outputs.dir`` as given, or ``results/<name>`` with the name made a safe file name (no ``/``,
        ``..``, NUL; at most 100 bytes): see :func:`dcsim.scenario.filenames.safe_file_name`."""
        return self.outputs.dir or f"results/{safe_file_name(self.name)}"
