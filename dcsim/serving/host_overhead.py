"""Host (CPU) time of a serving iteration: the engine's scheduling, input preparation, sampling, output
processing and, for engines that call their tensor-parallel workers by RPC every iteration, that RPC.

The figures are fitted to Vidur profiling data (microsoft/vidur, commit 6d98aa8f7169):
``cpu/a100/cpu_overheads.csv``, per-iteration means in milliseconds of a vLLM-style engine on an A100 host, for
six models at 8-128 sequences per iteration and tensor-parallel degrees 1, 2 and 4. Each component is fitted
as ``ms = intercept_ms + per_sequence_ms x sequences`` by least squares, separately for ``tp = 1`` (one worker,
in the engine's process) and ``tp > 1`` (the data show no difference between tp 2 and tp 4), with every
fourth batch size (32, 64, 128) held out; the held-out errors, and those of leaving each model out in turn,
ship with the coefficients in ``dcsim/serving/data/host_overhead.yaml``. :func:`fit_host_overhead` refits
them from the CSV and :func:`write_host_overhead` rewrites the data file.

Which components run in series with the accelerator depends on the engine (:data:`ENGINES`):

- ``vllm_v0``, the V0 engine of vLLM 0.6.3 (``vllm/engine/llm_engine.py`` ``LLMEngine.step``,
  ``vllm/worker/model_runner.py`` ``ModelRunner.execute_model``, ``vllm/worker/worker_base.py``): each step
  schedules, prepares the model inputs, launches the forward pass, and samples, which waits for the forward
  to finish; those run one after another with the GPU. The previous step's outputs are processed in
  ``async_callback`` right after the forward is launched (async output processing, on by default for CUDA;
  ``ModelConfig.verify_async_output_proc`` in ``vllm/config.py`` turns it off with pipeline parallelism,
  with ``enforce_eager``, with speculative decoding and in embedding mode), so they overlap the forward and
  only the part longer than it shows. Tensor-parallel workers are not called by RPC each step: they loop on
  ``broadcast_tensor_dict``, receiving the inputs the driver prepared, so the measured RPC is not added (the
  broadcast itself is not in the data). An encoder (embedding mode) samples nothing and processes its outputs
  in series.
- ``per_step_rpc``, an engine like the one profiled that calls its workers by RPC every iteration and
  processes outputs in series: all five components, one after another with the accelerator.
- ``none``: no host time (host-only devices, engines that hide it, or a model without it).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: The packaged fit: coefficients, source, held-out points and errors.
DATA_FILE = Path(__file__).parent / "data" / "host_overhead.yaml"
#: CSV column (per-iteration mean, milliseconds) of each component.
COMPONENT_COLUMNS = {
    "schedule": "schedule_mean",
    "prepare_inputs": "prepare_inputs_e2e_mean",
    "sampler": "sampler_e2e_mean",
    "process_model_outputs": "process_model_outputs_mean",
    "tp_rpc": "ray_comm_time_mean",
}
#: TP classes the components are fitted for: one worker, or several.
TP_CLASSES = ("tp1", "tp_multi")
#: Batch sizes left out of the fit: every fourth one of the 12 profiled (8 ... 128).
HELD_OUT_EVERY = 4
#: Engines whose host time a scenario may name (``host_overhead``), plus ``auto``.
ENGINES = ("vllm_v0", "per_step_rpc", "none")
SOURCE = {
    "file": "shared/data/vidur-profiles/cpu/a100/cpu_overheads.csv",
    "upstream": "microsoft/vidur data/profiling/a100/cpu_overheads.csv, commit 6d98aa8f7169 (MIT licence)",
    "cite": "Vidur profiling data (microsoft/vidur, commit 6d98aa8f7169)",
    "statistic": "per-iteration means (the *_mean columns), milliseconds, on an A100 host",
}
FORM = (
    "ms = intercept_ms + per_sequence_ms x sequences, least squares with per_sequence_ms >= 0 (a falling fit "
    "becomes the mean), per component and TP class (tp1, tp_multi)"
)
DIGITS = 6


def _round(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def tp_class(tp: int) -> str:
    """The TP class of a tensor-parallel degree: ``tp1`` or ``tp_multi``."""
    return "tp1" if tp == 1 else "tp_multi"


def _read(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(intercept, slope)`` with the slope kept non-negative: host work does not shrink with
    more sequences, so a falling fit (the RPC at tp > 1 is flat within noise) becomes the mean."""
    a = np.column_stack([np.ones(len(x)), x])
    (intercept, slope), *_ = np.linalg.lstsq(a, y, rcond=None)
    if slope < 0:
        return float(y.mean()), 0.0
    return float(intercept), float(slope)


