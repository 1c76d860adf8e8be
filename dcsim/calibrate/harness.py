"""Run the calibration: time every op of the grid and the end-to-end models, write the profile.

CPU runs fix ``torch.set_num_threads`` (recorded in the profile) and, except ``--quick`` ones, measure
the grid in two passes a few minutes apart and keep each op's quieter pass (other processes on a
shared machine only ever slow a measurement down). CUDA runs disable TF32 except for the
``tf32`` precision, synchronise with CUDA events, and also time fp8 GEMMs (``torch._scaled_mm``) and 2:4
sparse GEMMs (``torch.sparse.to_sparse_semi_structured``) where the device supports them. Every op and
every section is guarded: a failure is recorded in the profile's notes and the run goes on. The
profile is written after every section, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import datetime
import functools
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from dcsim.calibrate.cases import build_case
from dcsim.calibrate.e2e_models import E2E_CPU, E2E_CUDA, e2e_model
from dcsim.calibrate.grid import int8_matmul_grid, matmul_only_grid, op_grid, sparse_matmul_grid
from dcsim.calibrate.timing import TimingSettings, clock_name, first_call_s, measure
from dcsim.calibrate.torch_llama import TorchLlama, is_llama_style
from dcsim.calibrate.torch_models import build_torch_model, example_inputs
from dcsim.catalog import load_catalog
from dcsim.compute.calibration import with_fits
from dcsim.compute.ops import Matmul, Op, Pointwise
from dcsim.compute.profile import EndToEnd, Measurement, Profile, merge_profiles, op_class, save_profile
from dcsim.models import ResNetConfig, TransformerConfig

Log = Callable[[str], None]

__all__ = [
    "E2E_CPU",
    "E2E_CUDA",
    "RunConfig",
    "measure_end_to_end",
    "measure_op_sum",
    "run_calibration",
    "run_end_to_end_only",
]


@dataclass
class RunConfig:
    """One calibration run: ``device`` ``cpu`` or ``cuda``; ``budget_s`` caps the op section's time."""

    device: str = "cpu"
    quick: bool = False
    threads: int = 1
    out: Path | None = None
    device_id: str | None = None
    end_to_end: bool = True
    budget_s: float = 3600.0
    precisions: tuple[str, ...] = ()
    log: Log = print
    notes: list[str] = field(default_factory=list)
    merge_with: Profile | None = None
    #: measure only these op kinds (all if empty): with ``merge_with``, re-measures a part of a profile
    kinds: tuple[str, ...] = ()
    #: skip ops that ``merge_with`` already holds (to add new grid shapes to a profile)
    only_new: bool = False
    #: measure only ops of these fit classes (``matmul_skinny``, ``attention_decode``: the part of
    #: ``Op.fit_key`` before the first slash); all if empty
    classes: tuple[str, ...] = ()
    #: time the operands a serving step streams cold (see :mod:`dcsim.calibrate.cases`)
    cold: bool = False
    #: end-to-end cases of these models only (all of the device's if empty)
    e2e_models: tuple[str, ...] = ()


class PrecisionError(ValueError):
    """A precision the calibration does not measure on the run's device."""


def cuda_device_id(name: str) -> str:
    """Catalog id for a CUDA device name (``NVIDIA H100 80GB HBM3`` -> ``h100-sxm``)."""
    for key, device_id in (("H200", "h200-sxm"), ("H100", "h100-sxm"), ("A100", "a100-sxm-80gb")):
        if key in name:
            return device_id
    return "cuda-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _settings(device: torch.device, quick: bool) -> TimingSettings:
    if device.type == "cuda":
        return TimingSettings(sample_s=0.002, warmup_s=0.02, min_samples=5, max_samples=15, budget_s=0.6)
    if quick:
        return TimingSettings(sample_s=0.003, warmup_s=0.01, min_samples=5, max_samples=15, budget_s=0.5)
    return TimingSettings(sample_s=0.005, warmup_s=0.02, min_samples=7, max_samples=25, budget_s=2.0)


def _set_tf32(enabled: bool) -> None:
    try:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
    except (AttributeError, RuntimeError):  # newer torch: fp32_precision instead of allow_tf32
        mode = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode  # type: ignore[attr-defined]


def _max_call_s(device: torch.device, quick: bool) -> float:
    if device.type == "cuda":
        return 0.5
    return 0.25 if quick else 1.0


