"""Request streams: arrival times and token lengths as numpy arrays, sorted by arrival.

Arrivals are Poisson, Gamma renewal (``cv`` > 1 is burstier than Poisson), a diurnal rate curve
(a non-homogeneous Poisson process by thinning) or replayed from a CSV trace with the columns
``arrival_s,prompt_tokens,output_tokens`` (the shape of public LLM-serving traces such as Azure's).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcsim.engine.distributions import Distribution, Gamma
from dcsim.errors import UserInputError

IntArray = np.ndarray
FloatArray = np.ndarray


@dataclass(frozen=True)
class Traffic:
    """``arrival_s`` (sorted, seconds), ``prompt_tokens`` (>= 1) and ``output_tokens`` (>= 1 for a decoder;
    all 0 for prompt-only requests, an encoder's single forward pass), one per request.

    Shared prefixes (optional, for prefix caching, :mod:`dcsim.serving.prefixcache`): request ``i``'s first
    ``prefix_tokens[i]`` tokens (its prompt, then its output) are the first tokens of the token stream of
    group ``prefix_group[i]`` (-1: none, 0 tokens), which every request of that group shares: a system
    prompt of ``T`` tokens (``prefix_tokens`` ``T``), or a conversation whose every turn extends one stream
    (``prefix_tokens`` its prompt plus output)."""

    arrival_s: FloatArray
    prompt_tokens: IntArray
    output_tokens: IntArray
    prefix_group: IntArray | None = None
    prefix_tokens: IntArray | None = None

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if len(self.prompt_tokens) != n or len(self.output_tokens) != n:
            raise ValueError("arrival_s, prompt_tokens and output_tokens need the same length")
        if n and (np.any(np.diff(self.arrival_s) < 0) or self.arrival_s[0] < 0):
            raise ValueError("arrival_s must be sorted and >= 0")
        if n and (self.prompt_tokens.min() < 1 or self.output_tokens.min() < 0):
            raise ValueError("prompt_tokens must be >= 1 and output_tokens >= 0")
        if n and self.output_tokens.min() == 0 and self.output_tokens.max() > 0:
            raise ValueError("output_tokens must be all 0 (prompt-only requests) or all >= 1")
        if (self.prefix_group is None) != (self.prefix_tokens is None):
            raise ValueError("prefix_group and prefix_tokens go together")
        if self.prefix_group is not None and self.prefix_tokens is not None:
            if len(self.prefix_group) != n or len(self.prefix_tokens) != n:
                raise ValueError("prefix_group and prefix_tokens need one value per request")
            if n and (
                self.prefix_tokens.min() < 0
                or np.any(self.prefix_tokens > self.prompt_tokens + self.output_tokens)
                or np.any((self.prefix_group < 0) & (self.prefix_tokens > 0))
            ):
                raise ValueError("prefix_tokens must be in [0, prompt + output], and 0 outside a group")

    def with_prefixes(self, group: IntArray, tokens: IntArray) -> Traffic:
        """The same requests with shared-prefix groups and stream tokens (see the class docstring)."""
        return Traffic(self.arrival_s, self.prompt_tokens, self.output_tokens, group, tokens)

    def __len__(self) -> int:
        return len(self.arrival_s)

    @staticmethod
    def from_lengths(
        arrival_s: FloatArray, prompts: Distribution, outputs: Distribution, rng: np.random.Generator
    ) -> Traffic:
        """Token lengths drawn from ``prompts`` and ``outputs`` (rounded, at least 1) for given arrivals."""
        n = len(arrival_s)
        p = np.maximum(1, np.rint(prompts.sample(rng, n))).astype(np.int64)
        o = np.maximum(1, np.rint(outputs.sample(rng, n))).astype(np.int64)
        return Traffic(np.asarray(arrival_s, dtype=np.float64), p, o)

    @staticmethod
    def prompt_only(arrival_s: FloatArray, prompts: Distribution, rng: np.random.Generator) -> Traffic:
        """Prompt-only requests (an encoder's): lengths drawn from ``prompts`` (rounded, at least 1) as
        :meth:`from_lengths` draws them, no output tokens."""
        n = len(arrival_s)
        p = np.maximum(1, np.rint(prompts.sample(rng, n))).astype(np.int64)
        return Traffic(np.asarray(arrival_s, dtype=np.float64), p, np.zeros(n, dtype=np.int64))

    def replayed_at(self, arrival_s: FloatArray) -> Traffic:
        """This trace's lengths at other arrival times (sorted): request ``i`` takes row ``i mod len(self)``,
        rows in arrival order, cycling through them when there are more arrivals than rows."""
        rows = np.arange(len(arrival_s)) % len(self)
        group, tokens = self.prefix_group, self.prefix_tokens
        return Traffic(
            np.asarray(arrival_s, dtype=np.float64),
            self.prompt_tokens[rows],
            self.output_tokens[rows],
            group[rows] if group is not None else None,
            tokens[rows] if tokens is not None else None,
        )

    def without_outputs(self) -> Traffic:
        """The same arrivals and prompts as prompt-only requests (a trace served by an encoder)."""
        return Traffic(self.arrival_s, self.prompt_tokens, np.zeros(len(self), dtype=np.int64))


def with_shared_prefixes(traffic: Traffic, groups: int, tokens: int, share: float, rng: np.random.Generator) -> Traffic:
    """``share`` of the requests (drawn with ``rng``) start with one of ``groups`` shared prefixes of
    ``tokens`` tokens (a system prompt, chosen uniformly): ``tokens`` are prepended to their prompt, and
    they form prefix group ``0 .. groups - 1`` (see :class:`Traffic`); the others have none."""
    n = len(traffic)
    chosen = rng.random(n) < share
    group = np.where(chosen, rng.integers(0, groups, n), -1).astype(np.int64)
    prefix = np.where(chosen, tokens, 0).astype(np.int64)
    return Traffic(traffic.arrival_s, traffic.prompt_tokens + prefix, traffic.output_tokens, group, prefix)


def poisson_arrivals(rate_per_s: float, duration_s: float, rng: np.random.Generator) -> FloatArray:
    """Arrival times of a Poisson process of ``rate_per_s`` on [0, duration_s)."""
    return _renewal(lambda n: rng.exponential(1.0 / rate_per_s, n), rate_per_s, duration_s)


def renewal_arrivals_count(rate_per_s: float, count: int, rng: np.random.Generator, cv: float = 1.0) -> FloatArray:
    """The first ``count`` arrival times of a renewal process with mean gap ``1 / rate_per_s``: Poisson
    (exponential gaps) at ``cv`` 1, else Gamma gaps of coefficient of variation ``cv``."""
    if rate_per_s <= 0 or count < 0:
        raise ValueError("rate_per_s must be > 0 and count >= 0")
    gaps = rng.exponential(1.0 / rate_per_s, count) if cv == 1.0 else Gamma(1.0 / rate_per_s, cv).sample(rng, count)
    return np.cumsum(gaps)


def gamma_arrivals(rate_per_s: float, cv: float, duration_s: float, rng: np.random.Generator) -> FloatArray:
    """Arrival times of a Gamma renewal process: mean gap 1/rate, coefficient of variation ``cv``."""
    dist = Gamma(1.0 / rate_per_s, cv)
    return _renewal(lambda n: dist.sample(rng, n), rate_per_s, duration_s)


def _renewal(gaps: object, rate_per_s: float, duration_s: float) -> FloatArray:
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("rate_per_s and duration_s must be > 0")
    expected = rate_per_s * duration_s
    chunk = int(expected + 6 * math.sqrt(expected) + 16)
    times = np.cumsum(gaps(chunk))  # type: ignore[operator]
    while times[-1] < duration_s:
        times = np.concatenate([times, times[-1] + np.cumsum(gaps(chunk))])  # type: ignore[operator]
    return times[times < duration_s]


def diurnal_arrivals(
    rate_per_s: float, amplitude: float, period_s: float, duration_s: float, rng: np.random.Generator
) -> FloatArray:
    """Non-homogeneous Poisson arrivals with rate ``rate_per_s * (1 + amplitude * sin(2 pi t / period_s))``
    (``0 <= amplitude <= 1``), by thinning a Poisson process at the peak rate."""
    if not 0 <= amplitude <= 1:
        raise ValueError("amplitude must be in [0, 1]")
    peak = rate_per_s * (1 + amplitude)
    candidates = poisson_arrivals(peak, duration_s, rng)
    keep = rng.random(len(candidates)) * peak < rate_per_s * (1 + amplitude * np.sin(2 * np.pi * candidates / period_s))
    return candidates[keep]


#: Column names of the Azure LLM inference traces (Splitwise, ISCA 2024) as processed by Vidur
#: (``data/processed_traces/`` in microsoft/vidur), read as dcsim's own.
TRACE_COLUMN_ALIASES = {
    "arrived_at": "arrival_s",
    "num_prefill_tokens": "prompt_tokens",
    "num_decode_tokens": "output_tokens",
}


def read_trace(path: Path, time_scale: float = 1.0) -> Traffic:
    """A CSV trace ``arrival_s,prompt_tokens,output_tokens``, optionally with ``prefix_id,prefix_tokens``
    (shared prefixes: the row's first ``prefix_tokens`` tokens, prompt then output, are the stream of the
    prefix ``prefix_id`` names, any label, empty for none; see :class:`Traffic`) (header row required; extra
    columns ignored; the
    Splitwise/Vidur names ``arrived_at,num_prefill_tokens,num_decode_tokens`` are read as these, see
    :data:`TRACE_COLUMN_ALIASES`). Rows are sorted by arrival; ``time_scale`` multiplies arrival times. Errors
    name ``FILE line N``."""
    if not path.is_file():
        raise UserInputError.single(str(path), "trace file not found")
    arrivals: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    groups: list[int] = []
    streams: list[int] = []
    labels: dict[str, int] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is not None:
                reader.fieldnames = [TRACE_COLUMN_ALIASES.get(name, name) for name in reader.fieldnames]
            missing = {"arrival_s", "prompt_tokens", "output_tokens"} - set(reader.fieldnames or ())
            if missing:
                raise UserInputError.single(f"{path} line 1", f"missing columns: {', '.join(sorted(missing))}")
            prefixed = "prefix_id" in (reader.fieldnames or ())
            if prefixed != ("prefix_tokens" in (reader.fieldnames or ())):
                raise UserInputError.single(f"{path} line 1", "prefix_id and prefix_tokens go together")
            for line, row in enumerate(reader, start=2):
                try:
                    t, p, o = float(row["arrival_s"]), int(row["prompt_tokens"]), int(row["output_tokens"])
                except (TypeError, ValueError):
                    raise UserInputError.single(f"{path} line {line}", f"not numbers: {row}") from None
                if t < 0 or p < 1 or o < 1 or not math.isfinite(t):
                    raise UserInputError.single(
                        f"{path} line {line}", "arrival_s must be >= 0 and token counts >= 1"
                    ) from None
                arrivals.append(t * time_scale)
                prompts.append(p)
                outputs.append(o)
                if prefixed:
                    group, stream = _prefix_columns(row, p + o, labels, f"{path} line {line}")
                    groups.append(group)
                    streams.append(stream)
    except UnicodeDecodeError:
        raise UserInputError.single(str(path), "not a UTF-8 text file") from None
    except csv.Error as error:
        raise UserInputError.single(str(path), f"not a readable CSV file ({error})") from None
    if not arrivals:
        raise UserInputError.single(str(path), "trace has no requests (a header row and at least one request)")
    order = np.argsort(np.asarray(arrivals), kind="stable")
    return Traffic(
        np.asarray(arrivals, dtype=np.float64)[order],
        np.asarray(prompts, dtype=np.int64)[order],
        np.asarray(outputs, dtype=np.int64)[order],
        np.asarray(groups, dtype=np.int64)[order] if groups else None,
        np.asarray(streams, dtype=np.int64)[order] if groups else None,
    )


def _prefix_columns(row: dict[str, str], tokens: int, labels: dict[str, int], where: str) -> tuple[int, int]:
    """A trace row's prefix group (its ``prefix_id`` label numbered in order of appearance; empty: none) and
    stream tokens (``prefix_tokens``, 0 to the row's prompt plus output)."""
    label = (row.get("prefix_id") or "").strip()
    try:
        stream = int(row.get("prefix_tokens") or 0)
    except ValueError:
        raise UserInputError.single(where, f"prefix_tokens is not a whole number: {row}") from None
    if not label:
        if stream:
            raise UserInputError.single(where, "prefix_tokens without a prefix_id")
        return -1, 0
    if not 0 <= stream <= tokens:
        raise UserInputError.single(where, f"prefix_tokens ({stream}) must be in [0, prompt + output ({tokens})]")
    return labels.setdefault(label, len(labels)), stream
