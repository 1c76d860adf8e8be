"""Host time of a serving iteration (``dcsim/serving/host_overhead.py``): the shipped fit against Vidur's
``cpu_overheads.csv`` (when ``../shared`` is present), its shape, what each engine puts in series, and that
iterations and scenarios include it, or not."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dcsim
from dcsim.errors import UserInputError
from dcsim.models import TransformerConfig, get_model
from dcsim.scenario import load_scenario
from dcsim.serving import IterationCost
from dcsim.serving.host_overhead import (
    COMPONENT_COLUMNS,
    TP_CLASSES,
    HostOverhead,
    component_ms,
    fit_host_overhead,
    load_host_overhead,
    resolve_engine,
    tp_class,
)

CSV = Path(__file__).resolve().parents[2] / "shared/data/vidur-profiles/cpu/a100/cpu_overheads.csv"
needs_csv = pytest.mark.skipif(not CSV.exists(), reason="../shared/data/vidur-profiles not present")


def _decoder(name: str) -> TransformerConfig:
    cfg = get_model(name)
    assert isinstance(cfg, TransformerConfig)
    return cfg


LLAMA = _decoder("llama2-7b")


@needs_csv
def test_shipped_coefficients_equal_a_refit_of_the_csv() -> None:
    assert fit_host_overhead(CSV) == dict(load_host_overhead())


@needs_csv
def test_the_fit_reproduces_the_held_out_rows_within_its_reported_error() -> None:
    fit = load_host_overhead()
    held = set(fit["held_out"]["batch_sizes"])
    rows = [r for r in csv.DictReader(open(CSV)) if int(r["batch_size"]) in held]
    assert len(rows) == 24  # 6 models at 32, 64 (profiled twice) and 128
    for name, column in COMPONENT_COLUMNS.items():
        for cls in TP_CLASSES:
            sel = [r for r in rows if tp_class(int(r["tensor_parallel_degree"])) == cls]
            reported = fit["components"][name][cls]
            pct = [
                abs(component_ms(name, int(r["tensor_parallel_degree"]), int(r["batch_size"])) / float(r[column]) - 1)
                * 100
                for r in sel
            ]
            assert max(pct) <= reported["held_out_max_abs_pct"] + 0.05, (name, cls)
            assert np.mean(pct) == pytest.approx(reported["held_out_mean_abs_pct"], abs=0.05), (name, cls)


def test_held_out_error_of_the_serial_host_time_is_under_ten_percent() -> None:
    """What vLLM v0 adds in series (schedule, prepare inputs, sample) is predicted within 10% on the held-out
    batch sizes, at tp 1 and tp > 1 (mean absolute error)."""
    totals = load_host_overhead()["totals"]["vllm_v0_serial"]
    for cls in TP_CLASSES:
        assert totals[cls]["held_out_mean_abs_pct"] < 10.0


def test_host_time_grows_with_batch_and_with_tp_where_the_data_do() -> None:
    for name in COMPONENT_COLUMNS:
        for cls in TP_CLASSES:
            c = load_host_overhead()["components"][name][cls]
            assert c["intercept_ms"] > 0 and c["per_sequence_ms"] >= 0
    for name in ("schedule", "prepare_inputs", "sampler", "process_model_outputs"):
        assert component_ms(name, 1, 128) > 1.5 * component_ms(name, 1, 8)
    # tp > 1: preparing inputs costs about 0.5 ms more, and the per-iteration RPC is ~6 ms against < 1 ms
    assert component_ms("prepare_inputs", 2, 32) > component_ms("prepare_inputs", 1, 32) + 0.3
    assert component_ms("tp_rpc", 4, 32) > 5.0 > 1.0 > component_ms("tp_rpc", 1, 32)
    assert component_ms("tp_rpc", 2, 32) == component_ms("tp_rpc", 8, 32)  # no trend from tp 2 to 4 in the data
    v0 = HostOverhead.for_engine("vllm_v0", 1)
    assert v0 is not None and v0.add(0.0, 128) > v0.add(0.0, 8) > 0


def test_what_each_engine_puts_in_series() -> None:
    ms = 1e-3

    def series(*names: str, tp: int = 1) -> float:
        return sum(component_ms(n, tp, 0) for n in names) * ms

    v0 = HostOverhead.for_engine("vllm_v0", 2, 1)
    assert v0 is not None
    assert v0.serial_s == pytest.approx(series("schedule", "prepare_inputs", "sampler", tp=2))
    assert v0.overlapped_s == pytest.approx(series("process_model_outputs", tp=2))  # async output processing
    staged = HostOverhead.for_engine("vllm_v0", 2, 2)  # no async output processing with pipeline stages
    assert staged is not None and staged.overlapped_s == 0.0
    everything_but_rpc = ("schedule", "prepare_inputs", "sampler", "process_model_outputs")
    assert staged.serial_s == pytest.approx(series(*everything_but_rpc, tp=2))
    encoder = HostOverhead.for_engine("vllm_v0", 1, 1, decoder=False)  # embedding mode: no sampler, in series
    assert encoder is not None and encoder.overlapped_s == 0.0
    assert encoder.serial_s == pytest.approx(series("schedule", "prepare_inputs", "process_model_outputs"))
    rpc = HostOverhead.for_engine("per_step_rpc", 4, 1)
    assert rpc is not None and rpc.overlapped_s == 0.0
    assert rpc.serial_s == pytest.approx(series(*COMPONENT_COLUMNS, tp=4))
    assert HostOverhead.for_engine("none", 4) is None
    with pytest.raises(ValueError, match="unknown host_overhead engine"):
        HostOverhead.for_engine("vllm_v1")


def test_auto_means_vllm_v0_on_gpus_only() -> None:
    assert resolve_engine("auto", "gpu") == "vllm_v0"
    assert resolve_engine("auto", "cpu") == "none"
    assert resolve_engine("auto", "tpu") == "none"
    assert resolve_engine("per_step_rpc", "cpu") == "per_step_rpc"


def test_an_iteration_includes_the_host_time() -> None:
    host = HostOverhead.for_engine("vllm_v0", 1)
    assert host is not None
    bare = IterationCost(LLAMA, "fp16", "a100-sxm-80gb")
    with_host = IterationCost(LLAMA, "fp16", "a100-sxm-80gb", host=host)
    for batch in (1, 32, 200):  # the output processing (overlapped) is shorter than a 7B forward pass
        extra = with_host.decode_s(batch, batch * 512) - bare.decode_s(batch, batch * 512)
        assert extra == pytest.approx(host.serial(batch))
    mixed = (12, 12 * 300.0, [(256, 0), (100, 50)], 1)
    assert with_host.iteration_s(*mixed) - bare.iteration_s(*mixed) == pytest.approx(host.serial(14))


def test_output_processing_shows_only_where_it_outlasts_the_forward_pass() -> None:
    host = HostOverhead.for_engine("vllm_v0", 1)
    assert host is not None

    def tiny(ops: Any, device: str) -> np.ndarray:
        return np.full(len(ops), 1e-9)

    cost = IterationCost(LLAMA, "fp16", "a100-sxm-80gb", predict=tiny, host=host)
    assert cost.decode_s(64, 64 * 100) == pytest.approx(host.serial(64) + host.overlapped(64))


def scenario(**workload: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "inference",
        "name": "chat",
        "model": "llama2-7b",
        "replicas": 1,
        "traffic": {
            "arrival": "poisson",
            "rate_per_s": 2,
            "duration_s": 10,
            "prompt_tokens": {"dist": "constant", "value": 256},
            "output_tokens": {"dist": "constant", "value": 32},
        },
    }
    base.update(workload)
    return {
        "name": "host-overhead",
        "seed": 5,
        "datacenter": {
            "nodes": [{"name": "a100", "count": 1, "accelerator": "a100-sxm-80gb", "accelerators_per_node": 8}],
        },
        "workloads": [base],
    }


def test_a_scenario_adds_it_by_default_and_turns_it_off() -> None:
    tpot = {}
    for setting in ("auto", "vllm_v0", "none"):
        summary = dcsim.run_scenario(scenario(host_overhead=setting)).summary
        tpot[setting] = summary["workloads"]["chat"]["tpot_ms"]["p50"]
    assert tpot["auto"] == tpot["vllm_v0"]
    # a handful of sequences per decode step: about 0.8 ms of schedule, inputs and sampling on the host
    assert 0.6 < tpot["auto"] - tpot["none"] < 1.2


def test_a_bad_setting_names_the_field() -> None:
    with pytest.raises(UserInputError) as error:
        load_scenario(scenario(host_overhead="vllm_v1"))
    assert "workloads[0].host_overhead" in str(error.value)
