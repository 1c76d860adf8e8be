"""A replica's boundaries run inline (without a SimPy event) when nothing else is scheduled before them
(:meth:`dcsim.serving.replica.Replica._end_run_in`): the results must be those of the event path."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dcsim
from dcsim.serving.replica import Replica


def _scenario(policy: str, replicas: int) -> dict[str, Any]:
    """The conversation trace's lengths at Poisson arrivals on Llama-2-7B A100 replicas: 400 requests."""
    return {
        "name": "inline-boundaries",
        "seed": 3,
        "datacenter": {
            "nodes": [
                {
                    "name": "dgx-a100",
                    "count": 1,
                    "accelerator": "a100-sxm-80gb",
                    "accelerators_per_node": 8,
                    "intra_node": "nvswitch-a100",
                }
            ]
        },
        "workloads": [
            {
                "kind": "inference",
                "name": "chat",
                "model": "llama2-7b",
                "precision": "fp16",
                "replicas": replicas,
                "batching": {"policy": policy, "max_batch_size": 64, "max_batch_tokens": 2048},
                "traffic": {"arrival": "poisson", "trace": "splitwise_conv", "rate_per_s": 8.0, "duration_s": 50},
            }
        ],
        "outputs": {"plots": False},
    }


def _always_an_event(self: Replica, delay_s: float) -> None:
    """The event path only: every run's end is a SimPy timeout."""
    self.env.timeout(delay_s, self.run.epoch).callbacks.append(self._boundary)


@pytest.mark.parametrize(("policy", "replicas"), [("vllm", 1), ("sarathi", 1), ("trtllm", 2), ("orca", 3)])
def test_inline_boundaries_change_no_result(policy, replicas, monkeypatch):
    inline_runs = 0
    end_run_in = Replica._end_run_in

    def counting(self: Replica, delay_s: float) -> None:
        nonlocal inline_runs
        end_run_in(self, delay_s)
        inline_runs += self.run.inline_end_s >= 0

    monkeypatch.setattr(Replica, "_end_run_in", counting)
    inline = dcsim.run_scenario(_scenario(policy, replicas))
    assert inline_runs > 100  # the inline path was taken
    monkeypatch.setattr(Replica, "_end_run_in", _always_an_event)
    events = dcsim.run_scenario(_scenario(policy, replicas))
    assert json.dumps(inline.summary, sort_keys=True, default=str) == json.dumps(
        events.summary, sort_keys=True, default=str
    )
    assert inline.tables["requests"].equals(events.tables["requests"])
