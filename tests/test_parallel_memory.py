"""Training memory per accelerator: ZeRO's published figures, Korthikanti et al.'s activation formulas,
pipeline in-flight microbatches, and monotonicity properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.catalog import load_catalog
from dcsim.models import TransformerConfig, get_model
from dcsim.parallel import ParallelPlan, fits, in_flight_microbatches, training_memory
from dcsim.parallel.memory import (
    state_bytes_per_param,
    transformer_layer_activation_bytes,
    zero_model_state_bytes,
)

GB = 1e9
# GPT-3 175B (Brown et al. 2020, Table 2.1): 96 layers, d_model 12288, 96 heads, context 2048.
GPT3_175B = TransformerConfig(
    "gpt3-175b-inline",
    layers=96,
    hidden=12288,
    heads=96,
    ffn_hidden=4 * 12288,
    vocab=51200,
    max_seq_len=2048,
    tied_embeddings=True,
)


def test_zero_figure_1_model_state_per_device():
    """Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64-way data parallelism, K = 12 (mixed-precision
    Adam): 120 GB baseline, 31.4 GB with P_os, 16.6 GB with P_os+g, 1.9 GB with P_os+g+p."""
    published = {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}
    for stage, expected in published.items():
        total = sum(zero_model_state_bytes(7.5e9, dp=64, zero_stage=stage, optimizer="adamw", precision="bf16"))
        assert total / GB == pytest.approx(expected, abs=0.05)


def test_zero_section_3_gpt2_xl_needs_24_gb_of_model_state():
    """Ibid., Section 3.1: mixed-precision Adam needs 16 bytes per parameter, "at least 24 GB" for GPT-2's
    1.5B parameters (the released 48-layer, 1600-wide model has 1.56B)."""
    gpt2_xl = TransformerConfig(
        "gpt2-xl",
        layers=48,
        hidden=1600,
        heads=25,
        ffn_hidden=6400,
        vocab=50257,
        max_seq_len=1024,
        tied_embeddings=True,
    )
    memory = training_memory(gpt2_xl, ParallelPlan(), seq_len=1024, precision="fp16")
    assert memory.model_state_bytes == pytest.approx(16 * gpt2_xl.param_count())
    assert 24.0 <= memory.model_state_bytes / GB < 25.5


def test_bytes_per_parameter_by_optimizer_and_precision():
    assert state_bytes_per_param("adamw", "bf16") == (2, 2, 12)
    assert state_bytes_per_param("adamw", "fp32") == (4, 4, 8)
    assert state_bytes_per_param("sgd", "fp16") == (2, 2, 8)
    assert state_bytes_per_param("sgd", "tf32") == (4, 4, 4)
    assert state_bytes_per_param("adafactor", "bf16") == (2, 2, 4)  # master copy; factored stats per matrix
    with pytest.raises(ValueError, match="optimizer must be one of"):
        state_bytes_per_param("lion", "bf16")
    with pytest.raises(ValueError, match="precision must be one of"):
        state_bytes_per_param("adamw", "fp8")


def test_adafactor_keeps_rows_plus_columns_per_matrix():
    """A one-layer model small enough to count by hand (no biases, tied head)."""
    tiny = TransformerConfig(
        "tiny", layers=1, hidden=8, heads=2, ffn_hidden=32, vocab=16, max_seq_len=4, bias=False, tied_embeddings=True
    )
    # (params, factored second-moment elements): token table 16x8, positions 4x8, two layer norms (scale and
    # shift, 16 each, kept whole), QKV 8x24, projection 8x8, MLP 8x32 and 32x8, final norm 16.
    tensors = [(128, 24), (32, 12), (16, 16), (192, 32), (64, 16), (16, 16), (256, 40), (256, 40), (16, 16)]
    params = sum(p for p, _ in tensors)
    factored = sum(f for _, f in tensors)
    assert tiny.param_count() == params
    fp32 = training_memory(tiny, ParallelPlan(), seq_len=4, precision="fp32", optimizer="adafactor")
    assert fp32.optimizer_state_bytes == 4 * factored
    mixed = training_memory(tiny, ParallelPlan(), seq_len=4, precision="bf16", optimizer="adafactor")
    assert mixed.optimizer_state_bytes == 4 * params + 4 * factored
    adam = training_memory(tiny, ParallelPlan(), seq_len=4, precision="bf16", optimizer="adamw")
    assert mixed.optimizer_state_bytes < adam.optimizer_state_bytes


def test_korthikanti_table_2_for_gpt3_175b():
    """Korthikanti et al. 2022, Table 2 (bytes per layer, s*b*h units), for GPT-3 175B at t = 8. The paper
    counts unfused ("eager") attention."""
    s, b, h, a, t = 2048, 1, 12288, 96, 8
    sbh = s * b * h
    rows = {
        ("none", False, 1): sbh * (34 + 5 * a * s / h),
        ("none", False, t): sbh * (10 + 24 / t + 5 * a * s / (h * t)),
        ("none", True, t): sbh / t * (34 + 5 * a * s / h),
        ("selective", False, t): sbh * (10 + 24 / t),
        ("selective", True, t): sbh / t * 34,
        ("full", False, t): 2 * sbh,
    }
    for (recompute, sp, tp), expected in rows.items():
        got = transformer_layer_activation_bytes(
            s, b, h, a, tp, sequence_parallel=sp, recompute=recompute, attention="eager"
        )
        assert got == pytest.approx(expected, rel=1e-12), (recompute, sp, tp)


def test_generalised_terms_grouped_query_attention_and_gated_mlp():
    s, b, h, a = 1024, 2, 4096, 32
    base = transformer_layer_activation_bytes(s, b, h, a, recompute="selective")
    # K and V at an eighth of the width save 2 x 2sb(h - h/8) bytes.
    gqa = transformer_layer_activation_bytes(s, b, h, a, recompute="selective", kv_hidden=h // 8)
    assert base - gqa == pytest.approx(4 * s * b * (h - h // 8))
    # A gated MLP keeps 3 x 2sbf instead of 2 x 2sbf; two experts per token double the MLP terms.
    gated = transformer_layer_activation_bytes(s, b, h, a, recompute="selective", gated_mlp=True)
    assert gated - base == pytest.approx(2 * s * b * 4 * h)
    moe = transformer_layer_activation_bytes(s, b, h, a, recompute="selective", experts_per_token=2)
    assert moe - base == pytest.approx(4 * s * b * 4 * h)
    # Without dropout: no masks (2 x sbh) and only the softmax output of the scores (2as^2b instead of 5).
    plain = transformer_layer_activation_bytes(s, b, h, a, dropout=False, attention="eager")
    eager = transformer_layer_activation_bytes(s, b, h, a, attention="eager")
    assert eager - plain == pytest.approx(2 * s * b * h + 3 * a * s * s * b)
    with pytest.raises(ValueError, match="recompute must be one of"):
        transformer_layer_activation_bytes(s, b, h, a, recompute="some")


def test_in_flight_microbatches_per_schedule():
    assert in_flight_microbatches(ParallelPlan(pp=1)) == 1
    one_f = ParallelPlan(pp=8)
    assert [in_flight_microbatches(one_f, i) for i in range(8)] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert in_flight_microbatches(one_f, 0, microbatches=3) == 3
    # Korthikanti et al. 2022, Section 4.2.3: interleaving multiplies stage 0's memory by 1 + (p-1)/(p*v).
    for p, v in ((4, 2), (8, 3), (16, 4)):
        plan = ParallelPlan(pp=p, schedule="interleaved", virtual_stages=v)
        assert in_flight_microbatches(plan, 0, microbatches=4 * p) == pytest.approx(p * (1 + (p - 1) / (p * v)))
    gpipe = ParallelPlan(pp=4, schedule="gpipe")
    assert in_flight_microbatches(gpipe, 3, microbatches=32) == 32
    with pytest.raises(ValueError, match="global_batch_size is needed for schedule gpipe"):
        in_flight_microbatches(gpipe, 0)


def test_first_stage_holds_the_whole_models_activations_under_1f1b():
    """Korthikanti et al. 2022, Section 4.2.3: with 1F1B the first stage keeps p microbatches of L/p layers,
    i.e. L layers' worth, whatever p is; Section 4.3 adds the embedding dropout mask, sbhp/t."""
    s, b, h, t, layers = 2048, 1, 12288, 8, 96
    per_layer = s * b * h / t * 34  # sequence parallel + selective recompute
    for pp in (2, 4, 8):
        plan = ParallelPlan(dp=1, tp=t, pp=pp, recompute="selective", sequence_parallel=True)
        memory = training_memory(GPT3_175B, plan, seq_len=s, global_batch_size=64, stage=0)
        assert memory.in_flight_microbatches == pp
        assert memory.activations_bytes == pytest.approx(per_layer * layers + s * b * h * pp / t)


