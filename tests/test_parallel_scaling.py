"""Time-to-target-loss model: Chinchilla's fitted loss and the critical-batch trade-off."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.parallel import estimate_tokens_to_loss, load_scaling_laws
from dcsim.parallel.scaling import LABEL


def test_constants_come_with_their_sources():
    laws = load_scaling_laws()
    chin = laws.chinchilla
    assert (chin.E, chin.A, chin.B, chin.alpha, chin.beta) == (1.69, 406.4, 410.7, 0.34, 0.28)
    assert "Hoffmann et al. 2022" in chin.source and "Approach 3" in chin.source
    assert (laws.critical_batch.B_star_tokens, laws.critical_batch.alpha_B) == (2e8, 0.21)
    assert "Kaplan et al. 2020" in laws.critical_batch.source
    assert "McCandlish et al. 2018" in laws.batch_tradeoff_source


def test_tokens_for_loss_inverts_the_fitted_loss():
    chin = load_scaling_laws().chinchilla
    for params, tokens in ((70e9, 1.4e12), (1e9, 20e9), (175e9, 300e9)):
        loss = chin.loss(params, tokens)
        assert chin.tokens_for_loss(params, loss) == pytest.approx(tokens, rel=1e-9)
    # Chinchilla itself (70B parameters, 1.4T tokens) beats Gopher (280B, 300B tokens) on the fit, as it did
    # in the paper's evaluations.
    assert chin.loss(70e9, 1.4e12) < chin.loss(280e9, 300e9)


def test_a_target_below_the_floor_is_refused_clearly():
    chin = load_scaling_laws().chinchilla
    floor = chin.loss_floor(1e9)
    assert floor == pytest.approx(1.69 + 406.4 / 1e9**0.34)
    with pytest.raises(ValueError, match=r"target_loss \(2.0\) is unreachable for 1e\+09 parameters"):
        estimate_tokens_to_loss(1e9, 2.0, batch_tokens=1e6)
    with pytest.raises(ValueError, match="batch_tokens must be a positive number"):
        estimate_tokens_to_loss(1e9, 3.0, batch_tokens=0)


def test_compute_optimal_allocation():
    """Hoffmann et al. 2022, Table 2 (Approach 3): N_opt grows as C^0.46 and D_opt as C^0.54; the
    allocation minimises the fitted loss at fixed C = 6ND."""
    chin = load_scaling_laws().chinchilla
    n1, d1 = chin.compute_optimal(1e21)
    n2, d2 = chin.compute_optimal(1e24)
    assert 6 * n1 * d1 == pytest.approx(1e21)
    a = (n2 / n1) ** (1 / 3)  # three decades of compute
    b = (d2 / d1) ** (1 / 3)
    assert a == pytest.approx(10**0.46, rel=0.03)
    assert b == pytest.approx(10**0.54, rel=0.03)
    best = chin.loss(n2, d2)
    for factor in (0.5, 0.8, 1.25, 2.0):
        assert chin.loss(n2 * factor, d2 / factor) > best


def test_a_batch_above_critical_inflates_tokens_and_saves_steps():
    small = estimate_tokens_to_loss(7e9, 2.1, batch_tokens=2**17)
    large = estimate_tokens_to_loss(7e9, 2.1, batch_tokens=2**25)
    assert small.label == large.label == LABEL and LABEL.startswith("model estimate")
    critical = small.critical_batch_tokens
    assert critical == pytest.approx(2e8 / 2.1 ** (1 / 0.21))
    assert small.batch_tokens < critical < large.batch_tokens
    assert large.tokens > small.tokens
    assert large.steps < small.steps
    assert small.token_inflation == pytest.approx(1 + 2**17 / critical)
    # At the critical batch: twice the minimum examples and twice the minimum steps (McCandlish et al.).
    at = estimate_tokens_to_loss(7e9, 2.1, batch_tokens=critical)
    assert at.tokens == pytest.approx(2 * at.min_tokens)
    assert at.steps == pytest.approx(2 * at.min_steps)
    assert at.seconds(1e6) == pytest.approx(at.tokens / 1e6)


def test_reference_batch_makes_chinchilla_tokens_exact_at_that_batch():
    chin = load_scaling_laws().chinchilla
    reference = 4e6
    estimate = estimate_tokens_to_loss(70e9, 2.0, batch_tokens=reference, reference_batch_tokens=reference)
    assert estimate.tokens == pytest.approx(chin.tokens_for_loss(70e9, 2.0))


@settings(max_examples=80, deadline=None)
@given(
    params=st.floats(1e8, 1e12),
    margin=st.floats(0.01, 1.0),
    batch=st.floats(1e4, 1e9),
)
def test_step_example_tradeoff_holds(params, margin, batch):
    """(S/S_min - 1)(E/E_min - 1) = 1 and tokens = steps x batch, for any size, target and batch."""
    chin = load_scaling_laws().chinchilla
    target = chin.loss_floor(params) + margin
    estimate = estimate_tokens_to_loss(params, target, batch_tokens=batch)
    tradeoff = (estimate.steps / estimate.min_steps - 1) * (estimate.tokens / estimate.min_tokens - 1)
    assert tradeoff == pytest.approx(1.0, rel=1e-6)
    assert estimate.tokens == pytest.approx(estimate.steps * batch, rel=1e-12)
    lower = estimate_tokens_to_loss(params, target + 0.01, batch_tokens=batch)
    assert lower.tokens < estimate.tokens  # an easier target needs fewer tokens