def _errors(predicted: np.ndarray, measured: np.ndarray, prefix: str) -> dict[str, float]:
    pct = np.abs(predicted / measured - 1.0) * 100.0
    return {f"{prefix}_mean_abs_pct": round(float(pct.mean()), 1), f"{prefix}_max_abs_pct": round(float(pct.max()), 1)}


#: Sums of components whose held-out error is reported: what ``vllm_v0`` puts in series with a decoder's
#: forward pass, and all five.
TOTALS = {
    "vllm_v0_serial": ("schedule", "prepare_inputs", "sampler"),
    "all_components": tuple(COMPONENT_COLUMNS),
}


def fit_host_overhead(csv_path: str | Path) -> dict[str, Any]:
    """Refit the host-overhead model from Vidur's ``cpu_overheads.csv``: the document
    ``dcsim/serving/data/host_overhead.yaml`` holds (coefficients rounded to 6 significant digits, errors
    in percent to 0.1). Errors are mean and max absolute relative errors on the held-out batch sizes, and on
    each model's rows when that model is left out of the fit (leave one model out); ``totals`` gives them
    for sums of components (:data:`TOTALS`)."""
    rows = _read(Path(csv_path))
    sizes = sorted({int(r["batch_size"]) for r in rows})
    held = sizes[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY]
    components: dict[str, Any] = {name: {"column": column} for name, column in COMPONENT_COLUMNS.items()}
    totals: dict[str, Any] = {name: {"components": list(parts)} for name, parts in TOTALS.items()}
    for cls in TP_CLASSES:
        sel = [r for r in rows if tp_class(int(r["tensor_parallel_degree"])) == cls]
        x = np.array([int(r["batch_size"]) for r in sel], dtype=float)
        models = np.array([r["model_name"] for r in sel])
        kept = ~np.isin(x, held)
        measured, held_pred, lomo_pred = {}, {}, {}
        for name, column in COMPONENT_COLUMNS.items():
            y = measured[name] = np.array([float(r[column]) for r in sel])
            intercept, slope = _line(x[kept], y[kept])
            held_pred[name] = intercept + slope * x[~kept]
            lomo = np.empty_like(y)
            for m in sorted(set(models)):
                a, b = _line(x[models != m], y[models != m])
                lomo[models == m] = a + b * x[models == m]
            lomo_pred[name] = lomo
            components[name][cls] = {
                "intercept_ms": _round(intercept),
                "per_sequence_ms": _round(slope),
                **_errors(held_pred[name], y[~kept], "held_out"),
                **_errors(lomo, y, "leave_one_model_out"),
            }
        for name, parts in TOTALS.items():
            y = np.sum([measured[p] for p in parts], axis=0)
            totals[name][cls] = {
                **_errors(np.sum([held_pred[p] for p in parts], axis=0), y[~kept], "held_out"),
                **_errors(np.sum([lomo_pred[p] for p in parts], axis=0), y, "leave_one_model_out"),
            }
    classes = {}
    for cls in TP_CLASSES:
        sel = [r for r in rows if tp_class(int(r["tensor_parallel_degree"])) == cls]
        classes[cls] = {
            "tp_degrees": sorted({int(r["tensor_parallel_degree"]) for r in sel}),
            "models": sorted({r["model_name"] for r in sel}),
        }
    return {
        "source": dict(SOURCE),
        "form": FORM,
        "tp_classes": classes,
        "held_out": {"batch_sizes": held, "rule": f"every {HELD_OUT_EVERY}th of the batch sizes {sizes}"},
        "components": components,
        "totals": totals,
    }


@functools.lru_cache(maxsize=1)
def load_host_overhead() -> Mapping[str, Any]:
    """The packaged fit (``dcsim/serving/data/host_overhead.yaml``)."""
    with open(DATA_FILE) as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc


