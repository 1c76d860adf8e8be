"""Shared test helpers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

BASE: dict[str, Any] = {
    "name": "t",
    "seed": 3,
    "datacenter": {
        "pue": 1.5,
        "electricity_usd_per_kwh": 0.1,
        "nodes": [
            {"name": "n", "count": 2, "accelerator": "a100-sxm-80gb", "accelerators_per_node": 4, "usd_per_hour": 8.0}
        ],
    },
    "workloads": [
        {
            "kind": "jobs",
            "name": "w",
            "synthetic": {
                "count": 50,
                "rate_per_h": 4,
                "gpus": {"choices": [1, 2, 4]},
                "duration_s": {"dist": "exponential", "mean": 1800},
            },
        }
    ],
    "outputs": {"plots": False},
}


@pytest.fixture
def base() -> dict[str, Any]:
    """A small valid scenario as a mapping (a fresh copy per test)."""
    return copy.deepcopy(BASE)


#: Serving traffic that overflows one L4's Llama-2-7B KV cache (~14k tokens) so that sequences are preempted:
#: 20 requests/s of 1,500 prompt + 600 output tokens for 4 s.
KV_OVERFLOW_TRAFFIC: dict[str, Any] = {
    "arrival": "poisson",
    "rate_per_s": 20,
    "duration_s": 4,
    "prompt_tokens": {"dist": "constant", "value": 1500},
    "output_tokens": {"dist": "constant", "value": 600},
}


@pytest.fixture
def kv_overflow_traffic() -> dict[str, Any]:
    """:data:`KV_OVERFLOW_TRAFFIC` (a fresh copy per test)."""
    return copy.deepcopy(KV_OVERFLOW_TRAFFIC)
