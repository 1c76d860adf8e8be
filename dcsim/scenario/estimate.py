"""How big a run would be, estimated from the scenario's numbers alone, and the limits ``check`` enforces.

Nothing here builds the structures it sizes: a count of 1e12 nodes or a ``fat_tree`` of ``k: 2000`` is
multiplied out, compared with what fits in memory, and refused with a line that says how big and why
before the cluster, the job list or the network graph would be allocated.

The memory a run takes grows with a few counts, each at a measured cost (CPython 3.11, numpy 2, pandas 2,
networkx 3; peak resident memory of runs of growing size, rounded up):

- an accelerator: ~320 B (scheduler arrays, the per-accelerator table) -> :data:`BYTES_PER_ACCELERATOR`;
- a node: its name, labels and free-slot bookkeeping, ~1 kB (an allowance, not measured on its own)
  -> :data:`BYTES_PER_NODE` (spread over its accelerators: a node type's limit is on its accelerators);
- a job: ~1.75 kB (the job record, queue entries, its row of the jobs table) -> :data:`BYTES_PER_JOB`;
- a request: ~300 B (columnar request records, its row of the requests table) -> :data:`BYTES_PER_REQUEST`;
- a vertex or link of the network graph: ~1.1 kB (networkx dicts with attributes)
  -> :data:`BYTES_PER_GRAPH_ELEMENT`; with a network, every accelerator adds
  :data:`GRAPH_ELEMENTS_PER_ACCELERATOR` of them (itself, its PCIe port, intra-node and NIC links).

A run may take :data:`MEMORY_BUDGET_BYTES` in all. Speed follows the same counts (about 3 us per
accelerator to set up, 0.1-1 ms per job depending on the queue, 30 us per request), so the memory budget
also bounds a run's length: at the limit, ~1.5 min of set-up for the accelerators, ~20 min for the
requests, 15 min to 2 h for the jobs.

Simulated times are bounded too (:data:`MAX_SIMULATED_S`): past 1e10 s a float64 second count no longer
resolves microseconds, the scale of link latencies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dcsim.engine.distributions import Pareto
from dcsim.errors import Problem
from dcsim.network.topologies.jellyfish import default_degree
from dcsim.network.topologies.leaf_spine import DEFAULT_HOSTS_PER_LEAF, DEFAULT_SPINES
from dcsim.network.topologies.rail_optimized import size as rail_optimized_size
from dcsim.scenario.bounds import upper

if TYPE_CHECKING:
    from dcsim.scenario.schema import Scenario

GIB = 2**30
#: Memory one run may take: the 24 GiB reference machine less room for the interpreter, libraries,
#: plots and the operating system.
MEMORY_BUDGET_BYTES = 16 * GIB
BYTES_PER_ACCELERATOR = 400
BYTES_PER_NODE = 1_000
BYTES_PER_JOB = 2_000
BYTES_PER_REQUEST = 500
BYTES_PER_GRAPH_ELEMENT = 1_200
GRAPH_ELEMENTS_PER_ACCELERATOR = 5
#: One forward or backward pass of one microbatch through one pipeline chunk, as the detailed training
#: fidelity simulates a step (its SimPy event, key and schedule entry; measured ~475 B).
BYTES_PER_PIPELINE_PASS = 500
#: The longest simulated time (s, ~317 years) any duration, arrival or run length may reach.
MAX_SIMULATED_S = 1e10
#: :data:`MAX_SIMULATED_S` as a user reads it in a refusal ("dcsim handles up to 1e+10 s (~317 years")
SIMULATED_TIME_LIMIT = f"dcsim handles up to {MAX_SIMULATED_S:.0e} s (~{MAX_SIMULATED_S / 3.156e7:.0f} years"


@dataclass(frozen=True)
class SizeItem:
    """``count`` things of one ``what`` (accelerators, jobs...) that the field at ``path`` asks for,
    ``why`` spelling out the product, each costing ``bytes_each`` of memory."""

    path: str
    what: str
    count: float
    bytes_each: float
    why: str

    @property
    def bytes(self) -> float:
        """Estimated memory for all of them."""
        return as_float(self.count) * self.bytes_each

    @property
    def limit(self) -> int:
        """How many fit in :data:`MEMORY_BUDGET_BYTES` on their own."""
        return int(MEMORY_BUDGET_BYTES // self.bytes_each)

    def message(self) -> str:
        """``<why> is <count> <what>; dcsim handles up to ~<limit> (an estimated <memory>)``."""
        head = f"{self.why} is {number(self.count)} {self.what}" if self.why else f"{number(self.count)} {self.what}"
        return f"{head}; dcsim handles up to ~{number(self.limit)} (an estimated {memory(self.bytes)})"


def as_float(value: float) -> float:
    """``value`` as a float; ``inf`` for an integer too large for one (a count written ``1e308`` is exact)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def number(value: float) -> str:
    """A count in 3 significant digits, safe for integers too large for a float (``~1e+400``)."""
    if isinstance(value, int) and abs(value) < 100_000:
        return str(value)
    if isinstance(value, int) and abs(value) >= 10**300:
        return f"~1e+{len(str(abs(value))) - 1}"
    if math.isinf(value):
        return "more than 1e+308"
    return f"{float(value):.3g}"


