"""Time to a target loss: a MODEL ESTIMATE from published scaling laws, not a measurement.

Tokens needed: Chinchilla's fitted loss (Hoffmann et al. 2022, Section 3.3, Approach 3)::

    L(N, D) = E + A / N^alpha + B / D^beta      =>      D(N, L) = (B / (L - E - A / N^alpha))^(1 / beta)

for ``N`` parameters and ``D`` tokens; a loss at or below ``E + A / N^alpha`` (the floor of a model of that
size, whatever the data) is unreachable. The loss is in nats per token on the paper's evaluation data, so a
target loss is only meaningful on that scale.

Batch size: McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training") model the steps ``S`` and
examples ``E`` needed to reach a loss at batch ``B`` as ``S = S_min * (1 + B_noise / B)`` and
``E = E_min * (1 + B / B_noise)``: a batch well below the noise scale wastes no data, a batch above it needs
more tokens for the same loss. The noise scale is estimated by the critical batch of Kaplan et al. 2020
(Section 5.1, Eq. 5.1), ``B_crit(L) = B_star / L^(1 / alpha_B)`` tokens, evaluated at the target loss (the
critical batch grows as the loss falls; the target is where the last, most batch-tolerant steps happen, so
this is the optimistic end). The Chinchilla ``D`` is taken as ``E_min`` (tokens at a batch far below
critical) unless ``reference_batch_tokens`` says at which batch it was reached, in which case
``E_min = D / (1 + B_ref / B_crit)``. The two papers fit different data sets and tokenizers; combining
them is an approximation, which is why every result carries :data:`LABEL`.

Constants live in ``dcsim/parallel/data/scaling_laws.yaml`` with their sources.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources

import yaml

LABEL = (
    "model estimate: Chinchilla L(N, D) fit (Hoffmann et al. 2022) with a critical-batch correction "
    "(McCandlish et al. 2018, Kaplan et al. 2020)"
)


@dataclass(frozen=True)
class ChinchillaLaw:
    """``L(N, D) = E + A / N^alpha + B / D^beta`` (loss in nats per token)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str

    def loss(self, params: float, tokens: float) -> float:
        """Predicted final loss of ``params`` parameters trained on ``tokens`` tokens."""
        _check_positive("params", params)
        _check_positive("tokens", tokens)
        return self.E + self.A / params**self.alpha + self.B / tokens**self.beta

    def loss_floor(self, params: float) -> float:
        """The loss ``params`` parameters approach with unlimited data: ``E + A / N^alpha``."""
        _check_positive("params", params)
        return self.E + self.A / params**self.alpha

    def tokens_for_loss(self, params: float, target_loss: float) -> float:
        """Tokens to reach ``target_loss`` with ``params`` parameters (ValueError when the target is at or
        below the floor for that size)."""
        floor = self.loss_floor(params)
        if not target_loss > floor:
            raise ValueError(
                f"target_loss ({target_loss}) is unreachable for {params:.3g} parameters: "
                f"the fitted loss never goes below {floor:.4f} (E + A / N^alpha)"
            )
        return float((self.B / (target_loss - floor)) ** (1.0 / self.beta))

    def compute_optimal(self, flops: float) -> tuple[float, float]:
        """(parameters, tokens) minimising the loss for a compute budget of ``flops`` = 6 N D:
        ``N = G (C/6)^(beta/(alpha+beta))``, ``D = (C/6) / N``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``
        (Hoffmann et al. 2022, Section 3.3)."""
        _check_positive("flops", flops)
        total = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / total)
        params = g * (flops / 6.0) ** (self.beta / total)
        return params, flops / 6.0 / params


@dataclass(frozen=True)
class CriticalBatch:
    """``B_crit(L) = B_star / L^(1 / alpha_B)`` tokens (Kaplan et al. 2020, Eq. 5.1)."""

    B_star_tokens: float
    alpha_B: float
    source: str

    def tokens(self, loss: float) -> float:
        """Critical batch in tokens at ``loss`` (nats per token)."""
        _check_positive("loss", loss)
        return self.B_star_tokens / loss ** (1.0 / self.alpha_B)


@dataclass(frozen=True)
class ScalingLaws:
    """The constants of ``scaling_laws.yaml``."""

    chinchilla: ChinchillaLaw
    critical_batch: CriticalBatch
    batch_tradeoff_source: str


@functools.cache
def load_scaling_laws() -> ScalingLaws:
    """The published constants (read once)."""
    text = resources.files("dcsim.parallel").joinpath("data", "scaling_laws.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    for section in ("chinchilla", "critical_batch", "batch_tradeoff"):
        if not raw.get(section, {}).get("source"):
            raise ValueError(f"scaling_laws.yaml: {section} needs a source")
    chin = raw["chinchilla"]
    crit = raw["critical_batch"]
    return ScalingLaws(
        ChinchillaLaw(
            float(chin["E"]),
            float(chin["A"]),
            float(chin["B"]),
            float(chin["alpha"]),
            float(chin["beta"]),
            chin["source"],
        ),
        CriticalBatch(float(crit["B_star_tokens"]), float(crit["alpha_B"]), crit["source"]),
        raw["batch_tradeoff"]["source"],
    )


@dataclass(frozen=True)
class LossTargetEstimate:
    """Tokens and steps to reach ``target_loss`` with ``params`` parameters at ``batch_tokens`` per step.

    ``min_tokens`` (E_min) and ``min_steps`` (S_min) are the two limits of the batch trade-off: data at a
    tiny batch, steps at an infinite one. ``label`` says this is a model estimate."""

    params: float
    target_loss: float
    batch_tokens: float
    critical_batch_tokens: float
    min_tokens: float
    min_steps: float
    tokens: float
    steps: float
    label: str = LABEL

    @property
    def token_inflation(self) -> float:
        """``tokens / min_tokens`` = 1 + B / B_crit."""
        return self.tokens / self.min_tokens

    def seconds(self, tokens_per_s: float) -> float:
        """Wall-clock time to the target at a training throughput of ``tokens_per_s``."""
        _check_positive("tokens_per_s", tokens_per_s)
        return self.tokens / tokens_per_s


def estimate_tokens_to_loss(
    params: float,
    target_loss: float,
    batch_tokens: float,
    reference_batch_tokens: float | None = None,
    laws: ScalingLaws | None = None,
) -> LossTargetEstimate:
    """Tokens and steps for ``params`` parameters to reach ``target_loss`` at ``batch_tokens`` tokens per
    step (see the module docstring for the model and its assumptions). ValueError when the target is below
    the reachable floor for that size."""
    laws = laws or load_scaling_laws()
    _check_positive("params", params)
    _check_positive("target_loss", target_loss)
    _check_positive("batch_tokens", batch_tokens)
    data_tokens = laws.chinchilla.tokens_for_loss(params, target_loss)
    b_crit = laws.critical_batch.tokens(target_loss)
    e_min = data_tokens
    if reference_batch_tokens is not None:
        _check_positive("reference_batch_tokens", reference_batch_tokens)
        e_min = data_tokens / (1.0 + reference_batch_tokens / b_crit)
    tokens = e_min * (1.0 + batch_tokens / b_crit)
    return LossTargetEstimate(
        params=float(params),
        target_loss=float(target_loss),
        batch_tokens=float(batch_tokens),
        critical_batch_tokens=b_crit,
        min_tokens=e_min,
        min_steps=e_min / b_crit,
        tokens=tokens,
        steps=tokens / batch_tokens,
    )


def _check_positive(name: str, value: float) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a positive number (got {value!r})")
