"""Request streams: arrival processes, token lengths and trace reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dcsim.engine.distributions import LogNormal
from dcsim.errors import UserInputError
from dcsim.serving import Traffic, diurnal_arrivals, gamma_arrivals, poisson_arrivals, read_trace


def test_poisson_and_gamma_rates_and_burstiness() -> None:
    rng = np.random.default_rng(0)
    poisson = poisson_arrivals(50.0, 2000.0, rng)
    assert len(poisson) == pytest.approx(100_000, rel=0.02) and poisson.max() < 2000.0
    gaps = np.diff(poisson)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, rel=0.03)
    bursty = gamma_arrivals(50.0, 4.0, 2000.0, rng)
    gaps = np.diff(bursty)
    assert len(bursty) == pytest.approx(100_000, rel=0.1)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(4.0, rel=0.1)


def test_diurnal_rate_follows_the_curve() -> None:
    arrivals = diurnal_arrivals(10.0, 0.8, 1000.0, 20_000.0, np.random.default_rng(1))
    phase = (arrivals % 1000.0) / 1000.0
    peak = np.sum((phase > 0.2) & (phase < 0.3))  # around sin = 1: rate 18/s
    trough = np.sum((phase > 0.7) & (phase < 0.8))  # around sin = -1: rate 2/s
    assert peak / trough == pytest.approx(9.0, rel=0.2)
    assert len(arrivals) == pytest.approx(200_000, rel=0.02)


def test_lengths_are_positive_integers_within_bounds() -> None:
    rng = np.random.default_rng(2)
    arrivals = poisson_arrivals(10.0, 100.0, rng)
    prompts = LogNormal(512, 0.8)
    prompts.high = 4096
    traffic = Traffic.from_lengths(arrivals, prompts, LogNormal(2, 1.0), rng)
    assert traffic.prompt_tokens.min() >= 1 and traffic.prompt_tokens.max() <= 4096
    assert traffic.output_tokens.min() >= 1
    assert traffic.prompt_tokens.dtype == np.int64
    with pytest.raises(ValueError, match="sorted"):
        Traffic(arrivals[::-1].copy(), traffic.prompt_tokens, traffic.output_tokens)


def test_trace_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0.0,10,5\n1.0,zero,5\n")
    with pytest.raises(UserInputError, match="line 3"):
        read_trace(path)
    path.write_text("arrival_s,prompt_tokens\n0.0,10\n")
    with pytest.raises(UserInputError, match="missing columns: output_tokens"):
        read_trace(path)
    path.write_text("arrival_s,prompt_tokens,output_tokens\n2.0,10,5\n1.0,20,6\n")
    trace = read_trace(path, time_scale=0.5)
    assert list(trace.arrival_s) == [0.5, 1.0] and list(trace.prompt_tokens) == [20, 10]