def measure_op(op: Op, with_backward: bool, device: torch.device, cfg: RunConfig) -> list[Measurement]:
    """Forward (and backward) measurements of one op; an op slower than the per-call cap is skipped."""
    settings = _settings(device, cfg.quick)
    case = build_case(op, device, cold=cfg.cold)
    out = []
    with torch.no_grad():
        case.forward()  # the first call may initialise a library (MKL, cuBLAS): not part of the cap
        if first_call_s(case.forward, device) > _max_call_s(device, cfg.quick):
            raise TimeoutError("forward slower than the per-call cap")
        timing = measure(case.forward, device, settings)
    out.append(Measurement(op, timing.median_s, timing.p10_s, timing.p90_s, timing.samples))
    if with_backward and case.backward is not None:
        case.backward()  # likewise (the autograd engine starts on the first backward)
        if first_call_s(case.backward, device) > _max_call_s(device, cfg.quick):
            raise TimeoutError("backward slower than the per-call cap")
        timing = measure(case.backward, device, settings)
        bwd = op.backward()
        out.append(Measurement(bwd, timing.median_s, timing.p10_s, timing.p90_s, timing.samples))
    return out


def _fresh_fill(size: int) -> torch.Tensor:
    return torch.empty(size, dtype=torch.uint8).fill_(1)


