"""Parallel training plans: DP/TP/PP/EP/ZeRO layouts, memory per accelerator, pipeline schedules."""

from dcsim.parallel.plan import RECOMPUTE, SCHEDULES, ParallelPlan

__all__ = ["RECOMPUTE", "SCHEDULES", "ParallelPlan"]
