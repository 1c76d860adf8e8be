"""Scheduling policies: which waiting job to try next. One short subclass per policy.

A policy orders the queue with ``key(job)`` (smallest first). A *blocking* policy (FIFO) stops at the first
job that does not fit, so no later job overtakes it; a non-blocking one tries every waiting job in order.
"""

from __future__ import annotations

from typing import Any

from dcsim.scheduler.registry import Registry
from dcsim.workloads.jobs import Job


class SchedulingPolicy:
    """Base class. Override ``key`` (queue order) and set ``blocking``."""

    blocking = True

    def key(self, job: Job) -> Any:
        """Sort key of a waiting job; smaller runs first. Default: submission order."""
        return (job.submit_s, job.seq)


POLICIES: Registry[SchedulingPolicy] = Registry("scheduler policy", SchedulingPolicy)
register_policy = POLICIES.register


def resolve_policy(reference: str) -> type[SchedulingPolicy]:
    """The policy class for a registered name or ``module:Class``."""
    return POLICIES.resolve(reference)


@register_policy("fifo")
class Fifo(SchedulingPolicy):
    """First in, first out with head-of-line blocking: jobs start in submission order."""

    blocking = True
