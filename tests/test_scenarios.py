"""Every file in scenarios/ runs, and its summary is checked against properties stated here.

A new scenario needs an entry in EXPECTATIONS (the test fails otherwise), so none ships unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dcsim
from dcsim.serving.host_overhead import HostOverhead
from dcsim.testing import check_job_invariants

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def quickstart(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["research"]
    assert w["jobs_completed"] == w["jobs_submitted"] == 500
    dc = summary["datacenter"]
    # offered load: 7 jobs/h x E[gpus] 3.6 x ~1 h on 32 accelerators ~ 0.8; FIFO head-of-line blocking with
    # 16-accelerator gangs wastes some capacity, so realized utilization is lower but substantial
    assert 0.5 < dc["accelerator_utilization"] < 0.95
    assert w["wait_s"]["p50"] <= w["wait_s"]["p90"] <= w["wait_s"]["p99"]
    assert dc["carbon_kg"] == pytest.approx(dc["energy_kwh"] * 0.4)
    hours = summary["simulated_time_s"] / 3600
    assert dc["cost_usd"]["compute"] == pytest.approx(4 * 32.0 * hours)


def trace_replay(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["lab"]
    assert w["jobs_completed"] == 20
    # 20 jobs of the sample trace: total accelerator-hours = sum(gpus x duration) / 3600
    assert w["accelerator_hours"] == pytest.approx(668400 / 3600)
    assert summary["datacenter"]["price_basis"]["dgx-h100"].startswith("capex_usd amortized")


def nccl_allreduce_dgx_a100(summary: dict[str, Any]) -> None:
    one = summary["workloads"]["allreduce-1node"]
    # nccl-tests maintainers: ~230 GB/s all-reduce busbw on 8 A100 over NVSwitch (= 1,840 Gb/s); within 10%
    assert one["busbw_gbps"] == pytest.approx(230 * 8, rel=0.10)
    assert one["busbw_gbps"] == pytest.approx(one["algbw_gbps"] * 2 * 7 / 8)
    four = summary["workloads"]["allreduce-4nodes"]
    # across nodes the NICs (8 x 200 Gb/s per node) and the fabric, not NVSwitch, bound the bandwidth
    assert four["busbw_gbps"] < one["busbw_gbps"]
    a2a = summary["workloads"]["alltoall-4nodes"]
    assert a2a["busbw_gbps"] == pytest.approx(a2a["algbw_gbps"] * 31 / 32)


def leaf_spine_oversubscribed(summary: dict[str, Any]) -> None:
    inside = summary["workloads"]["in-rack"]
    across = summary["workloads"]["cross-rack"]
    # in-rack: the ring runs at the 100 Gb/s NIC speed; across racks 8 ring flows per direction share a
    # leaf's 400 Gb/s of uplinks (16 x 100 Gb/s / 4), 50 Gb/s each: half the bandwidth, twice the time
    assert inside["busbw_gbps"] == pytest.approx(100, rel=0.01)
    assert across["busbw_gbps"] == pytest.approx(50, rel=0.01)
    assert across["time_s"] == pytest.approx(2 * inside["time_s"], rel=0.02)


def research_cluster(summary: dict[str, Any]) -> None:
    work = summary["workloads"]["research"]
    assert work["jobs_completed"] == 600
    # sample trace: 600 jobs of the offered load ~0.89 on 64 GPUs; every accelerator-second is a job's
    assert work["accelerator_hours"] == pytest.approx(
        summary["datacenter"]["accelerator_utilization"] * 64 * summary["simulated_time_s"] / 3600
    )
    assert summary["datacenter"]["goodput"] == pytest.approx(1.0)


def research_cluster_failures(summary: dict[str, Any]) -> None:
    work, dc = summary["workloads"]["research"], summary["datacenter"]
    assert work["jobs_completed"] == 600
    assert dc["accelerator_failures"] > 0 and work["failures"] > 0
    assert 0.9 < dc["goodput"] < 1.0 and work["lost_accelerator_hours"] > 0


def llama2_7b_chat_a100(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["chat"]
    assert w["requests_completed"] == w["requests"] > 5000  # 20 req/s for 300 s, all served
    # below capacity the pool generates what arrives: ~20 req/s x ~127 output tokens (lognormal mean 128, max 1024)
    assert w["throughput_tokens_per_s"] == pytest.approx(20 * 127, rel=0.1)
    # a decode step reads 13.5 GB of fp16 weights: at least 6.6 ms at A100's 2,039 GB/s, well under the SLO
    assert 6.6 < w["tpot_ms"]["p50"] < 50 and w["ttft_ms"]["p50"] < 500
    assert w["slo_attainment"] > 0.95
    hours = summary["simulated_time_s"] / 3600
    assert w["cost_usd"] == pytest.approx(4 * 4.0 * hours)  # 4 GPUs at $16/h per 4-GPU node
    tokens = w["throughput_tokens_per_s"] * w["requests"] / w["requests_per_s"]
    assert w["usd_per_million_tokens"] == pytest.approx(w["cost_usd"] / tokens * 1e6)
    assert 0 < w["kv_peak_occupancy"] < 1 and w["preemptions"] == 0


def llama2_70b_tp2_a100_chat(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["chat"]
    assert w["requests_completed"] == w["requests"] == 19366  # the whole chat trace, none dropped
    # stable: the queue drains within a minute of the last arrival (3,501.7 s x time_scale 5.53)
    assert summary["simulated_time_s"] < 3501.72 * 5.53 + 60
    assert w["ttft_ms"]["p50"] < 2000
    # the KV capacity is what 0.9 of 80 GiB leaves after 69 GB of weights (docs/serving.md): 40-50k tokens
    memory = w["accelerator_memory"]["dgx-a100"]
    assert 40_000 <= w["kv_capacity_tokens"]["dgx-a100"] == memory["kv_tokens"] <= 50_000
    assert memory["accelerator_gb"] == pytest.approx(80 * 2**30 / 1e9)
    # a decode step reads 69 GB of weights per GPU: at least 33.8 ms at the A100's 2,039 GB/s
    assert w["tpot_ms"]["p50"] > 33.8


def llama2_70b_tp_h100(summary: dict[str, Any]) -> None:
    tp4, tp8 = summary["workloads"]["tp4"], summary["workloads"]["tp8"]
    assert tp4["requests_completed"] == tp4["requests"] and tp8["requests_completed"] == tp8["requests"]
    # a TP8 decode step reads half the weight bytes per GPU that a TP4 step does: shorter steps
    assert tp8["tpot_ms"]["p50"] < tp4["tpot_ms"]["p50"]
    # floors: 138 GB of fp16 weights over 4 or 8 GPUs at 3,350 GB/s each
    assert tp4["tpot_ms"]["p50"] > 138e9 / 4 / 3350e9 * 1e3 and tp8["tpot_ms"]["p50"] > 138e9 / 8 / 3350e9 * 1e3
    # both hold 8 GPUs for about the same time: about the same cost
    assert tp4["cost_usd"] == pytest.approx(tp8["cost_usd"], rel=0.05)


def bursty_autoscale(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["bursty"]
    assert w["requests_completed"] == w["requests"]
    assert w["max_live_replicas"] > 1 and w["scale_events"] > 2  # bursts scale the pool up
    # ... and quiet spells scale it down: fewer replica-hours than 8 replicas for the whole run
    assert w["replica_hours"] < 0.75 * 8 * summary["simulated_time_s"] / 3600


def mixed_a100_l4(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["chat"]
    a100, l4 = w["by_accelerator"]["a100-sxm-80gb"], w["by_accelerator"]["l4"]
    assert (a100["replicas"], l4["replicas"]) == (2, 4)
    assert a100["requests_completed"] + l4["requests_completed"] == w["requests"]
    # an L4 streams weights at 300 GB/s against the A100's 2,039: several times slower per token
    assert l4["tpot_ms"]["p50"] > 3 * a100["tpot_ms"]["p50"]
    # least-loaded routing gives the faster replicas more requests each
    assert a100["requests_completed"] / 2 > l4["requests_completed"] / 4


def disaggregated_serving(summary: dict[str, Any]) -> None:
    colocated, split = summary["workloads"]["colocated"], summary["workloads"]["split"]
    assert colocated["requests_completed"] == colocated["requests"] and split["requests_completed"] == split["requests"]
    assert split["kv_transfers"] == split["requests"] == colocated["requests"] and colocated["kv_transfers"] == 0
    # prefill iterations carry no decode tokens: the first token comes sooner
    assert split["ttft_ms"]["p50"] < colocated["ttft_ms"]["p50"]
    # decode iterations never stall behind a long prompt: time per output token is steadier
    spread = split["tpot_ms"]["p99"] / split["tpot_ms"]["p50"]
    assert spread < colocated["tpot_ms"]["p99"] / colocated["tpot_ms"]["p50"]
    assert split["preemptions"] == 0 and colocated["preemptions"] == 0


def disaggregated_kv_network(summary: dict[str, Any]) -> None:
    network, dedicated = summary["workloads"]["network"], summary["workloads"]["dedicated"]
    for w in (network, dedicated):
        assert w["requests_completed"] == w["requests"] == w["kv_transfers"]
    assert network["ttft_ms"] == dedicated["ttft_ms"]  # same requests, same prefill replicas
    # the shared NIC: overlapping transfers wait for each other, a dedicated 100 Gb/s path never does
    assert network["kv_transfer_ms"]["p50"] > 1.5 * dedicated["kv_transfer_ms"]["p50"]
    assert network["kv_transfer_ms"]["p99"] > 2 * dedicated["kv_transfer_ms"]["p99"]
    assert network["tpot_ms"]["p99"] > dedicated["tpot_ms"]["p99"]


def llama3_405b_two_nodes(summary: dict[str, Any]) -> None:
    two, one = summary["workloads"]["fp16-two-nodes"], summary["workloads"]["fp8-one-node"]
    assert two["requests_completed"] == two["requests"] == one["requests_completed"] == one["requests"]
    assert two["nodes_per_replica"] == 2 and one["nodes_per_replica"] == 1
    # floors: a decode step reads every stage's weights in turn (no micro-batch overlap inside a replica),
    # 810 GB of fp16 over 8 GPUs of a stage x 2 stages, or 405 GB of fp8 over 8 GPUs, at 3,350 GB/s each
    assert two["tpot_ms"]["p50"] > 810e9 / 8 / 3350e9 * 1e3
    assert one["tpot_ms"]["p50"] > 405e9 / 8 / 3350e9 * 1e3
    # half the bytes per step on half the GPUs: the fp8 node decodes faster and costs less per token
    assert one["tpot_ms"]["p50"] < two["tpot_ms"]["p50"]
    assert one["usd_per_million_tokens"] < two["usd_per_million_tokens"]


def mixtral_8x7b_h100(summary: dict[str, Any]) -> None:
    w = summary["workloads"]
    moe, small, big = w["mixtral-8x7b"], w["llama2-13b"], w["llama2-70b"]
    assert moe["requests_completed"] == moe["requests"] == small["requests_completed"] == big["requests_completed"]
    # light load: about batch-1 decode. Mixtral reads 2 of its 8 experts per step (about 12.9B of its 46.7B
    # parameters, over 2 GPUs), near the 13B dense model and well under Llama-2-70B's 69B per GPU pair...
    assert small["tpot_ms"]["p50"] < moe["tpot_ms"]["p50"] < big["tpot_ms"]["p50"]
    # ...while its floor is the 2 experts' bytes, not all 93 GB of weights: the GPU part of a step (less the
    # engine's host time in series, vLLM v0 at tp 2 and batch 1) is under 46.7B x 2 B / 2 GPUs / 3,350 GB/s
    host = HostOverhead.for_engine("vllm_v0", 2)
    assert host is not None
    host_ms = host.serial(1) * 1e3
    assert moe["tpot_ms"]["p50"] - host_ms < 46.7e9 * 2 / 2 / 3350e9 * 1e3
    assert moe["tpot_ms"]["p50"] > 12.9e9 * 2 / 2 / 3350e9 * 1e3 + host_ms


def _training_consistent(w: dict[str, Any], tokens_per_step: float) -> None:
    assert w["status"] == "completed" and w["fits_in_memory"]
    assert w["time_to_train_s"] == pytest.approx(w["steps"] * w["step_time_s"])
    assert w["tokens_per_s"] == pytest.approx(tokens_per_step / w["step_time_s"])
    assert sum(w["step_breakdown_s"].values()) == pytest.approx(w["step_time_s"])
    assert 0 < w["mfu"] < 1 and w["memory_per_accelerator_gb"] <= 80


def gpt3_175b_dgx_a100(summary: dict[str, Any]) -> None:
    plans = summary["workloads"]
    for w in plans.values():
        _training_consistent(w, 1536 * 2048)
        assert w["steps"] == 95368  # ceil(300e9 / (1536 x 2048))
        assert w["accelerators"] == 1024
    megatron, interleaved, dp32 = (plans[k] for k in ("megatron-tp8-pp8", "interleaved-tp8-pp16", "tp4-pp8-dp32"))
    # the three plans share the cluster: each waits for the one before it
    assert interleaved["wait_s"] == pytest.approx(megatron["time_to_train_s"])
    assert dp32["wait_s"] == pytest.approx(megatron["time_to_train_s"] + interleaved["time_to_train_s"])
    # interleaving two chunks per stage shrinks the bubble (p - 1)/(v m) relative to the compute
    bubble = {k: w["step_breakdown_s"]["pp_bubble_s"] / w["step_breakdown_s"]["compute_s"] for k, w in plans.items()}
    assert bubble["interleaved-tp8-pp16"] < bubble["megatron-tp8-pp8"]
    # full recompute re-runs the forward: more compute per step than selective recompute
    assert dp32["step_breakdown_s"]["compute_s"] > megatron["step_breakdown_s"]["compute_s"]
    assert 0.3 < megatron["mfu"] < 0.6


def llama3_70b_dgx_h100(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["llama3-70b"]
    _training_consistent(w, 512 * 8192)
    assert summary["datacenter"]["compute_basis"]["h100-sxm"] == "measured"
    assert w["tflops_per_accelerator"] < 989.5  # the dense bf16 peak
    target = w["time_to_target_loss"]
    assert target["reachable"] and target["label"].startswith("model estimate")
    assert target["time_s"] == pytest.approx(target["steps"] * w["step_time_s"])
    assert summary["datacenter"]["cost_usd"]["storage"] > 0


def llama3_70b_h100_fp8_cp(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["llama3-70b-fp8"]
    _training_consistent(w, 512 * 8192)
    assert w["plan"]["cp"] == 2 and w["accelerators"] == 2 * 4 * 2 * 4 == 64
    # FlashAttention and cp 2: each rank keeps the activations of 4,096 tokens per microbatch
    assert w["fits_in_memory"] and w["memory_breakdown_gb"]["activations"] < 40


def bert_finetune(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["bert-large-squad"]
    _training_consistent(w, 32 * 384)
    parts = w["step_breakdown_s"]
    assert parts["tp_exposed_s"] == parts["pp_bubble_s"] == 0  # pure data parallelism
    assert w["cost_usd"] == pytest.approx(8 * w["time_to_train_s"] * 32.0 / 8 / 3600)


def vit_imagenet(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["vit-b16"]
    _training_consistent(w, 4096)  # images per step
    assert w["steps"] == 93834


def whisper_large(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["whisper-large"]
    assert w["steps"] == 2**20 and w["status"] == "completed"
    assert w["time_to_train_s"] == pytest.approx(w["steps"] * w["step_time_s"])
    assert w["plan"]["zero_stage"] == 2 and w["memory_per_accelerator_gb"] < 80


def shared_cluster(summary: dict[str, Any]) -> None:
    """Serving, training and trace jobs from one pool (tests/test_shared_pool.py checks the mechanism)."""
    chat, train, research = (summary["workloads"][k] for k in ("chat", "gpt3-1.3b", "research"))
    assert chat["requests_completed"] == chat["requests"] and chat["max_live_replicas"] > 2
    assert train["status"] == "completed" and research["jobs_completed"] == 60
    # every preemption of a batch job in this scenario was a replica switching on where it ran
    assert chat["jobs_preempted"] == research["preemptions"] + train["preemptions"] > 0


def llama2_7b_compression(summary: dict[str, Any]) -> None:
    pools = summary["workloads"]
    fp16, awq, fp8, sparse = (pools[k] for k in ("fp16", "awq-int4", "fp8-w8a8-kv8", "sparse-2-4"))
    for w in pools.values():  # one request stream for all pools (traffic.stream)
        assert w["requests"] == fp16["requests"] and w["requests_completed"] == w["requests"]
        assert w["input_tokens_per_s"] > 0
    # fp8 GEMMs on H100 (units in the catalog) and an fp8 KV cache: more throughput and more cached tokens
    assert fp8["throughput_tokens_per_s"] > fp16["throughput_tokens_per_s"]
    assert fp8["kv_capacity_tokens"]["dgx-h100"] > 1.9 * fp16["kv_capacity_tokens"]["dgx-h100"]
    # 4-bit weights: faster decode, cheaper tokens over the serving window, a published accuracy point
    assert awq["tpot_ms"]["p50"] < fp16["tpot_ms"]["p50"]
    assert awq["usd_per_million_tokens_serving"] < fp16["usd_per_million_tokens_serving"]
    assert awq["compression"]["accuracy"]["status"] == "estimate"
    assert fp8["compression"]["accuracy"]["status"] == "unknown"  # none published for this recipe
    # 2:4 on H100: the measured sparse GEMMs do not beat dense here, so only memory changes
    assert sparse["tpot_ms"]["p50"] == pytest.approx(fp16["tpot_ms"]["p50"], rel=0.02)
    assert sparse["compression"]["weight_bytes_factor"] < 0.6
    produced = sum(w["compression"]["production"]["usd"] for w in pools.values() if w["compression"])
    assert summary["datacenter"]["cost_usd"]["compression"] == pytest.approx(produced)


def bert_base_compression(summary: dict[str, Any]) -> None:
    pools = summary["workloads"]
    fp16, int8, distil, tiny, sparse, drop = (
        pools[k] for k in ("fp16", "int8-w8a8", "distilbert-6l", "tinybert-4l", "sparse-2-4", "drop-6-layers")
    )
    for w in pools.values():  # one request stream; an encoder counts the input tokens it processes
        assert w["requests"] == fp16["requests"] > 50_000 and w["requests_completed"] == w["requests"]
        assert w["tokens_counted"] == "input" and w["throughput_tokens_per_s"] == w["input_tokens_per_s"]
        assert w["tpot_ms"]["p50"] is None and w["ttft_ms"] == w["e2e_ms"] and w["kv_capacity_tokens"] == {"g2-l4": 0}
        assert w["slo_attainment"] > 0.99
    # int8 tensor cores on the L4: faster GEMMs, fewer replicas kept on, cheaper tokens; no published accuracy.
    # Each iteration also pays the engine's host time (vLLM v0, encoder: 0.38 ms at one sequence), which
    # the int8 GEMMs do not shorten: less than it, the device time must fall by at least 5%
    host = HostOverhead.for_engine("vllm_v0", 1, decoder=False)
    assert host is not None
    host_ms = (host.serial(1) + host.overlapped(1)) * 1e3
    assert int8["ttft_ms"]["p50"] - host_ms < 0.95 * (fp16["ttft_ms"]["p50"] - host_ms)
    assert int8["usd_per_million_tokens_serving"] < fp16["usd_per_million_tokens_serving"]
    assert int8["compression"]["accuracy"]["status"] == "unknown"
    # students: half and a third of the layers' time; GLUE points of their papers, each against its own baseline
    assert tiny["usd_per_million_tokens_serving"] < distil["usd_per_million_tokens_serving"]
    assert distil["usd_per_million_tokens_serving"] < 0.8 * fp16["usd_per_million_tokens_serving"]
    for w, point in ((distil, "distilbert-glue"), (tiny, "tinybert4-glue")):
        accuracy = w["compression"]["accuracy"]
        assert (accuracy["point"], accuracy["baseline"], accuracy["compressed"]) == (point, 79.5, 77.0)
    # 2:4 on the L4: the dense kernel wins at these shapes, so only memory changes; no BERT point published
    assert sparse["ttft_ms"]["p50"] == pytest.approx(fp16["ttft_ms"]["p50"], rel=0.01)
    assert sparse["compression"]["weight_bytes_factor"] < 0.7
    assert sparse["compression"]["accuracy"]["status"] == drop["compression"]["accuracy"]["status"] == "unknown"
    # COST: the distillation runs are the compression term; a minute of traffic does not pay them back
    produced = sum(w["compression"]["production"]["usd"] for w in pools.values() if w["compression"])
    assert summary["datacenter"]["cost_usd"]["compression"] == pytest.approx(produced)
    versus = distil["compression"]["versus_uncompressed"]
    assert versus["workload"] == "fp16" and versus["serving_period_s"] == 60
    assert versus["savings_usd"] == pytest.approx(versus["uncompressed_serving_usd"] - versus["serving_usd"])
    assert 0 < versus["savings_usd"] < versus["production_usd"] == distil["compression"]["production"]["usd"]
    assert versus["break_even_s"] == pytest.approx(60 * versus["production_usd"] / versus["savings_usd"])
    assert versus["break_even_s"] > 3600  # hours of this traffic before the distillation has paid for itself
    assert drop["compression"]["versus_uncompressed"]["break_even_s"] == 0.0  # nothing to produce, fewer layers


def finance_risk(summary: dict[str, Any]) -> None:
    w = summary["workloads"]
    assistant, bert, mc = w["risk-assistant"], w["filings-classifier"], w["monte-carlo"]
    assert assistant["requests_completed"] == assistant["requests"]
    assert assistant["compression"]["accuracy"]["status"] in ("estimate", "unknown")
    assert summary["datacenter"]["cost_usd"]["compression"] == pytest.approx(
        assistant["compression"]["production"]["usd"]
    )
    assert bert["status"] == "completed" and mc["jobs_completed"] == 40
    assert summary["datacenter"]["carbon_kg"] == pytest.approx(summary["datacenter"]["energy_kwh"] * 0.3)


def medical_imaging(summary: dict[str, Any]) -> None:
    w = summary["workloads"]
    vit = w["vit-l16-archive"]
    assert vit["status"] == "completed" and vit["steps"] == 58594
    assert vit["tokens_per_s"] == pytest.approx(2048 / vit["step_time_s"])  # images per second
    # the ViT run checkpoints its own state (fp32 master weights and AdamW moments) at 100 Gb/s
    assert vit["checkpoint"]["cost_s"] == pytest.approx(vit["checkpoint"]["size_gb"] * 8 / 100)
    assert w["radiology"]["jobs_completed"] == w["pathology"]["jobs_completed"] == 25
    dc = summary["datacenter"]
    assert dc["accelerator_failures"] > 0 and 0.9 < dc["goodput"] < 1.0
    assert dc["price_basis"]["dgx-h100"].startswith("capex_usd amortized")


def rail_optimized_allreduce(summary: dict[str, Any]) -> None:
    w = summary["workloads"]
    rails = [w[f"rail{i}"] for i in range(8)]
    # GPU i of each node talks through NIC i to rail leaf i only: eight rings side by side, each at a
    # NIC's 400 Gb/s line rate (busbw of a ring is the per-link rate), none slowed by the others
    for rail in rails:
        assert rail["busbw_gbps"] == pytest.approx(400, rel=0.01)
        assert rail["time_s"] == rails[0]["time_s"]
    assert w["allreduce-32"]["busbw_gbps"] > rails[0]["busbw_gbps"]  # eight rails and NVSwitch at once
    a2a = w["alltoall-32"]
    # 24 of each rank's 32 shares leave its node, through the node's eight 400 Gb/s NICs
    assert a2a["algbw_gbps"] <= 400 * 32 / 24 * (1 + 1e-9)
    assert a2a["busbw_gbps"] == pytest.approx(a2a["algbw_gbps"] * 31 / 32)


def a100_40gb_vs_80gb(summary: dict[str, Any]) -> None:
    small, large = summary["workloads"]["chat-40gb"], summary["workloads"]["chat-80gb"]
    assert summary["datacenter"]["compute_basis"] == {"a100-40gb": "inherited", "a100-sxm-80gb": "measured"}
    assert small["requests"] == large["requests"]  # one shared request stream
    # the declared 40 GiB, and what is left for the KV cache after 0.9 of it less the weights (26 GB) and
    # the activation peak: 819,200 bytes per token (2 x 40 layers x 5,120 x 2 bytes), whole blocks of 16 tokens
    memory = small["accelerator_memory"]["a100-40gb-server"]
    assert memory["accelerator_gb"] == pytest.approx(40 * 2**30 / 1e9)
    assert memory["kv_tokens"] == int(memory["kv_gb"] * 1e9 / 819_200 / 16) * 16
    kv_large = large["kv_capacity_tokens"]["a100-80gb-server"]
    assert small["kv_capacity_tokens"]["a100-40gb-server"] == memory["kv_tokens"] < 0.3 * kv_large
    # fewer sequences fit at once on the 40GB: it preempts, queues and misses the TTFT SLO the 80GB meets
    assert small["preemptions"] > 0 == large["preemptions"]
    assert large["slo_attainment"] > 0.95 > 0.5 > small["slo_attainment"]
    assert small["ttft_ms"]["p50"] > 100 * large["ttft_ms"]["p50"]
    assert small["throughput_tokens_per_s"] < large["throughput_tokens_per_s"]


def deepseek_v3_h800(summary: dict[str, Any]) -> None:
    w = summary["workloads"]["deepseek-v3"]
    assert w["status"] == "completed" and w["fits_in_memory"]
    plan = w["plan"]
    # the Technical Report's layout (section 3.2): PP16, EP64 over 8 nodes, ZeRO-1 DP, no TP, 2,048 GPUs
    assert (plan["dp"], plan["tp"], plan["pp"], plan["ep"], plan["zero_stage"]) == (128, 1, 16, 64, 1)
    assert sum(plan["layers_per_stage"]) == 61 and w["accelerators"] == 2048
    # report: 180K H800 GPU-hours per trillion tokens; dcsim leaves exposed the expert all-to-all that
    # DualPipe hides and re-runs the whole forward (full recompute), so it is slower, but not 2x slower
    per_trillion = w["accelerator_hours"] / (w["tokens"] / 1e12)
    assert 180e3 < per_trillion < 2 * 180e3
    assert w["step_breakdown_s"]["tp_exposed_s"] > 0.5 * w["step_breakdown_s"]["compute_s"]


EXPECTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "quickstart.yaml": quickstart,
    "trace_replay.yaml": trace_replay,
    "nccl_allreduce_dgx_a100.yaml": nccl_allreduce_dgx_a100,
    "leaf_spine_oversubscribed.yaml": leaf_spine_oversubscribed,
    "rail_optimized_allreduce.yaml": rail_optimized_allreduce,
    "research_cluster.yaml": research_cluster,
    "research_cluster_failures.yaml": research_cluster_failures,
    "llama2_7b_chat_a100.yaml": llama2_7b_chat_a100,
    "llama2_70b_tp_h100.yaml": llama2_70b_tp_h100,
    "llama2_70b_tp2_a100_chat.yaml": llama2_70b_tp2_a100_chat,
    "bursty_autoscale.yaml": bursty_autoscale,
    "mixed_a100_l4.yaml": mixed_a100_l4,
    "disaggregated_serving.yaml": disaggregated_serving,
    "disaggregated_kv_network.yaml": disaggregated_kv_network,
    "llama3_405b_two_nodes.yaml": llama3_405b_two_nodes,
    "mixtral_8x7b_h100.yaml": mixtral_8x7b_h100,
    "gpt3_175b_dgx_a100.yaml": gpt3_175b_dgx_a100,
    "llama3_70b_dgx_h100.yaml": llama3_70b_dgx_h100,
    "llama3_70b_h100_fp8_cp.yaml": llama3_70b_h100_fp8_cp,
    "bert_finetune.yaml": bert_finetune,
    "vit_imagenet.yaml": vit_imagenet,
    "whisper_large.yaml": whisper_large,
    "shared_cluster.yaml": shared_cluster,
    "llama2_7b_compression.yaml": llama2_7b_compression,
    "bert_base_compression.yaml": bert_base_compression,
    "finance_risk.yaml": finance_risk,
    "medical_imaging.yaml": medical_imaging,
    "a100_40gb_vs_80gb.yaml": a100_40gb_vs_80gb,
    "deepseek_v3_h800.yaml": deepseek_v3_h800,
}


def contention_two_jobs(summary: dict[str, Any]) -> None:
    # spread: both jobs' gradient rings cross every rack boundary and share the 4:1 uplinks
    for name in ("job-a", "job-b"):
        w = summary["workloads"][name]
        assert w["status"] == "completed"
        assert w["network_slowdown"] > 1.2
        assert w["time_to_train_s"] == pytest.approx(w["compute_time_to_train_s"] * w["network_slowdown"])


EXPECTATIONS["contention_two_jobs.yaml"] = contention_two_jobs


def contention_serving_training(summary: dict[str, Any]) -> None:
    # the training jobs overload the uplinks; the link failure moves the replica's sends onto one of them
    serve = summary["workloads"]["llama3-405b-3-nodes"]
    assert serve["requests_completed"] == serve["requests"]
    assert 1.0 < serve["network_slowdown"] <= serve["network_slowdown_max"] < 1.2
    for name in ("job-a", "job-b"):
        assert summary["workloads"][name]["network_slowdown"] > 1.2
    assert summary["datacenter"]["link_failures"] == 1
    assert summary["datacenter"]["link_down_s"] == 60.0


EXPECTATIONS["contention_serving_training.yaml"] = contention_serving_training


def scenario_files() -> list[Path]:
    return sorted(SCENARIOS.glob("*.yaml"))


def test_every_scenario_has_expectations():
    assert {p.name for p in scenario_files()} == set(EXPECTATIONS)


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.name)
def test_scenario_runs(path, tmp_path):
    result = dcsim.run_scenario(path)
    summary = json.loads(result.summary_json())
    assert set(summary["workloads"]) == {w.name for w in result.scenario.workloads}
    dc = summary["datacenter"]
    assert dc["energy_kwh"] > 0 and dc["cost_usd"]["total"] >= 0
    assert 0 <= dc["accelerator_utilization"] <= 1
    if "jobs" in result.tables and result.scenario.failures is None and not result.scenario.scheduler.preemption:
        assert check_job_invariants(result.jobs, dc["accelerators"]) == []
    EXPECTATIONS[path.name](summary)
    written = result.write(tmp_path / "out", plots=True)
    assert all(p.stat().st_size > 0 for p in written)


def llama2_70b_speculative(summary: dict[str, Any]) -> None:
    plain, spec = summary["workloads"]["plain"], summary["workloads"]["speculative"]
    assert plain["requests_completed"] == spec["requests_completed"] == plain["requests"]  # the same requests
    entry = spec["speculative"]
    assert entry["accepted_tokens_per_step"] == pytest.approx((1 - 0.8**5) / (1 - 0.8))  # k 4, p 0.8
    # a verify step (4 draft steps + one target pass) costs less than E = 3.36 plain decode steps: TPOT falls,
    # by less than E
    assert (
        plain["tpot_ms"]["p50"] / entry["accepted_tokens_per_step"] < spec["tpot_ms"]["p50"] < plain["tpot_ms"]["p50"]
    )
    # the draft's weights and its KV (Llama-2-7B: 1.6 times the 70B's bytes per token) shrink the cache
    assert spec["kv_capacity_tokens"]["dgx-a100"] < 0.5 * plain["kv_capacity_tokens"]["dgx-a100"]
    assert "speculative" not in plain


EXPECTATIONS["llama2_70b_speculative.yaml"] = llama2_70b_speculative


def llama2_70b_engines(summary: dict[str, Any]) -> None:
    vllm, sarathi, trtllm = (summary["workloads"][name] for name in ("vllm", "sarathi", "trtllm"))
    assert vllm["requests"] == sarathi["requests"] == trtllm["requests"] > 500  # one stream: the same requests
    # sarathi and trtllm chunk or take any prompt; vLLM without chunked prefill refuses prompts longer than
    # max_num_batched_tokens (4,096), so it may drop a few of the trace's longest
    assert sarathi["requests_completed"] == trtllm["requests_completed"] == sarathi["requests"]
    assert vllm["requests_completed"] + vllm["requests_dropped"] == vllm["requests"]
    # vLLM's prefill-only iterations stall every decode at each arrival; Sarathi's 512-token budget bounds
    # a mixed iteration: its TPOT is lower at the median and in the tail
    assert sarathi["tpot_ms"]["p50"] < vllm["tpot_ms"]["p50"]
    assert sarathi["tpot_ms"]["p99"] < vllm["tpot_ms"]["p99"]
    # TensorRT-LLM's GUARANTEED_NO_EVICT never preempts, the others do when the cache fills near capacity;
    # it pays in TTFT's tail: a request waits until its whole output's blocks can be promised
    assert trtllm["preemptions"] == 0 < vllm["preemptions"]
    assert sarathi["preemptions"] > 0
    assert trtllm["ttft_ms"]["p99"] > 2 * sarathi["ttft_ms"]["p99"]
    # chunking a prompt over iterations delays its first token at the median, but a long prompt no longer
    # holds the queue behind it in one prefill-only iteration: Sarathi's TTFT tail is vLLM's or shorter
    assert sarathi["ttft_ms"]["p50"] > vllm["ttft_ms"]["p50"]
    assert sarathi["ttft_ms"]["p99"] < vllm["ttft_ms"]["p99"]
    # all three keep up with the traffic: the same tokens per second within a few percent
    assert trtllm["throughput_tokens_per_s"] == pytest.approx(sarathi["throughput_tokens_per_s"], rel=0.1)


EXPECTATIONS["llama2_70b_engines.yaml"] = llama2_70b_engines
