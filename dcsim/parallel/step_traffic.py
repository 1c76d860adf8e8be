"""The bytes one training step sends between accelerators, for pricing contention between jobs.

:func:`step_transfers` counts the collectives of one step as :func:`dcsim.parallel.step.estimate_step`
runs them, over every rank group of the job (not only the one the step is timed on), and turns them into
``(src, dst) -> bytes`` transfers (:mod:`dcsim.scheduler.traffic`):

- tensor parallelism: per layer and microbatch, two all-reduces of the activations in the forward and
  two in the backward (two more under full recompute); with sequence parallelism a reduce-scatter plus an
  all-gather each, the same ring bytes;
- expert parallelism: two all-to-alls per layer and pass, of ``activations * top_k / tp``;
- pipeline parallelism: per microbatch, the activations forward and their gradients back across each
  chunk boundary, ``activations / tp`` per tensor rank;
- data parallelism: one all-reduce of each stage's gradients per step (ZeRO 1/2: reduce-scatter plus
  all-gather, the same bytes); ZeRO-3: per microbatch two all-gathers of the stage's weights and one
  reduce-scatter of its gradients.

Keep it in step with :func:`~dcsim.parallel.step.estimate_step` when that changes what a step sends.
"""

from __future__ import annotations

from dcsim.parallel.layout import RankLayout
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.step import TrainingSetup, _slice, stage_params
from dcsim.scheduler.traffic import Transfers, ring_transfers, send_transfers


def step_transfers(setup: TrainingSetup, plan: ParallelPlan, layout: RankLayout) -> Transfers:
    """Bytes per step between each pair of the job's accelerators (fabric names)."""
    out: Transfers = {}
    m = plan.microbatches(setup.global_batch_size)
    precision = "fp32" if setup.precision == "tf32" else setup.precision
    sl = _slice(setup.model, plan.microbatch_size, setup.seq_len, plan.tp, plan.ep, precision, setup.accelerator)
    elem = setup.element_bytes
    act_bytes = plan.microbatch_size * setup.seq_len * (sl.hidden or 0) * elem
    layers_per_device = sl.layers // plan.pp
    passes = 4 if plan.recompute == "full" else 2  # backward collectives per forward's two
    per_layer_runs = float(m * layers_per_device * (2 + passes))
    stages = range(plan.pp)
    if plan.tp > 1:
        for stage in stages:
            for group in layout.tp_groups(stage):
                ring_transfers(out, "all_reduce", group, act_bytes, per_layer_runs)
    experts = getattr(setup.model, "experts", 1) or 1
    if experts > 1 and plan.ep > 1:
        top_k = getattr(setup.model, "experts_per_token", 1) or 1
        for stage in stages:
            for group in layout.ep_groups(stage):
                ring_transfers(out, "all_to_all", group, act_bytes * top_k / plan.tp, per_layer_runs)
    if plan.pp > 1:
        chunks = plan.pp * plan.virtual_stages
        for c in range(chunks - 1):
            a, b = c % plan.pp, (c + 1) % plan.pp
            pairs = [(layout.name(d, a, t), layout.name(d, b, t)) for d in range(plan.dp) for t in range(plan.tp)]
            send_transfers(out, pairs, act_bytes / plan.tp, m)  # activations forward
            send_transfers(out, [(q, p) for p, q in pairs], act_bytes / plan.tp, m)  # their gradients back
    if plan.dp > 1:
        params = stage_params(sl, plan)
        for stage in stages:
            nbytes = params[stage] * elem
            for group in layout.dp_groups([stage]):
                if plan.zero_stage == 3:
                    ring_transfers(out, "all_gather", group, nbytes, 2.0 * m)
                    ring_transfers(out, "reduce_scatter", group, nbytes, float(m))
                else:
                    ring_transfers(out, "all_reduce", group, nbytes)
    return out