def memory(num_bytes: float) -> str:
    """Bytes in GB, TB or PB (powers of 10), or as a plain count of bytes past that."""
    value = as_float(num_bytes)
    for unit, scale in (("GB", 1e9), ("TB", 1e12), ("PB", 1e15)):
        if value < 1000 * scale:
            return f"{value / scale:.3g} {unit}"
    return f"{number(num_bytes)} bytes"


def size_items(scenario: Scenario) -> list[SizeItem]:
    """What the run would allocate, item by item (nothing is built)."""
    items: list[SizeItem] = []
    with_network = scenario.datacenter.network is not None or any(w.kind == "collective" for w in scenario.workloads)
    per_accelerator = BYTES_PER_ACCELERATOR + (
        GRAPH_ELEMENTS_PER_ACCELERATOR * BYTES_PER_GRAPH_ELEMENT if with_network else 0
    )
    for index, node in enumerate(scenario.datacenter.nodes):
        field = "count" if node.count >= node.accelerators_per_node else "accelerators_per_node"
        items.append(
            SizeItem(
                f"datacenter.nodes[{index}].{field}",
                "accelerators",
                node.count * node.accelerators_per_node,
                per_accelerator + BYTES_PER_NODE / node.accelerators_per_node,
                f"{number(node.count)} nodes x {number(node.accelerators_per_node)} accelerators",
            )
        )
    network = scenario.datacenter.network
    if network is not None and network.params:
        params = network.params
        if network.topology == "rail_optimized" and "nodes" not in params:  # (one rail node per server)
            params = {**params, "nodes": sum(node.count for node in scenario.datacenter.nodes)}
        size = topology_size(network.topology, params)
        if size is not None:
            hosts, switches, links = size
            key = next(iter(network.params))
            items.append(
                SizeItem(
                    f"datacenter.network.params.{key}" if len(network.params) == 1 else "datacenter.network.params",
                    "graph vertices and links",
                    hosts + switches + links,
                    BYTES_PER_GRAPH_ELEMENT,
                    f"{network.topology} {_params(network.params)}: {number(hosts)} hosts, "
                    f"{number(switches)} switches and {number(links)} links",
                )
            )
    for index, workload in enumerate(scenario.workloads):
        items += _workload_items(workload, f"workloads[{index}]")
    return items


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in params.items())


