"""The plan search: its space (degrees, uneven pipelines), memory checked before time, and the ranking."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from dcsim.models import TransformerConfig
from dcsim.parallel import search
from dcsim.parallel.comm import CommModel
from dcsim.parallel.evaluate import evaluate_plan
from dcsim.parallel.layout import RankLayout
from dcsim.parallel.search import candidate_plans, degree_choices, rank_plans
from dcsim.parallel.step import TrainingSetup, check_plan
from dcsim.scenario import load_scenario
from dcsim.scenario.network import build_fabric

DGX: dict[str, Any] = {
    "name": "search",
    "seed": 2,
    "datacenter": {
        "nodes": [
            {
                "name": "dgx",
                "count": 2,
                "accelerator": "a100-sxm-80gb",
                "accelerators_per_node": 8,
                "intra_node": "nvswitch-a100",
                "nics": {"count": 8, "gbps": 200},
                "usd_per_hour": 32.0,
            }
        ],
        "network": {"topology": "fat_tree", "link_gbps": 200},
    },
    "workloads": [{"kind": "jobs", "name": "none", "synthetic": {"count": 1, "rate_per_s": 1, "duration_s": 1}}],
}
# about 14B parameters in 10 layers: some plans on 16 A100 fit, many do not; 10 layers do not divide 4 or 8 stages
BIG = TransformerConfig("big-10", 10, 8192, 64, 4 * 8192, 32000, 2048, kv_heads=8)
SETUP = TrainingSetup(BIG, "a100-sxm-80gb", 32, 2048, "bf16")


@pytest.fixture(scope="module")
def world() -> tuple[Any, dict[str, str], list[str]]:
    fabric = build_fabric(load_scenario(copy.deepcopy(DGX)).datacenter, 2)
    server_of = {a: s for s, accs in fabric.servers.items() for a in accs}
    return fabric, server_of, fabric.ranks(16)


def test_the_space_spans_every_degree_split_and_uneven_pipelines() -> None:
    choices = list(degree_choices(SETUP, 16, 8))
    assert all(c["dp"] * c["tp"] * c["pp"] * c["cp"] == 16 and 32 % c["dp"] == 0 for c in choices)
    assert {(c["tp"], c["pp"]) for c in choices} >= {(1, 1), (8, 2), (2, 8), (4, 4), (1, 8)}
    assert all(c["pp"] <= 10 for c in choices)  # no more stages than layers
    plans = list(candidate_plans(SETUP, 16, 8))
    assert plans and all(check_plan(SETUP, p) == [] for p in plans)
    assert any(p.pp == 4 for p in plans) and any(p.pp == 8 for p in plans)  # 10 layers on 4 and 8 stages
    assert any(p.schedule == "interleaved" and p.pp == 4 for p in plans)  # 10 layers on 8 chunks


def test_a_degree_is_one_entry_in_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The search's degrees come from DEGREES alone: dropping pp's rule leaves only pp = 1 plans."""
    monkeypatch.setattr(search, "DEGREES", tuple(d for d in search.DEGREES if d[0] != "pp"))
    assert {p.pp for p in candidate_plans(SETUP, 16, 8)} == {1}


def test_memory_first_prices_only_the_plans_that_fit(world: tuple[Any, dict[str, str], list[str]]) -> None:
    fabric, server_of, names = world
    kwargs: dict[str, Any] = {"tokens": 1e9, "usd_per_accelerator_s": 4.0 / 3600}
    pruned = rank_plans(SETUP, names, CommModel(fabric.graph, "ecmp", 0), server_of, 8, **kwargs)
    full = rank_plans(SETUP, names, CommModel(fabric.graph, "ecmp", 0), server_of, 8, price_unfit=True, **kwargs)
    table, everything = pruned.table, full.table
    assert len(table) == len(everything) == len(list(candidate_plans(SETUP, 16, 8)))
    fit = table[table["fits_in_memory"]]
    unfit = table[~table["fits_in_memory"]]
    assert 0 < len(fit) < len(table)
    assert fit["step_time_s"].notna().all() and unfit["step_time_s"].isna().all()
    assert unfit["memory_per_accelerator_gb"].gt(80 * 1.073741824).all()  # 80 GiB
    assert len(pruned.evaluations) == len(fit) and len(full.evaluations) == len(everything)
    # the plans that fit rank and price the same either way, and come first, fastest first
    columns = ["dp", "tp", "pp", "microbatch_size", "schedule", "zero_stage", "recompute", "step_time_s"]
    same = everything[everything["fits_in_memory"]][columns].reset_index(drop=True)
    assert fit[columns].reset_index(drop=True).equals(same)
    assert list(fit["time_to_train_s"]) == sorted(fit["time_to_train_s"])
    assert list(table["fits_in_memory"]) == sorted(table["fits_in_memory"], reverse=True)
    best = pruned.evaluations[0]
    again = evaluate_plan(
        SETUP, best.plan, RankLayout(best.plan, tuple(names)), CommModel(fabric.graph, "ecmp", 0), server_of
    )
    assert again.step_time_s == pytest.approx(table.iloc[0]["step_time_s"], rel=1e-12)
    assert again.memory.total_bytes / 1e9 == pytest.approx(table.iloc[0]["memory_per_accelerator_gb"], rel=1e-12)
    uneven = fit[fit["layers_per_stage"].str.contains(",")]
    assert not uneven.empty and not math.isnan(uneven["step_time_s"].iloc[0])
