"""The per-kernel launch floor of an eager training step on a GPU, and CUDA graphs that remove it.

In eager PyTorch the host dispatches every kernel one by one (Python, the dispatcher, the CUDA launch). The
GPU runs them asynchronously, so a step takes the longer of its kernels' device time and the host's time to
launch them: a small model whose kernels each finish faster than the host can issue the next is
launch-bound, however fast the GPU.

The floor per kernel is measured, not assumed: ``dcsim calibrate`` times each op as a loop of back-to-back
calls between two CUDA events (``dcsim/calibrate/timing.py``), so an op whose kernel is shorter than its
dispatch measures the dispatch. The floor is the fastest forward op the device's own profile measured (the
median of its samples; points imported from other tools, timed as bare kernels, are left out). On the H100
profile (``calibration/profiles/h100-sxm.json``, torch 2.11) that is 6.3 us (a softmax of 256 elements; the
25 fastest ops all took 6.3-7.2 us). A GPU without a profile of its own takes the floor of the measured
profile its prior borrows curves from (``transfer_from`` in ``dcsim/compute/data/priors.yaml``): the host's
dispatch cost does not depend on the GPU. CPUs run ops synchronously, and their measured per-call overhead is
already in every op's price, so they have no floor here.

A microbatch's forward, and its backward, then cost at least their kernel launches times the floor
(:func:`with_launch_floor`). A forward op launches one kernel; a backward launches two for GEMMs and
convolutions (the input and the weight gradient, :class:`~dcsim.compute.Matmul`) and one otherwise (a lower
bound: FlashAttention-2's backward launches three).

CUDA graphs (``torch.cuda.CUDAGraph``, Megatron-Core's ``cuda_graph_impl``, TE's ``make_graphed_callables``)
capture the kernels once and replay them with one launch per graph, so ``cuda_graphs: true`` removes the floor.
The per-op fits keep their measured per-call overhead either way (see docs/training.md, Limits).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dcsim.catalog import load_catalog
from dcsim.compute import Conv2d, Matmul, Op, Profile, default_cost_model
from dcsim.compute.ops import SparseMatmul, WeightOnlyMatmul
from dcsim.models import ModelOps
from dcsim.parallel.stages import PARTS, PartTimes, layer_part

#: Ops whose backward launches two kernels (input gradient and weight gradient).
TWO_KERNEL_BACKWARD = (Matmul, Conv2d, WeightOnlyMatmul, SparseMatmul)


def backward_kernels(op: Op) -> int:
    """Kernels the backward of ``op`` launches (see the module docstring)."""
    return 2 if isinstance(op, TWO_KERNEL_BACKWARD) else 1


@dataclass(frozen=True)
class Launches:
    """Kernel launches of one microbatch, per part, in the forward (``fwd``) and the backward (``bwd``)."""

    fwd: dict[str, int]
    bwd: dict[str, int]


def kernel_launches(ops: ModelOps, extra: Iterable[tuple[str, str, int]] = ()) -> Launches:
    """The kernels one microbatch of ``ops`` launches, plus ``extra`` (part, phase, kernels) ones (fp8 casts)."""
    fwd = dict.fromkeys(PARTS, 0)
    bwd = dict.fromkeys(PARTS, 0)
    for layer in ops.layers:
        part = layer_part(layer)
        if not layer.backward_only:
            fwd[part] += layer.count
        bwd[part] += layer.count * backward_kernels(layer.op)
    for part, phase, count in extra:
        (fwd if phase == "fwd" else bwd)[part] += count
    return Launches(fwd, bwd)


def profile_launch_floor_s(profile: Profile) -> float:
    """The fastest forward op ``profile`` measured itself (median seconds per call), 0 if it measured none."""
    own = [p.median_s for p in profile.points if not p.source and p.op.phase == "fwd"]
    return min(own) if own else 0.0


@functools.cache
def launch_floor_s(device: str) -> float:
    """Seconds per kernel launch on ``device`` in eager mode (module docstring); 0 for CPUs and devices with no
    measured profile to read it from."""
    accelerator = load_catalog().accelerators.get(device)
    if accelerator is None or accelerator.kind != "gpu":
        return 0.0
    model = default_cost_model()
    device_model = model.device(device)
    profiles = [device_model.profile] if device_model.profile is not None else []
    profiles += [p for ref in device_model.references if (p := model.device(ref).profile) is not None]
    for profile in profiles:
        floor = profile_launch_floor_s(profile)
        if floor > 0:
            return floor
    return 0.0


def with_launch_floor(times: PartTimes, launches: Launches, floor_s: float) -> PartTimes:
    """``times`` with a microbatch's forward (and, separately, backward) at least its kernel launches times
    ``floor_s``. The floor holds for the whole pass, not op by op or part by part: while long kernels run the
    host queues the launches of the short ones after them, so only a pass whose launches outlast its device time
    is launch-bound. A bound pass is stretched evenly over its parts (so over the pipeline chunks that hold
    them); recompute re-runs the stretched forward (:meth:`PartTimes.recompute_s`)."""
    if floor_s <= 0:
        return times
    fwd_scale = _stretch(sum(times.fwd_s.values()), sum(launches.fwd.values()) * floor_s)
    bwd_scale = _stretch(sum(times.bwd_s.values()), sum(launches.bwd.values()) * floor_s)
    if fwd_scale == bwd_scale == 1.0:
        return times
    return replace(
        times,
        fwd_s={p: s * fwd_scale for p, s in times.fwd_s.items()},
        bwd_s={p: s * bwd_scale for p, s in times.bwd_s.items()},
        attention_fwd_s={p: s * fwd_scale for p, s in times.attention_fwd_s.items()},
    )


def _stretch(device_s: float, floor_s: float) -> float:
    return floor_s / device_s if device_s > 0 and floor_s > device_s else 1.0