def component_ms(name: str, tp: int, sequences: float) -> float:
    """Milliseconds of component ``name`` (a key of :data:`COMPONENT_COLUMNS`) in an iteration of
    ``sequences`` sequences at tensor-parallel degree ``tp``, from the packaged fit."""
    c = load_host_overhead()["components"][name][tp_class(tp)]
    return float(c["intercept_ms"] + c["per_sequence_ms"] * sequences)


def resolve_engine(setting: str, accelerator_kind: str) -> str:
    """The engine a scenario's ``host_overhead`` setting means on an accelerator of catalog ``kind``:
    ``auto`` is ``vllm_v0`` on GPUs (the data come from a CUDA engine) and ``none`` elsewhere (TPUs run
    another engine; a CPU device's calibration already times whole steps of its own loop)."""
    if setting != "auto":
        return setting
    return "vllm_v0" if accelerator_kind == "gpu" else "none"


@dataclass(frozen=True)
class HostOverhead:
    """Host seconds of one iteration as two affine functions of its sequence count: ``serial`` runs one
    after another with the accelerator, ``overlapped`` runs while the accelerator computes the forward pass
    (only what exceeds it shows). Seconds = ``*_s + *_s_per_sequence x sequences``."""

    serial_s: float
    serial_s_per_sequence: float
    overlapped_s: float = 0.0
    overlapped_s_per_sequence: float = 0.0

    @classmethod
    def for_engine(cls, engine: str, tp: int = 1, pp: int = 1, decoder: bool = True) -> HostOverhead | None:
        """The host time of ``engine`` (one of :data:`ENGINES`) for a replica of degree ``tp`` x ``pp``
        serving a decoder (or an encoder: no sampling, outputs processed in series); None for ``none``."""
        if engine == "none":
            return None
        if engine not in ENGINES:
            raise ValueError(f"unknown host_overhead engine {engine!r} (known: {', '.join(ENGINES)}, auto)")
        serial = ["schedule", "prepare_inputs"]
        overlapped: list[str] = []
        if decoder:
            serial.append("sampler")
        if engine == "vllm_v0" and decoder and pp == 1:
            overlapped.append("process_model_outputs")  # async output processing
        else:
            serial.append("process_model_outputs")
        if engine == "per_step_rpc":
            serial.append("tp_rpc")
        components = load_host_overhead()["components"]
        cls_ = tp_class(tp)

        def total(names: list[str], key: str) -> float:
            return sum(float(components[n][cls_][key]) for n in names) * 1e-3

        return cls(
            total(serial, "intercept_ms"),
            total(serial, "per_sequence_ms"),
            total(overlapped, "intercept_ms"),
            total(overlapped, "per_sequence_ms"),
        )

    def serial(self, sequences: int) -> float:
        """Seconds in series with the accelerator in an iteration of ``sequences`` sequences."""
        return self.serial_s + self.serial_s_per_sequence * sequences

    def overlapped(self, sequences: int) -> float:
        """Seconds that run while the accelerator computes, in an iteration of ``sequences`` sequences."""
        return self.overlapped_s + self.overlapped_s_per_sequence * sequences

    def add(self, accelerator_s: float, sequences: int) -> float:
        """Seconds of an iteration of ``sequences`` sequences whose accelerator work takes ``accelerator_s``:
        the serial host time plus the longer of the accelerator work and the overlapped host time."""
        overlapped = self.overlapped_s + self.overlapped_s_per_sequence * sequences
        serial = self.serial_s + self.serial_s_per_sequence * sequences
        return serial + (accelerator_s if accelerator_s >= overlapped else overlapped)


def write_host_overhead(csv_path: str | Path, out: str | Path = DATA_FILE) -> dict[str, Any]:
    """Refit from ``csv_path`` and write the data file ``out`` (with a header naming the source)."""
    doc = fit_host_overhead(csv_path)
    header = (
        "# Host time of a serving iteration, fitted by dcsim/serving/host_overhead.py (fit_host_overhead)\n"
        f"# to {SOURCE['cite']}. Regenerate: write_host_overhead(CSV)\n"
    )
    Path(out).write_text(header + yaml.safe_dump(doc, sort_keys=False, width=120))
    return doc