def test_last_stage_holds_the_logits_and_may_be_the_most_loaded():
    """Section 4.3: the output layer keeps 4sbh/t (1 + v/h) with sequence parallelism (fp32 logits)."""
    s, b, h, t, v = 2048, 1, 12288, 8, 51200
    plan = ParallelPlan(tp=t, pp=4, recompute="full", sequence_parallel=True)
    last = training_memory(GPT3_175B, plan, seq_len=s, global_batch_size=64, stage=3)
    per_layer = 2 * s * b * h / t
    assert last.activations_bytes == pytest.approx(per_layer * 24 + 4 * s * b * h / t * (1 + v / h))
    # The tied table is on both ends: the last stage holds the output layer's copy.
    first = training_memory(GPT3_175B, plan, seq_len=s, global_batch_size=64, stage=0)
    middle = training_memory(GPT3_175B, plan, seq_len=s, global_batch_size=64, stage=1)
    assert first.weights_bytes - middle.weights_bytes >= 2 * v * h / t
    assert last.weights_bytes - middle.weights_bytes >= 2 * v * h / t
    # A short stage with a large vocabulary: the last stage carries the most.
    wide = TransformerConfig("wide-vocab", 8, 1024, 16, 4096, 256_000, 2048, tied_embeddings=False)
    worst = training_memory(wide, ParallelPlan(pp=8, recompute="full"), seq_len=2048, global_batch_size=64)
    assert worst.stage == 7


