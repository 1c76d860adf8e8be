"""What a workload runner sees when the run is over: the clock, the scheduler, prices, power and each job's usage."""

from __future__ import annotations

from dataclasses import dataclass, field

from dcsim.scheduler.dispatcher import ClusterScheduler


@dataclass
class RunContext:
    """End-of-run facts shared by every runner's summary and tables.

    ``usd_per_accelerator_s`` and ``busy_w`` are per accelerator type (price of one accelerator-second;
    busy power in W); ``usage`` is each job's usage by its ``seq``.
    """

    end_s: float
    scheduler: ClusterScheduler
    pue: float
    usd_per_accelerator_s: dict[str, float] = field(default_factory=dict)
    busy_w: dict[str, float] = field(default_factory=dict)
    usage: dict[int, JobUsage] = field(default_factory=dict)


@dataclass
class JobUsage:
    """Where and how long a job ran, over all its segments: accelerator type, node names, accelerator-s."""

    accelerator: str
    nodes: list[str] = field(default_factory=list)
    accelerator_s: float = 0.0


def job_usage(scheduler: ClusterScheduler, end_s: float) -> dict[int, JobUsage]:
    """Per job (by ``seq``): its usage summed over the scheduler's segments, clipped at ``end_s``."""
    cluster = scheduler.cluster
    node_names = [node.name for node in cluster.nodes]
    node_of = cluster.node_of
    usage: dict[int, JobUsage] = {}
    for seg in scheduler.segments:
        accelerators = seg.accelerators
        used = usage.get(seg.job.seq)
        if used is None:
            used = usage[seg.job.seq] = JobUsage(cluster.accelerator_type[accelerators[0]])
        if len(accelerators) == 1:
            name = node_names[node_of[accelerators[0]]]
            if name not in used.nodes:
                used.nodes.append(name)
        else:
            for number in sorted({node_of[a] for a in accelerators}):
                if node_names[number] not in used.nodes:
                    used.nodes.append(node_names[number])
        used.accelerator_s += max(0.0, min(seg.end_s, end_s) - seg.start_s) * len(accelerators)
    return usage