def measure_page_faults(device: torch.device, quick: bool) -> float:
    """Seconds per byte of faulting in fresh memory: filling a newly allocated 64 or 256 MiB buffer
    (glibc serves it with new pages from the OS) against filling one that is already mapped."""
    if device.type != "cpu":
        return 0.0
    settings = TimingSettings(sample_s=0.0, warmup_s=0.0, min_samples=5, max_samples=9, budget_s=5.0)
    costs = []
    for size in (64 << 20, 256 << 20) if not quick else (64 << 20,):
        mapped = torch.empty(size, dtype=torch.uint8)
        warm = measure(functools.partial(mapped.fill_, 1), device, settings).median_s
        fresh = measure(functools.partial(_fresh_fill, size), device, settings).median_s
        costs.append(max(fresh - warm, 0.0) / size)
    return sorted(costs)[len(costs) // 2]


def _precisions(device: torch.device) -> list[str]:
    if device.type == "cpu":
        return ["fp32", "bf16", "int8"]
    names = ["bf16", "fp16", "tf32", "fp32"]
    if torch.cuda.get_device_capability(device) >= (8, 9):
        names.insert(1, "fp8")
    return names


def _interleave(grid: list[tuple[Op, bool]]) -> list[tuple[Op, bool]]:
    """Round-robin over op kinds, so a run cut short by its budget still covers every kind."""
    by_kind: dict[str, list[tuple[Op, bool]]] = {}
    for item in grid:
        by_kind.setdefault(item[0].kind, []).append(item)
    out: list[tuple[Op, bool]] = []
    queues = list(by_kind.values())
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def _selected(grid: list[tuple[Op, bool]], cfg: RunConfig) -> list[tuple[Op, bool]]:
    """The grid restricted to ``cfg.kinds`` and, with ``cfg.only_new``, to ops the profile being
    merged with has not measured."""
    if cfg.kinds:
        grid = [item for item in grid if item[0].kind in cfg.kinds]
    if cfg.classes:
        grid = [item for item in grid if op_class(item[0]) in cfg.classes]
    if cfg.only_new and cfg.merge_with is not None:
        known = {point.op for point in cfg.merge_with.points}
        grid = [item for item in grid if item[0] not in known]
    return grid


def _grid_for(device: torch.device, precision: str, quick: bool) -> list[tuple[Op, bool]]:
    backend = "cuda" if device.type == "cuda" else "cpu"
    if precision in ("tf32", "fp8"):
        return matmul_only_grid(precision, quick)
    if precision == "int8":  # CPU dynamic int8 quantized Linear (compression)
        return int8_matmul_grid(quick) if backend == "cpu" else []
    grid = op_grid(backend, precision, quick)
    if backend == "cpu" and precision == "fp32":  # unstructured-sparse Linear, torch CSR (compression)
        grid += sparse_matmul_grid(quick)
    if backend == "cuda" and precision in ("bf16", "fp16"):
        grid += matmul_only_grid(precision, quick, sparse=True)
    return grid


def _reference_peaks(
    device_id: str, device: torch.device, points: list[Measurement]
) -> tuple[dict[str, float], float, str]:
    """Reference peak TFLOP/s per precision and GB/s: the catalog's for a catalogued accelerator, else
    the best measured GEMM throughput and the best measured elementwise bandwidth."""
    catalog = load_catalog().accelerators
    if device.type == "cuda" and device_id in catalog:
        acc = catalog[device_id]
        return dict(acc.peak_tflops), acc.memory_bandwidth_gb_per_s, f"datasheet figures of {device_id}"
    peaks: dict[str, float] = {}
    for point in points:
        if isinstance(point.op, Matmul) and point.op.phase == "fwd" and not point.op.sparse_2_4:
            rate = point.op.flops / point.median_s / 1e12
            peaks[point.op.precision] = max(peaks.get(point.op.precision, 0.0), rate)
    streams = [
        p.op.bytes / p.median_s / 1e9
        for p in points
        if isinstance(p.op, Pointwise) and p.op.op_kind in ("add", "copy") and p.op.phase == "fwd"
    ]
    bandwidth = max(streams) if streams else 1.0
    return peaks, bandwidth, "measured: best forward GEMM throughput and best add/copy bandwidth of this run"


def _profile(
    cfg: RunConfig,
    device: torch.device,
    device_id: str,
    name: str,
    points: list[Measurement],
    e2e: list[EndToEnd],
    fault_s_per_byte: float,
) -> Profile:
    peaks, bandwidth, reference = _reference_peaks(device_id, device, points)
    return Profile(
        device_id=device_id,
        device_name=name,
        backend=device.type,
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        peak_tflops=peaks,
        memory_bandwidth_gb_per_s=bandwidth,
        reference=reference,
        points=tuple(points),
        end_to_end=tuple(e2e),
        page_fault_s_per_byte=fault_s_per_byte,
        notes=(f"quick={cfg.quick}", f"clock={clock_name(device)}", f"python {platform.python_version()}", *cfg.notes),
    )


def _time_step(fn: Callable[[], object], device: torch.device, quick: bool) -> tuple[float, float, float, int]:
    settings = TimingSettings(
        sample_s=0.0,
        warmup_s=0.0,
        min_samples=3 if quick else 5,
        max_samples=7 if quick else 11,
        rel_tol=0.01,
        budget_s=20.0,
    )
    timing = measure(fn, device, settings)
    return timing.median_s, timing.p10_s, timing.p90_s, timing.samples


def measure_end_to_end(
    model_id: str,
    size: int,
    batch: int,
    device: torch.device,
    precision: str,
    quick: bool,
    phases: tuple[str, ...] = ("fwd", "fwd+bwd"),
) -> list[EndToEnd]:
    """One measurement per phase of a whole model (see :mod:`dcsim.calibrate.e2e_models`): ``fwd`` (no
    autograd, logits at every position), ``fwd+bwd`` (gradients set to None first, as in a training loop;
    cross-entropy over every position; no optimizer step) and ``prefill`` (a Llama-style decoder's prompt pass:
    KV-cache writes into a cache allocated beforehand, logits of the last positions only)."""
    cfg = e2e_model(model_id)
    if not isinstance(cfg, TransformerConfig | ResNetConfig):
        raise ValueError(f"end-to-end checks build decoder/encoder transformers and ResNets, not {model_id!r}")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if isinstance(cfg, TransformerConfig) and is_llama_style(cfg):
        model: torch.nn.Module = TorchLlama(cfg).train()
    else:
        model = build_torch_model(cfg)
    model = model.to(device=device, dtype=dtype)
    inputs, targets = example_inputs(cfg, batch, size, device)
    if inputs.is_floating_point():
        inputs = inputs.to(dtype)

    def forward() -> object:
        with torch.no_grad():
            return model(inputs)

    def training_step() -> object:
        model.zero_grad(set_to_none=True)  # as a training loop does: gradients are stored, not added
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
        loss.backward()
        return loss

    steps: dict[str, Callable[[], object]] = {"fwd": forward, "fwd+bwd": training_step}
    if "prefill" in phases:
        if not isinstance(model, TorchLlama):
            raise ValueError(f"{model_id}: prefill cases are measured for Llama-style decoders")
        llama_model, caches = model, model.new_cache(batch, size)

        def prefill() -> object:
            with torch.no_grad():
                return llama_model.prefill(inputs, caches)

        steps["prefill"] = prefill
    out = []
    for phase in phases:
        median, p10, p90, samples = _time_step(steps[phase], device, quick)
        out.append(EndToEnd(model_id, batch, size, phase, precision, median, p10, p90, samples))
    model.zero_grad(set_to_none=True)
    return out


def measure_op_sum(ops: list[tuple[Op, int]], device: torch.device, quick: bool) -> dict[Op, float]:
    """Seconds per call of each distinct op of an op list, timed now as the calibration times it (its own
    case for the op's shape, forward or backward, the grid's settings; the forward of GEMMs of at most 16 rows
    with cold weights, as the shipped CPU profile has them): the op list's ``sum(seconds[op] * count)`` is
    what the model costs as measured op by op, free of any fit."""
    settings = _settings(device, quick)
    seconds: dict[Op, float] = {}
    for op, _ in ops:
        if op in seconds:
            continue
        case = build_case(replace(op, phase="fwd"), device, cold=True)  # type: ignore[type-var]
        if op.phase == "fwd":
            with torch.no_grad():
                seconds[op] = measure(case.forward, device, settings).median_s
        elif case.backward is not None:
            seconds[op] = measure(case.backward, device, settings).median_s
        else:
            raise ValueError(f"{op.fit_key}: the calibration times no backward of this op")
    return seconds


def _e2e_cases(
    device: torch.device, models: tuple[str, ...]
) -> list[tuple[str, int, tuple[int, ...], tuple[str, ...]]]:
    """The device's end-to-end cases, of ``models`` only where given (ValueError naming unknown ones)."""
    cases = list(E2E_CUDA if device.type == "cuda" else E2E_CPU)
    unknown = [name for name in models if name not in {case[0] for case in cases}]
    if unknown:
        known = ", ".join(case[0] for case in cases)
        raise ValueError(f"no end-to-end case for {', '.join(unknown)} on {device.type} (cases: {known})")
    return [case for case in cases if not models or case[0] in models]


def _measure_cases(
    cfg: RunConfig, device: torch.device, e2e: list[EndToEnd], on_case: Callable[[], object]
) -> list[EndToEnd]:
    """Every selected end-to-end case on ``device`` (bf16 on CUDA, fp32 on CPUs), appended to ``e2e``
    (returned) case by case, ``on_case`` called after each; each failure is a note."""
    if device.type == "cuda":
        _set_tf32(False)
    precision = "bf16" if device.type == "cuda" else "fp32"
    for model_id, size, batches, phases in _e2e_cases(device, cfg.e2e_models):
        for batch in batches:
            try:
                taken = measure_end_to_end(model_id, size, batch, device, precision, cfg.quick, phases)
            except Exception as error:  # one failing case must not lose the run
                note = f"end-to-end {model_id} b{batch}: {type(error).__name__}: {error}"[:300]
                cfg.notes.append(note)
                cfg.log(f"  {note}")
                continue
            e2e.extend(taken)
            cfg.log(f"  {model_id} batch {batch}: " + ", ".join(f"{e.median_s:.4f} s {e.phase}" for e in taken))
            on_case()
    return e2e


def _quieter_cases(runs: list[list[EndToEnd]]) -> list[EndToEnd]:
    """Per case (model, batch, size, phase, precision), the lowest-median measurement of the runs."""
    cases: dict[tuple[str, int, int, str, str], EndToEnd] = {}
    for entry in (entry for run in runs for entry in run):
        key = (entry.model, entry.batch, entry.size, entry.phase, entry.precision)
        if key not in cases or entry.median_s < cases[key].median_s:
            cases[key] = entry
    return list(cases.values())


def _select_device(cfg: RunConfig) -> tuple[torch.device, str, str]:
    """(torch device, device name, profile id) of a run; fixes the CPU thread count."""
    if cfg.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: torch sees no CUDA device")
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
        return device, name, cfg.device_id or cuda_device_id(name)
    torch.set_num_threads(cfg.threads)
    name = f"{cpu_name()} ({cfg.threads} thread{'s' if cfg.threads > 1 else ''})"
    return torch.device("cpu"), name, cfg.device_id or "host-cpu"


def run_end_to_end_only(cfg: RunConfig) -> Profile:
    """Measure the end-to-end cases (of ``cfg.e2e_models``) and add them to the profile ``cfg.merge_with``,
    written to ``cfg.out``: as many passes as a full run's grid (one with ``quick``, else two), each case keeping
    its quieter pass, and the quieter of that and the profile's own measurement of the case. The rest of the
    profile (points, fits, notes, date) is written back unchanged."""
    if cfg.merge_with is None or cfg.out is None:
        raise ValueError("an end-to-end-only run adds to an existing profile: give merge_with and out")
    device, _, device_id = _select_device(cfg)
    base = cfg.merge_with
    if (base.device_id, base.backend, base.threads) != (device_id, device.type, torch.get_num_threads()):
        raise ValueError(
            f"the profile is of {base.device_id} ({base.backend}, {base.threads} thread(s)), this run of"
            f" {device_id} ({device.type}, {torch.get_num_threads()} thread(s))"
        )
    torch.manual_seed(0)
    passes = 1 if cfg.quick or device.type == "cuda" else 2
    runs = [list(base.end_to_end)]
    for number in range(passes):
        cfg.log(f"end-to-end pass {number + 1} of {passes} on {device_id}")
        runs.append(_measure_cases(cfg, device, [], lambda: None))
    profile = replace(base, end_to_end=tuple(_quieter_cases(runs)))
    save_profile(profile, cfg.out)
    return profile


def run_calibration(cfg: RunConfig) -> Profile:
    """Measure the grid (and the end-to-end models) on ``cfg.device``; write and return the profile."""
    device, name, device_id = _select_device(cfg)
    torch.manual_seed(0)
    started = time.perf_counter()
    points: list[Measurement] = []
    e2e: list[EndToEnd] = []
    measurable = _precisions(device)
    unknown = [p for p in cfg.precisions if p not in measurable]
    if unknown:
        raise PrecisionError(f"{', '.join(unknown)} not measured on {device.type} (measured: {', '.join(measurable)})")
    precisions = list(cfg.precisions) or measurable
    cfg.log(f"calibrating {device_id} ({name}), torch {torch.__version__}, precisions {precisions}")

    def save(final: bool = False) -> Profile:
        profile = _profile(cfg, device, device_id, name, points, e2e, fault_s_per_byte)
        if cfg.merge_with is not None:
            profile = merge_profiles(cfg.merge_with, profile)
            # reference peaks from all the merged points (a partial run alone would set them low)
            peaks, bandwidth, reference = _reference_peaks(device_id, device, list(profile.points))
            profile = replace(profile, peak_tflops=peaks, memory_bandwidth_gb_per_s=bandwidth, reference=reference)
        if final:
            profile = with_fits(profile)
        if cfg.out is not None:
            save_profile(profile, cfg.out)
        return profile

    if (cfg.kinds or cfg.classes) and cfg.merge_with is not None:  # a partial re-measurement keeps the measured cost
        fault_s_per_byte = cfg.merge_with.page_fault_s_per_byte
    else:
        fault_s_per_byte = measure_page_faults(device, cfg.quick)
    cfg.log(f"  fresh memory costs {fault_s_per_byte * 1e9:.3f} s/GB in page faults")
    passes = 1 if cfg.quick or device.type == "cuda" else 2
    for number, precision in enumerate(precisions):
        if device.type == "cuda":
            _set_tf32(precision == "tf32")
        grid = _interleave(_selected(_grid_for(device, precision, cfg.quick), cfg))
        section_start = time.perf_counter()
        share = (cfg.budget_s - (section_start - started)) / (len(precisions) - number)
        rounds: dict[Op, list[Measurement]] = {}
        failed: set[Op] = set()
        for round_number in range(passes):
            for op, with_backward in grid:
                if time.perf_counter() - section_start > share * (round_number + 1) / passes:
                    cfg.notes.append(f"{precision} pass {round_number + 1}: time budget reached")
                    break
                if op in failed:
                    continue
                try:
                    for point in measure_op(op, with_backward, device, cfg):
                        rounds.setdefault(point.op, []).append(point)
                except Exception as error:  # one failing op must not lose the run
                    failed.add(op)
                    if not isinstance(error, TimeoutError):
                        cfg.notes.append(f"{op.fit_key} {op.to_dict()}: {type(error).__name__}: {error}"[:300])
        # On a shared machine, other processes only ever slow a pass down: keep the quieter pass.
        points.extend(min(taken, key=lambda m: m.median_s) for taken in rounds.values())
        elapsed = time.perf_counter() - started
        cfg.log(f"  {precision}: {len(rounds)} measurements, {len(failed)} ops skipped, {elapsed:.0f} s")
        save()
    if cfg.end_to_end:
        _measure_cases(cfg, device, e2e, save)
    profile = save(final=True)
    cfg.log(f"done in {time.perf_counter() - started:.0f} s: {len(points)} points, {len(e2e)} end-to-end")
    return profile
