"""Enumerate and rank the valid parallel plans of a training run on a set of accelerators.

The space: tensor-parallel degrees that divide the accelerators per node (TP stays inside a node, where
NVSwitch/NVLink carries its all-reduces) and the model's heads; pipeline depths that divide the layers;
data parallelism for the rest; microbatch sizes 1-8; ZeRO stages (1-3 only without a pipeline, as in
DeepSpeed, plus 0 and 1 with one); the three recompute modes; sequence parallelism whenever ``tp > 1``
(Megatron's recommendation); 1F1B, plus the interleaved schedule with 2 virtual stages where it applies.
Each plan is priced with the fast (closed-form) pipeline on the first accelerators of the pool; memory is
checked against the accelerator's; plans that do not fit are kept and marked.

Context parallelism: the degrees of :data:`CP_DEGREES` that the plan's checks accept and that leave each
rank at least :data:`MIN_CP_TOKENS` tokens of a sequence, taken from the data-parallel ranks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from dcsim import progress
from dcsim.parallel.comm import CommModel
from dcsim.parallel.context_parallel import check_context_parallel
from dcsim.parallel.evaluate import PlanEvaluation, evaluate_plan
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.stages import block_layers
from dcsim.parallel.step import TrainingSetup, check_plan

MICROBATCH_SIZES = (1, 2, 4, 8)
#: Context-parallel degrees searched: powers of two up to 16, the largest Meta used (Llama 3 405B at 128K
#: tokens: Dubey et al. 2024, "The Llama 3 Herd of Models", Section 3.3.2, CP 16).
CP_DEGREES = (1, 2, 4, 8, 16)
#: Fewest tokens per context-parallel rank the search considers: a bound on the search space (as
#: MICROBATCH_SIZES is), not a model figure. Context parallelism is for long sequences; splitting short ones
#: multiplies the plans to price for layouts that only add ring hops.
MIN_CP_TOKENS = 1024
RANK_BY = ("time", "cost")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidate_plans(setup: TrainingSetup, accelerators: int, per_node: int) -> Iterator[ParallelPlan]:
    """Every plan of the space (module docstring) on exactly ``accelerators``, valid for ``setup``."""
    model = setup.model
    layers = block_layers(model)
    transformer = hasattr(model, "heads")
    tps = [t for t in _divisors(per_node) if accelerators % t == 0] if transformer else [1]
    experts = getattr(model, "experts", 1) or 1
    for tp in tps:
        pps = [p for p in _divisors(layers) if accelerators % (tp * p) == 0] if transformer else [1]
        for pp, cp in ((p, c) for p in pps for c in _cp_degrees(setup, accelerators // (tp * p))):
            dp = accelerators // (tp * pp * cp)
            eps = [e for e in _divisors(dp) if experts % e == 0] if experts > 1 else [1]
            zeros = (0, 1) if pp > 1 else (0, 1, 2, 3)
            recomputes = ("none", "selective", "full") if transformer else ("none",)
            schedules = [("1f1b", 1)]
            if pp > 1 and layers % (pp * 2) == 0:
                schedules.append(("interleaved", 2))
            for ep, mbs, zero, recompute, (schedule, v) in itertools.product(
                eps, MICROBATCH_SIZES, zeros, recomputes, schedules
            ):
                plan = ParallelPlan(
                    dp=dp,
                    tp=tp,
                    pp=pp,
                    ep=ep,
                    microbatch_size=mbs,
                    schedule=schedule,
                    virtual_stages=v,
                    zero_stage=zero,
                    recompute=recompute,
                    sequence_parallel=tp > 1,
                    cp=cp,
                )
                if not check_plan(setup, plan):
                    yield plan


def _cp_degrees(setup: TrainingSetup, ranks: int) -> list[int]:
    """Context-parallel degrees of :data:`CP_DEGREES` for ``ranks`` accelerators per tensor and pipeline rank:
    dividing them, valid for the model, sequence and attention, and leaving :data:`MIN_CP_TOKENS` per rank."""
    return [
        c
        for c in CP_DEGREES
        if ranks % c == 0
        and (c == 1 or setup.seq_len // c >= MIN_CP_TOKENS)
        and not check_context_parallel(setup.model, setup.seq_len, ParallelPlan(cp=c), str(setup.attention))
    ]


@dataclass(frozen=True)
class RankedPlans:
    """Every evaluated plan, best first, as a table (one row per plan) and the evaluations themselves."""

    table: pd.DataFrame
    evaluations: list[PlanEvaluation]


def rank_plans(
    setup: TrainingSetup,
    names: Sequence[str],
    comm: CommModel,
    server_of: dict[str, str],
    per_node: int,
    *,
    tokens: float,
    usd_per_accelerator_s: float,
    by: str = "time",
    fidelity: str = "fast",
) -> RankedPlans:
    """Evaluate every candidate plan on the accelerators ``names`` (ranks in that order) and rank them by
    time to train ``tokens`` or by its cost; plans that fit in memory come first."""
    if by not in RANK_BY:
        raise ValueError(f"rank by one of {', '.join(RANK_BY)} (got {by!r})")
    evaluations: list[PlanEvaluation] = []
    plans = list(candidate_plans(setup, len(names), per_node))
    with progress.bar(len(plans), "evaluating plans", unit="plan") as shown:
        for plan in plans:
            layout = RankLayout(plan, tuple(names))
            evaluations.append(evaluate_plan(setup, plan, layout, comm, server_of, fidelity))
            shown.update(1)
    rows = []
    for ev in evaluations:
        steps = tokens / ev.tokens_per_step
        time_s = steps * ev.step_time_s
        p = ev.plan
        rows.append(
            {
                "dp": p.dp,
                "tp": p.tp,
                "pp": p.pp,
                "cp": p.cp,
                "ep": p.ep,
                "microbatch_size": p.microbatch_size,
                "schedule": p.schedule,
                "virtual_stages": p.virtual_stages,
                "zero_stage": p.zero_stage,
                "recompute": p.recompute,
                "sequence_parallel": p.sequence_parallel,
                "fits_in_memory": ev.fits_in_memory,
                "memory_per_accelerator_gb": ev.memory.total_bytes / 1e9,
                "step_time_s": ev.step_time_s,
                "tokens_per_s": ev.tokens_per_s,
                "mfu": ev.mfu,
                "time_to_train_s": time_s,
                "cost_usd": time_s * p.world_size * usd_per_accelerator_s,
                **ev.step.breakdown(),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return RankedPlans(table, [])
    key = "time_to_train_s" if by == "time" else "cost_usd"
    order = table.sort_values(["fits_in_memory", key], ascending=[False, True], kind="stable").index
    return RankedPlans(table.loc[order].reset_index(drop=True), [evaluations[i] for i in order])