def test_resnet_activations_are_the_forward_allocations_of_the_op_list():
    model = get_model("resnet50")
    plan = ParallelPlan(microbatch_size=16)
    memory = training_memory(model, plan, seq_len=224, precision="bf16")
    ops = model.ops(16, 224, precision="bf16")
    allocations = sum(sum(layer.op.allocations) * layer.count for layer in ops.layers if not layer.backward_only)
    assert memory.activations_bytes == pytest.approx(allocations)
    assert memory.weights_bytes == 2 * model.param_count()
    with pytest.raises(ValueError, match="recompute 'full' is modelled for decoder/encoder transformer layers"):
        training_memory(model, ParallelPlan(recompute="full"))


def test_expert_weights_are_sharded_by_ep_and_their_zero_shards_by_dp_over_ep():
    mixtral = get_model("mixtral-8x7b")
    if getattr(mixtral, "experts", 1) < 2:
        pytest.skip("the zoo has no mixture-of-experts model")
    base = ParallelPlan(dp=8, tp=1, ep=1, zero_stage=1)
    sharded = ParallelPlan(dp=8, tp=1, ep=8, zero_stage=1)
    full = training_memory(mixtral, base, seq_len=4096)
    split = training_memory(mixtral, sharded, seq_len=4096)
    total, per_rank = mixtral.param_count(), mixtral.param_count(ep=8)
    assert full.weights_bytes == 2 * total
    assert split.weights_bytes == 2 * per_rank
    # ZeRO-1 shards dense optimizer state 8 ways but each expert's state only dp/ep = 1 way.
    experts = (total - per_rank) * 8 / 7  # per_rank keeps 1/8 of the expert weights
    dense = total - experts
    assert split.optimizer_state_bytes == pytest.approx(12 * (dense / 8 + experts / 8))
    assert full.optimizer_state_bytes == pytest.approx(12 * total / 8)


