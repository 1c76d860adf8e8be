"""The bytes one training step sends between accelerators, for pricing contention between jobs.

:func:`step_transfers` counts the collectives of one step as :func:`dcsim.parallel.step.estimate_step`
runs them, over every rank group of the job (not only the one the step is timed on), and turns them into
``(src, dst) -> bytes`` transfers (:mod:`dcsim.scheduler.traffic`):

- tensor parallelism: per layer and microbatch, two all-reduces of the activations in the forward and
  two in the backward (two more under full recompute); with sequence parallelism a reduce-scatter plus an
  all-gather each, the same ring bytes; layers per stage as the step's split gives them (uneven pipelines);
- context parallelism: per layer and microbatch, ``cp - 1`` hops of the rank's KV chunk around each ring in
  the forward and twice that (KV and its gradient) in the backward;
- expert parallelism: two all-to-alls per layer and pass, of ``activations * top_k / tp``;
- pipeline parallelism: per microbatch, the activations forward and their gradients back across each
  chunk boundary, ``activations / tp`` per tensor rank;
- data parallelism: one all-reduce of each stage's gradients per step over its ``dp * cp`` ranks (ZeRO 1/2:
  reduce-scatter plus all-gather, the same bytes); ZeRO-3: per microbatch two all-gathers of the stage's weights and one
  reduce-scatter of its gradients.

Keep it in step with :func:`~dcsim.parallel.step.estimate_step` when that changes what a step sends.
"""

from __future__ import annotations

from dcsim.models import transformer_like
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.plan import ParallelPlan
from dcsim.parallel.stages import device_layers
from dcsim.parallel.step import TrainingSetup, _setup_slice, layer_split, stage_params
from dcsim.scheduler.traffic import Transfers, ring_transfers, send_transfers


def step_transfers(setup: TrainingSetup, plan: ParallelPlan, layout: RankLayout) -> Transfers:
    """Bytes per step between each pair of the job's accelerators (fabric names)."""
    out: Transfers = {}
    m = plan.microbatches(setup.global_batch_size)
    sl = _setup_slice(setup, plan)
    split = layer_split(setup, plan)
    held = device_layers(split, plan.pp)
    elem = setup.element_bytes
    tokens = setup.seq_len // plan.cp  # this rank's tokens of each sequence
    act_bytes = plan.microbatch_size * tokens * (sl.hidden or 0) * elem
    passes = 4 if plan.recompute == "full" else 2  # backward collectives per forward's two
    stages = range(plan.pp)
    if plan.tp > 1:
        for stage in stages:
            runs = float(m * held[stage] * (2 + passes))
            for group in layout.tp_groups(stage):
                ring_transfers(out, "all_reduce", group, act_bytes, runs)
    experts = setup.model.experts
    if experts > 1 and plan.ep > 1:
        top_k = setup.model.experts_per_token
        for stage in stages:
            runs = float(m * held[stage] * (2 + passes))
            for group in layout.ep_groups(stage):
                ring_transfers(out, "all_to_all", group, act_bytes * top_k / plan.tp, runs)
    if plan.cp > 1:  # ring attention: the rank's K and V chunk to the next rank, cp - 1 hops per layer
        shape = transformer_like(setup.model)
        heads, kv_heads = (1, 1) if shape is None else (shape.heads, shape.kv_heads)
        kv_bytes = 2 * act_bytes * kv_heads / heads / plan.tp
        for stage in stages:
            hops = float(m * held[stage] * (plan.cp - 1) * 3)  # forward KV; backward KV and its gradient
            for ring in layout.cp_groups(stage):
                pairs = [(ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))]
                send_transfers(out, pairs, kv_bytes, hops)
    if plan.pp > 1:
        chunks = plan.pp * plan.virtual_stages
        for c in range(chunks - 1):
            a, b = c % plan.pp, (c + 1) % plan.pp
            pairs = [
                (layout.name(d, a, t, k), layout.name(d, b, t, k))
                for d in range(plan.dp)
                for t in range(plan.tp)
                for k in range(plan.cp)
            ]
            send_transfers(out, pairs, act_bytes / plan.tp, m)  # activations forward
            send_transfers(out, [(q, p) for p, q in pairs], act_bytes / plan.tp, m)  # their gradients back
    if plan.dp_cp > 1:
        params = stage_params(sl, plan, split)
        for stage in stages:
            nbytes = params[stage] * elem
            for group in layout.dp_groups([stage]):
                if plan.zero_stage == 3:
                    ring_transfers(out, "all_gather", group, nbytes, 2.0 * m)
                    ring_transfers(out, "reduce_scatter", group, nbytes, float(m))
                else:
                    ring_transfers(out, "all_reduce", group, nbytes)
    return out