def _workload_items(workload: Any, path: str) -> list[SizeItem]:
    if workload.kind == "jobs" and workload.synthetic is not None:
        return [SizeItem(f"{path}.synthetic.count", "jobs", workload.synthetic.count, BYTES_PER_JOB, "")]
    if workload.kind == "inference" and workload.traffic.arrival != "trace" and workload.traffic.duration_s is not None:
        traffic = workload.traffic
        rate, duration = float(traffic.rate_per_s), float(traffic.duration_s)
        field = "duration_s" if duration >= rate else "rate_per_s"
        requests = rate * duration if math.isfinite(rate * duration) else math.inf
        return [
            SizeItem(
                f"{path}.traffic.{field}",
                "requests",
                requests,
                BYTES_PER_REQUEST,
                f"{rate:.3g} requests/s x {duration:.3g} s",
            )
        ]
    if workload.kind == "training" and workload.fidelity == "detailed":
        par = workload.parallelism
        microbatches = workload.global_batch_size // (par.dp * par.microbatch_size)
        chunks = par.pp * par.virtual_stages
        why = f"{number(microbatches)} microbatches x {number(chunks)} pipeline chunks x (forward, backward)"
        return [
            SizeItem(
                f"{path}.global_batch_size",
                "pipeline passes per step",
                2 * chunks * microbatches,
                BYTES_PER_PIPELINE_PASS,
                why,
            )
        ]
    return []


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (``2000`` or ``2000.0``, as the builders take it), else
    None (a bool, text, a fraction, inf or nan)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def topology_size(topology: str, params: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(hosts, switches, links) of a built-in topology with ``params``, from its formula; None when the
    parameters are not plain numbers (the builder names what is wrong) or the topology is read from a file."""
    get = {key: whole for key, value in params.items() if (whole := _whole(value)) is not None}
    if topology == "fat_tree" and "k" in get:
        k = get["k"]
        return k**3 // 4, 5 * k * k // 4, 3 * k**3 // 4
    if topology == "leaf_spine" and "leaves" in get:
        leaves = get["leaves"]
        spines, per_leaf = get.get("spines", DEFAULT_SPINES), get.get("hosts_per_leaf", DEFAULT_HOSTS_PER_LEAF)
        return leaves * per_leaf, leaves + spines, leaves * spines + leaves * per_leaf
    if topology == "rail_optimized" and "nodes" in get:
        return rail_optimized_size(get)
    if topology == "torus" and isinstance(params.get("dims"), list | tuple):
        dims = params["dims"]
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            return None
        hosts = math.prod(dims)
        return hosts, 0, hosts * len(dims)
    if topology == "dragonfly" and {"groups", "routers", "hosts"} <= set(get):
        groups, routers, per_router = get["groups"], get["routers"], get["hosts"]
        hosts = groups * routers * per_router
        links = groups * routers * (routers - 1) // 2 + hosts + groups * (groups - 1) // 2
        return hosts, groups * routers, links
    if topology == "jellyfish" and "switches" in get:
        switches, per_switch = get["switches"], get.get("hosts", 1)
        degree = get.get("degree", default_degree(switches))
        return switches * per_switch, switches, switches * degree // 2 + switches * per_switch
    return None


def size_problems(scenario: Scenario) -> list[Problem]:
    """A problem for each item that alone exceeds the memory budget; else one for the whole run if the
    items together do (named at the largest). Empty when the run fits."""
    items = size_items(scenario)
    problems = [Problem(item.path, item.message()) for item in items if item.bytes > MEMORY_BUDGET_BYTES]
    total = sum(item.bytes for item in items)
    if not problems and total > MEMORY_BUDGET_BYTES:
        largest = max(items, key=lambda item: item.bytes)
        problems.append(
            Problem(
                largest.path,
                f"the run needs an estimated {memory(total)} in all ({number(largest.count)} {largest.what} "
                f"take {memory(largest.bytes)}); dcsim handles up to ~{memory(MEMORY_BUDGET_BYTES)}",
            )
        )
    named = {problem.path for problem in problems}
    return problems + [problem for problem in time_problems(scenario) if problem.path not in named]


def median(dist: Any) -> float:
    """A Pareto's median ``scale * 2**(1/alpha)`` (within its ``max``), else 0: a tail without a mean has no
    :func:`upper`, but half its draws still pass its median (``alpha: 1e-300`` draws overflow to inf)."""
    if not isinstance(dist, Pareto):
        return 0.0
    try:
        value = dist.scale * math.exp(math.log(2.0) / dist.alpha)
    except OverflowError:
        value = math.inf
    return value if dist.high is None else min(value, dist.high)


def time_problems(scenario: Scenario) -> list[Problem]:
    """Durations, arrival times and run lengths beyond :data:`MAX_SIMULATED_S`."""
    times: list[tuple[str, float]] = []
    if scenario.duration_s is not None:
        times.append(("duration_s", scenario.duration_s))
    failures = scenario.failures
    if failures is not None:
        if failures.repair_s is not None:
            times.append(("failures.repair_s", max(upper(failures.repair_s), median(failures.repair_s))))
        times.append(("failures.restart_s", failures.restart_s))
        if failures.checkpoint_s is not None:
            times.append(("failures.checkpoint_s", failures.checkpoint_s))
        write = scenario.datacenter.storage.write_bytes_per_s
        if failures.checkpoint_gb is not None and write:
            times.append(("failures.checkpoint_gb", failures.checkpoint_gb * 1e9 / write))
    times.append(("scheduler.checkpoint_s", scenario.scheduler.checkpoint_s))
    times.append(("scheduler.restart_s", scenario.scheduler.restart_s))
    for index, workload in enumerate(scenario.workloads):
        path = f"workloads[{index}]"
        if hasattr(workload, "arrival_s"):
            times.append((f"{path}.arrival_s", workload.arrival_s))
        synthetic = getattr(workload, "synthetic", None)
        if synthetic is not None:
            times.append(
                (f"{path}.synthetic.duration_s", max(upper(synthetic.duration_s), median(synthetic.duration_s)))
            )
            rate = "rate_per_s" if synthetic.rate_per_s is not None else "rate_per_h"
            span = as_float(synthetic.count) / synthetic.rate_per_second
            times.append((f"{path}.synthetic.{rate}", span))
        traffic = getattr(workload, "traffic", None)
        if traffic is not None and traffic.duration_s is not None:
            times.append((f"{path}.traffic.duration_s", traffic.duration_s))
    problems = []
    for path, seconds in times:
        if seconds > MAX_SIMULATED_S:
            what = "the jobs' arrivals span" if path.endswith(("rate_per_s", "rate_per_h")) else "it reaches"
            what = "one checkpoint takes" if path.endswith("checkpoint_gb") else what
            problems.append(
                Problem(
                    path,
                    f"{what} {number(seconds)} s of simulated time; {SIMULATED_TIME_LIMIT}: beyond it float64 "
                    "seconds lose microsecond resolution)",
                )
            )
    return problems
