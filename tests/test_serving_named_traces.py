"""Shipped LLM-serving traces by name: own arrivals, Poisson arrivals at a chosen rate, bad names."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
import yaml

from dcsim.cli import main
from dcsim.engine.simulation import Simulation
from dcsim.run.inference_runner import make_traffic
from dcsim.scenario import load_scenario
from dcsim.serving import read_trace
from dcsim.serving.named_traces import NAMED_TRACES, TRACES_DIR, named_trace_path


def scenario(traffic: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "named-trace",
        "seed": 5,
        "datacenter": {
            "nodes": [{"name": "a100", "count": 1, "accelerator": "a100-sxm-80gb", "accelerators_per_node": 8}]
        },
        "workloads": [{"kind": "inference", "name": "chat", "model": "llama2-7b", "replicas": 1, "traffic": traffic}],
    }


def traffic_of(traffic: dict[str, Any]) -> Any:
    loaded = load_scenario(scenario(traffic))
    return make_traffic(loaded.workloads[0], Simulation(seed=loaded.seed), loaded.base_dir)


def test_every_name_resolves_to_a_shipped_file_with_provenance() -> None:
    readme = (TRACES_DIR / "README.md").read_text()
    for name, (file, _) in NAMED_TRACES.items():
        assert named_trace_path(name).is_file()
        assert f"`{file}`" in readme and "Splitwise" in readme and "licence" in readme.lower()


def test_own_arrivals_replay_the_file_by_name() -> None:
    traffic = traffic_of({"arrival": "trace", "trace": "splitwise_conv"})
    by_path = read_trace(TRACES_DIR / "splitwise_conv.csv")
    assert len(traffic) == len(by_path) == 19366
    assert np.array_equal(traffic.arrival_s, by_path.arrival_s)
    assert np.array_equal(traffic.prompt_tokens, by_path.prompt_tokens)


def test_poisson_arrivals_keep_the_lengths_in_order_at_the_chosen_rate() -> None:
    rows = read_trace(TRACES_DIR / "splitwise_code.csv")
    traffic = traffic_of({"arrival": "poisson", "trace": "splitwise_code", "rate_per_s": 2.0})
    assert len(traffic) == len(rows)  # no duration_s: one request per row
    assert np.array_equal(traffic.prompt_tokens, rows.prompt_tokens)
    assert np.array_equal(traffic.output_tokens, rows.output_tokens)
    gaps = np.diff(traffic.arrival_s)
    assert np.mean(gaps) == pytest.approx(0.5, rel=0.05)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, rel=0.05)  # exponential gaps
    assert not np.allclose(traffic.arrival_s, rows.arrival_s)
    # the same seed draws the same arrivals
    again = traffic_of({"arrival": "poisson", "trace": "splitwise_code", "rate_per_s": 2.0})
    assert np.array_equal(traffic.arrival_s, again.arrival_s)


def test_a_duration_longer_than_the_trace_cycles_its_rows() -> None:
    rows = read_trace(TRACES_DIR / "splitwise_code.csv")
    traffic = traffic_of({"arrival": "poisson", "trace": "splitwise_code", "rate_per_s": 10.0, "duration_s": 1500})
    n = len(rows)
    assert len(traffic) > n
    assert np.array_equal(traffic.prompt_tokens[n : 2 * n][: len(traffic) - n], rows.prompt_tokens[: len(traffic) - n])
    assert traffic.arrival_s[-1] < 1500


def test_a_trace_by_name_serves_end_to_end(tmp_path: Any) -> None:
    spec = scenario({"arrival": "poisson", "trace": "splitwise_conv", "rate_per_s": 1.0, "duration_s": 20})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-plots"]) == 0


@pytest.mark.parametrize(
    ("traffic", "expected"),
    [
        (
            {"arrival": "trace", "trace": "splitwise_chat"},
            "workloads[0].traffic.trace: unknown trace 'splitwise_chat': give a shipped trace "
            "(splitwise_code, splitwise_conv) or a CSV file path",
        ),
        ({"arrival": "poisson", "trace": "splitwise_conv"}, "poisson arrivals of a trace's lengths need rate_per_s"),
        (
            {"arrival": "poisson", "trace": "splitwise_conv", "rate_per_s": 1, "prompt_tokens": 100},
            "prompt_tokens: the lengths come from trace",
        ),
        (
            {"arrival": "poisson", "trace": "splitwise_conv", "rate_per_s": 1, "time_scale": 2},
            "time_scale scales a trace's own arrival times",
        ),
    ],
)
def test_bad_trace_settings_are_one_line_naming_the_field(
    tmp_path: Any, capsys: Any, traffic: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario(traffic)))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and expected in err[0] and "workloads[0].traffic" in err[0]


def test_a_sweep_cache_key_covers_the_named_trace_content() -> None:
    from dcsim.sweep.inputs import input_digests

    digests = input_digests({"traffic": {"trace": "splitwise_conv"}}, ".")
    assert digests["splitwise_conv"] == hashlib.sha256(named_trace_path("splitwise_conv").read_bytes()).hexdigest()
