"""Fit a whole profile, split it into fitted and held-out shapes, and report prediction errors."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from dcsim.compute.fit import fit_roofline
from dcsim.compute.profile import Measurement, Profile
from dcsim.compute.roofline import RooflineFit

#: Every HOLDOUT_EVERY-th point of a class (sorted by size, starting at HOLDOUT_OFFSET) is held out:
#: a stratified 25% that covers small and large shapes and is never the smallest or largest point.
HOLDOUT_EVERY = 4
HOLDOUT_OFFSET = 2
MIN_POINTS = 3
#: A class whose points' arithmetic intensities (FLOPs per byte) span less than this factor cannot tell
#: compute time from memory time (both grow in proportion): it is fitted on its bytes alone.
MIN_INTENSITY_SPAN = 2.0
#: Op classes priced at other FLOPs per byte than their points may all share: decode attention's grow with the
#: query heads per key-value head (1 for multi-head, 8 for Llama-2-70B's grouped-query attention); a GEMV's or
#: skinny GEMM's fall when its weights are stored in fewer bits than it computes in (weight-only int4/int8).
VARIABLE_INTENSITY_CLASSES = ("attention_decode/", "matmul_gemv/", "matmul_skinny/")
#: GEMM classes whose row tile a GPU profile's fit chooses (:func:`fit_tiled`)
TILED_CLASSES = ("matmul/", "bmm/")
#: the row tiles tried (1: none)
TILE_ROWS = (1, 64, 128, 256)
#: the fraction of the mean absolute log error a larger tile must save to be kept
TILE_GAIN = 0.05
#: Op classes fitted on their FLOPs alone on GPUs: prefill attention (FlashAttention reads each key and value
#: tile once per query tile, Dao 2023, and is compute-bound). Its imported A100 points are all one sequence of
#: one head shape; a memory term fitted to them (3.5% of the A100's bandwidth) priced 8 sequences of 1,024
#: tokens with 32 key-value heads at 10 TFLOP/s.
COMPUTE_BOUND_GPU_CLASSES = ("attention/",)
#: Bump when the model form or the fitting changes: stored fits of older versions are then refitted.
FIT_VERSION = 14


def group_by_class(points: Iterable[Measurement]) -> dict[str, list[Measurement]]:
    """Measurements by ``op.fit_key``, each list sorted by (FLOPs, bytes)."""
    groups: dict[str, list[Measurement]] = defaultdict(list)
    for point in points:
        groups[point.op.fit_key].append(point)
    return {k: sorted(v, key=lambda p: (p.op.flops, p.op.bytes)) for k, v in sorted(groups.items())}


def split_heldout(points: Iterable[Measurement]) -> tuple[list[Measurement], list[Measurement]]:
    """(fitted, held out): per class, every 4th point by size from the 3rd on is held out."""
    fitted: list[Measurement] = []
    held: list[Measurement] = []
    for group in group_by_class(points).values():
        for index, point in enumerate(group):
            last = index == len(group) - 1
            hold = index % HOLDOUT_EVERY == HOLDOUT_OFFSET and not last and len(group) > MIN_POINTS
            (held if hold else fitted).append(point)
    return fitted, held


def separable_intensity(flops: np.ndarray, nbytes: np.ndarray) -> bool:
    """True if measurements of these FLOPs and bytes can separate compute from memory time: their
    arithmetic intensities span at least :data:`MIN_INTENSITY_SPAN`. (Also used for segments per byte: a
    class whose segments grow in proportion to its bytes, a norm measured at one width, cannot tell a cost
    per segment from a cost per byte, and is fitted without the segment term.)

    Where they do not, any split between a compute and a memory term fits equally well, and a fitted compute term
    prices ops of the same class at another intensity arbitrarily: decode attention measured with multi-head shapes
    only (1 FLOP per byte of KV cache in fp16) then charged grouped-query shapes (8 query heads per KV head, 8 FLOPs
    per byte) 8 times its memory time. Classes in :data:`VARIABLE_INTENSITY_CLASSES` meet ops at other intensities, so
    where their points do not separate the terms they are fitted on their bytes alone, and their FLOPs are bounded
    by the datasheet peak (:mod:`dcsim.compute.predictor`). This is what the kernels do: decode attention kernels
    run a group's query heads as rows of one tensor-core tile (FlashAttention's ``seqlenq_ngroups_swapped``) and
    stay memory-bound up to groups of the device's ridge intensity. In the other classes an op's intensity is set
    by its kind and precision, and the fit keeps both terms (two power laws in the size fit better than one)."""
    positive = (flops > 0) & (nbytes > 0)
    if not np.any(positive):
        return True
    intensity = flops[positive] / nbytes[positive]
    return bool(intensity.max() >= MIN_INTENSITY_SPAN * intensity.min())


def separable(segments: np.ndarray, nbytes: np.ndarray, flops: np.ndarray) -> bool:
    """True if a class's segments (``Op.segments``) can be told from its bytes and its FLOPs: some points have
    none (the CPU's GEMVs with page-long weight rows beside short-row ones), or they are proportional to neither
    (:func:`separable_intensity`). A norm measured at one width has segments (rows) in proportion to
    its bytes; causal self-attention without cached keys has its triangle pairs in proportion to its FLOPs."""
    if not np.any(segments > 0) or np.any(segments <= 0):  # points with and without segments tell them apart
        return True
    return separable_intensity(segments, nbytes) and (not np.any(flops > 0) or separable_intensity(segments, flops))


def fit_points(profile: Profile, points: Iterable[Measurement]) -> dict[str, RooflineFit]:
    """One fit per op class with at least 2 points, against the profile's reference peaks (with a
    page-fault term where the class has allocations above the profile's mmap threshold). GEMM classes of a
    GPU profile (:data:`TILED_CLASSES`) also fit their row tile (:func:`fit_tiled`)."""
    fits: dict[str, RooflineFit] = {}
    for key, group in group_by_class(points).items():
        precision = key.rsplit("/", 1)[1]
        if len(group) < 2 or precision not in profile.peak_tflops:
            continue
        if profile.backend == "cuda" and key.startswith(TILED_CLASSES):
            fits[key] = fit_tiled(profile, key, group)
        else:
            fits[key] = _fit_class(profile, key, group, 1)
    return fits


def fit_tiled(profile: Profile, key: str, group: Sequence[Measurement]) -> RooflineFit:
    """The fit of a GPU GEMM class with the row tile of :data:`TILE_ROWS` that explains its points best
    (mean absolute log error, a larger tile kept only where it saves :data:`TILE_GAIN` of it). cuBLAS computes whole
    tiles of output rows, so a 520-row product costs about what a 640-row one does (the A100's 8192 x 57344
    fp16 GEMM: 2.13 ms at 512 rows, 2.73 ms at 520, 2.76 ms at 640; Vidur's Llama-2-70B profile); the tile
    differs between kernels, so it is fitted, and it is the only thing fitted about it."""
    best: tuple[float, RooflineFit] | None = None
    times = np.array([p.median_s for p in group])
    nbytes = np.array([p.op.bytes for p in group])
    unaligned = np.array([float(p.op.unaligned) for p in group])
    segments = np.array([p.op.segments for p in group])
    for tile in TILE_ROWS:
        fit = _fit_class(profile, key, group, tile)
        flops = np.array([p.op.tile_flops(tile) for p in group])
        predicted = fit.times(flops, nbytes, 0.0, unaligned, segments)
        score = float(np.mean(np.abs(np.log(predicted / times))))
        if best is None or score < best[0] * (1.0 - TILE_GAIN):
            best = (score, fit)
    assert best is not None
    return best[1]


def _fit_class(profile: Profile, key: str, group: Sequence[Measurement], tile_rows: int) -> RooflineFit:
    peak = profile.peak_flops(key.rsplit("/", 1)[1])
    if key.startswith("matmul_sparse24/"):
        peak *= 2.0  # 2:4 sparse tensor cores double the dense peak
    flops = np.array([p.op.tile_flops(tile_rows) for p in group])
    nbytes = np.array([p.op.bytes for p in group])
    segments = np.array([p.op.segments for p in group])
    if key.startswith(VARIABLE_INTENSITY_CLASSES) and not separable_intensity(flops, nbytes):
        flops = np.zeros_like(flops)
    if profile.backend == "cuda" and key.startswith(COMPUTE_BOUND_GPU_CLASSES):
        nbytes = np.zeros_like(nbytes)
    fit = fit_roofline(
        flops,
        nbytes,
        np.array([p.median_s for p in group]),
        peak,
        profile.bandwidth,
        note=f"fitted to {len(group)} points of profile {profile.device_id} ({profile.date})",
        fresh_bytes=np.array([profile.fresh_bytes(p.op) for p in group]),
        fault_threshold_bytes=profile.mmap_threshold_bytes,
        unaligned=np.array([float(p.op.unaligned) for p in group]),
        segments=segments if separable(segments, nbytes, flops) else None,
    )
    if tile_rows > 1:
        fit = replace(fit, tile_rows=tile_rows)
    # cap at the best rate measured, where that point was compute-bound (above the ridge): a
    # memory-bound class's best FLOP rate says nothing about compute, and a device that inherits the
    # curve by rescaling has another ridge
    best = max(group, key=lambda p: p.op.tile_flops(tile_rows) / p.median_s)
    best_flops = best.op.tile_flops(tile_rows)
    compute_bound = best_flops / peak >= best.op.bytes / profile.bandwidth
    if best_flops > 0 and compute_bound:
        fit = replace(fit, max_compute_efficiency=best_flops / best.median_s / peak)
    return fit


def fit_profile(profile: Profile) -> dict[str, RooflineFit]:
    """Fits of every op class of a profile, from all its points (what predictions use): the ones
    stored in the profile if they were made by this version of the fit, else fitted now."""
    if profile.fit_version == FIT_VERSION and profile.fits:
        return {key: RooflineFit.from_dict(raw) for key, raw in profile.fits.items()}
    return fit_points(profile, profile.points)


def with_fits(profile: Profile) -> Profile:
    """The profile with its fits (re)computed by this version of the fit code, ready to save."""
    fits = fit_points(profile, profile.points)
    return replace(profile, fits={k: v.to_dict() for k, v in fits.items()}, fit_version=FIT_VERSION)


@dataclass(frozen=True)
class ErrorRow:
    """Held-out prediction error of one op class or kind: absolute relative errors in percent."""

    name: str
    fitted: int
    held_out: int
    median_abs_pct: float
    max_abs_pct: float


def _row(name: str, fitted: int, errors: Sequence[float]) -> ErrorRow:
    values = np.abs(np.asarray(errors, dtype=np.float64)) * 100.0
    median = float(np.median(values)) if values.size else float("nan")
    worst = float(values.max()) if values.size else float("nan")
    return ErrorRow(name, fitted, len(values), median, worst)


def heldout_errors(profile: Profile) -> tuple[list[ErrorRow], list[ErrorRow], list[tuple[Measurement, float]]]:
    """Fit on the fitted split, predict the held-out split.

    Returns (rows per op class ``kind/phase/precision``, rows per op kind pooled over phases and
    precisions, and every held-out measurement with its prediction in seconds).
    """
    fitted, held = split_heldout(profile.points)
    fits = fit_points(profile, fitted)
    fitted_count: Mapping[str, int] = {k: len(v) for k, v in group_by_class(fitted).items()}
    by_class: dict[str, list[float]] = defaultdict(list)
    by_kind: dict[str, list[float]] = defaultdict(list)
    kind_fitted: dict[str, int] = defaultdict(int)
    pairs: list[tuple[Measurement, float]] = []
    for point in held:
        fit = fits.get(point.op.fit_key)
        if fit is None:
            continue
        op = point.op
        flops = op.tile_flops(fit.tile_rows)
        predicted = fit.time(flops, op.bytes, fit.fresh_bytes(op.allocations), op.unaligned, op.segments)
        pairs.append((point, predicted))
        error = predicted / point.median_s - 1.0
        by_class[point.op.fit_key].append(error)
        by_kind[point.op.kind].append(error)
    for point in fitted:  # pooled by op kind, as the held-out errors are (GEMVs and skinny GEMMs are matmuls)
        kind_fitted[point.op.kind] += 1
    class_rows = [_row(k, fitted_count.get(k, 0), v) for k, v in sorted(by_class.items())]
    kind_rows = [_row(k, kind_fitted[k], v) for k, v in sorted(by_kind.items())]
    return class_rows, kind_rows, pairs