def test_fits_against_catalog_memory():
    a100 = load_catalog().accelerator("a100-sxm-80gb")
    small = training_memory(get_model("gpt2-small"), ParallelPlan(microbatch_size=8), seq_len=1024)
    assert fits(small, a100)
    assert fits(small, a100.memory_gb)
    big = training_memory(GPT3_175B, ParallelPlan(), seq_len=2048)
    assert not fits(big, a100)
    assert big.to_gb()["total"] == pytest.approx(big.total_bytes / GB)
    assert set(big.to_gb()) == {"weights", "gradients", "optimizer_state", "activations", "total"}
    assert not fits(small, small.total_bytes / GB + 1.0, reserved_gb=1.5)
    with pytest.raises(ValueError, match="accelerator_memory_gb must be positive"):
        fits(small, 0.0)


def test_bad_input_names_the_field():
    gpt2 = get_model("gpt2-small")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        training_memory(gpt2, ParallelPlan(), optimizer="rmsprop")
    with pytest.raises(ValueError, match=r"pp \(16\) must not exceed the model's layers \(12\)"):
        training_memory(gpt2, ParallelPlan(pp=16))
    with pytest.raises(ValueError, match="global_batch_size is needed for schedule gpipe"):
        training_memory(gpt2, ParallelPlan(pp=2, schedule="gpipe"))
    with pytest.raises(ValueError, match="global_batch_size"):
        training_memory(gpt2, ParallelPlan(dp=2, pp=2), global_batch_size=3)
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        training_memory(gpt2, ParallelPlan(), seq_len=0)


MODEL = TransformerConfig("prop", layers=24, hidden=1024, heads=16, ffn_hidden=4096, vocab=32000, max_seq_len=2048)
ZEROS = st.sampled_from([0, 1, 2, 3])


@settings(max_examples=60, deadline=None)
@given(
    tp=st.sampled_from([1, 2, 4, 8]),
    pp=st.sampled_from([1, 2, 3, 4]),
    dp=st.sampled_from([1, 2, 8]),
    zero=ZEROS,
    optimizer=st.sampled_from(["adamw", "sgd", "adafactor"]),
)
def test_more_sharding_never_increases_per_rank_model_state(tp, pp, dp, zero, optimizer):
    def state(**changes):
        fields = {"dp": dp, "tp": tp, "pp": pp, "zero_stage": zero, **changes}
        memory = training_memory(MODEL, ParallelPlan(**fields), seq_len=1024, optimizer=optimizer, stage=0)
        return memory.weights_bytes, memory.model_state_bytes

    weights, total = state()
    for bigger in ({"tp": tp * 2}, {"pp": pp * 2}, {"zero_stage": min(zero + 1, 3)}):  # 24 layers, 16 heads
        more_w, more_total = state(**bigger)
        assert more_w <= weights * (1 + 1e-12)
        assert more_total <= total * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(
    tp=st.sampled_from([1, 2, 4]),
    pp=st.sampled_from([1, 2, 4]),
    micro=st.integers(1, 4),
    seq=st.sampled_from([128, 512, 2048]),
    sp=st.booleans(),
    schedule=st.sampled_from(["1f1b", "interleaved", "gpipe"]),
)
def test_recompute_full_le_selective_le_none_and_batch_monotone(tp, pp, micro, seq, sp, schedule):
    def activations(recompute, microbatch_size=micro):
        v = 2 if schedule == "interleaved" else 1
        plan = ParallelPlan(
            dp=2,
            tp=tp,
            pp=pp,
            microbatch_size=microbatch_size,
            recompute=recompute,
            sequence_parallel=sp,
            schedule=schedule,
            virtual_stages=v,
        )
        return training_memory(MODEL, plan, seq_len=seq, global_batch_size=2 * 60 * 4).activations_bytes

    none, selective, full = activations("none"), activations("selective"), activations("full")
    assert full <= selective <= none
    assert activations("selective", micro + 1) >= selective * (1 - 1e-12)  # gpipe: same sequences in flight
