"""Hypothesis strategies for property tests of scheduling policies (ours and users').

``clusters()`` draws node groups (1-3 groups of 1-4 nodes with 1-8 accelerators, A100 or H100, in racks);
``job_streams(cluster)`` draws gang jobs that fit the cluster (sizes, gaps, durations, priorities, teams,
optional accelerator pins). Both are plain data, so a failing example prints readably.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from hypothesis import strategies as st

from dcsim.scheduler.cluster import NodeGroup

ACCELERATORS = ("a100-sxm-80gb", "h100-sxm")


@dataclass(frozen=True)
class JobSpec:
    """One job of a drawn stream: arrives ``gap_s`` after the previous one."""

    gap_s: float
    gpus: int
    duration_s: float
    accelerator: str | None = None
    priority: int = 0
    team: str = "a"
    estimate_s: float | None = None
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[str, ...] = ()
    cpus_per_accelerator: float = 0.0


@st.composite
def clusters(
    draw: st.DrawFn,
    max_groups: int = 3,
    accelerators: tuple[str, ...] = ACCELERATORS,
    labels: bool = True,
    host: bool = False,
) -> list[NodeGroup]:
    """Node groups of one or more accelerator types, with racks of 1-4 nodes, and (if ``labels``) a
    ``zone`` label (``a``/``b``) and sometimes a ``spot`` taint; with ``host``, 1-3 CPU cores per
    accelerator on each node."""
    count = draw(st.integers(1, max_groups))
    groups = []
    for i in range(count):
        per_node = draw(st.integers(1, 8))
        groups.append(
            NodeGroup(
                name=f"g{i}",
                count=draw(st.integers(1, 4)),
                accelerator=draw(st.sampled_from(accelerators)),
                per_node=per_node,
                nodes_per_rack=draw(st.integers(1, 4)),
                labels=(("zone", draw(st.sampled_from("ab"))),) if labels else (),
                taints=("spot",) if labels and draw(st.booleans()) else (),
                cpu_cores=float(per_node * draw(st.integers(1, 3))) if host else None,
            )
        )
    return groups


def pool_sizes(groups: list[NodeGroup]) -> dict[str, int]:
    """Accelerators per accelerator type."""
    pools: dict[str, int] = defaultdict(int)
    for group in groups:
        pools[group.accelerator] += group.count * group.per_node
    return dict(pools)


@st.composite
def job_streams(
    draw: st.DrawFn,
    groups: list[NodeGroup],
    max_jobs: int = 40,
    pin_accelerators: bool = True,
    estimates: bool = False,
) -> list[JobSpec]:
    """Jobs that each fit the cluster: sizes up to the largest pool (or their pinned pool)."""
    jobs = []
    for _ in range(draw(st.integers(1, max_jobs))):
        selector: tuple[tuple[str, str], ...] = ()
        tolerations: tuple[str, ...] = ("spot",)
        if any(group.labels or group.taints for group in groups):
            selector = draw(st.sampled_from([(), (("zone", "a"),), (("zone", "b"),)]))
            tolerations = draw(st.sampled_from([(), ("spot",)]))
        eligible = [g for g in groups if set(selector) <= set(g.labels) and set(g.taints) <= set(tolerations)]
        if not eligible:  # no node admits this job: drop the constraints rather than draw an impossible job
            selector, tolerations, eligible = (), ("spot",), list(groups)
        pools = pool_sizes(eligible)
        choices: list[str | None] = [None, *sorted(pools)] if pin_accelerators else [None]
        accelerator = draw(st.sampled_from(choices))
        cpus = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])) if any(g.cpu_cores for g in groups) else 0.0
        limit = _largest_pool(eligible, accelerator, cpus)
        if limit == 0:  # no node could host even one accelerator with that request: request none
            cpus, limit = 0.0, _largest_pool(eligible, accelerator)
        duration = draw(st.floats(0.0, 50.0, allow_nan=False))
        jobs.append(
            JobSpec(
                gap_s=draw(st.floats(0.0, 20.0, allow_nan=False)),
                gpus=draw(st.integers(1, limit)),
                duration_s=duration,
                accelerator=accelerator,
                priority=draw(st.integers(0, 2)),
                team=draw(st.sampled_from("abc")),
                estimate_s=duration if not estimates else draw(st.floats(0.0, 60.0, allow_nan=False)),
                node_selector=selector,
                tolerations=tolerations,
                cpus_per_accelerator=cpus,
            )
        )
    return jobs


def _largest_pool(groups: list[NodeGroup], accelerator: str | None, cpus_per_accelerator: float = 0.0) -> int:
    """Accelerators in the largest pool (same accelerator, labels, taints) among ``groups`` that a job
    requesting ``cpus_per_accelerator`` host cores with each could use at once."""
    sizes: dict[tuple[object, ...], int] = defaultdict(int)
    for group in groups:
        if accelerator is None or group.accelerator == accelerator:
            usable = group.per_node
            if cpus_per_accelerator and group.cpu_cores is not None:
                usable = min(usable, int(group.cpu_cores / cpus_per_accelerator))
            sizes[group.pool_key] += group.count * usable
    return max(sizes.values())


@st.composite
def failure_schedules(
    draw: st.DrawFn, groups: list[NodeGroup], max_failures: int = 8
) -> list[tuple[float, int, float]]:
    """Accelerator failures ``(time_s, accelerator index, repair_s)`` on the drawn cluster."""
    size = sum(group.count * group.per_node for group in groups)
    return draw(
        st.lists(
            st.tuples(st.floats(0.0, 300.0, allow_nan=False), st.integers(0, size - 1), st.floats(0.0, 60.0)),
            max_size=max_failures,
        )
    )
