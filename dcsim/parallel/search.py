"""Enumerate and rank the valid parallel plans of a training run on a set of accelerators.

The space: tensor-parallel degrees that divide the accelerators per node (TP stays inside a node, where
NVSwitch/NVLink carries its all-reduces) and the model's heads; pipeline depths up to the layer count (an
uneven split where they do not divide the layers, :func:`dcsim.parallel.stages.chunk_layers`); data
parallelism for the rest, expert parallelism (MoE models) carved from it; microbatch sizes 1-8; ZeRO stages
(1-3 only without a pipeline, as in DeepSpeed, plus 0 and 1 with one); the three recompute modes; sequence
parallelism whenever ``tp > 1`` (Megatron's recommendation); 1F1B, plus the interleaved schedule with 2
virtual stages where it applies. The degrees are :data:`DEGREES`, one rule each: another degree is one entry
there (and its field on :class:`~dcsim.parallel.plan.ParallelPlan`).

Memory comes before time: every candidate's memory is computed first (closed form, cached per shard), and
only the plans that fit are priced (the fast, closed-form pipeline on the first accelerators of the pool).
Plans that do not fit are kept in the table, marked, with their memory and without a step time, unless
``price_unfit`` asks for it. Pricing shares everything that is pure across candidates: a shard's op-list
times (per microbatch size, tp and ep), each distinct collective on the network (the
:class:`~dcsim.parallel.comm.CommModel` cache, one controller for the whole search) and the optimizer step
per parameter count.

Context parallelism: the degrees of :data:`CP_DEGREES` that the plan's checks accept and that leave each
rank at least :data:`MIN_CP_TOKENS` tokens of a sequence, taken from the data-parallel ranks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dcsim import progress
from dcsim.catalog import load_catalog
from dcsim.models import transformer_like
from dcsim.parallel.comm import CommModel
from dcsim.parallel.context_parallel import check_context_parallel
from dcsim.parallel.evaluate import PlanEvaluation, evaluate_plan, plan_memory
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.memory import MemoryBreakdown, fits
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

#: A degree's rule: (setup, accelerators left for it and the degrees after it, accelerators per node, the
#: degrees chosen so far) -> the values to try, each dividing the accelerators left.
DegreeRule = Callable[[TrainingSetup, int, int, dict[str, int]], list[int]]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _transformer(setup: TrainingSetup) -> bool:
    return transformer_like(setup.model) is not None


def tp_degrees(setup: TrainingSetup, left: int, per_node: int, chosen: dict[str, int]) -> list[int]:
    """Tensor parallelism inside one node: the divisors of the accelerators per node (transformers only;
    check_plan drops those that do not divide the heads)."""
    del chosen
    return [t for t in _divisors(per_node) if left % t == 0] if _transformer(setup) else [1]


def pp_degrees(setup: TrainingSetup, left: int, per_node: int, chosen: dict[str, int]) -> list[int]:
    """Pipeline depths up to the layer count (transformers only)."""
    del per_node, chosen
    if not _transformer(setup):
        return [1]
    layers = block_layers(setup.model)
    return [p for p in _divisors(left) if p <= layers]


#: The parallel degrees searched, outermost choice first; data parallelism takes the accelerators left and
#: expert parallelism (MoE) is carved from it (:func:`ep_degrees`).
DEGREES: tuple[tuple[str, DegreeRule], ...] = (
    ("tp", tp_degrees),
    ("pp", pp_degrees),
    ("cp", lambda setup, left, per_node, chosen: _cp_degrees(setup, left)),
)


def ep_degrees(setup: TrainingSetup, dp: int) -> list[int]:
    """Expert-parallel degrees: the divisors of dp that divide the experts (1 for dense models)."""
    experts = setup.model.experts
    return [e for e in _divisors(dp) if experts % e == 0] if experts > 1 else [1]


def degree_choices(setup: TrainingSetup, accelerators: int, per_node: int) -> Iterator[dict[str, int]]:
    """Every assignment of the :data:`DEGREES` whose product divides ``accelerators``, with ``dp`` (the rest)
    and ``ep``. Assignments whose data-parallel size cannot split the global batch are skipped."""

    def assign(index: int, left: int, chosen: dict[str, int]) -> Iterator[dict[str, int]]:
        if index == len(DEGREES):
            if setup.global_batch_size % left == 0:  # dp * microbatch_size must divide the batch
                for ep in ep_degrees(setup, left):
                    yield {**chosen, "dp": left, "ep": ep}
            return
        name, rule = DEGREES[index]
        for value in rule(setup, left, per_node, chosen):
            yield from assign(index + 1, left // value, {**chosen, name: value})

    yield from assign(0, accelerators, {})


def candidate_plans(setup: TrainingSetup, accelerators: int, per_node: int) -> Iterator[ParallelPlan]:
    """Every plan of the space (module docstring) on exactly ``accelerators``, valid for ``setup``."""
    layers = block_layers(setup.model)
    recomputes = ("none", "selective", "full") if _transformer(setup) else ("none",)
    for degrees in degree_choices(setup, accelerators, per_node):
        pp, tp = degrees.get("pp", 1), degrees.get("tp", 1)
        zeros = (0, 1) if pp > 1 else (0, 1, 2, 3)
        schedules = [("1f1b", 1)]
        if pp > 1 and layers >= pp * 2:
            schedules.append(("interleaved", 2))
        for mbs in MICROBATCH_SIZES:
            if setup.global_batch_size % (degrees["dp"] * mbs):
                continue
            for zero, recompute, (schedule, v) in itertools.product(zeros, recomputes, schedules):
                options: dict[str, Any] = {
                    **degrees,
                    "microbatch_size": mbs,
                    "schedule": schedule,
                    "virtual_stages": v,
                    "zero_stage": zero,
                    "recompute": recompute,
                    "sequence_parallel": tp > 1,
                }
                plan = ParallelPlan(**options)
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
    """Every candidate plan, best first, as a table (one row per plan), and the evaluations of the plans that
    were priced (those that fit in memory, unless ``price_unfit``), best first."""

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
    price_unfit: bool = False,
) -> RankedPlans:
    """Check every candidate plan's memory, price those that fit (all with ``price_unfit``) on the
    accelerators ``names`` (ranks in that order) and rank them by time to train ``tokens`` or by its cost;
    plans that fit in memory come first, those not priced last."""
    if by not in RANK_BY:
        raise ValueError(f"rank by one of {', '.join(RANK_BY)} (got {by!r})")
    accelerator = load_catalog().accelerator(setup.accelerator)
    plans = list(candidate_plans(setup, len(names), per_node))
    names = tuple(names)
    rows: list[dict[str, Any]] = []
    priced: dict[int, PlanEvaluation] = {}
    with progress.bar(len(plans), "evaluating plans", unit="plan") as shown:
        for plan in plans:
            memory = plan_memory(setup, plan)
            fit = fits(memory, accelerator)
            if fit or price_unfit:
                ev = evaluate_plan(setup, plan, RankLayout(plan, names), comm, server_of, fidelity, memory)
                priced[len(rows)] = ev
                rows.append(_row(ev.plan, ev.memory, fit, ev, tokens, usd_per_accelerator_s))
            else:
                rows.append(_row(plan, memory, fit, None, tokens, usd_per_accelerator_s))
            shown.update(1)
    table = pd.DataFrame(rows)
    if table.empty:
        return RankedPlans(table, [])
    key = "time_to_train_s" if by == "time" else "cost_usd"
    order = table.sort_values(["fits_in_memory", key], ascending=[False, True], kind="stable").index
    return RankedPlans(table.loc[order].reset_index(drop=True), [priced[i] for i in order if i in priced])


def _row(
    plan: ParallelPlan,
    memory: MemoryBreakdown,
    fit: bool,
    ev: PlanEvaluation | None,
    tokens: float,
    usd_per_accelerator_s: float,
) -> dict[str, Any]:
    """One table row: the plan, its memory, and its time and cost where it was priced (NaN where not)."""
    row: dict[str, Any] = {
        "dp": plan.dp,
        **{name: getattr(plan, name) for name, _rule in DEGREES},
        "ep": plan.ep,
        "microbatch_size": plan.microbatch_size,
        "schedule": plan.schedule,
        "virtual_stages": plan.virtual_stages,
        "zero_stage": plan.zero_stage,
        "recompute": plan.recompute,
        "sequence_parallel": plan.sequence_parallel,
        "fits_in_memory": fit,
        "memory_per_accelerator_gb": memory.total_bytes / 1e9,
    }
    if ev is None:
        nan = math.nan
        row.update(step_time_s=nan, tokens_per_s=nan, mfu=nan, time_to_train_s=nan, cost_usd=nan)
        return row
    time_s = tokens / ev.tokens_per_step * ev.step_time_s
    row.update(
        step_time_s=ev.step_time_s,
        tokens_per_s=ev.tokens_per_s,
        mfu=ev.mfu,
        time_to_train_s=time_s,
        cost_usd=time_s * plan.world_size * usd_per_accelerator_s,
        **ev.step.breakdown(),
        layers_per_stage=_compact(ev.step.layers_per_chunk),
    )
    return row


def _compact(split: tuple[int, ...]) -> str:
    """``(7, 8, 8, 8, 7)`` -> ``"7,8x3,7"``: layers per pipeline chunk, runs collapsed."""
    parts = []
    for count, run in itertools.groupby(split):
        repeat = len(list(run))
        parts.append(f"{count}x{repeat}" if repeat > 1 else str(count))
    return ",".join(parts)
